"""Attack classes on one compiled loop, and their registry.

>>> import advgrad
>>> {"fgsm", "bim", "pgd", "mifgsm"} <= set(advgrad.list_attacks())
True
"""

from advgrad.attacks.base import Attack, AttackResult, Plan
from advgrad.attacks.fgsm import FGSM
from advgrad.attacks.loop import IterativeAttack
from advgrad.attacks.mifgsm import MIFGSM
from advgrad.attacks.pgd import BIM, PGD
from advgrad.attacks.registry import from_config, get_attack, list_attacks, register_attack

__all__ = [
    "BIM",
    "FGSM",
    "MIFGSM",
    "PGD",
    "Attack",
    "AttackResult",
    "IterativeAttack",
    "Plan",
    "from_config",
    "get_attack",
    "list_attacks",
    "register_attack",
]
