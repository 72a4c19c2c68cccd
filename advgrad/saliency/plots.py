"""Figures of saliency maps (matplotlib, no pyplot: no display and no global state needed).

- Image inputs (one sample of shape (H, W) or (H, W, C), C in 1, 3, 4): one row per sample,
  three panels: the input, the attribution heat map (summed over channels; a diverging
  map centred on 0 for signed maps), and the heat map laid over the input.
- Tabular inputs (one sample of shape (features,), one input or several): one bar chart per
  sample of its per-feature attributions, named ``input[i]`` (or by `feature_names`).

Inputs are shown scaled to their own range (no [0, 1] assumed).

>>> import numpy as np
>>> x = np.random.default_rng(0).random((2, 8, 8, 1))
>>> figure = image_figure(x, x - 0.5, title="demo")
>>> len(figure.axes)  # 2 rows of 3 panels, and a colour bar per heat map
8
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["is_image", "image_figure", "tabular_figure"]


def is_image(x: Any) -> bool:
    """True for a batch of images: per sample (H, W), or (H, W, C) with C in 1, 3, 4.

    >>> is_image(np.zeros((2, 8, 8, 1))), is_image(np.zeros((2, 30)))
    (True, False)
    """
    shape = np.shape(x)[1:]
    if len(shape) == 2:
        return min(shape) >= 2
    return len(shape) == 3 and shape[-1] in (1, 3, 4) and min(shape[:2]) >= 2


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _display(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """An image scaled to [0, 1] by its own range, and the colormap (gray for 1 channel)."""
    image = np.asarray(image, np.float64)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[-1] == 4:
        image = image[..., :3]
    low, high = image.min(), image.max()
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return scaled, "gray" if scaled.ndim == 2 else None


def _heat(attribution: np.ndarray) -> np.ndarray:
    attribution = np.asarray(attribution, np.float64)
    return attribution.sum(axis=-1) if attribution.ndim == 3 else attribution


def image_figure(
    x: np.ndarray,
    attributions: np.ndarray,
    *,
    title: str = "",
    labels: Sequence[str] | None = None,
    samples: int = 8,
):
    """Input / heat map / overlay, one row per sample (at most `samples` rows).

    Args:
        x: Images, shape (batch, H, W) or (batch, H, W, C).
        attributions: The maps, shaped like `x`.
        title: The figure's title (the method, say).
        labels: Optional per-sample row labels ("target 3", say).
        samples: The most rows drawn.

    Returns:
        A ``matplotlib.figure.Figure``.
    """
    x, attributions = np.asarray(x), np.asarray(attributions)
    rows = max(1, min(len(x), samples))
    figure = _figure(6.6, 2.1 * rows + 0.4)
    axes = figure.subplots(rows, 3, squeeze=False)
    for row in range(rows):
        image, cmap = _display(x[row])
        heat = _heat(attributions[row])
        finite = heat[np.isfinite(heat)]  # a map that is not finite is drawn blank
        signed = finite.size > 0 and finite.min() < 0
        limit = float(np.abs(finite).max()) if finite.size else 1.0
        limit = limit or 1.0
        heat_cmap = "bwr" if signed else "inferno"
        low = -limit if signed else 0.0
        axes[row, 0].imshow(image, cmap=cmap)
        shown = axes[row, 1].imshow(heat, cmap=heat_cmap, vmin=low, vmax=limit)
        figure.colorbar(shown, ax=axes[row, 1], shrink=0.8)
        gray = image if image.ndim == 2 else image.mean(axis=-1)
        axes[row, 2].imshow(gray, cmap="gray")
        axes[row, 2].imshow(heat, cmap=heat_cmap, vmin=low, vmax=limit, alpha=0.55)
        for col, name in enumerate(("input", "attribution", "overlay")):
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
            if row == 0:
                axes[row, col].set_title(name, fontsize=9)
        if labels is not None and row < len(labels):
            axes[row, 0].set_ylabel(labels[row], fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def tabular_figure(
    attributions: Any,
    *,
    title: str = "",
    labels: Sequence[str] | None = None,
    feature_names: Mapping[str, Sequence[str]] | Sequence[str] | None = None,
    samples: int = 4,
):
    """Bar charts of per-feature attributions, one panel per sample (at most `samples`).

    Args:
        attributions: One array (batch, features), or a list or dict of them (several
            inputs, drawn side by side).
        title: The figure's title.
        labels: Optional per-sample panel labels.
        feature_names: Names of the features (per input for a dict); default ``input[i]``.
        samples: The most panels drawn.

    Returns:
        A ``matplotlib.figure.Figure``.

    >>> figure = tabular_figure({"a": np.ones((2, 3)), "b": -np.ones((2, 2))})
    >>> len(figure.axes)
    2
    """
    names, values = _features(attributions, feature_names)
    rows = max(1, min(len(values), samples))
    figure = _figure(max(6.0, 0.22 * len(names) + 1.5), 2.2 * rows + 0.6)
    axes = figure.subplots(rows, 1, squeeze=False)[:, 0]
    positions = np.arange(len(names))
    for row in range(rows):
        bars = values[row]
        colors = np.where(bars >= 0, "tab:red", "tab:blue")
        axes[row].bar(positions, bars, color=colors)
        axes[row].axhline(0.0, color="black", linewidth=0.6)
        axes[row].set_xticks(positions)
        axes[row].set_xticklabels(names if row == rows - 1 else [], rotation=90, fontsize=7)
        axes[row].set_ylabel("attribution", fontsize=8)
        if labels is not None and row < len(labels):
            axes[row].set_title(labels[row], fontsize=9)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def _features(attributions: Any, feature_names: Any) -> tuple[list[str], np.ndarray]:
    if isinstance(attributions, Mapping):
        items = list(attributions.items())
    elif isinstance(attributions, (list, tuple)):
        items = [(f"input_{i}", v) for i, v in enumerate(attributions)]
    else:
        items = [("x", attributions)]
    names: list[str] = []
    columns = []
    for key, value in items:
        array = np.asarray(value, np.float64)
        array = array.reshape(len(array), -1)
        if isinstance(feature_names, Mapping):
            given = feature_names.get(key)
        else:
            given = feature_names if len(items) == 1 else None
        if given is not None and len(given) == array.shape[1]:
            names.extend(str(n) for n in given)
        else:
            names.extend(f"{key}[{i}]" for i in range(array.shape[1]))
        columns.append(array)
    return names, np.concatenate(columns, axis=1)
