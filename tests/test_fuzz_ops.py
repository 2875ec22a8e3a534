"""Issue 13, fuzzing: hypothesis property tests over every declared op, the
numpy reference against the cpp backend.

By default this file runs 3,960 fuzz cases (TOTAL_EXAMPLES, the sum of
FAMILIES' counts; it prints the number it ran, about 25-35 s on 2 cores),
derandomized: hypothesis draws from a seed fixed by the test, not a new one
each run, so CI does not change from run to run. NNC_FUZZ_SCALE=10 runs ten
times as many, and NNC_FUZZ_RANDOM=1 draws new cases each run (and keeps
failures in hypothesis's database): run both when changing an op.

Each family below draws random calls of its ops: shapes with tails (1, 2, 3,
7, 17), zero-size axes (valid where the op allows them), now and then sizes
large enough for the native kernels' multi-threaded paths; dtypes (float32,
float64, the ints and float16 that NumPy promotion turns into floats, and
rarely bool, complex and long double, which no op takes); memory orders (C,
Fortran, step-2 slices, negative strides, transposed views, broadcast
zero-stride and read-only arrays, nested lists); parameters (stride, pad,
pool sizes, groups, p, eps, momentum, modes, seeds, slopes, learning rates,
betas, t, as Python and as NumPy scalars, invalid ones included; conv
algorithms; state arrays of the wrong dtype, shape or layout). Each drawn
case runs on both backends from identical fresh inputs: its calls (up to 3
optimizer steps, each from the returned next_w and config; batchnorm
forwards in train and test mode on the same running statistics), then for a
forward op its backward on the last cache with the same dout (valid or not).
Both backends must:

- either raise the same exception type (TypeError, ValueError or IndexError,
  nothing else) with the same message, at the same call or the backward;
- or return the same number of results with the same types, shapes and
  dtypes, the same NaN and Inf positions, and finite values that agree to
  the bench harness's compare (float64 1e-10, float32 1e-4, relative to each
  output's largest magnitude with a floor of 1); the state after the calls
  (running statistics, optimizer config) and NumPy's global random state
  (dropout draws from it) are results too;
- leave every input as it was (values, dtype, strides, flags; dict entries
  neither replaced nor added, dout included), except what the API updates:
  the optimizers' w and config state (and the defaults they add),
  batchnorm's running statistics; after an exception nothing at all;
- give the same gradients from a second backward on the same cache.

test_every_declared_op_is_fuzzed fails when a declared op has no family
here; each family's test fails unless every one of its ops returned values
and some call raised. The tests at the end are regressions for the
disagreements this fuzz found.
"""
import math
import os
import random
import warnings
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nnc
from nnc import _checks as ck
from nnc.backends import declared_ops
from nnc.bench.harness import compare
from nnc.bench.suite import public_op

from conftest import needs_cpp

SCALE = float(os.environ.get("NNC_FUZZ_SCALE", "1"))
RANDOM = os.environ.get("NNC_FUZZ_RANDOM", "") == "1"
# what every family ran, over the whole module: printed at the end
COUNTS = Counter()

# --- array specifications -------------------------------------------------------------
# A drawn case holds only data (specs); each backend builds its own fresh
# arrays from them, so an op that updates its inputs cannot leak into the
# other backend's run, and hypothesis prints a failing case readably.

FLOATS = ("float64", "float32")
PROMOTED = ("int64", "int32", "uint8", "float16")   # NumPy promotion makes these floats
REFUSED = ("bool", "complex128", "longdouble")      # no op computes in these


@dataclass(frozen=True)
class A:
    """An array to build: shape, dtype, memory layout, values (kind, scale) from seed."""
    shape: tuple
    dtype: str = "float64"
    layout: str = "C"
    seed: int = 0
    kind: str = "normal"    # normal | pos | unit | special | index | badunit
    scale: float = 1.0
    low: int = 0            # index: values in [low, high)
    high: int = 1
    upcast: bool = False    # these very values, converted to float64 (see upcast())

    def values(self, rng, shape):
        with np.errstate(over="ignore"):   # 1e30 in float16 or float32 is inf
            return np.asarray(self._values(rng, shape))

    def _values(self, rng, shape):
        dt = np.dtype(self.dtype)
        if self.kind == "index":
            v = rng.integers(self.low, max(self.high, self.low + 1), size=shape)
            return v.astype(dt) if dt.kind in "iu" else v.astype(dt) + 0.0
        if self.kind in ("unit", "badunit"):
            v = np.asarray(rng.random(shape))
            v[rng.random(shape) < 0.3] = 1.0
            v[rng.random(shape) < 0.2] = 0.0
            if self.kind == "badunit" and v.size:
                v.flat[int(rng.integers(v.size))] = [1.5, -0.25, np.nan][int(rng.integers(3))]
        elif self.kind == "pos":
            v = np.asarray(np.abs(rng.standard_normal(shape)) * self.scale + 0.1)
        else:
            v = np.asarray(rng.standard_normal(shape) * self.scale)
            if self.kind == "special" and v.size:
                specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30])
                hit = rng.random(shape) < 0.3
                v[hit] = rng.choice(specials, size=int(hit.sum()))
        if dt.kind in "iu":
            v = np.nan_to_num(v, nan=0.0, posinf=100, neginf=-100)
            v = np.asarray(np.clip(np.round(np.abs(v) if dt.kind == "u" else v), -100, 100))
        elif dt.kind == "b":
            return v > 0
        elif dt.kind == "c":
            return (v + 1j * rng.standard_normal(shape)).astype(dt)
        return v.astype(dt)

    def build(self):
        if self.upcast:
            a = replace(self, upcast=False).build()
            return np.asarray(a, np.float64) if isinstance(a, np.ndarray) else a
        rng = np.random.default_rng(self.seed)
        shape, lay = tuple(self.shape), self.layout
        if len(shape) == 0 and lay not in ("list", "readonly"):
            lay = "C"
        if lay == "C":
            return self.values(rng, shape)
        if lay == "list":
            return self.values(rng, shape).tolist()
        if lay == "F":
            return np.asfortranarray(self.values(rng, shape))
        if lay == "step2":   # every axis sliced with step 2
            every_other = (slice(None, None, 2),) * len(shape)
            return self.values(rng, tuple(2 * s for s in shape))[every_other]
        if lay == "neg":     # negative strides on the first and the last axis
            a = self.values(rng, shape)
            return a[::-1] if a.ndim == 1 else a[::-1, ..., ::-1]
        if lay == "T":       # a transposed view of a C array
            return self.values(rng, shape[::-1]).T
        if lay == "bcast":   # stride 0 on the first axis, read-only
            return np.broadcast_to(self.values(rng, (1,) + shape[1:]), shape)
        if lay == "readonly":
            a = self.values(rng, shape)
            a.flags.writeable = False
            return a
        raise AssertionError(lay)


@dataclass(frozen=True)
class Dout:
    """The upstream gradient of a backward: the forward output's shape unless
    ``change`` says otherwise, in the output's dtype unless ``dtype`` is set."""
    dtype: str = None
    layout: str = "C"
    seed: int = 0
    change: str = None      # None | shape | ndim | list | scalar
    upcast: str = None      # the dtype of the output it was drawn for (see upcast())

    def build(self, out):
        if self.change == "scalar":
            return 1.0
        if self.upcast:
            a = replace(self, upcast=None).build(np.empty(out.shape, self.upcast))
            return np.asarray(a, np.float64) if isinstance(a, np.ndarray) else a
        shape = list(out.shape)
        if self.change == "shape":
            shape = shape[:-1] + [shape[-1] + 1] if shape else [1]
        elif self.change == "ndim":
            shape = shape + [1]
        layout = "list" if self.change == "list" else self.layout
        return A(tuple(shape), self.dtype or out.dtype.name, layout, self.seed).build()


