"""The two GEMM kernels every GEMM-bound op runs on (cpp/blas.cpp, cpp/gemm.cpp):
OpenBLAS's and nnc's own packed kernel. Each is forced in turn on shapes that
reach every part of nnc's kernel (partial register tiles, depths over one KC
block of 384 float32 / 256 float64, more than one 112-row block of A, more
than one 2048-column block of B, transposed operands, an empty depth,
accumulation into C) and checked against the NumPy reference; nnc's own gives
the same bits at 1, 2 and 3 threads."""
import contextlib

import numpy as np
import pytest

import nnc
from conftest import native_threads, needs_cpp

pytestmark = needs_cpp

KERNELS = ("openblas", "nnc")


@contextlib.contextmanager
def gemm_kernel(name):
    from nnc import _nnc
    _nnc.set_gemm_kernel(name)
    try:
        yield
    finally:
        _nnc.set_gemm_kernel("auto")


def close(got, want, dtype):
    """Relative to the largest value: float64 to 1e-12, float32 to 1e-5."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    scale = max(np.max(np.abs(want), initial=0.0), 1e-30)
    err = np.max(np.abs(got - want), initial=0.0) / scale
    assert err <= (1e-5 if dtype == np.float32 else 1e-12), err


def affine_all(x, w, b, dout):
    """out = x w + b, then dx = dout w^T and dw = x^T dout: the three orientations."""
    out, cache = nnc.layers.affine_forward(x, w, b)
    dx, dw, db = nnc.layers.affine_backward(dout, cache)
    return out, dx, dw, db


# (N, D, M): the affine's x (N, D) times w (D, M); dx is (N, M)(M, D), dw (D, N)(N, M)
AFFINE_SHAPES = [
    (1, 1, 1),
    (3, 5, 7),            # one partial tile everywhere
    (14, 32, 32),         # exactly one float32 tile
    (15, 33, 17),         # one past a tile in every direction
    (29, 1025, 65),       # depth one past a float32 KC block
    (112, 70, 64),        # the most rows whose call reads a row-major B unpacked
    (113, 513, 31),       # rows one past an A block; depth past a float64 KC block
    (50, 700, 100),       # the seeds' thin hidden layers
    (5, 3, 2100),         # columns past a B block (forward) and dx's depth
    (7, 0, 9),            # empty depth: out = b, dw empty
    (0, 6, 4),            # no rows
]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", AFFINE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_affine_matches_the_reference(kernel, dtype, shape):
    N, D, M = shape
    rng = np.random.default_rng(N * 10007 + D * 101 + M)
    x = rng.standard_normal((N, D)).astype(dtype)
    w = rng.standard_normal((D, M)).astype(dtype)
    b = rng.standard_normal(M).astype(dtype)
    dout = rng.standard_normal((N, M)).astype(dtype)
    with nnc.use_backend("numpy"):
        want = affine_all(x, w, b, dout)
    with nnc.use_backend("cpp"), gemm_kernel(kernel):
        got = affine_all(x, w, b, dout)
    for g, e in zip(got, want):
        assert g.dtype == dtype
        close(g, e, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(50, 700, 100), (300, 900, 40), (6, 40, 4500),
                                   (60, 2100, 70)],
                         ids=lambda s: "x".join(map(str, s)))
def test_nnc_kernel_same_bits_at_any_thread_count(dtype, shape):
    # (300, 900, 40): one thread packs w, three threads' 100 rows read it unpacked;
    # (60, 2100, 70): the depth in three KC blocks of float32, five of float64.
    N, D, M = shape
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, D)).astype(dtype)
    w = rng.standard_normal((D, M)).astype(dtype)
    b = rng.standard_normal(M).astype(dtype)
    dout = rng.standard_normal((N, M)).astype(dtype)
    runs = []
    with nnc.use_backend("cpp"), gemm_kernel("nnc"):
        for n in (1, 2, 3):
            with native_threads(n):
                runs.append(affine_all(x, w, b, dout))
    for later in runs[1:]:
        for a, b_ in zip(runs[0], later):
            assert np.array_equal(a, b_)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_im2col_gemms_match_the_reference(kernel, dtype):
    """The im2col conv: forward (F, K+1)(K+1, cols), dx (K, F)^T, dw accumulated
    into over blocks of images (beta = 1), in both layouts."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 19, 9, 11)).astype(dtype)
    w = rng.standard_normal((23, 19, 3, 3)).astype(dtype)
    b = rng.standard_normal(23).astype(dtype)
    conv_param = {"stride": 2, "pad": 1}
    with nnc.use_backend("numpy"):
        out_ref, cache = nnc.fast_layers.conv_forward_fast(x, w, b, conv_param)
        dout = rng.standard_normal(out_ref.shape).astype(dtype)
        want = (out_ref,) + tuple(nnc.fast_layers.conv_backward_fast(dout, cache))
    with nnc.use_backend("cpp"), gemm_kernel(kernel), nnc.conv_algorithm("im2col"):
        out, cache = nnc.fast_layers.conv_forward_fast(x, w, b, conv_param)
        got = (out,) + tuple(nnc.fast_layers.conv_backward_fast(dout, cache))
    for g, e in zip(got, want):
        close(g, e, dtype)


@pytest.mark.parametrize("kernel", KERNELS)
def test_non_finite_values_stay_where_they_are(kernel):
    """A NaN or inf in one row of x reaches that row of the output only: the
    kernel's zero padding never mixes into real rows."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((30, 40)).astype(np.float32)
    w = rng.standard_normal((40, 50)).astype(np.float32)
    b = np.zeros(50, np.float32)
    x[3, 5] = np.nan
    x[17, 0] = np.inf
    with nnc.use_backend("numpy"):
        want, _ = nnc.layers.affine_forward(x, w, b)
    with nnc.use_backend("cpp"), gemm_kernel(kernel):
        got, _ = nnc.layers.affine_forward(x, w, b)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    close(got[finite], want[finite], np.float32)


def test_auto_takes_nnc_kernel_on_avx512_cpus_whose_openblas_is_older():
    from nnc import _nnc
    avx512 = _nnc.simd_isa().startswith("x86-64-v4")
    core = _nnc.blas_corename().lower()
    blas_wide = any(n in core for n in ("skylakex", "cooperlake", "sapphirerapids"))
    assert _nnc.gemm_kernel() == ("nnc" if avx512 and not blas_wide else "openblas")
    assert nnc.build_info()["gemm"] == _nnc.gemm_kernel()
    for name in KERNELS:
        with gemm_kernel(name):
            assert _nnc.gemm_kernel() == name


def test_bad_kernel_name_is_a_value_error():
    from nnc import _nnc
    with pytest.raises(ValueError, match="'blis'"):
        _nnc.set_gemm_kernel("blis")
    assert _nnc.gemm_kernel() in KERNELS
