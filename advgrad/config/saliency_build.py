"""Building a saliency run from a validated `SaliencyConfig`: the model, the samples, the
targets. The model and the data are loaded by `advgrad.config.build.build_run` (same checks,
same errors); Keras and TensorFlow are imported when `build_saliency` is called.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from advgrad.config.build import build_run
from advgrad.saliency.config import SaliencyConfig
from advgrad.schema.problems import Problems

__all__ = ["SaliencyRun", "build_saliency"]


class SaliencyRun(NamedTuple):
    """What `advgrad.saliency.write_saliency` needs.

    Attributes:
        model: The loaded model.
        x: The samples to explain (an array, or a dict of arrays for several inputs).
        y: Their labels.
        target: None (the predicted classes), the labels, or one class id.
        feature_names: The tabular features' names (the config's, else the npz's
            ``feature_names`` array or the embedded data set's), or None.
    """

    model: Any
    x: Any
    y: np.ndarray
    target: Any
    feature_names: Any = None


def build_saliency(config: SaliencyConfig) -> SaliencyRun:
    """Load the model and data of a saliency config and pick its samples and targets.

    Raises:
        ConfigError: As `build_run`, and for ``indices`` beyond the data.
    """
    run = build_run(config.bench)
    x, y = run.data
    if config.indices is not None:
        problems = Problems()
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
    return SaliencyRun(run.model, x, y, target, feature_names_of(config, x))


def feature_names_of(config: SaliencyConfig, x: Any) -> Any:
    """The config's ``feature_names``, else an npz's string array ``feature_names`` (one
    input) or an embedded data set's (`advgrad.data.Dataset.feature_names`), else None; a
    list as long as the input's features (a dict of those per input).

    Raises:
        ConfigError: ``feature_names`` of another length than the input's features.
    """
    names = config.feature_names
    data = config.bench.data
    npz = data.npz if data is not None else None
    if names is None and data is not None and data.name is not None:
        from advgrad import data as data_lib

        names = data_lib.get(data.name).feature_names  # cached: loaded by `build_run`
    if names is None and npz is not None and not isinstance(x, (dict, list)):
        with np.load(npz, allow_pickle=False) as archive:
            stored = archive["feature_names"] if "feature_names" in archive.files else None
        if stored is not None and stored.dtype.kind in "US":
            names = tuple(str(n) for n in stored.reshape(-1))
    if names is None or isinstance(x, (dict, list)) != isinstance(names, dict):
        return names
    problems = Problems()
    inputs = x if isinstance(x, dict) else {None: x}
    given = names if isinstance(names, dict) else {None: names}
    for key, value in given.items():
        width = int(np.prod(np.shape(inputs[key])[1:])) if key in inputs else None
        if width is not None and value is not None and len(value) != width:
            where = "feature_names" if key is None else f"feature_names.{key}"
            problems.add(where, f"{len(value)} names for the input's {width} features")
    problems.raise_if_any(config.bench.source)
    return dict(names) if isinstance(names, dict) else list(names)