def upcast(case, out_dtype):
    """The case with its float32 and float16 arrays (and dout) converted to
    float64: the same values, computed in float64 by the reference."""
    def up(v):
        if isinstance(v, A):
            return replace(v, upcast=True) if v.dtype in ("float32", "float16") else v
        return {k: up(x) for k, x in v.items()} if isinstance(v, dict) else v
    dout = case.dout and replace(case.dout, upcast=out_dtype)
    return replace(case, inputs={k: up(v) for k, v in case.inputs.items()}, dout=dout)


def compute_dtype(*dtypes):
    """The dtype the op computes in for arrays of these dtypes (float64 when refused)."""
    try:
        return ck.compute_dtype(*(np.empty(0, d) for d in dtypes)).name
    except TypeError:
        return "float64"


# --- strategies ---------------------------------------------------------------------------

TAILS = (1, 2, 3, 7, 17)
LAYOUTS = ("C", "C", "C", "C", "F", "step2", "neg", "T", "bcast", "readonly")


def pick(*choices):
    return st.sampled_from(choices)


def rare(draw, n=30):
    """True about once in n draws. Not ``integers(0, n - 1) == k``: hypothesis
    favours some values of a small range, and in some runs never drew k at
    all; a 32-bit seed it draws near uniformly."""
    return random.Random(draw(st.integers(0, 2**32 - 1))).random() < 1.0 / n


def either(draw, good, *bad, n=30):
    """``good``, or about once in n draws one of the ``bad`` values."""
    return draw(pick(*bad)) if bad and rare(draw, n) else good


def dims(choices=TAILS):
    return st.sampled_from(tuple(choices))


def big(draw, shape, large, n=30):
    """``shape``, or about once in n draws ``large``: sizes past the native
    kernels' thresholds for running on several threads (2**12 to 2**16 elements)."""
    return tuple(large) if rare(draw, n) else tuple(shape)


def zeroed(draw, shape, n=8):
    """``shape``, or about once in n draws with one axis (any) of size 0."""
    shape = tuple(shape)
    if shape and rare(draw, n):
        i = draw(st.integers(0, len(shape) - 1))
        shape = shape[:i] + (0,) + shape[i + 1:]
    return shape


def dtype_for(draw, main):
    """Mostly the case's main dtype; sometimes one NumPy promotes, rarely one refused."""
    if rare(draw, 50):
        return draw(pick(*REFUSED))
    return main if draw(st.integers(0, 9)) < 7 else draw(pick(*FLOATS, *PROMOTED))


def arr(draw, shape, main, kind="normal", scale=1.0):
    """An input array of ``shape``: mostly of dtype ``main``, in any layout,
    rarely a nested list."""
    layout = "list" if rare(draw, 80) else draw(pick(*LAYOUTS))
    return A(tuple(shape), dtype_for(draw, main), layout, draw(st.integers(0, 2**16)), kind, scale)


@st.composite
def douts(draw):
    dtype = draw(pick(None, None, None, None, None, None, "float64", "float32", "int32", "float16"))
    dtype = either(draw, dtype, "bool", "complex128", n=50)
    change = either(draw, None, "shape", "ndim", "list", "scalar", n=15)
    return Dout(dtype, draw(pick(*LAYOUTS)), draw(st.integers(0, 2**16)), change)


def scalar(draw, good, bad=()):
    """A hyperparameter: one of the good values, as a Python or NumPy scalar, or a bad one."""
    if bad and rare(draw, 12):
        return draw(pick(*bad))
    v = draw(pick(*good))
    if isinstance(v, float):
        v = draw(pick(float, float, np.float64, np.float32))(v)
    return v


@dataclass
class Case:
    op: str                          # the declared op called first
    inputs: dict                     # argument name -> spec (A, dict of specs, scalar)
    args: tuple                      # argument names in call order
    bwd: str = None                  # the backward op run on the forward's cache
    dout: Dout = None
    mutable: frozenset = frozenset()  # paths ((name,) or (name, key)) the API may update
    addable: frozenset = frozenset()  # (name, key) entries the API may add to a dict
    after: tuple = ()                # names whose state after the call is compared
    later: tuple = ()                # further calls on the returned state: optimizer
    #                                  steps (None each), batchnorm modes ('train'/'test')
    algo: str = "auto"               # nnc.conv_algorithm for the cpp conv kernels
    np_seed: int = 0                 # np.random.seed before the call (dropout draws)

    @property
    def ops(self):
        return (self.op,) + ((self.bwd,) if self.bwd else ())


# --- one family per op, or per forward/backward pair --------------------------------------


@st.composite
def affine_cases(draw):
    main = draw(pick(*FLOATS))
    N, M, *tail = zeroed(draw, big(draw, (draw(dims()), draw(dims()),
                                          *draw(st.lists(dims((1, 2, 3, 5)), max_size=3))),
                                   (300, 65, 129)), n=4)
    tail = tuple(tail)
    D = math.prod(tail)
    xs, ws, bs = (N,) + tail, (D, M), (M,)
    wrong = either(draw, None, "w", "b", "x0d", "w1d", "b2d", n=10)
    if wrong == "w":
        ws = (D + 1, M)
    elif wrong == "b":
        bs = (M + 1,)
    elif wrong == "x0d":
        xs = ()
    elif wrong == "w1d":
        ws = (D * M,)
    elif wrong == "b2d":
        bs = (1, M)
    inputs = dict(x=arr(draw, xs, main), w=arr(draw, ws, main, scale=0.5), b=arr(draw, bs, main))
    return Case("affine_forward", inputs, ("x", "w", "b"),
                draw(pick("affine_backward", "affine_backward_weights")), draw(douts()))


# eps = 0 is valid, but with a zero variance (a constant feature, N = 1, the
# zero running_var of a first test-mode call) it divides by zero. The
# forward's out and the test-mode dx now agree there (tests/test_norm.py),
# but dgamma does not always: cpp sums dout * (x - m) and then multiplies by
# the infinite rstd, NumPy sums dout * xhat term by term (NaN from inf - inf
# where cpp has one signed infinity, and the reverse): not drawn.
EPS = (1e-5, 1e-3, 0.5, 1)


@st.composite
def bn_params(draw, n, dtype):
    """A bn_param for n features computed in dtype: mode, eps, momentum and
    running statistics, each present or not, valid or (rarely) not."""
    p = {}
    mode = either(draw, draw(pick("train", "train", "test")), "bad", None, n=20)
    if mode is not None:
        p["mode"] = mode
    if draw(st.booleans()):
        p["eps"] = scalar(draw, EPS, (-1e-5, float("nan"), float("inf"), "1e-5", True))
    if draw(st.booleans()):
        p["momentum"] = scalar(draw, (0.9, 0.0, 1.0, 0.5, 1, 0), (1.5, -0.1, True, "0.9"))
    for key, kind in (("running_mean", "normal"), ("running_var", "pos")):
        how = either(draw, draw(pick("absent", "none", "ok", "ok")), "dtype", "shape",
                     "step2", "readonly", "list", "bcast", n=10)
        if how == "absent":
            continue
        if how == "none":
            p[key] = None
            continue
        shape = (n + 1,) if how == "shape" else (n,)
        dt = dtype if how != "dtype" else ("float32" if dtype == "float64" else "float64")
        layout = {"step2": "step2", "readonly": "readonly", "list": "list",
                  "bcast": "bcast"}.get(how, "C")
        p[key] = A(shape, dt, layout, draw(st.integers(0, 2**16)), kind)
    if rare(draw, 40):
        return draw(pick(None, [("mode", "train")], "train"))
    return p


