"""Building a saliency run from a validated `SaliencyConfig`: the model, the samples, the
targets. The model and the data are loaded by `advgrad.config.build.build_run` (same checks,
same errors); Keras and TensorFlow are imported when `build_saliency` is called.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from advgrad.config.build import build_run
from advgrad.config.problems import _Problems
from advgrad.config.saliency import SaliencyConfig

__all__ = ["SaliencyRun", "build_saliency"]


class SaliencyRun(NamedTuple):
    """What `advgrad.saliency.write_saliency` needs.

    Attributes:
        model: The loaded model.
        x: The samples to explain (an array, or a dict of arrays for several inputs).
        y: Their labels.
        target: None (the predicted classes), the labels, or one class id.
    """

    model: Any
    x: Any
    y: np.ndarray
    target: Any


def build_saliency(config: SaliencyConfig) -> SaliencyRun:
    """Load the model and data of a saliency config and pick its samples and targets.

    Raises:
        ConfigError: As `build_run`, and for ``indices`` beyond the data.
    """
    run = build_run(config.bench)
    x, y = run.data
    if config.indices is not None:
        problems = _Problems()
        for position, index in enumerate(config.indices):
            if index >= len(y):
                problems.add(
                    f"indices[{position}]",
                    f"sample {index} does not exist (the data holds {len(y)} samples)",
                )
        problems.raise_if_any(config.bench.source)
        chosen = np.asarray(config.indices, dtype=np.int64)
        x = (
            {k: np.asarray(v)[chosen] for k, v in x.items()}
            if isinstance(x, dict)
            else (
                [np.asarray(v)[chosen] for v in x] if isinstance(x, list) else np.asarray(x)[chosen]
            )
        )
        y = np.asarray(y)[chosen]
    target = {"predicted": None, "label": np.asarray(y, np.int64)}.get(config.target, config.target)
    if isinstance(config.target, int):
        target = int(config.target)
    return SaliencyRun(run.model, x, y, target)
