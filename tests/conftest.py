import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Zoo models are trained into a per-session cache, never into ~/.cache."""
    if "ADVGRAD_CACHE" not in os.environ:
        os.environ["ADVGRAD_CACHE"] = str(tmp_path_factory.mktemp("advgrad-cache"))
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)
