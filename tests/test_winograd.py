"""The native conv's Winograd F(2x2, 3x3) path (cpp/winograd.cpp), taken for
3x3 stride-1 kernels: the forward, and the backward (dx through the same
forward with pad 2 - pad, so pad <= 2, and dw from the same transforms).
nnc.conv_algorithm('winograd') forces it for every 3x3 stride-1 geometry, so
small shapes with tails (odd H/W, partial edge tiles, 1 channel) are checked
against the NumPy reference; _nnc.conv_paths tells which path a call takes."""
import subprocess
import sys
import threading

import numpy as np
import pytest

import nnc
from conftest import BACKENDS, num_grad, rel_error
from nnc import fast_layers as fl

pytestmark = pytest.mark.skipif("cpp" not in BACKENDS, reason="native extension not built")

DTYPES = [np.float32, np.float64]
# relative to the largest magnitude of the reference result
TOL = {np.float32: 1e-4, np.float64: 1e-10}


# the conv bindings' algo argument for each nnc.conv_algorithm name
ALGO = {"auto": 0, "im2col": 1, "winograd": 2}


@pytest.fixture
def winograd():
    """Every 3x3 stride-1 conv takes the Winograd path (the backward too, when pad <= 2)."""
    with nnc.conv_algorithm("winograd"):
        yield


def paths(x, w, pad, stride=1):
    from nnc import _nnc
    return _nnc.conv_paths(x, w, stride, pad, ALGO[nnc.get_conv_algorithm()])


def data(N, C, H, W, F, pad, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F, C, 3, 3)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    dout = rng.standard_normal((N, F, H + 2 * pad - 2, W + 2 * pad - 2)).astype(dtype)
    return x, w, b, {"stride": 1, "pad": pad}, dout


def reference(x, w, b, cp, dout):
    """out, dx, dw, db from the NumPy backend, in float64 on the same values."""
    with nnc.use_backend("numpy"):
        f64 = [a.astype(np.float64) for a in (x, w, b, dout)]
        out, cache = fl.conv_forward_fast(*f64[:3], cp)
        return (out,) + tuple(fl.conv_backward_fast(f64[3], cache))


def native(x, w, b, cp, dout):
    with nnc.use_backend("cpp"):
        out, cache = fl.conv_forward_fast(x, w, b, cp)
        return (out,) + tuple(fl.conv_backward_fast(dout, cache))


def assert_close(got, want, dtype):
    for name, g, e in zip(("out", "dx", "dw", "db"), got, want):
        assert g.dtype == dtype and g.shape == e.shape, name
        err = np.max(np.abs(g - e)) / np.max(np.abs(e))
        assert err <= TOL[dtype], (name, err)