def _bn_case(draw, op, bwds, x_shape, n):
    main = draw(pick(*FLOATS))
    x = arr(draw, x_shape, main, scale=draw(pick(1.0, 3.0)))
    gshape = either(draw, (n,), (n + 1,), (1, n), ())
    gamma = arr(draw, gshape, main, kind=draw(pick("normal", "pos")))
    beta = arr(draw, either(draw, (n,), (n + 1,)), main)
    dt = compute_dtype(x.dtype, gamma.dtype, beta.dtype)
    if dt == "float32" and len(x_shape) in (2, 4) and math.prod(x_shape) == n > 0:
        # One sample per feature in float32: the exact dx is 0, and cpp's
        # fused backward (gamma * rstd * (dout - mean dout) as two terms of
        # size gamma * |dout| / sqrt(eps)) leaves ~2e-4 of rounding there.
        x = replace(x, shape=(2,) + tuple(x_shape[1:]))
    param = draw(bn_params(n, dt))
    stats = {("bn_param", "running_mean"), ("bn_param", "running_var")}
    return Case(op, dict(x=x, gamma=gamma, beta=beta, bn_param=param),
                ("x", "gamma", "beta", "bn_param"), draw(pick(*bwds)), draw(douts()),
                mutable=frozenset(stats), addable=frozenset(stats), after=("bn_param",),
                later=tuple(draw(st.lists(pick("train", "test"), max_size=2))))


@st.composite
def batchnorm_cases(draw):
    N, D = zeroed(draw, big(draw, (draw(dims()), draw(dims())), (300, 129)))
    if rare(draw, 30):
        return _bn_case(draw, "batchnorm_forward", ("batchnorm_backward",), (N, D, 2), D)
    return _bn_case(draw, "batchnorm_forward", ("batchnorm_backward", "batchnorm_backward_alt"),
                    (N, D), D)


@st.composite
def spatial_batchnorm_cases(draw):
    N, C, H, W = zeroed(draw, big(draw, (draw(dims((1, 2, 3, 7))), draw(dims((1, 2, 3, 7))),
                                         draw(dims((1, 2, 3, 5))), draw(dims((1, 2, 3, 5)))),
                                  (4, 9, 33, 33)))
    return _bn_case(draw, "spatial_batchnorm_forward", ("spatial_batchnorm_backward",),
                    (N, C, H, W), C)


def eps_params(draw):
    """ln_param or gn_param: {} or {'eps': ...}, rarely not a dict."""
    if rare(draw, 40):
        return draw(pick(None, [("eps", 1e-5)]))
    p = {}
    if draw(st.booleans()):
        p["eps"] = scalar(draw, EPS, (-1e-5, float("nan"), "1e-5", True))
    return p


@st.composite
def layernorm_cases(draw):
    main = draw(pick(*FLOATS))
    N, D = zeroed(draw, big(draw, (draw(dims()), draw(dims())), (300, 129)))
    xs = either(draw, (N, D), (N,), (N, D, 2))
    inputs = dict(x=arr(draw, xs, main, scale=draw(pick(1.0, 3.0))),
                  gamma=arr(draw, either(draw, (D,), (D + 1,)), main),
                  beta=arr(draw, either(draw, (D,), (D + 1,)), main),
                  ln_param=eps_params(draw))
    return Case("layernorm_forward", inputs, ("x", "gamma", "beta", "ln_param"),
                "layernorm_backward", draw(douts()))


@st.composite
def groupnorm_cases(draw):
    main = draw(pick(*FLOATS))
    N, C, H, W = zeroed(draw, big(draw, (draw(dims((1, 2, 3))), draw(dims((1, 2, 3, 4, 6))),
                                         draw(dims((1, 2, 3, 5))), draw(dims((1, 2, 3, 5)))),
                                  (4, 6, 33, 33)))
    divisors = [g for g in range(1, C + 1) if C % g == 0] or [1]
    G = either(draw, draw(pick(*divisors)), 0, C + 1, -1, 2.0, True, np.int64(1), n=15)
    gshape = either(draw, draw(pick((1, C, 1, 1), (1, C, 1, 1), (C,))), (1, C + 1, 1, 1), (C, 1))
    inputs = dict(x=arr(draw, (N, C, H, W), main, scale=draw(pick(1.0, 3.0))),
                  gamma=arr(draw, gshape, main), beta=arr(draw, draw(pick(gshape, gshape, (C,))),
                                                         main),
                  G=G, gn_param=eps_params(draw))
    return Case("spatial_groupnorm_forward", inputs, ("x", "gamma", "beta", "G", "gn_param"),
                "spatial_groupnorm_backward", draw(douts()))


def elementwise_cases(name):
    @st.composite
    def cases(draw):
        main = draw(pick(*FLOATS))
        shape = zeroed(draw, big(draw, draw(st.lists(dims(), max_size=4)), (3, 13, 1031)), n=5)
        kind = draw(pick("normal", "normal", "normal", "special"))
        x = arr(draw, shape, main, kind=kind, scale=draw(pick(1.0, 5.0, 100.0, 1e4)))
        inputs, args = dict(x=x), ("x",)
        if name == "leaky_relu" and draw(st.integers(0, 3)):
            inputs["negative_slope"] = scalar(draw, (0.01, 0.2, 0.0, -0.5, 1.5, 1, 3),
                                              (float("nan"), float("inf"), True, "0.1", None))
            args = ("x", "negative_slope")
        return Case(f"{name}_forward", inputs, args, f"{name}_backward", draw(douts()))
    return cases()


@st.composite
def dropout_cases(draw):
    main = draw(pick(*FLOATS))
    shape = zeroed(draw, big(draw, (draw(dims()), *draw(st.lists(dims((1, 2, 3, 7)),
                                                                  max_size=3))), (7, 5003)))
    if rare(draw):
        shape = ()
    dp = {}
    if not rare(draw):
        dp["p"] = scalar(draw, (0.3, 0.5, 0.7, 1.0, 1, 0.999),
                         (0, 0.0, 1.5, -0.5, float("nan"), "0.5", True, None))
    if not rare(draw):
        dp["mode"] = either(draw, draw(pick("train", "train", "test")), "eval")
    seed = either(draw, draw(pick("absent", 0, 1, 42, 2**32 - 1, np.int64(7))), -1, "x")
    if seed != "absent":
        dp["seed"] = seed
    if rare(draw, 40):
        dp = draw(pick(None, [("p", 0.5), ("mode", "train")]))
    return Case("dropout_forward", dict(x=arr(draw, shape, main), dropout_param=dp),
                ("x", "dropout_param"), "dropout_backward", draw(douts()),
                np_seed=draw(st.integers(0, 2**16)))


def labels(draw, N, C):
    how = either(draw, "ok", "high", "negative", "shape", "float", "bool", n=10)
    dtype = draw(pick("int64", "int64", "int32", "uint8", "int8", "uint64", "intp"))
    if how == "float":
        dtype = "float64"
    elif how == "bool":
        dtype = "bool"
    elif how == "negative":
        dtype = draw(pick("int64", "int32", "int8"))
    low, high = {"ok": (0, C), "high": (C, C + 2), "negative": (-2, 0)}.get(how, (0, max(C, 1)))
    shape = (N + 1,) if how == "shape" else (N,)
    layout = either(draw, draw(pick("C", "C", "C", "step2", "neg", "readonly", "bcast")), "list")
    return A(shape, dtype, layout, draw(st.integers(0, 2**16)), "index", low=low,
             high=max(high, low + 1))


