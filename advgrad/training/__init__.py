"""Adversarial training inside Keras ``fit``: PGD-AT and TRADES, and robust accuracy per epoch.

>>> import advgrad
>>> sorted(advgrad.training.OBJECTIVES)
['pgd-at', 'trades']
"""

from typing import TYPE_CHECKING

from advgrad._lazy import lazy_names

if TYPE_CHECKING:
    from advgrad.training.backup import BACKUP_FILE, Backup
    from advgrad.training.callbacks import NonFiniteLossError, RobustAccuracy, StopOnNonFiniteLoss
    from advgrad.training.data import EpochBatches
    from advgrad.training.model import STEPS_PER_EXECUTION, AdversarialModel, adversarial
    from advgrad.training.objectives import OBJECTIVES

__all__ = [
    "BACKUP_FILE",
    "OBJECTIVES",
    "Backup",
    "EpochBatches",
    "STEPS_PER_EXECUTION",
    "AdversarialModel",
    "NonFiniteLossError",
    "RobustAccuracy",
    "StopOnNonFiniteLoss",
    "adversarial",
]

__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "BACKUP_FILE": "advgrad.training.backup",
        "Backup": "advgrad.training.backup",
        "NonFiniteLossError": "advgrad.training.callbacks",
        "RobustAccuracy": "advgrad.training.callbacks",
        "StopOnNonFiniteLoss": "advgrad.training.callbacks",
        "EpochBatches": "advgrad.training.data",
        "STEPS_PER_EXECUTION": "advgrad.training.model",
        "AdversarialModel": "advgrad.training.model",
        "adversarial": "advgrad.training.model",
        "OBJECTIVES": "advgrad.training.objectives",
    },
)
