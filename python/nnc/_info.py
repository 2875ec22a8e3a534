"""Build facts and the single thread knob shared by OpenMP and OpenBLAS."""
import os

from . import __version__
from ._settings import get_buffer_cache
from .backends import _BACKENDS, CPP_IMPORT_ERROR, available_backends


def _native():
    return _BACKENDS["cpp"]._nnc if "cpp" in _BACKENDS else None


def _openmp_info():
    import nnc

    from . import _openmp
    return {"loaded": _openmp.loaded_runtimes(), "before_nnc": list(nnc._OPENMP_BEFORE),
            "wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "spin_count": os.environ.get("GOMP_SPINCOUNT")}


def build_info():
    """A dict describing this build: version, blas, gemm (the GEMM kernel
    the ops run: 'nnc' for nnc's own, 'openblas'), openmp, simd, compiler,
    num_threads, buffer_cache (its limit and the bytes it holds), backends
    (and cpp_error when the extension did not load), and omp_runtimes: the
    OpenMP libraries in the process ('loaded'), those loaded before ``import
    nnc`` ('before_nnc', which never saw nnc's OMP_WAIT_POLICY) and the
    'wait_policy' and libgomp's 'spin_count' in the environment (nnc's
    PASSIVE and 10000 unless the user chose a policy)."""
    nat = _native()
    info = {"version": __version__, "backends": available_backends(),
            "omp_runtimes": _openmp_info()}
    if nat is None:
        info.update(blas=None, gemm=None, openmp=False, simd=None, compiler=None,
                    num_threads=get_num_threads(), buffer_cache=get_buffer_cache(),
                    cpp_error=str(CPP_IMPORT_ERROR))
        return info
    info.update(
        blas=f"{nat.blas_config().strip()} (core {nat.blas_corename()})",
        gemm=nat.gemm_kernel(),
        openmp=nat.openmp_version() > 0,
        simd=nat.simd_isa(),
        compiler=nat.compiler,
        num_threads=nat.get_num_threads(),
        buffer_cache=get_buffer_cache(),
    )
    return info


def set_num_threads(n):
    """Threads used by nnc's OpenMP kernels and by OpenBLAS (one knob)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, got {n!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    nat = _native()
    if nat is not None:
        nat.set_num_threads(n)
    else:
        global _fallback_threads
        _fallback_threads = n


_fallback_threads = None


def get_num_threads():
    """Current thread count (default: OMP_NUM_THREADS, else the core count)."""
    nat = _native()
    if nat is not None:
        return nat.get_num_threads()
    return _fallback_threads or int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
