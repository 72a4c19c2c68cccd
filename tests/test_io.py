"""advgrad._io: reading only regular files under a size limit (never a device or a FIFO)."""

import os
import sys

import pytest

from advgrad._io import FileTooLargeError, NotRegularFileError, read_regular

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX special files")


def test_reads_a_regular_file(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"hello")
    assert read_regular(path, 5) == b"hello"
    assert read_regular(str(path), 100) == b"hello"
    (tmp_path / "empty").write_bytes(b"")
    assert read_regular(tmp_path / "empty", 0) == b""


def test_oversized_file_refused_before_reading(tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 101)
    with pytest.raises(ValueError) as info:  # caught as a ValueError
        read_regular(path, 100)
    assert type(info.value) is FileTooLargeError
    assert info.value.size == 101 and info.value.limit == 100
    assert "101 bytes" in str(info.value) and str(path) in str(info.value)


@posix_only
@pytest.mark.timeout(30)
def test_devices_fifos_and_folders_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)  # nobody writes to it: a blocking open or read would hang
    for path in ("/dev/zero", fifo, tmp_path):
        with pytest.raises(ValueError) as info:  # caught as a ValueError
            read_regular(path, 1 << 20)
        assert type(info.value) is NotRegularFileError
        assert str(info.value) == f"not a regular file: {path}"


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing", 10)


def test_limit_checked():
    with pytest.raises(ValueError, match="limit"):
        read_regular(__file__, -1)
