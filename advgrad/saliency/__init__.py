"""Saliency maps from advgrad's gradient engine: which input features drive a prediction.

Five methods, each returning attributions with the structure of the inputs (one array, a
list or a dict) for any model the engine supports: `vanilla` (the gradient),
`gradient_x_input`, `smoothgrad`, `integrated_gradients` and `grad_cam`. Each explains one
score per sample: the target class's logit (read before a final softmax), by default the
predicted class; for a one-unit (regression) output, that unit. `sanity_check` runs the
model-randomisation test of Adebayo et al. (2018) and `deletion_test` the pixel-deletion
test; `write_saliency` writes figures and an index (what ``advgrad saliency CONFIG.yaml``
runs).

>>> import numpy as np, keras
>>> from advgrad import saliency
>>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
>>> x = np.random.default_rng(0).random((4, 3), "float32")
>>> ig, delta = saliency.integrated_gradients(model, x, steps=8, return_delta=True)
>>> ig.shape, bool(np.abs(delta).max() < 1e-4)
((4, 3), True)
"""

from typing import TYPE_CHECKING

from advgrad._lazy import lazy_names

if TYPE_CHECKING:
    from advgrad.saliency.faithfulness import (
        DeletionResult,
        SanityResult,
        attribute,
        deletion_test,
        randomized_copy,
        rank_correlation,
        sanity_check,
    )
    from advgrad.saliency.methods import (
        MAX_STEPS,
        METHODS,
        RULES,
        grad_cam,
        gradient_x_input,
        integrated_gradients,
        integration_rule,
        predicted_targets,
        scores,
        smoothgrad,
        vanilla,
    )
    from advgrad.saliency.writing import write_saliency

__all__ = [
    "MAX_STEPS",
    "METHODS",
    "RULES",
    "DeletionResult",
    "SanityResult",
    "attribute",
    "deletion_test",
    "grad_cam",
    "gradient_x_input",
    "integrated_gradients",
    "integration_rule",
    "predicted_targets",
    "randomized_copy",
    "rank_correlation",
    "sanity_check",
    "scores",
    "smoothgrad",
    "vanilla",
    "write_saliency",
]

__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "MAX_STEPS": "advgrad.saliency.methods",
        "METHODS": "advgrad.saliency.methods",
        "RULES": "advgrad.saliency.methods",
        "grad_cam": "advgrad.saliency.methods",
        "gradient_x_input": "advgrad.saliency.methods",
        "integrated_gradients": "advgrad.saliency.methods",
        "integration_rule": "advgrad.saliency.methods",
        "predicted_targets": "advgrad.saliency.methods",
        "scores": "advgrad.saliency.methods",
        "smoothgrad": "advgrad.saliency.methods",
        "vanilla": "advgrad.saliency.methods",
        "DeletionResult": "advgrad.saliency.faithfulness",
        "SanityResult": "advgrad.saliency.faithfulness",
        "attribute": "advgrad.saliency.faithfulness",
        "deletion_test": "advgrad.saliency.faithfulness",
        "randomized_copy": "advgrad.saliency.faithfulness",
        "rank_correlation": "advgrad.saliency.faithfulness",
        "sanity_check": "advgrad.saliency.faithfulness",
        "write_saliency": "advgrad.saliency.writing",
    },
)
