"""Issue 15: the roofline microbenchmarks (cpp/roofline.cpp). Nothing here
times anything beyond sanity: the numbers are finite and positive, and a
float32 FMA moves twice the lanes of a float64 one."""
import math

import numpy as np
import pytest

import nnc

from conftest import BACKENDS

pytestmark = pytest.mark.skipif("cpp" not in BACKENDS, reason="native extension not built")


@pytest.fixture
def nat():
    from nnc import _nnc

    return _nnc


@pytest.fixture
def one_thread():
    before = nnc.get_num_threads()
    nnc.set_num_threads(1)
    yield
    nnc.set_num_threads(before)


def _sane(v):
    return isinstance(v, float) and math.isfinite(v) and v > 0


@pytest.mark.parametrize("name", ["fma_peak_f32", "fma_peak_f64"])
@pytest.mark.parametrize("iters", [1, 7, 1 << 16])
def test_fma_peak_is_finite_and_positive(nat, name, iters):
    assert _sane(getattr(nat, name)(iters))


def test_float32_peak_exceeds_float64(nat, one_thread):
    # Twice the lanes per vector. The best of several short runs each, one
    # thread: a busy machine slows single runs, not all of them.
    f32 = max(nat.fma_peak_f32(1 << 18) for _ in range(7))
    f64 = max(nat.fma_peak_f64(1 << 18) for _ in range(7))
    assert _sane(f32) and _sane(f64)
    assert f32 > f64


@pytest.mark.parametrize("name", ["fma_peak_f32", "fma_peak_f64"])
def test_fma_peak_bad_iters(nat, name):
    fn = getattr(nat, name)
    for bad in (0, -1, -2 ** 63, 2 ** 31, 2 ** 40):
        with pytest.raises(ValueError, match="iters"):
            fn(bad)
    for bad in (1.5, "8", None, np.ones(3)):
        with pytest.raises(TypeError):
            fn(bad)
    with pytest.raises(TypeError):
        fn(2 ** 64)      # no int64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_kernels_compute_and_return_bandwidth(nat, dtype):
    rng = np.random.default_rng(0)
    n = 100_003     # past the parallel split, with a tail
    b = rng.integers(-50, 50, n).astype(dtype)   # integers: b + 3c is exact either way
    c = rng.integers(-50, 50, n).astype(dtype)
    a = np.zeros(n, dtype)
    assert _sane(nat.stream_copy(a, b, 2))
    np.testing.assert_array_equal(a, b)
    assert _sane(nat.stream_triad(a, b, c, 3.0, 2))
    np.testing.assert_array_equal(a, b + 3 * c)
    a2 = np.zeros((7, 11), dtype)
    assert _sane(nat.stream_copy(a2, np.ones((7, 11), dtype), 1))
    assert (a2 == 1).all()


def test_stream_bad_arguments(nat):
    a, b, c = np.zeros(10), np.ones(10), np.ones(10)
    for reps in (0, -1, 101, 2 ** 40):
        with pytest.raises(ValueError, match="reps"):
            nat.stream_copy(a, b, reps)
        with pytest.raises(ValueError, match="reps"):
            nat.stream_triad(a, b, c, 1.0, reps)
    with pytest.raises(ValueError, match="shape"):
        nat.stream_copy(a, np.ones(11), 1)
    with pytest.raises(ValueError, match="shape"):
        nat.stream_triad(a, b, np.ones((2, 5)), 1.0, 1)
    with pytest.raises(ValueError, match="empty"):
        nat.stream_copy(np.zeros(0), np.zeros(0), 1)
    with pytest.raises(TypeError):
        nat.stream_copy(a, b.astype(np.float32), 1)     # mixed dtypes
    with pytest.raises(TypeError):
        nat.stream_copy(a.astype(np.int64), b.astype(np.int64), 1)
    ro = np.zeros(10)
    ro.flags.writeable = False
    with pytest.raises(TypeError):
        nat.stream_copy(ro, b, 1)                       # a is written
    with pytest.raises(TypeError):
        nat.stream_copy(np.zeros((10, 2))[:, 0], b, 1)   # a must be contiguous
    with pytest.raises(TypeError):
        nat.stream_triad(a, b, c, "s", 1)
