"""Keras on any backend but TensorFlow gets a clear error that says how to switch."""

import os
import subprocess
import sys


def test_other_backend_is_refused_with_the_fix():
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", "import advgrad"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "RuntimeError" in result.stderr
    assert "KERAS_BACKEND=tensorflow" in result.stderr and "'jax'" in result.stderr
