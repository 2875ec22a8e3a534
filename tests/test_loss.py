"""svm_loss / softmax_loss / mse_loss: golden values, native vs reference,
gradients, huge logits and bad inputs, on both backends."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nnc
from nnc import layers

from conftest import ALL_BACKENDS as BACKENDS
from conftest import needs_cpp, rel_error

DTYPES = [np.float32, np.float64]
# (N, C) with tails: N = 1, odd and prime class counts, and ~1M elements.
SHAPES = [(1, 1), (1, 7), (7, 17), (17, 3), (3, 10), (7919, 127)]
LOSSES = ["svm_loss", "softmax_loss"]




def numeric_grad(f, x, h=1e-5):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        pos = f(x)
        x[i] = old - h
        neg = f(x)
        x[i] = old
        grad[i] = (pos - neg) / (2 * h)
    return grad


def loss_fn(name):
    return getattr(layers, name)


# Golden 1.5 (CS231n inline question inputs).
@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_values(backend):
    np.random.seed(231)
    x = 0.001 * np.random.randn(50, 10)
    y = np.random.randint(10, size=50)
    assert list(y[:5]) == [2, 5, 0, 6, 5]
    with nnc.use_backend(backend):
        svm, _ = layers.svm_loss(x, y)
        sm, _ = layers.softmax_loss(x, y)
    assert type(svm) is float and type(sm) is float
    assert abs(svm - 8.999602749096233) < 1e-12
    assert abs(sm - 2.302545844500738) < 1e-12


def make_inputs(shape, dtype, seed=0):
    rng = np.random.default_rng(seed + shape[0] * 131 + shape[1])
    x = (2 * rng.standard_normal(shape)).astype(dtype)
    y = rng.integers(0, shape[1], size=shape[0])
    return x, y


@needs_cpp
@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_native_matches_reference(name, dtype, shape):
    x, y = make_inputs(shape, dtype)
    x0, y0 = x.copy(), y.copy()
    with nnc.use_backend("numpy"):
        loss_np, dx_np = loss_fn(name)(x, y)
    with nnc.use_backend("cpp"):
        loss_c, dx_c = loss_fn(name)(x, y)
    assert type(loss_c) is float and dx_c.dtype == dtype and dx_c.shape == shape
    if dtype == np.float64:
        assert loss_c == pytest.approx(loss_np, rel=1e-10)
        np.testing.assert_allclose(dx_c, dx_np, rtol=1e-10, atol=1e-15)
    else:  # the reference sums float32 in float32; the native loss accumulates in double
        assert loss_c == pytest.approx(loss_np, rel=1e-4)
        np.testing.assert_allclose(dx_c, dx_np, rtol=1e-4, atol=1e-5 / shape[0])
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (17, 1), (5, 3, 2), (1000003,)])
def test_mse_native_matches_reference(dtype, shape):
    rng = np.random.default_rng(shape[0])
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.standard_normal(shape).astype(dtype)
    x0, y0 = x.copy(), y.copy()
    with nnc.use_backend("numpy"):
        loss_np, dx_np = layers.mse_loss(x, y)
    with nnc.use_backend("cpp"):
        loss_c, dx_c = layers.mse_loss(x, y)
    assert type(loss_c) is float and dx_c.dtype == dtype and dx_c.shape == shape
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    assert loss_c == pytest.approx(loss_np, rel=rtol)
    np.testing.assert_allclose(dx_c, dx_np, rtol=rtol, atol=0)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mse_convention(backend):
    x = np.array([[1.0, 2.0], [3.0, 5.0]])
    y = np.array([[0.0, 2.0], [1.0, 1.0]])
    with nnc.use_backend(backend):
        loss, dx = layers.mse_loss(x, y)
    assert loss == 0.5 * (1 + 0 + 4 + 16) / 2
    np.testing.assert_array_equal(dx, (x - y) / 2)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", LOSSES + ["mse_loss"])
def test_gradient_check(backend, name):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((6, 5))
    y = rng.integers(0, 5, size=6) if name != "mse_loss" else rng.standard_normal((6, 5))
    with nnc.use_backend(backend):
        _, dx = loss_fn(name)(x, y)
        num = numeric_grad(lambda v: loss_fn(name)(v, y)[0], x)
    assert rel_error(dx, num) < 1e-8


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_huge_logits(backend, dtype):
    x = np.zeros((3, 5), dtype=dtype)
    x[0, 3] = 1e4
    x[1, 0] = -1e4
    x[2, :] = 3e4
    y = np.array([3, 1, 4])
    with nnc.use_backend(backend), warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dx = layers.softmax_loss(x, y)
    # row 0: right class wins by 1e4 -> 0; row 1: log(4 + e^-1e4) -> log 4; row 2: log 5
    assert np.isfinite(loss)
    assert loss == pytest.approx((0 + np.log(4) + np.log(5)) / 3, rel=1e-6)
    assert np.all(np.isfinite(dx))
    np.testing.assert_allclose(dx.sum(axis=1), 0, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_svm_margins_and_gradient_by_hand(backend):
    # row 0 (y=1): margins 1-2+1 = 0 and 0-2+1 = -1, neither positive (a zero
    # margin adds nothing); row 1 (y=2): margins 4-5+1 = 0 and 4.5-5+1 = 0.5
    x = np.array([[1.0, 2.0, 0.0], [4.0, 4.5, 5.0]])
    y = np.array([1, 2])
    with nnc.use_backend(backend):
        loss, dx = layers.svm_loss(x, y)
    assert loss == pytest.approx(0.5 / 2)
    np.testing.assert_array_equal(dx, [[0, 0, 0], [0, 0.5, -0.5]])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", LOSSES)
def test_bad_labels_and_scores(backend, name):
    x = np.ones((4, 3))
    f = loss_fn(name)
    with nnc.use_backend(backend):
        with pytest.raises(ValueError, match=r"y must lie in \[0, 3\)"):
            f(x, np.array([0, 1, 3, 0]))
        with pytest.raises(ValueError, match=r"y must lie in \[0, 3\)"):
            f(x, np.array([0, -1, 2, 0]))
        with pytest.raises(ValueError, match=r"\(4,\)"):
            f(x, np.array([0, 1, 2]))
        with pytest.raises(ValueError, match=r"\(4,\)"):
            f(x, np.zeros((4, 1), dtype=int))
        with pytest.raises(TypeError, match="integer"):
            f(x, np.array([0.0, 1.0, 2.0, 0.0]))
        with pytest.raises(TypeError, match="integer"):
            f(x, np.array([True, False, True, False]))
        with pytest.raises(ValueError, match="2-D"):
            f(np.ones(4), np.array([0, 1, 2, 0]))
        with pytest.raises(ValueError, match="2-D"):
            f(np.ones((4, 3, 1)), np.array([0, 1, 2, 0]))
        with pytest.raises(ValueError, match="empty batch"):
            f(np.ones((0, 3)), np.array([], dtype=int))
        with pytest.raises(TypeError, match="x"):
            f(np.ones((4, 3), dtype=bool), np.array([0, 1, 2, 0]))
        with pytest.raises(ValueError, match=r"\[0, 0\)"):
            f(np.ones((4, 0)), np.array([0, 0, 0, 0]))
        # labels as a list and as other integer dtypes are accepted
        a = f(x, [0, 1, 2, 0])
        b = f(x, np.array([0, 1, 2, 0], dtype=np.uint8))
        assert a[0] == b[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_mse_bad_inputs(backend):
    with nnc.use_backend(backend):
        with pytest.raises(ValueError, match=r"\(3, 2\).*\(3, 3\)"):
            layers.mse_loss(np.ones((3, 2)), np.ones((3, 3)))
        with pytest.raises(ValueError, match="empty batch"):
            layers.mse_loss(np.ones((0, 2)), np.ones((0, 2)))
        with pytest.raises(ValueError, match="at least 1 dims"):
            layers.mse_loss(np.array(1.0), np.array(1.0))
        with pytest.raises(TypeError, match="x"):
            layers.mse_loss(np.ones((3, 2), dtype=complex), np.ones((3, 2)))
        with pytest.raises(TypeError, match="y"):
            layers.mse_loss(np.ones((3, 2)), [[1.0, 1.0]] * 3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_other_and_mixed_dtypes(backend):
    """NumPy's promotion on both backends: float16 computes in float32,
    float32 with float64 in float64, integers alone in float64."""
    y = np.array([0, 1])
    with nnc.use_backend(backend):
        for name in LOSSES:
            with pytest.raises(TypeError, match="float32 or float64"):
                loss_fn(name)(np.ones((2, 3), np.longdouble), y)
            assert loss_fn(name)(np.ones((2, 3), np.float16), y)[1].dtype == np.float32
            assert loss_fn(name)(np.ones((2, 3), np.int64), y)[1].dtype == np.float64
        assert layers.mse_loss(np.ones((2, 3), np.float32), np.ones((2, 3)))[1].dtype == np.float64
        loss, dx = layers.mse_loss(np.ones((2, 3)), np.full((2, 3), 3))
        assert loss == 6.0 and dx.dtype == np.float64


@needs_cpp
def test_native_binding_validates_directly():
    from nnc import _nnc
    # The binding validates what protects memory when called directly.
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        _nnc.softmax_loss(np.ones((2, 3)), np.array([0, 7]))
    with pytest.raises(TypeError, match="int64"):
        _nnc.svm_loss(np.ones((2, 3)), np.array([0, 1], dtype=np.int32))
    with pytest.raises(ValueError, match="empty batch"):
        _nnc.svm_loss(np.ones((0, 3)), np.array([], dtype=np.int64))


@needs_cpp
@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 30), C=st.integers(1, 40), scale=st.floats(1e-3, 50.0),
       dtype=st.sampled_from(DTYPES), name=st.sampled_from(LOSSES), seed=st.integers(0, 10**6))
def test_property_native_matches_reference(N, C, scale, dtype, name, seed):
    rng = np.random.default_rng(seed)
    x = (scale * rng.standard_normal((N, C))).astype(dtype)
    y = rng.integers(0, C, size=N)
    with nnc.use_backend("numpy"):
        loss_np, dx_np = loss_fn(name)(x, y)
    with nnc.use_backend("cpp"):
        loss_c, dx_c = loss_fn(name)(x, y)
    rtol, atol = (1e-10, 1e-15) if dtype == np.float64 else (1e-4, 1e-5)
    assert loss_c == pytest.approx(loss_np, rel=rtol, abs=atol)
    np.testing.assert_allclose(dx_c, dx_np, rtol=rtol, atol=atol)
