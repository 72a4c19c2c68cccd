"""advgrad: adversarial examples and robustness evaluation for TensorFlow/Keras models.

>>> import advgrad
>>> isinstance(advgrad.__version__, str)
True
"""

from advgrad._backend import require_tensorflow_backend

require_tensorflow_backend()

from advgrad import attacks, data, losses, norms, steps, zoo  # noqa: E402
from advgrad._version import __version__  # noqa: E402
from advgrad.attacks import get_attack, list_attacks, register_attack  # noqa: E402
from advgrad.budget import Bounds, Budget  # noqa: E402
from advgrad.checks import check_gradients  # noqa: E402
from advgrad.evaluate import evaluate  # noqa: E402
from advgrad.gradients import input_gradients, output_gradients  # noqa: E402
from advgrad.report import Report  # noqa: E402

__all__ = [
    "Bounds",
    "Budget",
    "Report",
    "__version__",
    "attacks",
    "check_gradients",
    "data",
    "evaluate",
    "get_attack",
    "input_gradients",
    "list_attacks",
    "losses",
    "norms",
    "output_gradients",
    "register_attack",
    "steps",
    "zoo",
]
