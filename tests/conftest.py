import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def scaled_matrix(m, n, seed=0):
    """Lognormal row/column scaling, like trained layers: rows differ in a structured way."""
    r = np.random.default_rng(seed)
    return np.abs(r.standard_normal((m, n))) * r.lognormal(size=(m, 1)) * r.lognormal(size=(1, n))
