"""What every benchmark script shares: the repository on ``sys.path`` and the results writer.

A script runs as ``python benchmarks/NAME.py`` (its folder is then on ``sys.path``) and
starts with ``from _common import ROOT, write_results``: importing this module puts the
repository (for ``advgrad``) and ``benchmarks/`` (for sibling scripts) on ``sys.path``.

>>> (ROOT / "benchmarks" / "_common.py").is_file()
True
"""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

for _folder in (ROOT, ROOT / "benchmarks"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))


def write_results(
    out: pathlib.Path,
    name: str,
    data: Any,
    markdown: str,
    *,
    dumps: Callable[..., str] = json.dumps,
    **options: Any,
) -> None:
    """Writes ``<out>/<name>.json`` (`data` through `dumps`, indent 2 unless `options` say
    otherwise, one trailing newline) and ``<out>/<name>.md`` (`markdown`), in UTF-8.

    Example:
        ``write_results(RESULTS, "speed", report, table)``
    """
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    options.setdefault("indent", 2)
    (out / f"{name}.json").write_text(dumps(data, **options) + "\n", encoding="utf-8")
    (out / f"{name}.md").write_text(markdown, encoding="utf-8")
