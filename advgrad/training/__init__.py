"""Adversarial training inside Keras ``fit``: PGD-AT and TRADES, and robust accuracy per epoch.

>>> import advgrad
>>> sorted(advgrad.training.OBJECTIVES)
['pgd-at', 'trades']
"""

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