def class_loss_cases(name):
    @st.composite
    def cases(draw):
        main = draw(pick(*FLOATS))
        N, C = zeroed(draw, big(draw, (draw(dims()), draw(dims())), (300, 129)))
        xs = either(draw, (N, C), (N,), (N, C, 1))
        kind = draw(pick("normal", "normal", "normal", "special"))
        x = arr(draw, xs, main, kind=kind, scale=draw(pick(1.0, 10.0, 1e3)))
        return Case(name, dict(x=x, y=labels(draw, N, C)), ("x", "y"))
    return cases()


@st.composite
def mse_cases(draw):
    main = draw(pick(*FLOATS))
    shape = zeroed(draw, big(draw, (draw(dims()), *draw(st.lists(dims((1, 2, 3, 7)),
                                                                  max_size=3))), (300, 129)))
    yshape = either(draw, shape, shape[:1], shape + (1,))
    if rare(draw):
        shape = ()
    return Case("mse_loss", dict(x=arr(draw, shape, main), y=arr(draw, yshape, main)), ("x", "y"))


@st.composite
def bce_cases(draw):
    main = draw(pick(*FLOATS))
    shape = zeroed(draw, big(draw, draw(st.lists(dims(), max_size=3)), (300, 129)), n=15)
    yshape = either(draw, shape, shape + (1,))
    kind = draw(pick("normal", "normal", "normal", "special"))
    x = arr(draw, shape, main, kind=kind, scale=draw(pick(1.0, 3.0, 1e4)))
    y = arr(draw, yshape, main, kind=either(draw, "unit", "badunit", n=10))
    return Case("bce_loss", dict(x=x, y=y), ("x", "y"))


@st.composite
def embedding_cases(draw):
    main = draw(pick(*FLOATS))
    # V = 300 > 255: seen as uint8, every negative int8 index is < V (the
    # range check missed them)
    N, T, V, D = zeroed(draw, big(draw, (draw(dims()), draw(dims()), draw(dims(TAILS + (300,))),
                                         draw(dims())), (64, 33, 500, 65)), n=4)
    how = either(draw, "ok", "high", "negative", "1d", "3d", "float", "bool", n=10)
    dtype = draw(pick("int64", "int64", "int32", "int16", "uint8", "uint16", "uint64", "int8"))
    if how == "float":
        dtype = "float64"
    elif how == "bool":
        dtype = "bool"
    elif how == "negative":
        dtype = draw(pick("int64", "int32", "int8"))
    low, high = {"high": (V, V + 3), "negative": (-3, 0)}.get(how, (0, V))
    ishape = {"1d": (N,), "3d": (N, T, 1)}.get(how, (N, T))
    idx = A(ishape, dtype, either(draw, draw(pick(*LAYOUTS)), "list"), draw(st.integers(0, 2**16)),
            "index",
            low=low, high=max(high, low + 1))
    W = arr(draw, either(draw, (V, D), (V,), (V, D, 1)), main)
    return Case("embedding_forward", dict(idx=idx, W=W), ("idx", "W"), "embedding_backward",
                draw(douts()))


def conv_param(draw):
    stride = draw(pick(1, 1, 1, 2, 3))
    pad = draw(pick(0, 0, 1, 1, 2, 3))
    p = {"stride": stride, "pad": pad}
    bad = draw(st.integers(0, 3)) if rare(draw, 8) else None   # odd values of each kind
    if bad == 0:
        p["stride"] = draw(pick(0, -1, 1.0, True, "1", np.int64(2)))
    elif bad == 1:
        p["pad"] = draw(pick(-1, 1.5, None, np.int32(1)))
    elif bad == 2:
        p.pop(draw(pick("stride", "pad")))
    elif bad == 3:
        p = draw(pick(None, [("stride", 1), ("pad", 0)]))
    return p


def _fit(k, stride, pad, out):
    """An input size with ``out`` output positions for a k-window (at least 1)."""
    return max(1, (out - 1) * stride + k - 2 * pad)


@st.composite
def conv_cases(draw, nhwc):
    main = draw(pick(*FLOATS))
    N, C, F = big(draw, (draw(pick(1, 2, 3)), draw(pick(1, 2, 3, 5)), draw(pick(1, 2, 3, 4))),
                  (8, 4, 9))
    HH, WW = draw(pick(3, 3, 1, 2, 5)), draw(pick(3, 3, 1, 2, 5))
    if draw(st.booleans()):
        WW = HH
    cp = conv_param(draw)
    s = cp.get("stride", 1) if isinstance(cp, dict) else 1
    p = cp.get("pad", 0) if isinstance(cp, dict) else 0
    s = s if isinstance(s, int) and s > 0 else 1
    p = p if isinstance(p, int) and p >= 0 else 0
    Ho, Wo = big(draw, (draw(pick(1, 2, 3, 4, 5)), draw(pick(1, 2, 3, 4, 5))), (17, 16))
    H = _fit(HH, s, p, Ho) + either(draw, 0, 1, n=10)
    W = _fit(WW, s, p, Wo) + either(draw, 0, 1, n=10)
    wrong = either(draw, None, "C", "b", "N0", "w3d", n=10)
    xs, ws, bs = (N, C, H, W), (F, C, HH, WW), (F,)
    if wrong == "C":
        ws = (F, C + 1, HH, WW)
    elif wrong == "b":
        bs = (F + 1,)
    elif wrong == "N0":
        xs = (0, C, H, W)
    elif wrong == "w3d":
        ws = (F, C, HH)
    if nhwc:   # channels-last: x (N, H, W, C), w (HH, WW, C, F)
        xs = (xs[0],) + xs[2:] + (xs[1],) if len(xs) == 4 else xs
        ws = ws[2:] + (ws[1], ws[0]) if len(ws) == 4 else ws
        op, bwds = "conv_nhwc_forward", ("conv_nhwc_backward", "conv_nhwc_backward_weights")
    else:
        op = draw(pick("conv_forward_im2col", "conv_forward_strides"))
        bwds = ("conv_backward_im2col" if op.endswith("im2col") else "conv_backward_strides",
                "conv_backward_weights")
    inputs = dict(x=arr(draw, xs, main), w=arr(draw, ws, main, scale=0.3),
                  b=arr(draw, bs, main), conv_param=cp)
    return Case(op, inputs, ("x", "w", "b", "conv_param"), draw(pick(*bwds)), draw(douts()),
                algo=draw(pick("auto", "im2col", "winograd", "direct")))


@st.composite
def conv_pool_cases(draw):
    """conv_cases' NCHW conv with a max pool after it, as one op: mostly 2x2
    stride-2 windows (the cpp backend's fused case), else any window, which
    may not fit or tile the conv output."""
    conv = draw(conv_cases(False))
    if draw(st.booleans()):
        ph = pw = s = 2
    else:
        ph, pw, s = draw(pick(2, 1, 3)), draw(pick(2, 1, 3)), draw(pick(2, 1, 3))
    inputs = dict(conv.inputs, pool_param={"pool_height": ph, "pool_width": pw, "stride": s})
    return Case("conv_pool_forward", inputs, conv.args + ("pool_param",),
                draw(pick("conv_pool_backward", "conv_pool_backward_weights")), conv.dout,
                algo=conv.algo)


