"""Knobs of the native backend: the conv algorithm, which the conv kernels
take as an argument (they read no global state of their own), and the cache
of output buffers.

The conv algorithm is per thread/context (a ``contextvars.ContextVar``):
``set_conv_algorithm`` and ``with conv_algorithm(...)`` change it for the
calling thread or asyncio task only. Every context starts from the process
default, read once at import from ``NNC_CONV_WINOGRAD``: unset -> 'auto',
``0`` -> 'im2col', ``1`` -> 'winograd'.
"""
import contextlib
import contextvars
import operator
import os

CONV_ALGORITHMS = ("auto", "im2col", "winograd", "direct")  # the conv bindings' algo 0-3


def _default_conv_algorithm():
    flag = os.environ.get("NNC_CONV_WINOGRAD", "")[:1]
    return {"0": "im2col", "1": "winograd"}.get(flag, "auto")


_conv_algorithm = contextvars.ContextVar("nnc_conv_algorithm", default=_default_conv_algorithm())


def _checked_algorithm(name):
    if not isinstance(name, str) or name not in CONV_ALGORITHMS:
        raise ValueError(f"unknown conv algorithm {name!r}; valid: "
                         + ", ".join(repr(a) for a in CONV_ALGORITHMS))
    return name


def set_conv_algorithm(name):
    """How the cpp backend's convolutions run, in this thread/context:
    'auto' (the direct kernel for stride-1 convs with C <= 4 input channels,
    on AVX2 CPUs for those up to 16 channels, or 32 beside at most 16
    filters, and on AVX-512 CPUs for those whose output rows (NCHW) or filters (NHWC)
    fill its register blocks; Winograd F(2x2,3x3) for other 3x3 stride-1
    kernels where it is faster; else im2col + GEMM), 'im2col' (always),
    'winograd' (for every 3x3 stride-1 kernel; its backward needs pad <= 2)
    or 'direct' (the direct forward and dw for every stride-1 conv, and dx
    too where the kernel is square with pad below its size, else im2col)."""
    _conv_algorithm.set(_checked_algorithm(name))


def get_conv_algorithm():
    """The conv algorithm of this thread/context: 'auto', 'im2col', 'winograd' or 'direct'."""
    return _conv_algorithm.get()


@contextlib.contextmanager
def conv_algorithm(name):
    """``with conv_algorithm('im2col'): ...`` runs the block with that conv
    algorithm and restores the previous one on exit, also when it raises."""
    token = _conv_algorithm.set(_checked_algorithm(name))
    try:
        yield name
    finally:
        _conv_algorithm.reset(token)


def _conv_algo_code():
    """The algo argument of the conv bindings for the current setting."""
    return CONV_ALGORITHMS.index(_conv_algorithm.get())


# --- output-buffer cache ---

_fallback_cache_limit = 256 << 20  # what get_buffer_cache reports without the extension


def _native():
    from ._info import _native as native  # late: _info imports the backends

    return native()


def set_buffer_cache(max_bytes):
    """Most bytes of freed output arrays the cpp backend keeps to hand to the
    next output of the same size (default 256 MB). Only arrays of 1 MB and
    more are kept: reusing them saves faulting in fresh pages on every call.
    0 turns the cache off and frees what it holds; lowering the limit frees
    the oldest blocks until it fits."""
    if isinstance(max_bytes, bool):
        raise TypeError(f"max_bytes must be an int, got {max_bytes!r}")
    try:
        n = operator.index(max_bytes)
    except TypeError:
        raise TypeError(f"max_bytes must be an int, got {max_bytes!r}") from None
    if n < 0:
        raise ValueError(f"max_bytes must be >= 0, got {n}")
    nat = _native()
    if nat is not None:
        nat.set_buffer_cache(n)
    else:
        global _fallback_cache_limit
        _fallback_cache_limit = n


def get_buffer_cache():
    """``{'limit': bytes, 'held': bytes}``: the output-buffer cache's limit and
    what freed buffers it holds now."""
    nat = _native()
    if nat is None:
        return {"limit": _fallback_cache_limit, "held": 0}
    limit, held = nat.get_buffer_cache()
    return {"limit": limit, "held": held}
