import numpy as np
import pytest

import nnc

BACKENDS = nnc.available_backends()
DTYPES = [np.float32, np.float64]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Runs the test once per available backend, with that backend active."""
    with nnc.use_backend(request.param):
        yield request.param


@pytest.fixture(autouse=True)
def _restore_backend():
    before = nnc.get_backend()
    yield
    nnc.set_backend(before)


def rel_error(x, y):
    """The CS231n notebooks' metric."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))


def num_grad(f, x, df, h=1e-5):
    """Central-difference gradient of sum(f(x) * df) with respect to x (x restored)."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    while not it.finished:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        pos = f(x).copy()
        x[i] = old - h
        neg = f(x).copy()
        x[i] = old
        grad[i] = np.sum((pos - neg) * df) / (2 * h)
        it.iternext()
    return grad