@st.composite
def pool_cases(draw, nhwc=False):
    main = draw(pick(*FLOATS))
    N, C = draw(pick(1, 2, 3)), draw(pick(1, 2, 3, 7, 17))
    ph, pw, s = draw(pick(2, 1, 3)), draw(pick(2, 1, 3)), draw(pick(2, 1, 3))
    if draw(st.booleans()):
        ph = pw = s   # windows that tile: the reshape method's case
    Ho, Wo = draw(pick(0, 1, 2, 3)), draw(pick(0, 1, 2, 3))
    N, C, Ho, Wo = big(draw, (N, C, Ho, Wo), (4, 7, 16, 16))
    H = ph + s * Ho + either(draw, 0, 1, n=10)
    W = pw + s * Wo + either(draw, 0, 1, n=10)
    pp = {"pool_height": ph, "pool_width": pw, "stride": s}
    bad = draw(st.integers(0, 3)) if rare(draw, 8) else None
    if bad == 0:
        pp[draw(pick("pool_height", "pool_width", "stride"))] = draw(pick(0, -1, 2.0, True, None))
    elif bad == 1:
        pp.pop(draw(pick("pool_height", "pool_width", "stride")))
    elif bad == 2:
        pp = draw(pick(None, [("stride", 2)]))
    elif bad == 3:
        H = max(1, ph - 1)    # the window does not fit
    xs = either(draw, (N, C, H, W), (0, C, H, W), (N, 0, H, W), (N, C, H))
    if nhwc:
        xs = (xs[0],) + xs[2:] + (xs[1],) if len(xs) == 4 else xs
        v = "nhwc"
    else:
        v = draw(pick("reshape", "im2col", "fast"))
    kind = draw(pick("normal", "normal", "special"))
    # integer and float16 inputs tie often: the first maximum of a window must win on both
    x = arr(draw, xs, main, kind=kind)
    return Case(f"max_pool_{v}_forward" if nhwc else f"max_pool_forward_{v}",
                dict(x=x, pool_param=pp), ("x", "pool_param"),
                f"max_pool_{v}_backward" if nhwc else f"max_pool_backward_{v}", draw(douts()))


OPTIM = {  # rule -> (defaults, state arrays and how their values are drawn)
    "sgd": (("learning_rate",), ()),
    "sgd_momentum": (("learning_rate", "momentum"), (("velocity", "normal"),)),
    "sgd_nesterov_momentum": (("learning_rate", "momentum"), (("velocity", "normal"),)),
    "rmsprop": (("learning_rate", "decay_rate", "epsilon"), (("cache", "pos"),)),
    "adam": (("learning_rate", "beta1", "beta2", "epsilon", "t"), (("m", "normal"), ("v", "pos"))),
}
HYPER = {  # key -> (good values, bad values)
    "learning_rate": ((1e-3, 1e-2, 0.0, 1.0, 0.5, -1e-2, 1, 0), ("1e-3", None, True)),
    "momentum": ((0.9, 0.0, 0.5, 0.99, 0, 1.0), ("0.9", False)),
    "decay_rate": ((0.99, 0.9, 0.0, 1.0, 0.5), ("0.99", None)),
    "epsilon": ((1e-8, 1e-4, 0.0, 1.0, 0), ("1e-8", None)),
    "beta1": ((0.9, 0.0, 0.5, 0.99), (1.0, -0.1, 1.5, "0.9")),
    "beta2": ((0.999, 0.0, 0.9, 0.5), (1.0, -0.1, "0.999")),
    "t": ((0, 1, 5, 100, np.int32(3), np.int64(2)), (-1, 1.5, True, "1")),
}


def optim_cases(rule):
    hyper, state = OPTIM[rule]

    @st.composite
    def cases(draw):
        main = draw(pick(*FLOATS))
        shape = zeroed(draw, big(draw, draw(st.lists(dims(), max_size=3)), (40003,)), n=5)
        wdt = either(draw, main, "int64", "float16", "bool")
        w = A(shape, wdt, either(draw, "C", "F", "step2", "neg", "T", "readonly", "bcast", "list",
                                 n=6), draw(st.integers(0, 2**16)))
        dws = either(draw, shape, shape + (1,))
        dw = arr(draw, dws, main, scale=draw(pick(1e-2, 1.0, 10.0)))
        alias = rare(draw, 20)
        config = {}
        for key in hyper:
            if draw(st.booleans()):
                good, bad = HYPER[key]
                config[key] = scalar(draw, good, bad)
        for key, kind in state:
            how = either(draw, draw(pick("absent", "ok")), "dtype", "shape", "F", "readonly",
                         "list", "step2", n=10)
            if how == "absent":
                continue
            sshape = shape + (1,) if how == "shape" else shape
            dt = main if how != "dtype" else ("float32" if main == "float64" else "float64")
            layout = {"F": "F", "readonly": "readonly", "list": "list",
                      "step2": "step2"}.get(how, "C")
            config[key] = A(sshape, dt, layout, draw(st.integers(0, 2**16)), kind)
        if rare(draw, 10):
            config = either(draw, None, [("learning_rate", 1e-3)], n=3)
        inputs = dict(w=w, dw=dw, config=config)
        args = ("w", "dw", "config") if config is not None or draw(st.booleans()) else ("w", "dw")
        if alias:
            inputs["dw"] = "w"
        keys = set(hyper) | {k for k, _ in state}
        changed = {("config", k) for k, _ in state} | {("config", "t")}
        # up to 3 steps, each from the returned next_w and config (not with dw
        # aliasing w: which of w and next_w it then is depends on the backend)
        later = () if alias else (None,) * draw(pick(0, 0, 1, 2))
        return Case(rule, inputs, args, mutable=frozenset(changed | {("w",)} |
                                                          ({("dw",)} if alias else set())),
                    addable=frozenset(("config", k) for k in keys), after=("config",),
                    later=later)
    return cases()


@dataclass
class Family:
    ops: tuple
    cases: object          # a hypothesis strategy of Case
    examples: int


FAMILIES = {
    "affine": Family(("affine_forward", "affine_backward", "affine_backward_weights"),
                     affine_cases(), 200),
    "batchnorm": Family(("batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt"),
                        batchnorm_cases(), 250),
    "spatial_batchnorm": Family(("spatial_batchnorm_forward", "spatial_batchnorm_backward"),
                                spatial_batchnorm_cases(), 200),
    "layernorm": Family(("layernorm_forward", "layernorm_backward"), layernorm_cases(), 150),
    "spatial_groupnorm": Family(("spatial_groupnorm_forward", "spatial_groupnorm_backward"),
                                groupnorm_cases(), 150),
    **{name: Family((f"{name}_forward", f"{name}_backward"), elementwise_cases(name), 100)
       for name in ("relu", "tanh", "sigmoid", "gelu", "leaky_relu")},
    "dropout": Family(("dropout_forward", "dropout_backward"), dropout_cases(), 200),
    "svm_loss": Family(("svm_loss",), class_loss_cases("svm_loss"), 120),
    "softmax_loss": Family(("softmax_loss",), class_loss_cases("softmax_loss"), 120),
    "mse_loss": Family(("mse_loss",), mse_cases(), 100),
    "bce_loss": Family(("bce_loss",), bce_cases(), 120),
    "embedding": Family(("embedding_forward", "embedding_backward"), embedding_cases(), 200),
    "conv": Family(("conv_forward_im2col", "conv_backward_im2col", "conv_forward_strides",
                    "conv_backward_strides", "conv_backward_weights"), conv_cases(False), 250),
    "conv_pool": Family(("conv_pool_forward", "conv_pool_backward", "conv_pool_backward_weights"),
                        conv_pool_cases(), 200),
    "conv_nhwc": Family(("conv_nhwc_forward", "conv_nhwc_backward", "conv_nhwc_backward_weights"),
                        conv_cases(True), 200),
    "max_pool": Family(("max_pool_forward_reshape", "max_pool_backward_reshape",
                        "max_pool_forward_im2col", "max_pool_backward_im2col",
                        "max_pool_forward_fast", "max_pool_backward_fast"), pool_cases(), 250),
    "max_pool_nhwc": Family(("max_pool_nhwc_forward", "max_pool_nhwc_backward"),
                            pool_cases(nhwc=True), 150),
    **{rule: Family((rule,), optim_cases(rule), 120) for rule in OPTIM},
}
TOTAL_EXAMPLES = sum(f.examples for f in FAMILIES.values())
FORWARD_OPS = frozenset(declared_ops("forward"))


