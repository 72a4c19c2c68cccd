"""MI-FGSM: iterative FGSM with momentum on L1-normalised gradients.

Dong et al., "Boosting Adversarial Attacks with Momentum", CVPR 2018. The step rule is
``chain(momentum(decay), normalize(norm))``; the step size defaults to eps / steps.

>>> import advgrad
>>> advgrad.attacks.MIFGSM(eps=0.1, steps=10).relative_step()
0.1
"""

from __future__ import annotations

from typing import Any, ClassVar

from advgrad import steps
from advgrad._validation import check_number
from advgrad.attacks.base import setting
from advgrad.attacks.loop import IterativeAttack
from advgrad.attacks.registry import register_attack
from advgrad.norms import Norm


@register_attack("mifgsm")
class MIFGSM(IterativeAttack):
    """Momentum iterative FGSM; `decay` is the momentum factor mu (1.0 in the paper)."""

    DEFAULTS: ClassVar[dict[str, Any]] = {"steps": 10, "decay": 1.0}
    CHECKS: ClassVar[dict[str, Any]] = {"decay": setting(check_number, "decay", low=0.0)}
    FIXED: ClassVar[dict[str, Any]] = {"random_start": False, "restarts": 1}

    def relative_step(self) -> float:
        return 1.0 / self.steps

    def step_rule(self, norm: Norm) -> steps.StepRule:
        return steps.chain(steps.momentum(self.decay), steps.normalize(norm))
