"""Issue 10: embedding_forward/backward and one_hot. The lookup is a one-hot
matmul and its gradient the transposed one, on both backends; the native
scatter-add is bit-identical to the reference, run to run and for 1 and 2
threads; bad indices raise IndexError naming the value and V, and nothing
the caller passed is modified."""
import numpy as np
import pytest

import nnc
from nnc.gradient_check import eval_numerical_gradient_array
from nnc.layers import embedding_backward, embedding_forward, one_hot

from conftest import BACKENDS, DTYPES, rel_error

needs_cpp = pytest.mark.skipif("cpp" not in BACKENDS, reason="native extension not built")

# (N, T, V, D): the course's (200, 3) -> (250, 32), tails (T = 1, D = 1, odd
# sizes), every index repeated (V = 2), and one large enough for the parallel path.
SHAPES = [(200, 3, 250, 32), (1, 1, 1, 1), (7, 5, 13, 3), (5, 11, 2, 17), (64, 32, 500, 96)]


def make(N, T, V, D, dtype, seed=0):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, V, size=(N, T))
    W = rng.standard_normal((V, D)).astype(dtype)
    dout = rng.standard_normal((N, T, D)).astype(dtype)
    return idx, W, dout


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_is_one_hot_matmul_and_backward_its_transpose(backend, shape, dtype):
    N, T, V, D = shape
    idx, W, dout = make(*shape, dtype)
    out, cache = embedding_forward(idx, W)
    assert out.shape == (N, T, D) and out.dtype == dtype
    oh = one_hot(idx, V).reshape(N * T, V)
    np.testing.assert_array_equal(out.reshape(N * T, D), oh @ W.astype(np.float64))
    dW = embedding_backward(dout, cache)
    assert dW.shape == (V, D) and dW.dtype == dtype
    expected = oh.T @ dout.reshape(N * T, D).astype(np.float64)
    if dtype == np.float64:
        assert rel_error(dW, expected) < 1e-12
    else:  # sums of a few O(1) terms, some cancelling: an absolute tolerance
        np.testing.assert_allclose(dW, expected, rtol=1e-5, atol=1e-5)


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + [(512, 64, 3000, 64)])
def test_native_is_bit_identical_to_reference(shape, dtype):
    """Both add each row's tokens in token order starting from zero."""
    idx, W, dout = make(*shape, dtype, seed=1)
    res = {}
    for b in ("numpy", "cpp"):
        with nnc.use_backend(b):
            out, cache = embedding_forward(idx, W)
            res[b] = out, embedding_backward(dout, cache)
    for r, c in zip(res["numpy"], res["cpp"]):
        np.testing.assert_array_equal(r, c)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 4, 3, 2)])
def test_gradient_check(backend, shape):
    idx, W, dout = make(*shape, np.float64, seed=2)
    _, cache = embedding_forward(idx, W)
    dW = embedding_backward(dout, cache)
    dW_num = eval_numerical_gradient_array(lambda w: embedding_forward(idx, w)[0], W, dout)
    assert rel_error(dW, dW_num) < 1e-9


def test_repeated_indices_all_count(backend):
    idx = np.array([[3, 3, 3], [3, 0, 3]])
    dout = np.arange(18, dtype=np.float64).reshape(2, 3, 3)
    _, cache = embedding_forward(idx, np.zeros((5, 3)))
    dW = embedding_backward(dout, cache)
    np.testing.assert_array_equal(dW[3], dout[0].sum(0) + dout[1, 0] + dout[1, 2])
    np.testing.assert_array_equal(dW[0], dout[1, 1])
    assert not dW[[1, 2, 4]].any()


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4096, 32, 50000, 16), (64, 32, 500, 96), (200, 3, 250, 32)])
def test_native_backward_deterministic_and_thread_count_independent(shape, dtype):
    # Zipf-like indices: a few rows take most tokens, as words do.
    N, T, V, D = shape
    rng = np.random.default_rng(3)
    idx = np.minimum(rng.zipf(1.3, size=(N, T)) - 1, V - 1)
    W = rng.standard_normal((V, D)).astype(dtype)
    dout = rng.standard_normal((N, T, D)).astype(dtype)
    before = nnc.get_num_threads()
    results = []
    try:
        with nnc.use_backend("cpp"):
            for n in (1, 2, 2, 1, 2):
                nnc.set_num_threads(n)
                _, cache = embedding_forward(idx, W)
                results.append(embedding_backward(dout, cache))
    finally:
        nnc.set_num_threads(before)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])   # the promised 1e-12 holds with room
    with nnc.use_backend("numpy"):
        _, cache = embedding_forward(idx, W)
        np.testing.assert_array_equal(embedding_backward(dout, cache), results[0])