# (N, C, H, W, F, pad): pad 0 to 3, N = 1, 2, 5, odd and even sizes (odd
# Hout/Wout leave partial tiles), C and F from {1, 3, 17, 64}
CASES = [
    (1, 1, 1, 1, 1, 1),      # 1x1 image: one tile, three quarters of it padding
    (2, 3, 5, 7, 17, 0),     # Hout, Wout = 3, 5: partial tiles on both edges
    (5, 17, 5, 7, 3, 1),
    (1, 64, 8, 8, 64, 1),
    (2, 17, 9, 13, 64, 2),   # pad 2: dx is a conv with pad 0
    (5, 1, 8, 8, 1, 0),
    (1, 3, 9, 13, 1, 1),
    (2, 64, 9, 13, 17, 1),
    (5, 3, 8, 8, 64, 2),
    (2, 17, 5, 7, 1, 3),     # pad 3: forward Winograd, backward falls back to im2col
    (1, 1, 8, 8, 17, 3),
    (2, 64, 32, 32, 17, 1),  # several blocks per thread
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_winograd_matches_numpy(winograd, case, dtype):
    x, w, b, cp, dout = data(*case, dtype)
    bwd = "winograd" if cp["pad"] <= 2 else "im2col"
    assert paths(x, w, cp["pad"]) == ("winograd", bwd, bwd)
    assert_close(native(x, w, b, cp, dout), reference(x, w, b, cp, dout), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_default_path_matches_numpy(dtype):
    """A deep conv's geometry takes Winograd without forcing (12-pixel rows,
    too short for the direct kernel's register blocks; C*F beyond the direct
    dw's)."""
    x, w, b, cp, dout = data(4, 128, 12, 12, 128, 1, dtype)
    assert paths(x, w, 1) == ("winograd",) * 3
    assert_close(native(x, w, b, cp, dout), reference(x, w, b, cp, dout), dtype)


def test_paths():
    """(forward, dx, dw) under each algo. Rows of 20 or 6 pixels: too short for
    the direct kernel's register blocks; deep layers of 128 channels, beyond the
    direct dw's C*F (test_conv_pool tests those rules)."""
    z = np.zeros
    deep_x, deep_w = z((64, 128, 20, 20), np.float32), z((128, 128, 3, 3), np.float32)
    with nnc.conv_algorithm("auto"):
        # (forward, dx, dw)
        assert paths(deep_x, deep_w, 1) == ("winograd",) * 3
        assert paths(deep_x, deep_w, 2) == ("winograd",) * 3
        assert paths(deep_x, deep_w, 3) == ("winograd", "im2col", "im2col")  # dx: pad -1
        assert paths(deep_x, deep_w[:, :, :2], 1) == ("im2col",) * 3  # 3x2 kernel
        assert paths(z((64, 64, 31, 31)), z((64, 64, 3, 3)), 1, stride=2) == ("im2col",) * 3
        assert paths(z((64, 128, 20, 20)), z((128, 128, 5, 5)), 2) == ("im2col",) * 3
        # the size rule: few input channels, or many more filters than channels, or few tiles
        # (with C <= 4 the forward is the direct kernel's, not Winograd's; with few C x F
        # the dw is the direct kernel's, 27 taps excepted)
        assert paths(z((64, 3, 20, 20)), z((64, 3, 3, 3)), 1) == ("direct", "im2col", "im2col")
        assert paths(z((64, 8, 20, 20)), z((64, 8, 3, 3)), 1) == ("im2col", "im2col", "direct")
        assert paths(z((64, 16, 20, 20)), z((16, 16, 3, 3)), 1) == ("winograd", "winograd",
                                                                    "direct")
        assert paths(z((1, 256, 6, 6)), z((256, 256, 3, 3)), 1) == ("im2col",) * 3
        assert paths(z((4, 256, 6, 6)), z((256, 256, 3, 3)), 1) == ("winograd",) * 3
    with nnc.conv_algorithm("im2col"):
        assert paths(deep_x, deep_w, 1) == ("im2col",) * 3
    with nnc.conv_algorithm("winograd"):
        assert paths(z((1, 1, 1, 1)), z((1, 1, 3, 3)), 1) == ("winograd",) * 3
        assert paths(z((1, 1, 1, 1)), z((1, 1, 3, 3)), 3) == ("winograd", "im2col", "im2col")


def test_winograd_and_im2col_agree():
    """The two native paths on one problem, float64: equal up to rounding."""
    x, w, b, cp, dout = data(3, 20, 11, 14, 24, 1, np.float64, seed=3)
    results = {}
    for algo in ("im2col", "winograd"):
        with nnc.conv_algorithm(algo):
            results[algo] = native(x, w, b, cp, dout)
    for g, e in zip(results["winograd"], results["im2col"]):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12 * np.max(np.abs(e)))


def test_non_finite_inputs_reach_the_same_outputs():
    """An inf or nan in x makes the same outputs non-finite on both paths
    (Winograd may give nan where the direct sum gives inf); the rest agree."""
    rng = np.random.default_rng(1)
    from nnc import _nnc
    for _ in range(40):
        H, W = (int(v) for v in rng.integers(1, 12, 2))
        pad = int(rng.integers(1, 3))
        x = rng.standard_normal((2, 3, H, W))
        w, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
        for _ in range(2):
            x[rng.integers(2), rng.integers(3), rng.integers(H), rng.integers(W)] = \
                rng.choice([np.inf, -np.inf, np.nan])
        out = {}
        for algo in ("im2col", "winograd"):
            out[algo] = _nnc.conv_forward(x, w, b, 1, pad, ALGO[algo])
        finite = np.isfinite(out["im2col"])
        np.testing.assert_array_equal(np.isfinite(out["winograd"]), finite)
        np.testing.assert_allclose(out["winograd"][finite], out["im2col"][finite], rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize("pad", [0, 1, 2])
def test_winograd_gradient_check(winograd, pad):
    """Finite differences of the public conv_forward_fast (cpp backend, Winograd
    forward) against its backward (Winograd dx and dw), float64."""
    x, w, b, cp, dout = data(2, 3, 5, 7, 4, pad, np.float64, seed=11)
    assert paths(x, w, pad) == ("winograd",) * 3
    with nnc.use_backend("cpp"):
        _, cache = fl.conv_forward_fast(x, w, b, cp)
        dx, dw, db = fl.conv_backward_fast(dout, cache)
        for name, a, g in (("x", x, dx), ("w", w, dw), ("b", b, db)):
            num = num_grad(lambda _: fl.conv_forward_fast(x, w, b, cp)[0], a, dout)
            assert rel_error(num, g) < 1e-8, name
            assert np.max(np.abs(num - g)) < 1e-9 * np.max(np.abs(g)), name


def test_concurrent_calls_match_serial(winograd):
    """Four Python threads in the Winograd path at once get the serial
    results bit for bit. One 7x8 image is 16 tiles, a single block: the
    transforms split the channels and OpenBLAS threads the GEMMs; six 12x10
    images make blocks that threads take whole."""
    problems = [data(1, 17 + i, 7, 8, 16, 1, np.float32, seed=i) if i % 2 else
                data(6, 17 + i, 12, 10, 16, 1, np.float32, seed=i) for i in range(4)]

    def run(p):  # a new thread starts at the process default: set the algorithm in each
        with nnc.conv_algorithm("winograd"):
            return native(*p)

    serial = [run(p) for p in problems]
    results = [None] * 4

    def worker(i):
        for _ in range(5):
            results[i] = run(problems[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, serial):
        for g, s in zip(got, want):
            np.testing.assert_array_equal(g, s)
    import scipy_openblas32  # every single-thread GEMM request was handed back
    assert scipy_openblas32.dll.scipy_openblas_get_num_threads() == nnc.get_num_threads()


@pytest.mark.parametrize("dtype", DTYPES)
def test_thread_counts_agree_and_runs_repeat(winograd, dtype):
    """1, 2 and 3 threads: the same results up to rounding (the forward and dx
    may cut blocks differently; dw does not depend on the thread count at
    all), and the same bits from run to run."""
    previous = nnc.get_num_threads()
    results = {}
    try:
        for n in (1, 2, 3):
            nnc.set_num_threads(n)
            # per-thread blocks; one image cut into blocks per thread; one block
            for case in [(7, 17, 13, 9, 20, 1), (1, 17, 13, 9, 20, 1), (1, 8, 7, 8, 8, 1)]:
                x, w, b, cp, dout = data(*case, dtype, seed=5)
                first, second = native(x, w, b, cp, dout), native(x, w, b, cp, dout)
                for a, c in zip(first, second):
                    np.testing.assert_array_equal(a, c)
                results[n, case] = first
    finally:
        nnc.set_num_threads(previous)
    for (n, case), got in results.items():
        for g, e in zip(got, results[1, case]):
            assert np.max(np.abs(g - e)) <= TOL[dtype] * np.max(np.abs(e))
        np.testing.assert_array_equal(got[2], results[1, case][2])  # dw


def test_memory_does_not_grow_with_batch():
    """A (128, 16, 32, 32) x (16, 16, 3, 3) conv: V and M for the whole batch
    would take 67 MB; per-thread blocks keep them to a few MB."""
    code = (
        "import numpy as np, resource, nnc\n"
        "from nnc import _nnc\n"
        "x = np.ones((128, 16, 32, 32), np.float32); w = np.ones((16, 16, 3, 3), np.float32)\n"
        "b = np.zeros(16, np.float32); dout = np.ones((128, 16, 32, 32), np.float32)\n"
        "assert _nnc.conv_paths(x, w, 1, 1, 2) == ('winograd',) * 3\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "out = _nnc.conv_forward(x, w, b, 1, 1, 2)\n"
        "dx, dw, db = _nnc.conv_backward(dout, x, w, 1, 1, 2)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)\n")
    grown_mb = float(subprocess.run([sys.executable, "-c", code], check=True,
                                    capture_output=True, text=True).stdout)
    # out and dx (8 MB each) are the only large new arrays
    assert grown_mb < 40, grown_mb
