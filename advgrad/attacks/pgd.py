"""Iterative attacks on the shared loop: BIM and PGD.

- BIM (Kurakin, Goodfellow & Bengio, "Adversarial examples in the physical world", 2017):
  iterated FGSM from the clean input.
- PGD (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks",
  ICLR 2018): a uniform random start in the ball, `restarts` independent runs, and the best
  adversarial per sample (a sample fooled at any iterate stays fooled).

>>> import advgrad
>>> attack = advgrad.attacks.PGD(eps=0.1, steps=20, restarts=2)
>>> attack.random_start, attack.relative_step()
(True, 0.125)
"""

from __future__ import annotations

from typing import Any, ClassVar

from advgrad.attacks.loop import IterativeAttack
from advgrad.attacks.registry import register_attack


@register_attack("bim")
class BIM(IterativeAttack):
    """Basic iterative method: `steps` steps of size `step_size` (default 2.5 * eps / steps)
    from the clean input, projected into the ball and clipped to the bounds."""

    DEFAULTS: ClassVar[dict[str, Any]] = {"steps": 10}
    FIXED: ClassVar[dict[str, Any]] = {"random_start": False, "restarts": 1}


@register_attack("pgd")
class PGD(IterativeAttack):
    """Projected gradient descent with random start and restarts (Madry et al. 2018).

    Settings: eps, norm, step_size (default 2.5 * eps / steps), steps (40), random_start
    (True), restarts (1), bounds, budget, targeted, loss, seed, batch_size, progress.
    """

    DEFAULTS: ClassVar[dict[str, Any]] = {"steps": 40, "random_start": True, "restarts": 1}
