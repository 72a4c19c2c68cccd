"""Attack classes on one driver (`Attack.execute`), and their registry.

>>> import advgrad
>>> {"fgsm", "bim", "pgd", "mifgsm"} <= set(advgrad.list_attacks())
True
"""

from advgrad.attacks.apgd import APGD, APGDTargeted
from advgrad.attacks.base import Attack, AttackResult, Chunk, ChunkResult, Plan
from advgrad.attacks.cw import CarliniWagnerL2
from advgrad.attacks.deepfool import DeepFool
from advgrad.attacks.eot import EOT
from advgrad.attacks.fab import FABTargeted
from advgrad.attacks.fgsm import FGSM
from advgrad.attacks.fmn import FMN
from advgrad.attacks.loop import IterativeAttack
from advgrad.attacks.mifgsm import MIFGSM
from advgrad.attacks.minimal import MinimalNormAttack
from advgrad.attacks.pgd import BIM, PGD
from advgrad.attacks.registry import from_config, get_attack, list_attacks, register_attack
from advgrad.attacks.square import Square
from advgrad.attacks.suites import Suite, get_suite, list_suites

__all__ = [
    "APGD",
    "APGDTargeted",
    "BIM",
    "CarliniWagnerL2",
    "DeepFool",
    "EOT",
    "FGSM",
    "FABTargeted",
    "FMN",
    "MIFGSM",
    "PGD",
    "Square",
    "Suite",
    "Attack",
    "AttackResult",
    "Chunk",
    "ChunkResult",
    "IterativeAttack",
    "MinimalNormAttack",
    "Plan",
    "from_config",
    "get_attack",
    "get_suite",
    "list_attacks",
    "list_suites",
    "register_attack",
]
