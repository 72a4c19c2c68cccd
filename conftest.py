"""Shared by the tests (tests/) and the doctests (advgrad/, pyproject's --doctest-modules):
neither ever writes to the user's zoo cache (~/.cache/advgrad)."""

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory, worker_id):
    """Zoo models are trained into a per-run cache, never into ~/.cache; the xdist workers
    (pyproject's ``-n 2``) share it, and `advgrad.zoo.load`'s lock trains each model once.
    A cache named by $ADVGRAD_CACHE before the run is used as it is."""
    if "ADVGRAD_CACHE" not in os.environ:
        run = tmp_path_factory.getbasetemp()
        run = run if worker_id == "master" else run.parent  # gw0, gw1: one folder per worker
        os.environ["ADVGRAD_CACHE"] = str(run / "advgrad-cache")
    yield
