"""Knobs of the native backend that the kernels take as arguments, never
read from global state on their own: the conv algorithm and the cache of
output buffers.

The conv algorithm is per thread/context (a ``contextvars.ContextVar``):
``set_conv_algorithm`` and ``with conv_algorithm(...)`` change it for the
calling thread or asyncio task only. Every context starts from the process
default, read once at import from ``NNC_CONV_WINOGRAD``: unset -> 'auto',
``0`` -> 'im2col', ``1`` -> 'winograd'.
"""
import contextlib
import contextvars
import os

CONV_ALGORITHMS = ("auto", "im2col", "winograd")  # the conv bindings' algo 0, 1, 2


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
    'auto' (Winograd F(2x2,3x3) for 3x3 stride-1 kernels where it is faster,
    else im2col + GEMM), 'im2col' (never Winograd) or 'winograd' (for every
    3x3 stride-1 kernel; its backward needs pad <= 2)."""
    _conv_algorithm.set(_checked_algorithm(name))


def get_conv_algorithm():
    """The conv algorithm of this thread/context: 'auto', 'im2col' or 'winograd'."""
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
