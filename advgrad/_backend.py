"""Make sure Keras runs on TensorFlow: a clear error, with the fix, instead of a wrong backend.

`import advgrad` checks the ``KERAS_BACKEND`` variable only (no TensorFlow import); the
modules that use Keras (`advgrad.models`, `advgrad.losses`) run the full check when they are
first imported.
"""

from __future__ import annotations

import os


def check_requested_backend() -> None:
    """Refuse a ``KERAS_BACKEND`` other than tensorflow (reads the environment only)."""
    requested = os.environ.get("KERAS_BACKEND")
    if requested and requested != "tensorflow":
        raise RuntimeError(_message(requested))


def require_tensorflow_backend() -> None:
    """Raise a clear error when Keras is configured for another backend.

    >>> require_tensorflow_backend()  # no error on the TensorFlow backend
    """
    check_requested_backend()
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(_message(backend))


def _message(backend: str) -> str:
    return (
        f"advgrad needs Keras on its TensorFlow backend, but Keras is using {backend!r}. "
        "Set the environment variable KERAS_BACKEND=tensorflow before starting Python "
        '(or "backend": "tensorflow" in ~/.keras/keras.json).'
    )
