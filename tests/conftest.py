import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def scaled_matrix(m, n, seed=0):
    """Lognormal row/column scaling, like trained layers: rows differ in a structured way."""
    r = np.random.default_rng(seed)
    return np.abs(r.standard_normal((m, n))) * r.lognormal(size=(m, 1)) * r.lognormal(size=(1, n))


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module: the models are tiny, so one thread is as fast and
    does not fight other jobs on a shared machine (the torch test files use it with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
