"""Reliability: native memory that stops growing, outputs whose size would
wrap around, NaN/Inf that propagate instead of crashing, the Solver's check
for a non-finite loss, and checkpoints that survive SIGKILL.

The memory and kill tests run their loops in a subprocess, so a crash, a
sanitizer report (tools/sanitize.sh) or a hang fails the test, not pytest."""
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


EXTREME_SCALARS = r'''
import numpy as np
from nnc import _nnc

rng = np.random.default_rng(0)


def f(*shape):
    return rng.standard_normal(shape)


def key():
    return np.random.RandomState(0).get_state()[1].copy()


x4, w4 = f(2, 4, 6, 6), f(3, 4, 3, 3)
_, argmax = _nnc.max_pool_forward(x4, 2, 2, 2)
_, conv_argmax = _nnc.conv_pool_forward(x4, w4, f(3), 1, 1, 2, 2, 2, 0)
_, gmean, grstd = _nnc.groupnorm_forward(x4, f(4), f(4), 2, 1e-5)
_, lmean, lrstd = _nnc.layernorm_forward(f(5, 7), f(7), f(7), 1e-5)
# A valid call of every binding that takes a scalar; each scalar is then
# replaced in turn by values at and past the limits of its type.
VALID = {
    "conv_forward": (x4, w4, f(3), 1, 1, 0),
    "conv_backward": (f(2, 3, 6, 6), x4, w4, 1, 1, 0),
    "conv_backward_weights": (f(2, 3, 6, 6), x4, w4, 1, 1, 0),
    "conv_paths": (x4, w4, 1, 1, 0),
    "conv_pool_forward": (x4, w4, f(3), 1, 1, 2, 2, 2, 0),
    "conv_pool_backward": (f(2, 3, 3, 3), conv_argmax, x4, w4, 1, 1, 2, 2, 2, 0),
    "conv_pool_backward_weights": (f(2, 3, 3, 3), conv_argmax, x4, w4, 1, 1, 2, 2, 2, 0),
    "max_pool_forward": (x4, 2, 2, 2),
    "max_pool_backward": (f(2, 4, 3, 3), argmax, 6, 6),
    "groupnorm_forward": (x4, f(4), f(4), 2, 1e-5),
    "groupnorm_backward": (f(2, 4, 6, 6), x4, f(4), gmean, grstd, 2),
    "layernorm_forward": (f(5, 7), f(7), f(7), 1e-5),
    "layernorm_backward": (f(5, 7), f(5, 7), f(7), lmean, lrstd),
    "batchnorm_forward_train": (f(5, 7), f(7), f(7), np.zeros(7), np.ones(7), 1e-5, 0.9),
    "batchnorm_forward_test": (f(5, 7), f(7), f(7), np.zeros(7), np.ones(7), 1e-5),
    "spatial_batchnorm_forward_train": (x4, f(4), f(4), np.zeros(4), np.ones(4), 1e-5, 0.9),
    "spatial_batchnorm_forward_test": (x4, f(4), f(4), np.zeros(4), np.ones(4), 1e-5),
    "dropout_forward_train": (f(5, 7), 0.5, key(), 0),
    "dropout_backward": (f(5, 7), np.ones((5, 7), np.uint8), 0.5),
    "mt19937_random_sample": (key(), 0, 10),
    "sgd": (f(9), f(9), 0.1),
    "sgd_momentum": (f(9), f(9), f(9), 0.1, 0.9),
    "sgd_nesterov_momentum": (f(9), f(9), f(9), 0.1, 0.9),
    "rmsprop": (f(9), f(9) ** 2, f(9), 0.1, 0.9, 1e-8),
    "adam": (f(9), f(9), f(9) ** 2, f(9), 0.1, 0.9, 0.99, 1e-8, 0.1, 0.01),
    "set_num_threads": (2,),
    "set_buffer_cache": (256 << 20,),
    "fma_peak_f32": (1 << 10,),
    "fma_peak_f64": (1 << 10,),
    "stream_copy": (np.zeros(64), f(64), 3),
    "stream_triad": (np.zeros(64), f(64), f(64), 3.0, 3),
}
if hasattr(_nnc, "conv_nhwc_forward"):   # the channels-last and embedding bindings
    xh, wh = f(2, 6, 6, 4), f(3, 3, 4, 3)
    _, argmax_nhwc = _nnc.max_pool_nhwc_forward(xh, 2, 2, 2)
    VALID.update({
        "conv_nhwc_forward": (xh, wh, f(3), 1, 1, 0),
        "conv_nhwc_backward": (f(2, 6, 6, 3), xh, wh, 1, 1, 0),
        "conv_nhwc_backward_weights": (f(2, 6, 6, 3), xh, wh, 1, 1, 0),
        "conv_nhwc_paths": (xh, wh, 1, 1, 0),
        "max_pool_nhwc_forward": (xh, 2, 2, 2),
        "max_pool_nhwc_backward": (f(2, 3, 3, 4), argmax_nhwc, 6, 6),
        "embedding_backward": (f(2, 3, 4), np.arange(6).reshape(2, 3) % 5, 5),
        "leaky_relu_forward": (f(5, 7), 0.01),
        "leaky_relu_backward": (f(5, 7), f(5, 7), 0.01),
    })
INTS = [2**31 - 1, 2**31, 2**32 + 1, 2**61 + 1, 2**62, 2**63 - 1, -2**63, -2**31, -1, 0]
FLOATS = [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e308, -1e308, 5e-324]
# n is an output length: only the values whose byte count wraps around, not
# the ones that would really allocate gigabytes
LIMITS = {("mt19937_random_sample", 2): [2**61 + 1, 2**62, 2**63 - 1],
          ("embedding_backward", 2): [2**61 + 1, 2**62, 2**63 - 1, -2**63, -1, 0],
          ("set_num_threads", 0): [2**31, 2**63 - 1, -2**63, -1, 0]}

signatures = {n: getattr(_nnc, n).__doc__.splitlines()[0] for n in dir(_nnc)
              if not n.startswith("_") and callable(getattr(_nnc, n))}
takes_scalars = {n for n, sig in signatures.items() if ": int" in sig or ": float" in sig}
assert takes_scalars <= set(VALID), sorted(takes_scalars - set(VALID))
calls = 0
for name, args in VALID.items():
    fn = getattr(_nnc, name)
    for i, a in enumerate(args):
        if isinstance(a, (bool, np.ndarray)):
            continue
        for v in LIMITS.get((name, i), INTS if isinstance(a, int) else FLOATS):
            trial = [x.copy() if isinstance(x, np.ndarray) else x for x in args]
            trial[i] = v
            calls += 1
            try:
                fn(*trial)
            except (TypeError, ValueError, IndexError):   # IndexError: an index out of range
                pass
_nnc.set_num_threads(2)
_nnc.set_buffer_cache(256 << 20)
print("survived", calls)
'''


