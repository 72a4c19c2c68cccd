"""The report as plots (matplotlib): robust accuracy against eps, and adversarial images.

`save_plots` writes what `advgrad.report.Report.save_plots` promises; `curves_figure` and
`images_figure` build the figures (the caller closes them); `pyplot` imports matplotlib's
pyplot on the Agg backend, or says how to install it.
"""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from advgrad.report.stats import CASCADE, NORM_NAMES, eps_label, wilson

if TYPE_CHECKING:
    from advgrad.report.core import Report

__all__ = ["curves_figure", "eps_axis_label", "images_figure", "pyplot", "save_plots"]


def save_plots(report: Report, directory: str | os.PathLike) -> list[str]:
    """The PNG plots of `Report.save_plots`, written into `directory`; their paths."""
    plt = pyplot()
    folder = pathlib.Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    figures = [("robust_accuracy.png", lambda: curves_figure(report, plt))]
    for e, adv in (report.adversarial or {}).items():
        x_adv = adv.get("x_adv")
        if isinstance(x_adv, np.ndarray) and x_adv.ndim == 4 and len(x_adv):
            name = f"adversarial_eps={eps_label(e)}.png"
            figures.append((name, lambda e=e, adv=adv: images_figure(report, plt, e, adv)))
    paths = []
    for name, build in figures:
        fig = build()
        try:
            fig.savefig(folder / name, dpi=110)
        finally:
            plt.close(fig)
        paths.append(str(folder / name))
    return paths


def eps_axis_label(report: Report) -> str:
    """``eps (Linf)``, ``eps (L2)``...: the norm of the suite's attacks; ``eps (mixed
    norms)`` when they differ, plain ``eps`` when the suite does not say."""
    names = set()
    if report.curve and report.curve.get("norm"):
        names.add(NORM_NAMES.get(str(report.curve["norm"]), str(report.curve["norm"])))
    for config in report.suite:
        norm = config.get("norm") if isinstance(config, Mapping) else None
        if isinstance(norm, Mapping):  # a custom norm's config
            norm = norm.get("name")
        if norm is not None:
            names.add(NORM_NAMES.get(str(norm).lower(), str(norm)))
    if not names:
        return "eps"
    return f"eps ({names.pop()})" if len(names) == 1 else "eps (mixed norms)"


