"""dropout_forward / dropout_backward: CS231n golden values, bit-identical
masks and np.random state across backends, statistics, gradients, bad inputs."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nnc
from nnc import layers

from conftest import ALL_BACKENDS as BACKENDS
from conftest import needs_cpp, rel_error

DTYPES = [np.float32, np.float64]
SHAPES = [(1,), (7,), (17,), (3, 5, 7), (1000003,)]



@pytest.fixture(autouse=True)
def restore_global_rng():
    state = np.random.get_state()
    yield
    np.random.set_state(state)



@pytest.fixture(params=["views", "copies"])
def state_path(request, monkeypatch):
    """The cpp backend's two ways to the global MT19937 state: views of the
    bit generator's memory (NumPy >= 1.25), or get_state/set_state copies."""
    if request.param == "copies":
        from nnc.backends import cpp_backend
        monkeypatch.setattr(cpp_backend, "_global_mt19937_views", lambda: None)
    return request.param


def states_equal(a, b):
    return (a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2] == b[2] and a[3] == b[3]
            and a[4] == b[4])


# Golden 1.11: the exact-RNG path (mask drawn from the global legacy stream).
GOLDEN_X_MEAN = 10.0002078784775
GOLDEN = {  # p: (out.mean(), (out == 0).mean())
    0.25: (10.014059116977283, 0.749784),
    0.4: (9.977917658761159, 0.600796),
    0.7: (9.987811912159428, 0.30074),
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_golden_statistics(backend):
    np.random.seed(231)
    x = np.random.randn(500, 500) + 10
    x0 = x.copy()
    assert x.mean() == pytest.approx(GOLDEN_X_MEAN, rel=1e-12)
    with nnc.use_backend(backend):
        for p, (mean, zero_frac) in GOLDEN.items():
            out, _ = layers.dropout_forward(x, {"mode": "train", "p": p})
            out_test, _ = layers.dropout_forward(x, {"mode": "test", "p": p})
            assert out.mean() == pytest.approx(mean, rel=1e-12)
            assert (out == 0).mean() == zero_frac
            assert out_test.mean() == pytest.approx(GOLDEN_X_MEAN, rel=1e-12)
            assert (out_test == 0).mean() == 0.0
    np.testing.assert_array_equal(x, x0)


def run(backend, x, param):
    """Forward, then the mask (as the gradient of ones), then the next draws."""
    with nnc.use_backend(backend):
        out, cache = layers.dropout_forward(x, param)
        mask = layers.dropout_backward(np.ones_like(x), cache)
    return out, mask, np.random.rand(5), np.random.get_state()


@needs_cpp
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seeded", [True, False])
def test_masks_and_global_state_identical_across_backends(dtype, shape, seeded, state_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    x0 = x.copy()
    param = {"mode": "train", "p": 0.3}
    if seeded:
        param["seed"] = 123
    np.random.seed(7)
    np.random.rand(3)  # start somewhere inside a 624-word block
    start = np.random.get_state()
    ref = run("numpy", x, param)
    np.random.set_state(start)
    nat = run("cpp", x, param)
    assert nat[0].dtype == dtype and nat[0].shape == shape
    np.testing.assert_array_equal(nat[0], ref[0])  # out, bit for bit
    np.testing.assert_array_equal(nat[1], ref[1])  # mask
    np.testing.assert_array_equal(nat[2], ref[2])  # the next np.random.rand(5)
    assert states_equal(nat[3], ref[3])
    np.testing.assert_array_equal(x, x0)


@needs_cpp
@pytest.mark.parametrize("pos", [0, 1, 2, 311, 622, 623, 624])
@pytest.mark.parametrize("size", [1, 2, 311, 312, 313, 2000])
def test_any_generator_position(pos, size, state_path):
    # An odd position (after randint, bytes, ...) makes draws straddle the
    # regeneration of the 624-word block; has_gauss must survive untouched.
    np.random.seed(99)
    np.random.randn(1)  # leaves a cached gaussian: has_gauss = 1
    name, key, _, has_gauss, cached = np.random.get_state()
    assert has_gauss == 1
    start = (name, key, pos, has_gauss, cached)
    x = np.arange(1.0, size + 1)
    np.random.set_state(start)
    ref = run("numpy", x, {"mode": "train", "p": 0.5})
    np.random.set_state(start)
    nat = run("cpp", x, {"mode": "train", "p": 0.5})
    np.testing.assert_array_equal(nat[0], ref[0])
    np.testing.assert_array_equal(nat[2], ref[2])
    assert states_equal(nat[3], ref[3])


@needs_cpp
def test_native_generator_matches_random_sample():
    from nnc import _nnc
    np.random.seed(2024)
    np.random.bytes(3)  # consumes one word: odd position
    for n in (0, 1, 5, 312, 10007):
        name, key, pos, has_gauss, cached = np.random.get_state()
        expected = np.random.rand(n)
        after = np.random.get_state()
        key = key.copy()
        u, new_pos = _nnc.mt19937_random_sample(key, pos, n)
        np.testing.assert_array_equal(u, expected)
        assert new_pos == after[2] and np.array_equal(key, after[1])


@needs_cpp
@pytest.mark.skipif(not hasattr(np.random, "get_bit_generator"), reason="NumPy < 1.25")
def test_state_views_follow_the_global_generator():
    from nnc.backends import cpp_backend
    original = np.random.get_bit_generator()
    try:
        for seed in (1, 2):  # a new MT19937 each time: the views must move to it
            np.random.set_bit_generator(np.random.MT19937(seed))
            bg, key, pos = cpp_backend._global_mt19937_views()
            assert bg is np.random.get_bit_generator()
            np.random.rand(5)
            state = np.random.get_state()
            np.testing.assert_array_equal(key, state[1])
            assert pos.value == state[2]
            x = np.ones(7)
            with nnc.use_backend("numpy"):
                ref = layers.dropout_forward(x, {"mode": "train", "p": 0.5})[0], np.random.rand(2)
            np.random.set_state(state)
            with nnc.use_backend("cpp"):
                nat = layers.dropout_forward(x, {"mode": "train", "p": 0.5})[0], np.random.rand(2)
            np.testing.assert_array_equal(nat[0], ref[0])
            np.testing.assert_array_equal(nat[1], ref[1])
    finally:
        np.random.set_bit_generator(original)


@needs_cpp
def test_other_bit_generator_falls_back_to_numpy_draws():
    original = np.random.get_bit_generator()
    try:
        np.random.set_bit_generator(np.random.PCG64(5))
        start = np.random.get_state(legacy=False)
        x = np.random.default_rng(1).standard_normal((13, 11))
        with nnc.use_backend("numpy"):
            ref = layers.dropout_forward(x, {"mode": "train", "p": 0.6})[0], np.random.rand(4)
        np.random.set_state(start)
        with nnc.use_backend("cpp"):
            out, cache = layers.dropout_forward(x, {"mode": "train", "p": 0.6})
            nat = out, np.random.rand(4)
            dx = layers.dropout_backward(np.ones_like(x), cache)
        np.testing.assert_array_equal(nat[0], ref[0])
        np.testing.assert_array_equal(nat[1], ref[1])
        np.testing.assert_array_equal(dx, (out != 0) / 0.6)
    finally:
        np.random.set_bit_generator(original)


@pytest.mark.parametrize("backend", BACKENDS)
def test_seed_reproduces_mask_and_resets_stream(backend):
    x = np.ones((40, 30))
    with nnc.use_backend(backend):
        a, _ = layers.dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 17})
        after_a = np.random.rand(3)
        np.random.rand(100)
        b, _ = layers.dropout_forward(x, {"mode": "train", "p": 0.5, "seed": 17})
        after_b = np.random.rand(3)
        # As in CS231n, the seed is applied in test mode too.
        layers.dropout_forward(x, {"mode": "test", "p": 0.5, "seed": 17})
        after_test = np.random.rand(1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(after_a, after_b)
    np.random.seed(17)
    expected_mask = (np.random.rand(40, 30) < 0.5) / 0.5
    np.testing.assert_array_equal(a, expected_mask)
    np.random.seed(17)
    assert after_test[0] == np.random.rand()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_test_mode_is_identity(backend, dtype):
    x = np.random.default_rng(2).standard_normal((5, 9)).astype(dtype)
    dout = np.random.default_rng(3).standard_normal((5, 9)).astype(dtype)
    with nnc.use_backend(backend):
        state = np.random.get_state()
        out, cache = layers.dropout_forward(x, {"mode": "test", "p": 0.3})
        assert states_equal(np.random.get_state(), state)  # nothing drawn
        dx = layers.dropout_backward(dout, cache)
    assert out is x  # documented: test mode returns x itself, as CS231n does
    assert dx is dout


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_mask_values_and_p_one(backend, dtype):
    x = np.random.default_rng(4).standard_normal((64, 33)).astype(dtype)
    with nnc.use_backend(backend):
        out, cache = layers.dropout_forward(x, {"mode": "train", "p": 0.8, "seed": 0})
        mask = layers.dropout_backward(np.ones_like(x), cache)
        full, _ = layers.dropout_forward(x, {"mode": "train", "p": 1.0})
    scale = dtype(1 / 0.8)
    assert set(np.unique(mask)) <= {dtype(0), scale}
    np.testing.assert_array_equal(out, x * mask)
    np.testing.assert_array_equal(full, x)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_fraction(backend, p):
    # 250 000 draws: 5 sigma of the binomial keep fraction is below 0.005.
    x = np.ones((500, 500))
    with nnc.use_backend(backend):
        out, _ = layers.dropout_forward(x, {"mode": "train", "p": p, "seed": 5})
    assert abs((out != 0).mean() - p) < 0.005
    assert abs(out.mean() - 1.0) < 0.05


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_check(backend):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((6, 8))
    dout = rng.standard_normal((6, 8))
    param = {"mode": "train", "p": 0.6, "seed": 11}  # the seed fixes the mask
    with nnc.use_backend(backend):
        _, cache = layers.dropout_forward(x, param)
        dx = layers.dropout_backward(dout, cache)
        num = np.zeros_like(x)
        h = 1e-5
        for i in np.ndindex(x.shape):
            old = x[i]
            x[i] = old + h
            pos = layers.dropout_forward(x, param)[0]
            x[i] = old - h
            neg = layers.dropout_forward(x, param)[0]
            x[i] = old
            num[i] = np.sum((pos - neg) * dout) / (2 * h)
    assert rel_error(dx, num) < 1e-8


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_inputs(backend):
    x = np.ones((4, 3))
    with nnc.use_backend(backend):
        for p in (0, 0.0, 1.5, -0.1, float("nan")):
            with pytest.raises(ValueError, match=r"\(0, 1\]"):
                layers.dropout_forward(x, {"mode": "train", "p": p})
            with pytest.raises(ValueError, match=r"\(0, 1\]"):
                layers.dropout_forward(x, {"mode": "test", "p": p})
        for p in ("0.5", None, True):
            with pytest.raises(TypeError, match="p"):
                layers.dropout_forward(x, {"mode": "train", "p": p})
        with pytest.raises(ValueError, match="mode"):
            layers.dropout_forward(x, {"mode": "eval", "p": 0.5})
        with pytest.raises(ValueError, match="'mode'"):
            layers.dropout_forward(x, {"p": 0.5})
        with pytest.raises(ValueError, match="'p'"):
            layers.dropout_forward(x, {"mode": "train"})
        with pytest.raises(TypeError, match="dropout_param"):
            layers.dropout_forward(x, 0.5)
        with pytest.raises(ValueError, match="empty batch"):
            layers.dropout_forward(np.ones((0, 3)), {"mode": "train", "p": 0.5})
        with pytest.raises(ValueError, match="at least 1 dims"):
            layers.dropout_forward(np.array(1.0), {"mode": "train", "p": 0.5})
        with pytest.raises(TypeError, match="x"):
            layers.dropout_forward(np.ones((4, 3), dtype=bool), {"mode": "train", "p": 0.5})
        with pytest.raises(TypeError, match="x"):
            layers.dropout_forward([[1.0]], {"mode": "train", "p": 0.5})
        for mode in ("train", "test"):
            _, cache = layers.dropout_forward(x, {"mode": mode, "p": 0.5})
            with pytest.raises(ValueError, match=r"\(4, 4\)"):
                layers.dropout_backward(np.ones((4, 4)), cache)
            with pytest.raises(TypeError, match="cache"):
                layers.dropout_backward(np.ones((4, 3)), tuple(cache))


@pytest.mark.parametrize("backend", BACKENDS)
def test_other_dtypes(backend):
    with nnc.use_backend(backend):
        for mode in ("train", "test"):
            with pytest.raises(TypeError, match="float32 or float64"):
                layers.dropout_forward(np.ones((2, 3), np.longdouble), {"mode": mode, "p": 0.5})
            out, _ = layers.dropout_forward(np.ones((2, 3), np.float16),
                                            {"mode": mode, "p": 0.5, "seed": 1})
            assert out.dtype == np.float32
        _, cache = layers.dropout_forward(np.ones((2, 3)), {"mode": "train", "p": 0.5})
        assert layers.dropout_backward(np.ones((2, 3), np.float16), cache).dtype == np.float64


@needs_cpp
def test_native_binding_validates_state():
    from nnc import _nnc
    key = np.random.get_state()[1].copy()
    x = np.ones(5)
    with pytest.raises(ValueError, match="pos"):
        _nnc.dropout_forward_train(x, 0.5, key, 625)
    with pytest.raises(ValueError, match="pos"):
        _nnc.dropout_forward_train(x, 0.5, key, -1)
    with pytest.raises(ValueError, match=r"\(624,\)"):
        _nnc.dropout_forward_train(x, 0.5, key[:100].copy(), 0)
    with pytest.raises(TypeError, match="uint32"):
        _nnc.dropout_forward_train(x, 0.5, key.astype(np.int64), 0)
    with pytest.raises(TypeError):  # a strided key would be copied: refused
        _nnc.dropout_forward_train(x, 0.5, np.repeat(key, 2)[::2], 0)
    with pytest.raises(TypeError, match="keep"):
        _nnc.dropout_backward(x, np.ones(5), 0.5)
    with pytest.raises(ValueError, match="shape"):
        _nnc.dropout_backward(x, np.ones(4, np.uint8), 0.5)


@needs_cpp
@settings(max_examples=40, deadline=None)
@given(pos=st.integers(0, 624), shape=st.lists(st.integers(1, 40), min_size=1, max_size=3),
       p=st.floats(1e-3, 1.0), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**32 - 1))
def test_property_native_mask_equals_reference(pos, shape, p, dtype, seed):
    np.random.seed(seed)
    name, key, _, has_gauss, cached = np.random.get_state()
    start = (name, key, pos, has_gauss, cached)
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    np.random.set_state(start)
    ref = run("numpy", x, {"mode": "train", "p": p})
    np.random.set_state(start)
    nat = run("cpp", x, {"mode": "train", "p": p})
    np.testing.assert_array_equal(nat[0], ref[0])
    np.testing.assert_array_equal(nat[1], ref[1])
    assert states_equal(nat[3], ref[3])
