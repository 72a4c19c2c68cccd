"""Make sure Keras runs on TensorFlow before anything else is imported."""

from __future__ import annotations

import os


def require_tensorflow_backend() -> None:
    """Raise a clear error when Keras is configured for another backend.

    >>> require_tensorflow_backend()  # no error on the TensorFlow backend
    """
    requested = os.environ.get("KERAS_BACKEND")
    if requested and requested != "tensorflow":
        raise RuntimeError(_message(requested))
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