# --- running a case on one backend ----------------------------------------------------------


class Raised:
    """A run that raised: at which call (or the backward), what and why."""

    def __init__(self, stage, exc):
        self.stage, self.type, self.msg = stage, type(exc), str(exc)

    def __repr__(self):
        return f"{self.stage} raised {self.type.__name__}: {self.msg}"


def _build(spec):
    """The inputs a spec describes: arrays built, dicts of specs built entry by entry."""
    if isinstance(spec, A):
        return spec.build()
    if isinstance(spec, dict):
        return {k: _build(v) for k, v in spec.items()}
    return spec


def _snapshot(inputs):
    """Every array (with a copy of its values) and dict (with its entries) reachable from inputs."""
    arrays, dicts = [], []

    def walk(v, path):
        if isinstance(v, np.ndarray):
            arrays.append((path, v, v.copy(), v.strides, v.dtype, v.flags.writeable))
        elif isinstance(v, dict):
            dicts.append((path, v, dict(v)))
            for k, x in v.items():
                walk(x, path + (k,))
        elif isinstance(v, list):
            arrays.append((path, v, repr(v), None, None, None))

    for name, v in inputs.items():
        walk(v, (name,))
    return arrays, dicts


def _assert_unchanged(snap, mutable, addable, where):
    arrays, dicts = snap
    for path, a, before, strides, dtype, writeable in arrays:
        if path in mutable or path[:1] in mutable:
            continue
        if isinstance(a, list):
            assert repr(a) == before, f"{where}: the list {path} was modified"
            continue
        assert (a.dtype, a.strides, a.flags.writeable) == (dtype, strides, writeable), \
            f"{where}: the array {path} changed its dtype, strides or flags"
        assert np.array_equal(a, before, equal_nan=a.dtype.kind in "fc"), \
            f"{where}: the input {path} was modified"
    for path, d, before in dicts:
        for k, v in before.items():
            if path + (k,) not in mutable:
                assert k in d and d[k] is v, f"{where}: {path}[{k!r}] was replaced or removed"
        added = set(d) - set(before)
        assert all(path + (k,) in addable for k in added), f"{where}: {path} gained {added}"


def _results(case, result):
    """What a call returned, as a list: out; loss and dx; next_w (its config is the state)."""
    if case.op in FORWARD_OPS:
        return [result[0]]
    first, second = result
    return [first] if isinstance(second, dict) else [first, second]


def run_case(case, backend):
    """The case on one backend: a Raised, or the list of everything it returned
    (each call's outputs, the backward's gradients, the state after the calls)."""
    inputs = {k: _build(v) for k, v in case.inputs.items()}
    if case.inputs.get("dw") == "w":   # the gradient is w itself
        inputs["dw"] = inputs["w"]
    snap = _snapshot(inputs)
    where = f"{backend} {case.op}"
    fn = public_op(case.op)
    np.random.seed(case.np_seed)
    with nnc.use_backend(backend), nnc.conv_algorithm(case.algo), warnings.catch_warnings():
        warnings.simplefilter("ignore")   # NumPy's overflow/invalid warnings (cpp has none)
        args, result = [inputs[n] for n in case.args], None
        outs = []
        for step in range(1 + len(case.later)):
            if step:   # a further call on the state the last one returned
                if case.op in OPTIM:   # continue from next_w with the returned config
                    args = [result[0], args[1], result[1]]
                else:                  # batchnorm: the same statistics, a drawn mode
                    args = args[:-1] + [dict(args[-1], mode=case.later[step - 1])]
            try:
                result = fn(*args)
            except Exception as e:
                _assert_unchanged(snap, case.mutable if step else frozenset(),
                                  case.addable if step else frozenset(), f"{where} (raised)")
                return Raised(f"call {step}", e)
            # copies: a later step may update this step's next_w in place (cpp's is w)
            outs += [o.copy() if isinstance(o, np.ndarray) and case.later else o
                     for o in _results(case, result)]
        if case.bwd:
            cache = result[1]
            dout = case.dout.build(result[0])
            dsnap = _snapshot({"dout": dout})
            try:
                grads = public_op(case.bwd)(dout, cache)
            except Exception as e:
                _assert_unchanged(snap, case.mutable, case.addable, where)
                _assert_unchanged(dsnap, frozenset(), frozenset(), f"{backend} {case.bwd}")
                return Raised("backward", e)
            grads = list(grads) if isinstance(grads, tuple) else [grads]
            # the cache is not used up: a second backward gives the same gradients
            again = public_op(case.bwd)(dout, cache)
            again = list(again) if isinstance(again, tuple) else [again]
            for g, a in zip(grads, again):
                assert np.array_equal(g, a, equal_nan=True), f"{backend} {case.bwd}: a second " \
                    f"backward on the same cache gave other gradients"
            _assert_unchanged(dsnap, frozenset(), frozenset(), f"{backend} {case.bwd}")
            outs += grads
    _assert_unchanged(snap, case.mutable, case.addable, where)
    for name in case.after:
        state = result[1] if case.op in OPTIM else args[-1]
        outs += [(k, state[k]) for k in sorted(state)]
    outs.append(("np.random after", np.random.rand(2)))
    return outs


# --- comparing the two runs -------------------------------------------------------------------


def _close(r, g, low, what, truth):
    """r (numpy's result) and g (cpp's) agree; ``truth()`` is the float64
    reference's result for the same inputs, computed only when needed."""
    if isinstance(r, tuple):     # a (key, value) of a state dict
        assert r[0] == g[0], f"{what}: state keys {r[0]!r} != {g[0]!r}"
        return _close(r[1], g[1], low, f"{what} [{r[0]!r}]", lambda: truth()[1])
    assert type(r) is type(g), f"{what}: numpy gave {type(r).__name__}, cpp {type(g).__name__}"
    if not isinstance(r, (np.ndarray, float)):
        assert r == g or (r != r and g != g), f"{what}: numpy {r!r}, cpp {g!r}"
        return
    if isinstance(r, np.ndarray):
        assert (r.shape, r.dtype) == (g.shape, g.dtype), \
            f"{what}: numpy {r.shape} {r.dtype}, cpp {g.shape} {g.dtype}"
        if r.dtype.kind != "f":
            assert np.array_equal(r, g), f"{what}: numpy {r}, cpp {g}"
            return
    r64, g64 = np.asarray(r, np.float64), np.asarray(g, np.float64)
    assert np.array_equal(np.isnan(r64), np.isnan(g64)), f"{what}: NaN in other places"
    fin = np.isfinite(r64)
    assert np.array_equal(np.isfinite(g64), fin) and np.array_equal(r64[~fin & ~np.isnan(r64)],
                                                                    g64[~fin & ~np.isnan(g64)]), \
        f"{what}: Inf in other places"
    low = (low and isinstance(r, float)) or (isinstance(r, np.ndarray) and r.dtype == np.float32)
    dtype = np.float32 if low else np.float64
    ok, err = compare([r64[fin]], [g64[fin]], dtype)
    if ok:
        return
    message = f"{what}: max relative error {err:.3g} ({np.dtype(dtype).name})"
    assert low, message
    # float32: on ill-conditioned inputs (a layernorm row of nearly equal
    # values) NumPy's float32 rounding alone can exceed the tolerance, where
    # cpp, with float64 statistics, is closer. Then cpp passes if it is no
    # further than numpy from the float64 computation of the same inputs.
    t64 = np.asarray(truth(), np.float64)
    both = fin & np.isfinite(t64)
    err_np = compare([t64[both]], [r64[both]], np.float64)[1]
    err_cpp = compare([t64[both]], [g64[both]], np.float64)[1]
    assert err_cpp <= max(1e-4, 2 * err_np), \
        f"{message}; against float64: numpy {err_np:.3g}, cpp {err_cpp:.3g}"
    COUNTS["judged by float64"] += 1