@needs_cpp
def test_bindings_survive_extreme_scalars():
    # Every int and float argument of every binding at and past its type's
    # limits, the rest of the call valid: each returns or raises TypeError,
    # ValueError (or IndexError for an index). The wrapped output size above
    # came out of this.
    out = run_python(EXTREME_SCALARS)
    assert out.startswith("survived") and int(out.split()[1]) > 300


# --- NaN and Inf ---------------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", sorted(OPS))
def test_non_finite_inputs_propagate(name, dtype, bad):
    """README, "NaN and Inf": an op given NaN or Inf returns (never raises or
    crashes), NaN and +Inf show in its outputs, and both backends agree on
    which outputs are non-finite. (-Inf can vanish as IEEE arithmetic says:
    relu(-inf) = 0, a -inf score gets softmax probability 0.)"""
    op = OPS[name]
    finite = {}
    for backend in BACKENDS:
        with nnc.use_backend(backend), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # NumPy's overflow notes
            inp = op.make(op.test_shapes[min(1, len(op.test_shapes) - 1)], dtype, 0)
            for key in ("x", "dout", "dw"):
                if isinstance(inp.get(key), np.ndarray):
                    inp[key].flat[inp[key].size // 2] = bad
            if "solver" in inp:   # a whole training step with a poisoned weight
                next(iter(inp["solver"].model.params.values())).flat[0] = bad
                inp["solver"].check_finite = False
            outs = run_op(op, inp)
        finite[backend] = [np.isfinite(o) for o in outs]
        if not bad < 0:
            assert not all(f.all() for f in finite[backend]), (backend, "nothing non-finite")
    for backend in BACKENDS[1:]:
        for a, b in zip(finite[BACKENDS[0]], finite[backend]):
            np.testing.assert_array_equal(a, b, err_msg=backend)


class ScriptedLoss:
    """A model whose training losses come from a list; its one parameter
    counts the updates applied (the rule adds 1)."""

    def __init__(self, losses):
        self.params = {"w": np.zeros(1)}
        self.losses = list(losses)

    def loss(self, X, y=None):
        if y is None:
            return np.zeros((len(X), 2))
        return self.losses.pop(0), {"w": np.ones(1)}


def _solver(losses, **kw):
    data = dict(X_train=np.zeros((8, 1)), y_train=np.zeros(8, int), X_val=np.zeros((4, 1)),
                y_val=np.zeros(4, int))
    return Solver(ScriptedLoss(losses), data, update_rule=lambda w, dw, c: (w + dw, c),
                  batch_size=4, num_epochs=3, print_every=1, **kw)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), np.float32("-inf")],
                         ids=["nan", "inf", "f32-inf"])