@pytest.mark.parametrize("itype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                   np.int64, np.uint64])
def test_any_integer_dtype(backend, itype):
    idx = np.array([[0, 5, 2], [5, 5, 1]], dtype=itype)
    W = np.random.default_rng(4).standard_normal((6, 4))
    out, cache = embedding_forward(idx, W)
    np.testing.assert_array_equal(out, W[idx.astype(np.int64)])
    dW = embedding_backward(np.ones((2, 3, 4)), cache)
    np.testing.assert_array_equal(dW[:, 0], [1, 1, 1, 0, 0, 3])


def test_dtypes_follow_w(backend):
    idx = np.array([[0, 1]])
    for wdt, expect in ((np.float16, np.float32), (np.int64, np.float64), (np.float32, np.float32)):
        out, cache = embedding_forward(idx, np.ones((2, 3), dtype=wdt))
        assert out.dtype == expect
        assert embedding_backward(np.ones((1, 2, 3)), cache).dtype == expect   # dout follows out


def test_non_contiguous_inputs(backend):
    rng = np.random.default_rng(5)
    idx = rng.integers(0, 9, size=(6, 8))[:, ::2]
    W = rng.standard_normal((9, 10))[:, ::2]
    dout = rng.standard_normal((6, 4, 10))[..., ::2]
    out, cache = embedding_forward(idx, W)
    np.testing.assert_array_equal(out, W[idx])
    dW = embedding_backward(dout, cache)
    expected = np.zeros((9, 5))
    np.add.at(expected, idx.ravel(), dout.reshape(-1, 5))
    np.testing.assert_array_equal(dW, expected)


def test_empty_index_array(backend):
    W = np.ones((4, 3))
    out, cache = embedding_forward(np.zeros((0, 3), dtype=np.int64), W)
    assert out.shape == (0, 3, 3)
    dW = embedding_backward(np.zeros((0, 3, 3)), cache)
    assert dW.shape == (4, 3) and not dW.any()


def test_list_indices_are_accepted(backend):
    W = np.arange(6.0).reshape(3, 2)
    out, _ = embedding_forward([[2, 0]], W)
    np.testing.assert_array_equal(out, [[[4, 5], [0, 1]]])


# --- bad inputs: each a clear exception, and nothing modified ---

BAD = [
    (np.array([[0, 1], [2, -1]]), IndexError,
     r"embedding_forward: idx\[1, 1\] = -1 is out of range for V=4 rows; indices must lie in "
     r"\[0, 4\)"),
    (np.array([[0, 4]]), IndexError, r"idx\[0, 1\] = 4 is out of range for V=4"),
    (np.array([[0, 2**40]], dtype=np.uint64), IndexError, r"= 1099511627776 is out of range for V=4"),
    (np.array([[0.0, 1.0]]), TypeError, r"idx must hold integer indices, got dtype float64"),
    (np.array([[True, False]]), TypeError, r"idx must hold integer indices, got dtype bool"),
    (np.array([0, 1]), ValueError, r"idx must be 2-D \(N, T\), got shape \(2,\)"),
    (np.zeros((1, 2, 3), dtype=int), ValueError, r"idx must be 2-D"),
]


@pytest.mark.parametrize("idx,exc,msg", BAD)
def test_bad_indices(backend, idx, exc, msg):
    W = np.ones((4, 3))
    idx0, W0 = idx.copy(), W.copy()
    with pytest.raises(exc, match=msg):
        embedding_forward(idx, W)
    np.testing.assert_array_equal(idx, idx0)
    np.testing.assert_array_equal(W, W0)


@pytest.mark.parametrize("W,exc,msg", [
    (np.ones(4), ValueError, r"W must be 2-D, got shape \(4,\)"),
    ([[1.0, 2.0]], TypeError, r"W must be a numpy.ndarray, got list"),
    (np.ones((2, 2), dtype=bool), TypeError, r"W must hold real numbers"),
    (np.ones((2, 2), dtype=np.complex128), TypeError, r"W must hold real numbers"),
    (np.ones((2, 2), dtype=np.longdouble), TypeError, r"nnc computes in float32 or float64"),
])
def test_bad_weights(backend, W, exc, msg):
    if W is not None and getattr(W, "dtype", None) == np.longdouble and \
            np.dtype(np.longdouble) == np.float64:
        pytest.skip("longdouble is float64 here")
    with pytest.raises(exc, match=msg):
        embedding_forward(np.zeros((1, 1), dtype=int), W)


def test_bad_dout(backend):
    _, cache = embedding_forward(np.zeros((2, 3), dtype=int), np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"embedding_backward: dout has shape \(2, 3, 4\), "
                                         r"expected \(2, 3, 5\)"):
        embedding_backward(np.ones((2, 3, 4)), cache)
    with pytest.raises(TypeError, match="cache must be the cache returned"):
        embedding_backward(np.ones((2, 3, 5)), (np.zeros((2, 3), dtype=int), 4))


@needs_cpp
def test_native_binding_checks_the_index_range_itself():
    """The kernels index W and dW with idx, so the binding re-checks the
    range even though the public function already did."""
    from nnc import _nnc

    W = np.ones((4, 3))
    with pytest.raises(IndexError, match=r"idx holds 4 \(flat position 1\), out of range for "
                                         r"V = 4 rows"):
        _nnc.embedding_forward(np.array([[0, 4]]), W)
    with pytest.raises(IndexError, match=r"idx holds -2"):
        _nnc.embedding_backward(np.ones((1, 2, 3)), np.array([[0, -2]]), 4)
    with pytest.raises(TypeError, match="idx must be int64, got int32"):
        _nnc.embedding_forward(np.array([[0, 1]], dtype=np.int32), W)
    with pytest.raises(ValueError, match="dout has shape"):
        _nnc.embedding_backward(np.ones((1, 3, 3)), np.array([[0, 1]]), 4)


# --- one_hot ---

def test_one_hot():
    idx = np.array([[2, 0], [1, 2]], dtype=np.uint8)
    oh = one_hot(idx, 3)
    assert oh.shape == (2, 2, 3) and oh.dtype == np.float64
    np.testing.assert_array_equal(oh[1, 0], [0, 1, 0])
    np.testing.assert_array_equal(oh.sum(-1), 1)
    assert one_hot(np.array([1]), 2, dtype=np.float32).dtype == np.float32
    np.testing.assert_array_equal(one_hot(np.array(1), 3), [0, 1, 0])


@pytest.mark.parametrize("idx,V,exc,msg", [
    (np.array([0, 3]), 3, IndexError, r"one_hot: idx\[1\] = 3 is out of range for V=3"),
    (np.array([0.5]), 3, TypeError, r"one_hot: idx must hold integer indices"),
    (np.array([0]), 0, ValueError, r"V must be positive, got 0"),
    (np.array([0]), 2.0, TypeError, r"V must be an int, got 2.0"),
])
def test_one_hot_bad_inputs(idx, V, exc, msg):
    with pytest.raises(exc, match=msg):
        one_hot(idx, V)


# --- nnc.nn.embedding, the object-API layer ---

def test_nn_embedding_layer_protocol(backend):
    from nnc.nn.embedding import embedding

    np.random.seed(0)
    layer = embedding(12, 5, init_scale=0.1, name="words")
    assert layer.name == "words" and set(layer.params) == {"words_w"}
    assert layer.grads == {"words_w": None}
    W = layer.params["words_w"]
    assert W.shape == (12, 5) and abs(W.std() - 0.1) < 0.03
    idx = np.array([[1, 2, 1], [11, 0, 1]])
    out = layer.forward(idx)
    np.testing.assert_array_equal(out, W[idx])
    dprev = np.random.randn(2, 3, 5)
    assert layer.backward(dprev) is None          # indices have no gradient
    expected = np.zeros((12, 5))
    np.add.at(expected, idx.ravel(), dprev.reshape(-1, 5))
    np.testing.assert_allclose(layer.grads["words_w"], expected, rtol=1e-15)
    assert embedding(3, 2).params.keys() == {"embedding_w"}


def test_nn_embedding_layer_errors():
    from nnc.nn.embedding import embedding

    layer = embedding(4, 3)
    with pytest.raises(ValueError, match="embedding: backward called before forward"):
        layer.backward(np.ones((1, 1, 3)))
    with pytest.raises(IndexError, match=r"= 4 is out of range for V=4"):
        layer.forward(np.array([[4]]))
    layer.forward(np.array([[0, 1]]))
    with pytest.raises(ValueError, match=r"dout has shape \(1, 2, 4\), expected \(1, 2, 3\)"):
        layer.backward(np.ones((1, 2, 4)))
    with pytest.raises(ValueError, match="vocab_size must be positive"):
        embedding(0, 3)
    with pytest.raises(TypeError, match="dim must be an int"):
        embedding(3, 2.0)
    with pytest.raises(ValueError, match="init_scale must be a finite number >= 0"):
        embedding(3, 2, init_scale=-1)
