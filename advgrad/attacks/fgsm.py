"""FGSM / FGM: one step of size eps along the norm's steepest-ascent direction.

Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015.
For Linf this is ``clip(x + eps * sign(grad), low, high)``; for L2 and L1 the fast gradient
method (FGM) steps along ``grad / ||grad||_2`` or the sparse L1 direction.

>>> import advgrad
>>> advgrad.attacks.FGSM(eps=0.1).get_config()["eps"]
0.1
"""

from __future__ import annotations

from typing import Any, ClassVar

from advgrad.attacks.loop import IterativeAttack
from advgrad.attacks.registry import register_attack


@register_attack("fgsm")
class FGSM(IterativeAttack):
    """Fast gradient sign method (FGM for "l2"/"l1"): settings eps, norm, bounds, budget,
    targeted, loss, seed, batch_size, progress."""

    FIXED: ClassVar[dict[str, Any]] = {
        "steps": 1,
        "step_size": None,
        "random_start": False,
        "restarts": 1,
    }
    KEEP_BEST: ClassVar[bool] = False

    def relative_step(self) -> float:
        return 1.0
