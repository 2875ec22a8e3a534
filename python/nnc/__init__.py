"""nnc: CS231n-style neural-network layers on two swappable backends.

``numpy`` is the pure-NumPy reference; ``cpp`` is the native backend (OpenMP,
SIMD and OpenBLAS kernels bound with nanobind) and the default when built.

    import nnc
    from nnc.layers import affine_forward
    with nnc.use_backend("numpy"):
        out, cache = affine_forward(x, w, b)
"""
import os as _os

from . import _openmp

# What was there before nnc touched anything: OpenMP runtimes already loaded
# (by torch, say) read OMP_WAIT_POLICY long ago, so the setdefault below
# cannot reach them (_openmp says why that matters).
_OPENMP_BEFORE = _openmp.loaded_runtimes()
_USER_WAIT_POLICY = _os.environ.get("OMP_WAIT_POLICY")

# libgomp reads these once when it loads. Workers that spin for long (libgomp's
# default, about 300,000 polls) starve OpenBLAS's own threads right after a
# parallel region (20-80x slowdowns), so idle workers spin briefly and then
# sleep, unless the user chose a policy (_openmp.DEFAULT_POLICY says why).
if _USER_WAIT_POLICY is None:
    for _name, _value in _openmp.DEFAULT_POLICY.items():
        _os.environ.setdefault(_name, _value)
# The same the other way round: after a multi-threaded GEMM, OpenBLAS's idle
# workers spin for about 0.1 s (2^28 cycles) and take a core from the OpenMP
# kernel that runs next; a conv right after an affine layer ran 1.9x slower.
# 2^4 cycles makes them sleep at once (read when libscipy_openblas loads).
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__version__ = "0.1.0"

from .backends import (  # noqa: E402
    available_backends,
    get_backend,
    implemented_ops,
    missing_ops,
    set_backend,
    use_backend,
)
from ._info import build_info, get_num_threads, set_num_threads  # noqa: E402
from ._settings import (  # noqa: E402
    conv_algorithm,
    get_buffer_cache,
    get_conv_algorithm,
    set_buffer_cache,
    set_conv_algorithm,
)
from . import fast_layers, layers, optim  # noqa: E402,F401  (they declare the ops)
from .backends import verify as _verify  # noqa: E402

_verify()

if _openmp.spin_warning(_OPENMP_BEFORE, _USER_WAIT_POLICY):
    import warnings as _warnings

    _warnings.warn(_openmp.spin_warning(_OPENMP_BEFORE, _USER_WAIT_POLICY), RuntimeWarning,
                   stacklevel=2)

__all__ = [
    "available_backends", "get_backend", "set_backend", "use_backend", "implemented_ops",
    "missing_ops", "build_info", "get_num_threads", "set_num_threads", "set_conv_algorithm",
    "get_conv_algorithm", "conv_algorithm", "set_buffer_cache", "get_buffer_cache",
    "__version__",
]