def test_solver_stops_on_a_non_finite_loss(bad, capsys):
    solver = _solver([2.0, 1.0, 0.5, bad, 0.25, 0.125])
    with pytest.raises(FloatingPointError) as err:
        solver.train()
    msg = str(err.value)
    assert f"loss is {float(bad)} at iteration 4 " in msg and "check_finite=False" in msg
    assert solver.loss_history[:3] == [2.0, 1.0, 0.5] and len(solver.loss_history) == 4
    assert solver.model.params["w"][0] == 3.0   # the fourth update was not applied
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "(Iteration 3 / 6) loss: 0.500000"   # CS231n's lines up to the stop


def test_solver_check_finite_false_trains_on(capsys):
    solver = _solver([2.0, float("nan"), float("inf"), 0.5, 0.25, 0.125], check_finite=False)
    solver.train()
    assert len(solver.loss_history) == 6 and np.isnan(solver.loss_history[1])
    lines = capsys.readouterr().out.splitlines()
    its = [line for line in lines if line.startswith("(Iteration")]
    assert its == ["(Iteration 1 / 6) loss: 2.000000", "(Iteration 2 / 6) loss: nan",
                   "(Iteration 3 / 6) loss: inf", "(Iteration 4 / 6) loss: 0.500000",
                   "(Iteration 5 / 6) loss: 0.250000", "(Iteration 6 / 6) loss: 0.125000"]
    assert lines[1] == "(Epoch 0 / 3) train acc: 1.000000; val_acc: 1.000000"


def test_solver_check_finite_is_a_bool():
    assert _solver([1.0]).check_finite is True
    with pytest.raises(TypeError, match="check_finite must be True or False, got 'no'"):
        _solver([1.0], check_finite="no")


def test_solver_stops_when_real_training_diverges(backend):
    """A learning rate of 1e8 sends a TwoLayerNet's softmax loss to inf or NaN
    within a few steps; the Solver names where instead of training on."""
    from nnc.classifiers import TwoLayerNet

    rng = np.random.default_rng(0)
    data = dict(X_train=rng.standard_normal((40, 6)), y_train=rng.integers(0, 3, 40),
                X_val=rng.standard_normal((10, 6)), y_val=rng.integers(0, 3, 10))
    np.random.seed(0)
    model = TwoLayerNet(input_dim=6, hidden_dim=8, num_classes=3)
    solver = Solver(model, data, update_rule="sgd", optim_config={"learning_rate": 1e8},
                    batch_size=10, num_epochs=20, verbose=False)
    with warnings.catch_warnings(), pytest.raises(FloatingPointError, match=r"at iteration \d+"):
        warnings.simplefilter("ignore", RuntimeWarning)
        solver.train()
    assert not np.isfinite(solver.loss_history[-1])
    assert np.isfinite(solver.loss_history[:-1]).all()
    assert all(np.isfinite(p).all() for p in solver.model.params.values())


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
    (lambda: _nnc.affine_forward(x2.astype(np.int64), f64((6, 3)), f64(3)), TypeError),
    (lambda: _nnc.affine_forward(x2.astype(np.float32), f64((6, 3)), f64(3)), TypeError),
    (lambda: affine_forward(x2.astype(np.complex128), f64((6, 3)), f64(3)), TypeError),
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
    (lambda: spatial_groupnorm_forward(x4, np.ones((1, 3, 1, 1)), np.zeros((1, 3, 1, 1)), 3,
                                       {"eps": float("nan")}), ValueError),
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
                sys.exit(f"ERRORS[{ERRORS.index((fn, exc))}] did not raise {exc.__name__}")
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


# --- checkpoints under SIGKILL ---------------------------------------------------------

