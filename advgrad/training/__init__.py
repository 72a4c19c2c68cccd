"""Adversarial training inside Keras ``fit``: PGD-AT and TRADES, and robust accuracy per epoch.

>>> import advgrad
>>> sorted(advgrad.training.OBJECTIVES)
['pgd-at', 'trades']
"""

from advgrad.training.callbacks import RobustAccuracy
from advgrad.training.data import EpochBatches
from advgrad.training.model import STEPS_PER_EXECUTION, AdversarialModel, adversarial
from advgrad.training.objectives import OBJECTIVES

__all__ = [
    "OBJECTIVES",
    "EpochBatches",
    "STEPS_PER_EXECUTION",
    "AdversarialModel",
    "RobustAccuracy",
    "adversarial",
]
