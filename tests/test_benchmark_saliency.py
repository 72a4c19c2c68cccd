"""benchmarks/saliency.py with undefined figures (issue 24): a sanity check whose rank
correlation is undefined (None) and a deletion test whose ratio is undefined or infinite
are written as "undefined" in the Markdown and as null in valid JSON."""

import importlib.util
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _benchmark():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # it imports its sibling speed.py
    try:
        spec = importlib.util.spec_from_file_location(
            "bench_saliency", ROOT / "benchmarks" / "saliency.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


def _result():
    machine = dict.fromkeys(("date", "cpu_model", "cpu_count", "cpus_usable"), "x")
    machine.update(gpus=[], tensorflow="t", keras="k", numpy="n", advgrad="a", loadavg_start=[])
    deletion = dict(ranked_change=None, random_change=None, ranked_drop=None, random_drop=None)
    return {
        "machine": machine,
        "loadavg_end": None,
        "settings": "s",
        "speed": {"rows": [], "notes": {}, "floor_linearity": 1.0},
        "completeness": {
            "m": [
                {
                    "rule": "r",
                    "steps": 64,
                    "max": float("nan"),
                    "p95": float("inf"),
                    "median": 0.5,
                    "within_1pct": 1.0,
                    "aggregate": None,
                    "max_abs": float("nan"),
                    "smallest_gap": 0.0,
                }
            ]
        },
        "deletion": [
            {"method": "vanilla", "k": 4, "ratio": None, **deletion},
            {
                "method": "ig",
                "k": 4,
                "ratio": float("inf"),
                **{**deletion, "ranked_change": 1.0, "random_change": 0.0},
            },
        ],
        "sanity": [
            {
                "method": "vanilla",
                "rank_correlation_abs": None,
                "rank_correlation_signed": None,
                "flagged": True,
            }
        ],
    }


def test_undefined_figures_print_undefined_and_write_valid_json(tmp_path):
    text = _benchmark().write(_result(), tmp_path)
    assert "| vanilla | undefined | undefined | yes |" in text
    assert "| vanilla | 4 | undefined | undefined | undefined | undefined | undefined |" in text
    assert "| ig | 4 | 1.000 | 0.000 | inf | undefined | undefined |" in text
    assert (tmp_path / "saliency.md").read_text() == text
    raw = (tmp_path / "saliency.json").read_text()
    document = json.loads(raw, parse_constant=lambda name: pytest_fail(name))
    assert document["sanity"][0]["rank_correlation_abs"] is None
    assert document["deletion"][1]["ratio"] is None  # inf: JSON has none
    assert document["completeness"]["m"][0]["max"] is None


def pytest_fail(name):
    raise AssertionError(f"not valid JSON: bare {name}")
