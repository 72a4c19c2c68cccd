"""`import advgrad`: the public API, loaded on first use, with no TensorFlow at import."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import advgrad

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_every_public_name_resolves():
    for name in advgrad.__all__:
        assert getattr(advgrad, name) is not None, name
    assert set(advgrad.__all__) <= set(dir(advgrad))
    assert advgrad.evaluate is advgrad.evaluate  # cached after the first lookup


def test_import_loads_no_tensorflow_until_used():
    code = (
        "import sys, advgrad; before = 'tensorflow' in sys.modules; "
        "advgrad.Budget; print(before, 'tensorflow' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.stdout.split() == ["False", "True"], done.stderr


def test_unknown_attribute_is_an_attribute_error():
    try:
        advgrad.not_a_thing  # noqa: B018
    except AttributeError as err:
        assert "not_a_thing" in str(err)
    else:
        raise AssertionError("no AttributeError")
