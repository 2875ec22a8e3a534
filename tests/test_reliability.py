"""Reliability: native memory that stops growing, outputs whose size would
wrap around, NaN/Inf that propagate instead of crashing, the Solver's check
for a non-finite loss, and checkpoints that survive SIGKILL.

The memory and kill tests run their loops in a subprocess, so a crash, a
sanitizer report (tools/sanitize.sh) or a hang fails the test, not pytest."""
import json
import os
import random
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest

import nnc
from nnc.bench.suite import OPS, run_op
from nnc.solver import Solver, load_checkpoint

from conftest import BACKENDS, DTYPES

needs_cpp = pytest.mark.skipif("cpp" not in BACKENDS, reason="native extension not built")


def run_python(code, *args, timeout=600):
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc.stdout


# --- outputs too large for any array -------------------------------------------------

@needs_cpp
def test_output_size_that_wraps_around_is_a_value_error():
    """Regression: mt19937_random_sample(key, 0, 2**61 + 1) asked for
    (2**61 + 1) * 8 bytes, which wraps to 8; the kernel then wrote past that
    block (a heap-buffer-overflow under ASan, a crash without it)."""
    out = run_python(r'''
import numpy as np
from nnc import _nnc
_, key, pos, *_ = np.random.RandomState(0).get_state()
for n in (2**61 + 1, 2**62, 2**63 - 1):
    try:
        _nnc.mt19937_random_sample(key, pos, n)
    except ValueError as e:
        assert "too large" in str(e) and str(n) in str(e), e
    else:
        raise AssertionError(n)
u, pos = _nnc.mt19937_random_sample(key, pos, 3)   # the state is untouched: the same draws
print(np.array_equal(u, np.random.RandomState(0).random_sample(3)), pos)
''')
    assert out.split() == ["True", "6"]


# --- memory --------------------------------------------------------------------------