def _brief(res):
    """A run's outcome for a message: the exception, or the results' types and shapes."""
    if isinstance(res, Raised):
        return repr(res)
    return "returned " + ", ".join(
        f"{type(r).__name__} {r.shape} {r.dtype}" if isinstance(r, np.ndarray) else
        f"{r[0]!r}=..." if isinstance(r, tuple) else repr(r) for r in res)


def assert_agree(ref, got, case):
    what = f"{case.ops}"
    if isinstance(ref, Raised) or isinstance(got, Raised):
        assert isinstance(ref, Raised) and isinstance(got, Raised), \
            f"{what}: numpy {_brief(ref)}; cpp {_brief(got)}"
        assert (ref.stage, ref.type) == (got.stage, got.type), f"{what}: numpy {ref!r}; cpp {got!r}"
        assert ref.type in (TypeError, ValueError, IndexError), f"{what}: {ref!r}"
        assert ref.msg == got.msg, f"{what}: numpy {ref!r}; cpp {got!r}"
        return "raised"
    assert len(ref) == len(got), f"{what}: {len(ref)} results on numpy, {len(got)} on cpp"
    # a loss is a Python float whatever precision computed it: float32 when any output is
    low = any(isinstance(r, np.ndarray) and r.dtype == np.float32 for r in ref)
    float64 = []

    def truth(i):
        if not float64:
            out_dtype = ref[0].dtype.name if isinstance(ref[0], np.ndarray) else "float32"
            float64.append(run_case(upcast(case, out_dtype), "numpy"))
            assert not isinstance(float64[0], Raised), f"{what}: in float64: {float64[0]!r}"
        return float64[0][i]

    for i, (r, g) in enumerate(zip(ref, got)):
        _close(r, g, low, f"{what} result {i}", lambda i=i: truth(i))
    return "returned"


# --- the tests ------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _report(request):
    yield
    if COUNTS["cases"]:
        line = (f"test_fuzz_ops: {COUNTS['cases']} fuzz cases tried ({COUNTS['returned']} "
                f"returned agreeing values on both backends, {COUNTS['raised']} raised the same "
                f"exception on both; {COUNTS['judged by float64']} float32 results judged "
                f"against float64)")
        plugins = request.config.pluginmanager
        reporter = plugins.get_plugin("terminalreporter")
        capture = plugins.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line("\n" + line)
        else:  # pragma: no cover
            print(line)


