"""A wall timer around every function of the binding, for the profile scripts
in ``benches/`` (where a step's time goes: native kernels or Python around them)."""
import functools
import time
from collections import defaultdict

from .. import _nnc


class KernelTimer:
    """While active, every callable of ``nnc._nnc`` is replaced by a wrapper that
    adds its wall time to the current ``phase`` (set it to split a run, e.g.
    "step" and "eval"); the originals come back on exit.

    - ``seconds[phase]``, ``calls[phase]``: kernel time and calls per phase
    - ``per_kernel[(phase, name)]``: kernel time per phase and function
    ``reset()`` zeroes them. The wrappers cost well under a microsecond a call.
    """

    def __init__(self, phase="step"):
        self.phase = phase
        self.saved = {}
        self.reset()

    def reset(self):
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)
        self.per_kernel = defaultdict(float)

    def __enter__(self):
        self.saved = {n: getattr(_nnc, n) for n in dir(_nnc)
                      if not n.startswith("_") and callable(getattr(_nnc, n))}
        for name, fn in self.saved.items():
            setattr(_nnc, name, self._wrap(name, fn))
        return self

    def _wrap(self, name, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                self.seconds[self.phase] += dt
                self.calls[self.phase] += 1
                self.per_kernel[(self.phase, name)] += dt
        return wrapper

    def __exit__(self, *exc):
        for name, fn in self.saved.items():
            setattr(_nnc, name, fn)
