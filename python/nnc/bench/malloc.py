"""glibc malloc settings the benchmarks run both libraries under.

glibc serves a block above its mmap threshold (128 KiB at start, raised
each time such a block is freed, up to 32 MiB) with fresh pages from the
kernel, which fault in on first touch. PyTorch allocates its outputs at
every call: its convnet conv1 forward (a 26 MB output) read 41 ms in a
bench process whose threshold had not risen yet and 15 ms where it had,
and its whole convnet training 11.2 s against 9.5 s. nnc keeps its outputs
in a buffer cache and barely moves. So the benchmarks give both libraries
the settings a tuned user would: blocks up to 32 MiB from the heap, and the
heap's top kept until 256 MiB are free. Where the user set either variable,
theirs wins.
"""
import ctypes
import ctypes.util
import os

MALLOC_SETTINGS = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20),
                   "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}

# mallopt's parameter numbers for the same two settings (glibc's malloc.h)
_MALLOPT = {"MALLOC_MMAP_THRESHOLD_": -3, "MALLOC_TRIM_THRESHOLD_": -1}


def child_env(env):
    """``env`` with the settings added where it does not set them (for a child
    process, whose glibc reads them at start-up)."""
    return dict(env, **{k: v for k, v in MALLOC_SETTINGS.items() if k not in env})


def apply_in_process():
    """Set the same values in this process through ``mallopt`` (glibc read the
    environment when it started, so setting it now would do nothing). Returns
    a one-line description for a report, or why nothing was set."""
    if all(k in os.environ for k in MALLOC_SETTINGS):
        return "malloc: the environment's settings"
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return "malloc: the C library's defaults (no mallopt)"
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    for key, value in MALLOC_SETTINGS.items():
        if key not in os.environ and mallopt(_MALLOPT[key], int(value)) != 1:
            return "malloc: the C library's defaults (mallopt refused)"
    return "malloc: mmap threshold 32 MiB, trim threshold 256 MiB (both libraries)"