CKPT_WRITER = r'''
import sys
import numpy as np
from nnc.solver import Solver


class Fixed:
    """Parameters the loop below sets to one version number; never trained."""
    def __init__(self):
        self.params = {"W": np.zeros((500, 500)), "b": np.zeros(7)}
        self.bn_params = [{"mode": "train", "running_mean": np.zeros(3),
                           "running_var": np.zeros(3)}]

    def loss(self, X, y=None):
        raise AssertionError("not trained")


directory, version = sys.argv[1], int(sys.argv[2])
model = Fixed()
data = dict(X_train=np.zeros((2, 1)), y_train=np.zeros(2, int), X_val=np.zeros((2, 1)),
            y_val=np.zeros(2, int))
solver = Solver(model, data, update_rule=lambda w, dw, c: (w, c),
                checkpoint_name=directory + "/ck", verbose=False)
print("ready", flush=True)
while True:   # version k goes to ck_epoch_{k % 2}.npz, every array filled with k
    v = float(version)
    for a in model.params.values():
        a.fill(v)
    for k in ("running_mean", "running_var"):
        model.bn_params[0][k] = np.full(3, v)
    solver.optim_configs["W"]["velocity"] = np.full((500, 500), v)
    solver.loss_history = [v]
    solver.epoch = version % 2
    solver._save_checkpoint()
    print(version, flush=True)
    version += 1
'''

KILLS = 20


def _checkpoint_version(path):
    """The one version every array and the metadata of a checkpoint hold."""
    ck = load_checkpoint(path)   # np.load(path, allow_pickle=False)
    arrays = [ck["params"]["W"], ck["params"]["b"], ck["optim_configs"]["W"]["velocity"],
              *ck["bn_running_stats"][0].values()]
    versions = {float(v) for a in arrays for v in np.unique(a)} | set(ck["loss_history"])
    assert len(versions) == 1, (path, versions)   # a mix would be a torn write
    (v,) = versions
    assert ck["epoch"] == v % 2
    return int(v)


def test_checkpoints_survive_sigkill(tmp_path):
    """A process writes checkpoints in a loop and is SIGKILLed at random
    points (fixed seed): every .npz that exists loads without pickle and is
    the previous or the new version of that file, never a torn one."""
    rng = random.Random(1234)
    newest = -1         # the newest version on disk; versions are written in order
    mid_write = 0       # kills that left a temporary file, i.e. landed inside a write
    for kill in range(KILLS):
        proc = subprocess.Popen([sys.executable, "-c", CKPT_WRITER, str(tmp_path),
                                 str(newest + 1)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline() == "ready\n", proc.stderr.read()
            try:   # the kill point: up to 0.3 s in, some writes (4 MB and an fsync each) done
                proc.wait(timeout=rng.uniform(0.0, 0.3))
            except subprocess.TimeoutExpired:
                pass
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == -signal.SIGKILL, err
        done = [int(line) for line in out.split()]
        last = done[-1] if done else newest   # the last write that returned
        files = sorted(os.listdir(tmp_path))
        npz = [f for f in files if f.endswith(".npz")]
        assert set(npz) <= {"ck_epoch_0.npz", "ck_epoch_1.npz"}, files
        mid_write += len(files) > len(npz)
        on_disk = {}
        for name in npz:
            e = int(name[len("ck_epoch_"):-len(".npz")])
            v = _checkpoint_version(tmp_path / name)
            # the newest completed version of this file, or the one being written
            previous = last if last % 2 == e else last - 1
            assert v in (previous, last + 1), (kill, name, v, last)
            assert v % 2 == e
            on_disk[e] = v
        assert last in on_disk.values() or last < 0, (kill, on_disk, last)
        newest = max(on_disk.values(), default=-1)
    assert newest >= KILLS   # the processes got writes done
    # Checkpoints get the permissions np.savez gives a new file (the umask's)
    np.savez(tmp_path / "plain.npz", a=np.zeros(1))
    mode = os.stat(tmp_path / "plain.npz").st_mode
    assert os.stat(tmp_path / "ck_epoch_0.npz").st_mode == mode
    print(f"{KILLS} kills, {mid_write} inside a write, {newest + 1} checkpoints written")


@pytest.mark.skipif("cpp" not in BACKENDS, reason="native extension not built")
def test_the_valgrind_workload_runs_without_valgrind():
    """CI runs tools/valgrind_ops.py under memcheck as its last stage; its
    own checks (each op against the reference, the conv paths it forces) must
    hold first, here, in seconds."""
    from pathlib import Path
    script = Path(__file__).resolve().parent.parent / "tools" / "valgrind_ops.py"
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "valgrind_ops.py: all ops ran" in proc.stdout
    assert "ok conv_nhwc direct forward and dw float64" in proc.stdout
