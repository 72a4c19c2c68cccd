"""Write saliency maps to a folder: figures, the maps themselves, and an index.

What ``advgrad saliency CONFIG.yaml`` runs: for each method a figure (`advgrad.saliency.plots`:
input / heat map / overlay for image inputs, bar charts for tabular ones), every map in one
``attributions.npz``, and ``index.md`` linking them with the settings, the targets and, for
integrated gradients, the completeness gap. Samples whose maps are not finite (the model's
output or gradient is NaN or inf there) are flagged per method in all three. Every file is
written atomically.

>>> import numpy as np, keras, pathlib, tempfile
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
>>> x = np.random.default_rng(0).random((3, 4), "float32")
>>> paths = write_saliency(model, x, tempfile.mkdtemp(), methods=["vanilla"])
>>> sorted(p.name for p in paths["figures"].values()), paths["index"].name
(['vanilla.png'], 'index.md')
"""

from __future__ import annotations

import io
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from advgrad._io import atomic_write
from advgrad._validation import check_int, invalid
from advgrad.saliency import plots
from advgrad.saliency.faithfulness import attribute
from advgrad.saliency.methods import METHODS, has_conv_layers, predicted_targets

__all__ = ["write_saliency"]

_TITLES = {
    "vanilla": "Vanilla gradient",
    "gradient_x_input": "Gradient x input",
    "smoothgrad": "SmoothGrad",
    "integrated_gradients": "Integrated gradients",
    "grad_cam": "Grad-CAM",
}