def curves_figure(report: Report, plt: Any) -> Any:
    """Robust accuracy against eps, as a matplotlib ``Figure`` (the caller closes it).

    The worst case is a thick, semi-transparent black line drawn underneath; each attack
    alone a thin dashed line with markers on top, so an attack whose curve equals the
    worst case (always so for a single attack) stays visible.
    """
    fig, ax = plt.subplots(figsize=(5.5, 4))
    xs = [0.0, *report.eps] if report.eps and report.eps[0] > 0 else list(report.eps)

    def with_clean(attack: str | None) -> list[float]:
        start = [report.clean_fraction()] if len(xs) > len(report.eps) else []
        values = [report.robust_fraction(e, attack) for e in report.eps]
        return start + [math.nan if v is None else v for v in values]

    band = _band(report, len(xs) > len(report.eps))
    handles = []
    if band is not None:
        interval = ax.fill_between(
            xs,
            band[0],
            band[1],
            color="black",
            alpha=0.12,
            lw=0,
            label="95% interval (worst case)",
            zorder=1,
        )
        handles.append(interval)
    (worst,) = ax.plot(
        xs,
        with_clean(None),
        color="black",
        lw=6,
        alpha=0.3,
        solid_capstyle="round",
        label=CASCADE,
        zorder=2,
    )
    for label in report.attacks:
        if label in report.per_attack:
            line = ax.plot(
                xs,
                with_clean(label),
                marker="o",
                ms=5,
                ls="--",
                lw=1.5,
                label=f"{label} (alone)",
                zorder=3,
            )
            handles.extend(line)
    if report.curve:
        steps_x, steps_y = report.curve_points()
        right = max([*report.eps, *steps_x[-1:]], default=0.0) * 1.05 or 1.0
        (line,) = ax.step(
            [*steps_x, right],
            [*steps_y, steps_y[-1]],
            where="post",
            color="tab:red",
            lw=1.8,
            label=f"curve: minimal norms ({', '.join(report.curve.get('attacks', []))})",
            zorder=4,
        )
        handles.append(line)
    ax.set_xlabel(eps_axis_label(report))
    ax.set_ylabel("robust accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    shown = [worst, *handles] if report.eps else handles[-1:]  # curve only: its line
    ax.legend(handles=shown, fontsize="small")  # worst case, its band, attacks
    name = report.model.get("name")
    ax.set_title(f"{name}: {report.n_samples} samples" if name else f"{report.n_samples} samples")
    fig.tight_layout()
    return fig


def _band(report: Report, with_clean: bool) -> tuple[list[float], list[float]] | None:
    """Lows and highs of the worst case's 95% Wilson intervals (the clean accuracy's
    first when `with_clean`), or None without per-sample outcomes."""
    counts = [report.robust_counts(e) for e in report.eps]
    if not counts or report.n_samples == 0 or any(c is None for c in counts):
        return None
    if with_clean:
        counts.insert(0, report.clean_counts())
    pairs = [wilson(*c, 0.95) for c in counts]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def images_figure(report: Report, plt: Any, e: float, adv: dict) -> Any:
    """Clean, adversarial and perturbation images of a few fooled samples at `e`, as a
    matplotlib ``Figure`` (the caller closes it), with a colour bar for the perturbation."""
    count = min(6, len(adv["x_adv"]))
    clean = np.asarray(adv["x"][:count], np.float64)
    x_adv = np.asarray(adv["x_adv"][:count], np.float64)
    delta = x_adv - clean
    low, high = float(np.min(clean)), float(np.max(clean))
    span = float(np.max(np.abs(delta))) or 1.0
    fig, axes = plt.subplots(
        3, count, figsize=(1.7 * count + 1.2, 5.4), squeeze=False, layout="constrained"
    )
    shown = None
    for j in range(count):
        label, predicted = adv["label"][j], adv["predicted"][j]
        attack = report.attacks[adv["attack"][j]] if report.attacks else adv["attack"][j]
        axes[0][j].imshow(_image(clean[j], low, high), cmap="gray", vmin=0, vmax=1)
        axes[0][j].set_title(f"clean: true {label}", fontsize=8)
        axes[1][j].imshow(_image(x_adv[j], low, high), cmap="gray", vmin=0, vmax=1)
        axes[1][j].set_title(f"true {label} → predicted {predicted}", fontsize=8)
        image = delta[j] if delta.shape[-1] != 1 else delta[j][..., 0]
        if image.ndim == 3:  # colour perturbation: mean over channels for one colormap
            image = image.mean(axis=-1)
        shown = axes[2][j].imshow(image, cmap="RdBu", vmin=-span, vmax=span)
        axes[2][j].set_title(f"perturbation ({attack})", fontsize=8)
        for i in range(3):
            axes[i][j].axis("off")
    colour = delta.ndim == 4 and delta.shape[-1] != 1
    bar = fig.colorbar(shown, ax=[axes[2][j] for j in range(count)], shrink=0.9)
    bar.set_label("x_adv - x" + (" (channel mean)" if colour else ""), fontsize=8)
    bar.ax.tick_params(labelsize=7)
    fig.suptitle(f"eps={eps_label(e)}: clean / adversarial / perturbation", fontsize=9)
    return fig


def _image(array: np.ndarray, low: float, high: float) -> np.ndarray:
    """Scale an HxWxC image to [0, 1] for imshow (grayscale when C == 1)."""
    scaled = (array - low) / (high - low) if high > low else array * 0
    scaled = np.clip(scaled, 0, 1)
    return scaled[..., 0] if scaled.shape[-1] == 1 else scaled


def pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "Report.save_plots needs matplotlib (a dependency of advgrad), which is not "
            "installed. Install it with `pip install matplotlib` (or `pip install advgrad[plots]`)."
        ) from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt
