"""advgrad: adversarial examples and robustness evaluation for TensorFlow/Keras models.

>>> import advgrad
>>> isinstance(advgrad.__version__, str)
True
"""

from advgrad._backend import require_tensorflow_backend

require_tensorflow_backend()

from advgrad._version import __version__  # noqa: E402
from advgrad.gradients import input_gradients, output_gradients  # noqa: E402

__all__ = ["__version__", "input_gradients", "output_gradients"]