def _leaves(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        return [(str(k), v) for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return [(f"input_{i}", v) for i, v in enumerate(value)]
    return [("x", value)]


def _save(figure: Any, path: pathlib.Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    atomic_write(path, buffer.getvalue())


def write_saliency(
    model: Any,
    x: Any,
    out_dir: str | os.PathLike,
    *,
    methods: Sequence[str] = METHODS,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    target: Any = None,
    labels: Any = None,
    samples: int = 8,
    title: str = "Saliency maps",
    feature_names: Any = None,
) -> dict[str, Any]:
    """Compute each method's maps of `x` and write figures, ``attributions.npz`` and
    ``index.md`` to `out_dir`.

    Args:
        model: The model to explain.
        x: Inputs: an array, or a list or dict of arrays (keep it small: every sample is
            explained, the first `samples` are drawn).
        out_dir: The folder (created if needed).
        methods: Names among `METHODS`; Grad-CAM is skipped (and the index says so) for a
            model with no convolution, unless its settings name a layer.
        settings: Per method, its settings (``{"smoothgrad": {"samples": 25}}``).
        target: As for the methods; None: the predicted classes.
        labels: Optional true labels, shown next to the targets.
        samples: Samples drawn per figure (int >= 1).
        title: The index's title.
        feature_names: For tabular inputs, the features' names (see `plots.tabular_figure`).

    Returns:
        ``{"index": path, "figures": {method: path}, "attributions": path,
        "skipped": {method: reason}, "not_finite": {method: [sample indices]}}``
        (pathlib.Path objects; `not_finite` names only methods with such samples).
    """
    samples = check_int("samples", samples, low=1)
    settings = {k: dict(v) for k, v in (settings or {}).items()}
    unknown = [m for m in list(methods) + list(settings) if m not in METHODS]
    if unknown or not methods:
        raise invalid("methods", f"names among {list(METHODS)}", unknown or methods)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    targets = predicted_targets(model, x) if target is None else target
    shown = np.broadcast_to(np.asarray(targets), (len(_leaves(x)[0][1]),))
    true = None if labels is None else np.asarray(labels)
    row_labels = [
        f"target {t}" + ("" if true is None else f" (label {true[i]})")
        for i, t in enumerate(shown[:samples])
    ]
    figures: dict[str, pathlib.Path] = {}
    arrays: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    notes: dict[str, str] = {}
    not_finite: dict[str, list[int]] = {}
    for method in methods:
        options = settings.get(method, {})
        if method == "grad_cam" and options.get("layer") is None and not has_conv_layers(model):
            skipped[method] = "the model has no convolution (name a `layer`)"
            continue
        if method == "integrated_gradients":
            maps, delta = attribute(model, x, method, targets, return_delta=True, **options)
            notes[method] = _completeness(np.asarray(delta))
        else:
            maps = attribute(model, x, method, targets, **options)
        leaves = _leaves(maps)
        for name, value in leaves:
            arrays[f"{method}/{name}" if len(leaves) > 1 else method] = np.asarray(value)
        broken = _not_finite(leaves)
        arrays[f"not_finite/{method}"] = broken
        method_labels = row_labels
        if broken.any():
            not_finite[method] = np.flatnonzero(broken).tolist()
            notes[method] = " ".join(
                filter(None, [_not_finite_note(not_finite[method], len(broken)), notes.get(method)])
            )
            method_labels = [
                label + (", not finite" if broken[i] else "") for i, label in enumerate(row_labels)
            ]
        images = [(n, v) for (n, v) in leaves if plots.is_image(v)]
        inputs = dict(_leaves(x))
        title_text = _TITLES[method]
        if images:
            for name, value in images:
                suffix = "" if len(leaves) == 1 else f"-{name}"
                path = out / f"{method}{suffix}.png"
                figure = plots.image_figure(
                    np.asarray(inputs[name])[:samples],
                    np.asarray(value)[:samples],
                    title=title_text,
                    labels=method_labels,
                    samples=samples,
                )
                _save(figure, path)
                figures[method + suffix] = path
        else:
            path = out / f"{method}.png"
            tabular = maps if len(leaves) > 1 else np.asarray(maps)
            figure = plots.tabular_figure(
                tabular,
                title=title_text,
                labels=method_labels,
                feature_names=feature_names,
                samples=min(samples, 4),
            )
            _save(figure, path)
            figures[method] = path
    npz = out / "attributions.npz"
    atomic_write(npz, lambda tmp: _savez(tmp, arrays, shown))
    index = out / "index.md"
    text = _index(title, figures, settings, skipped, notes, shown, target is None, methods)
    atomic_write(index, text)
    return {
        "index": index,
        "figures": figures,
        "attributions": npz,
        "skipped": skipped,
        "not_finite": not_finite,
    }


def _not_finite(leaves: list[tuple[str, Any]]) -> np.ndarray:
    """Per sample: whether any of its maps holds a NaN or inf (bool, (batch,))."""
    flat = [np.asarray(v).reshape(len(np.asarray(v)), -1) for _, v in leaves]
    return ~np.all([np.isfinite(f).all(axis=1) for f in flat], axis=0)


def _not_finite_note(rows: list[int], total: int) -> str:
    shown = ", ".join(str(r) for r in rows[:10]) + (" ..." if len(rows) > 10 else "")
    return (
        f"**not finite: {len(rows)} of {total} samples ({shown})**: the model's output or "
        "gradient is NaN or inf there; their maps are NaN."
    )


def _completeness(delta: np.ndarray) -> str:
    """Integrated gradients' note: the largest completeness gap, over finite samples."""
    finite = np.isfinite(delta)
    if not finite.any():
        return "completeness: undefined (no sample has finite maps)"
    largest = np.abs(delta[finite]).max()
    text = f"completeness: largest gap sum - (f(x) - f(baseline)) = {largest:.3g}"
    if not finite.all():
        text += f" over the {int(finite.sum())} samples with finite maps"
    return text


def _savez(path: str, arrays: dict[str, np.ndarray], targets: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.savez(f, targets=np.asarray(targets), **arrays)


def _index(title, figures, settings, skipped, notes, targets, predicted, methods) -> str:
    lines = [f"# {title}", ""]
    which = "each sample's predicted class" if predicted else "the given class(es)"
    lines.append(
        f"{len(targets)} sample(s). Each map explains one score per sample: the logit "
        f"(pre-softmax) of {which}: {', '.join(str(t) for t in targets[:20])}"
        f"{' ...' if len(targets) > 20 else ''}."
    )
    lines.append("")
    if any("not finite" in note for note in notes.values()):
        lines.append(
            "**Warning**: some samples' model outputs or gradients are NaN or inf: their maps "
            "are NaN (blank in the figures) and flagged in the notes below and in "
            "`attributions.npz` (`not_finite/<method>`)."
        )
        lines.append("")
    lines.append("| method | settings | figure | note |")
    lines.append("|---|---|---|---|")
    for method in methods:
        options = ", ".join(f"{k}={v}" for k, v in settings.get(method, {}).items()) or "defaults"
        if method in skipped:
            lines.append(f"| {_TITLES[method]} | {options} | - | skipped: {skipped[method]} |")
            continue
        links = [
            f"[{key}]({path.name})"
            for key, path in figures.items()
            if key == method or key.startswith(method + "-")
        ]
        lines.append(
            f"| {_TITLES[method]} | {options} | {', '.join(links)} | {notes.get(method, '')} |"
        )
    lines.append("")
    for key, path in figures.items():
        lines.append(f"## {key}")
        lines.append("")
        lines.append(f"![{key}]({path.name})")
        lines.append("")
    lines.append(
        "All maps: `attributions.npz` (one array per method, `not_finite/<method>`: per "
        "sample, whether its map is not finite, and `targets`)."
    )
    return "\n".join(lines) + "\n"