LEAK_LOOP = r'''
import os, sys
import numpy as np
import nnc
from nnc import _nnc
from nnc.bench.suite import OPS, run_op
from nnc.fast_layers import conv_forward_fast, max_pool_forward_fast
from nnc.layers import (affine_forward, batchnorm_forward, dropout_forward, relu_backward,
                        relu_forward, softmax_loss, spatial_groupnorm_forward)
from nnc.optim import adam

nnc.set_backend("cpp")
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


f64 = np.random.default_rng(0).standard_normal
x2, x4, w4 = f64((4, 6)), f64((2, 3, 6, 6)), f64((5, 3, 3, 3))
_, relu_cache = relu_forward(x2)
key = np.random.RandomState(0).get_state()[1].copy()
# Calls that raise, past the Python checks and inside the bindings too: each
# (function, exception). Several allocate before they fail or convert a
# non-contiguous input to a temporary first.
ERRORS = [
    (lambda: affine_forward(x2.astype(np.int64), f64((6, 3)), f64(3)), TypeError),
    (lambda: affine_forward(x2.astype(np.float32), f64((6, 3)), f64(3)), TypeError),
    (lambda: affine_forward(x2.T, f64((6, 3)), f64(3)), ValueError),
    (lambda: _nnc.affine_forward(x2, f64((5, 3)), f64(3)), ValueError),
    (lambda: conv_forward_fast(x4, w4, f64(5), {"stride": 2, "pad": 0}), ValueError),
    (lambda: _nnc.conv_forward(x4, w4, f64(5), 0, 1), ValueError),
    (lambda: _nnc.conv_backward(f64((2, 5, 5, 5)), x4, w4, 1, 1), ValueError),
    (lambda: max_pool_forward_fast(x4, {"pool_height": 4, "pool_width": 4, "stride": 4}),
     ValueError),
    (lambda: _nnc.max_pool_backward(f64((2, 3, 3, 3)), np.full((2, 3, 3, 3), 99, np.int32),
                                    6, 6), ValueError),
    (lambda: batchnorm_forward(x2, f64(6), f64(6), {"mode": "bogus"}), ValueError),
    (lambda: _nnc.batchnorm_forward_train(x2, f64(6), f64(6), np.zeros(6, np.float32),
                                          np.ones(6), 1e-5, 0.9), TypeError),
    (lambda: _nnc.layernorm_forward(x2, f64(5), f64(6), 1e-5), ValueError),
    (lambda: spatial_groupnorm_forward(x4, np.ones((1, 3, 1, 1)), np.zeros((1, 3, 1, 1)), 2,
                                       {}), ValueError),
    (lambda: _nnc.groupnorm_forward(x4, f64(3), f64(3), 3, float("nan")), ValueError),
    (lambda: dropout_forward(x2, {"mode": "train", "p": 1.5}), ValueError),
    (lambda: _nnc.dropout_forward_train(x2, 0.5, key.astype(np.int64), 0), TypeError),
    (lambda: relu_backward(f64((4, 5)), relu_cache), ValueError),
    (lambda: softmax_loss(x2, np.array([0, 1, 2, 6])), ValueError),
    (lambda: _nnc.softmax_loss(x2, np.array([0, 1, 2, 3], np.int32)), TypeError),
    (lambda: _nnc.mse_loss(x2, f64((4, 5))), ValueError),
    (lambda: adam(f64(7), f64(6), {}), ValueError),
    (lambda: _nnc.adam(f64((7, 2)).T, f64((2, 7)), f64((2, 7)), f64((2, 7)), 1e-3, 0.9,
                       0.999, 1e-8, 0.1, 0.001), TypeError),
    (lambda: _nnc.mt19937_random_sample(key, 0, 2**62), ValueError),
]


# Inputs are made once (making them costs more than the ops) and reused: an
# op's outputs and caches are new on every call all the same. The smallest
# shape runs 5 times a round, so a few bytes lost per call add up.
CASES = [(op, op.make(shape, dtype, 0), 5 if i == 0 else 1)
         for op in OPS.values() for dtype in (np.float32, np.float64)
         for i, shape in enumerate(op.test_shapes)]


def one_round():
    calls = 0
    for op, inp, reps in CASES:
        for _ in range(reps):
            run_op(op, inp)
            calls += 1
    for _ in range(5):
        for fn, exc in ERRORS:
            try:
                fn()
            except exc:
                calls += 1
            else:
                sys.exit(f"did not raise {exc.__name__}: {fn}")
    return calls


rounds, warmup = int(sys.argv[1]), int(sys.argv[2])
calls, marks = 0, {}
for r in range(1, rounds + 1):
    calls += one_round()
    marks[r] = rss()
print(calls, " ".join(f"{r}:{marks[r]}" for r in sorted(marks)))
'''

ROUNDS, WARMUP = 40, 10
MB = 1 << 20
OUTPUT_CACHE_CAP = 256 * MB   # cpp/outputs.cpp: freed outputs kept for reuse
UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


@needs_cpp
def test_no_leak():
    """Every registry op forward and backward in both dtypes, plus calls that
    raise, in a loop: resident memory stops growing after warm-up. What may
    still grow is bounded by the output-buffer cache; between two late
    checkpoints growth is (near) zero."""
    calls, *marks = run_python(LEAK_LOOP, ROUNDS, WARMUP).split()
    rss = {int(r): int(v) for r, v in (m.split(":") for m in marks)}
    assert len(rss) == ROUNDS and int(calls) > 300 * ROUNDS
    if UNDER_ASAN:
        return   # ASan keeps freed blocks in quarantine: RSS says nothing there
    after_warmup, late, end = rss[WARMUP], rss[(WARMUP + ROUNDS) // 2], rss[ROUNDS]
    assert end - after_warmup < OUTPUT_CACHE_CAP, rss
    # ~5,000 calls between the two: 1 MB is 200 bytes per call, and a lost
    # output array or its owner would cost more than that.
    assert end - late < 1 * MB, rss
