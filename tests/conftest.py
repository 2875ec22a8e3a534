import contextlib
import os
from pathlib import Path

import numpy as np
import pytest

import nnc
from nnc.gradient_check import eval_numerical_gradient_array

BACKENDS = nnc.available_backends()
# Both backends as parameters, the native one skipped (and said so) when not built.
ALL_BACKENDS = [pytest.param(b, marks=pytest.mark.skipif(b not in BACKENDS,
                                                         reason="native extension not built"))
                for b in ("numpy", "cpp")]
needs_cpp = pytest.mark.skipif("cpp" not in BACKENDS, reason="native extension not built")
DTYPES = [np.float32, np.float64]
# Cross-backend agreement: float64 to ~1e-10 relative, float32 to ~1e-4.
TOLERANCES = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def tol(dtype, **override):
    """``assert_allclose`` keyword arguments for ``dtype`` (overrides win)."""
    return {**TOLERANCES[np.dtype(dtype).type], **override}


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


@contextlib.contextmanager
def native_threads(n):
    """nnc's thread count set to n inside the block, and set back after it."""
    before = nnc.get_num_threads()
    nnc.set_num_threads(n)
    try:
        yield
    finally:
        nnc.set_num_threads(before)


def rel_error(x, y):
    """The CS231n notebooks' metric."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))


def num_grad(f, x, df, h=1e-5):
    """Central-difference gradient of sum(f(x) * df) with respect to x (x restored)."""
    return eval_numerical_gradient_array(f, x, df, h=h)


REPO = Path(__file__).resolve().parents[1]


def cifar10_subset_dir():
    """The real CIFAR-10 subset for loader tests and short trainings:
    $NNC_CIFAR10_DIR (worktrees), else <repo>/../shared/data/cifar-10-batches-py;
    None where neither holds it (users have no ../shared)."""
    for d in (os.environ.get("NNC_CIFAR10_DIR"),
              REPO.parent / "shared" / "data" / "cifar-10-batches-py"):
        if d and (Path(d) / "data_batch_1").is_file():
            return Path(d)
    return None


needs_cifar = pytest.mark.skipif(cifar10_subset_dir() is None, reason="CIFAR-10 subset not found "
                                 "(set NNC_CIFAR10_DIR or put it at ../shared/data/)")
