"""Shared fixtures: seeded generators and small synthetic data."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)