@needs_cpp
@pytest.mark.parametrize("family", list(FAMILIES))
def test_backends_agree(family):
    fam = FAMILIES[family]
    seen = Counter()

    @settings(max_examples=max(1, int(fam.examples * SCALE)), deadline=None,
              derandomize=not RANDOM, database=None if not RANDOM else settings.default.database,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(case=fam.cases)
    def check(case):
        assert set(case.ops) <= set(fam.ops), case.ops
        outcome = assert_agree(run_case(case, "numpy"), run_case(case, "cpp"), case)
        seen[outcome] += 1
        if outcome == "returned":
            seen.update(case.ops)

    check()
    COUNTS["cases"] += seen["returned"] + seen["raised"]
    COUNTS["returned"] += seen["returned"]
    COUNTS["raised"] += seen["raised"]
    # the strategy reaches every op of the family, and both valid and invalid calls
    assert all(seen[op] for op in fam.ops), {op: seen[op] for op in fam.ops}
    assert seen["raised"] and seen["returned"], dict(seen)


def test_docstring_states_the_number_of_cases():
    assert TOTAL_EXAMPLES == 3960 and f"{TOTAL_EXAMPLES:,} fuzz cases" in __doc__


def test_every_declared_op_is_fuzzed():
    """A new op fails here until a family above draws calls of it."""
    covered = [op for fam in FAMILIES.values() for op in fam.ops]
    missing = sorted(set(declared_ops()) - set(covered))
    assert missing == [], f"declared ops that no family of FAMILIES fuzzes: {missing}"
    unknown = sorted(set(covered) - set(declared_ops()))
    assert unknown == [], f"FAMILIES names ops that are not declared: {unknown}"
    assert len(covered) == len(set(covered)), "an op is in two families"


# --- regressions: the disagreements this fuzz found -----------------------------------------


def _on_both(fn):
    """fn() on each backend, NumPy's warnings silenced."""
    out = {}
    for backend in ("numpy", "cpp"):
        with nnc.use_backend(backend), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[backend] = fn()
    return out


@needs_cpp
@pytest.mark.parametrize("scalar_type", [np.float64, np.float32])
def test_numpy_scalar_hyperparameters_keep_float32(scalar_type):
    """A NumPy scalar eps, momentum or learning rate turned the numpy backend's
    float32 arithmetic into float64 (NumPy promotes an array with a NumPy
    float64 scalar): float64 outputs, and batchnorm running statistics or
    optimizer state of another dtype than w, which the next call refused.
    cpp took them as floats. Both keep float32 now, step after step."""
    from nnc import layers, optim

    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    g, b = np.ones(4, np.float32), np.zeros(4, np.float32)
    s = scalar_type

    def bn():
        p = {"mode": "train", "eps": s(1e-3), "momentum": s(0.8)}
        out1 = layers.batchnorm_forward(x, g, b, p)[0]
        out2 = layers.batchnorm_forward(x, g, b, dict(p, mode="test"))[0]   # takes p's statistics
        return out1, out2, p["running_mean"], p["running_var"]

    def norms():
        return (layers.layernorm_forward(x, g, b, {"eps": s(1e-3)})[0],
                layers.spatial_groupnorm_forward(x.reshape(5, 4, 1, 1), g, b, 2,
                                                 {"eps": s(1e-3)})[0])

    def steps(rule, hyper):
        w = np.linspace(-1, 1, 6, dtype=np.float32)
        config = {k: s(v) for k, v in hyper.items()}
        for _ in range(3):
            w, config = getattr(optim, rule)(w, np.full(6, 0.5, np.float32), config)
        return (w,) + tuple(v for k, v in sorted(config.items()) if isinstance(v, np.ndarray))

    cases = [bn, norms,
             lambda: steps("sgd", {"learning_rate": 0.1}),
             lambda: steps("sgd_momentum", {"learning_rate": 0.1, "momentum": 0.9}),
             lambda: steps("sgd_nesterov_momentum", {"learning_rate": 0.1, "momentum": 0.9}),
             lambda: steps("rmsprop", {"learning_rate": 0.1, "decay_rate": 0.9, "epsilon": 1e-6}),
             lambda: steps("adam", {"learning_rate": 0.1, "beta1": 0.8, "beta2": 0.9,
                                    "epsilon": 1e-6})]
    for case in cases:
        res = _on_both(case)
        for r, c in zip(res["numpy"], res["cpp"]):
            assert r.dtype == c.dtype == np.float32, (case, r.dtype, c.dtype)
            np.testing.assert_allclose(r, c, rtol=1e-5, atol=1e-6)


@needs_cpp
def test_adam_numpy_integer_t_keeps_float32():
    from nnc import optim

    res = _on_both(lambda: optim.adam(np.ones(3, np.float32), np.full(3, 0.5, np.float32),
                                      {"t": np.int32(4)}))
    for backend, (w, config) in res.items():
        assert w.dtype == config["m"].dtype == config["v"].dtype == np.float32, backend
        assert config["t"] == 5
    np.testing.assert_allclose(res["numpy"][0], res["cpp"][0], rtol=1e-6)
    m, v = 0.1 * 0.5 / (1 - 0.9 ** 5), 0.001 * 0.25 / (1 - 0.999 ** 5)   # t = 5
    np.testing.assert_allclose(res["numpy"][0], 1 - 1e-3 * m / (np.sqrt(v) + 1e-8), rtol=1e-6)


@needs_cpp
def test_zero_dimensional_inputs_give_arrays():
    """On 0-d inputs the numpy backend returned NumPy scalars where cpp
    returns 0-d arrays (a ufunc of a 0-d array gives a scalar); a scalar
    velocity stored in config then failed the next sgd_momentum step."""
    from nnc import layers, optim

    x, dout = np.array(0.7), np.array(2.0)
    s = 1 / (1 + np.exp(-0.7))
    expected = {"relu": (0.7, 2.0), "tanh": (np.tanh(0.7), 2 * (1 - np.tanh(0.7) ** 2)),
                "sigmoid": (s, 2 * s * (1 - s)), "gelu": None}
    for name, want in expected.items():
        fwd, bwd = getattr(layers, f"{name}_forward"), getattr(layers, f"{name}_backward")

        def run():
            out, cache = fwd(x)
            return out, bwd(dout, cache)

        res = _on_both(run)
        for backend, (out, dx) in res.items():
            assert type(out) is np.ndarray and out.shape == () and out.dtype == np.float64, \
                (name, backend, type(out))
            assert type(dx) is np.ndarray and dx.shape == (), (name, backend, type(dx))
            if want is not None:
                np.testing.assert_allclose([out, dx], want, rtol=1e-12)
        np.testing.assert_allclose(res["numpy"], res["cpp"], rtol=1e-12)
    res = _on_both(lambda: layers.bce_loss(np.array(0.5), np.array(1.0)))
    for backend, (loss, dx) in res.items():
        assert type(dx) is np.ndarray and dx.shape == (), backend
        np.testing.assert_allclose([loss, dx], [np.log1p(np.exp(-0.5)), 1 / (1 + np.exp(-0.5)) - 1],
                                   rtol=1e-12)
    for rule in ("sgd_momentum", "sgd_nesterov_momentum", "rmsprop", "adam"):
        def train():
            w, config = np.array(1.0), None
            for _ in range(3):
                w, config = getattr(optim, rule)(w, np.array(0.5), config)
                assert type(w) is np.ndarray and w.shape == (), rule
                for v in config.values():
                    assert not isinstance(v, np.generic), (rule, config)
            return w
        res = _on_both(train)
        assert res["numpy"] < 1.0
        np.testing.assert_allclose(res["numpy"], res["cpp"], rtol=1e-12)


@needs_cpp
def test_embedding_backward_with_empty_rows():
    """W of shape (V, 0): the numpy backward reshaped dout to (-1, 0), which
    NumPy cannot resolve (ValueError); cpp gave dW of shape (V, 0)."""
    from nnc import layers

    def run():
        out, cache = layers.embedding_forward(np.array([[0, 2], [1, 2]]), np.ones((3, 0)))
        return out, layers.embedding_backward(np.ones((2, 2, 0)), cache)

    for backend, (out, dW) in _on_both(run).items():
        assert out.shape == (2, 2, 0) and dW.shape == (3, 0), backend


@needs_cpp
def test_affine_empty_batch():
    """x of shape (0, ...): both backends raised NumPy's 'cannot reshape array
    of size 0 into shape (0,newaxis)' (a ValueError naming no argument);
    an empty batch now gives out (0, M), dx (0, ...), zero dw and db."""
    from nnc import layers

    w, b = np.arange(24.0).reshape(6, 4), np.arange(4.0)

    def run():
        out, cache = layers.affine_forward(np.ones((0, 3, 2)), w, b)
        return (out,) + layers.affine_backward(np.ones((0, 4)), cache) + \
            layers.affine_backward_weights(np.ones((0, 4)), cache)

    for backend, (out, dx, dw, db, dw2, db2) in _on_both(run).items():
        assert out.shape == (0, 4) and dx.shape == (0, 3, 2), backend
        assert dw.shape == dw2.shape == (6, 4) and not dw.any() and not dw2.any(), backend
        assert db.shape == db2.shape == (4,) and not db.any() and not db2.any(), backend


@needs_cpp
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_svm_loss_is_nan_for_nan_margins(dtype):
    """Scores with NaN or Inf make a margin NaN (inf - inf): the reference's
    loss, a sum of np.maximum(0, margin), is NaN; the cpp kernel summed only
    margins > 0 and returned a finite loss (0.0 and 2.0 below). The gradient
    counts positive margins only, on both."""
    from nnc import layers

    x = np.array([[np.inf, np.inf, 0.0], [np.nan, 0.0, 1.0], [0.0, 2.0, -1.0]], dtype)
    y = np.array([0, 1, 0])
    res = _on_both(lambda: layers.svm_loss(x, y))
    for backend, (loss, dx) in res.items():
        assert np.isnan(loss), (backend, loss)
    np.testing.assert_array_equal(res["numpy"][1], res["cpp"][1])
    finite = _on_both(lambda: layers.svm_loss(x[2:], y[2:]))
    assert finite["numpy"][0] == finite["cpp"][0] == 3.0   # margins 3 and 0


@needs_cpp
@pytest.mark.parametrize("dtype", [np.int8, np.int16])
def test_negative_narrow_indices_into_many_rows_are_refused(dtype):
    """The index check views signed indices as unsigned (negative ones become
    huge) and compares the maximum with V; with more rows than the dtype's
    largest value (int8 indices, V = 500) -10 became 246 < V and passed: the
    numpy backend returned row 490 (W[-10]), cpp raised IndexError from its
    binding, and one_hot set the last column. Both now raise the checked
    IndexError; valid narrow indices still work."""
    from nnc import layers

    V = 2 * (int(np.iinfo(dtype).max) + 1) + 2   # past the unsigned range: 258 rows for int8
    W = np.arange(2.0 * V).reshape(V, 2)
    bad = np.array([[1, -10]], dtype)
    for backend in ("numpy", "cpp"):
        with nnc.use_backend(backend):
            with pytest.raises(IndexError, match=r"idx\[0, 1\] = -10 is out of range for V="):
                layers.embedding_forward(bad, W)
            out = layers.embedding_forward(np.array([[np.iinfo(dtype).max, 0]], dtype), W)[0]
            np.testing.assert_array_equal(out[0], W[[np.iinfo(dtype).max, 0]])
    with pytest.raises(IndexError, match=r"idx\[1\] = -1 is out of range"):
        layers.one_hot(np.array([0, -1], dtype), V)
