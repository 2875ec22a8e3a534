"""Where the whole-run ThreeLayerConvNet training of ``python -m nnc.bench --e2e``
spends its time (issue 15), on the cpp backend, in this process.

    python benches/e2e_profile.py [--data DIR] [--epochs 2] [--threads N] [--runs 3]
                                  [--cprofile] [--plain]

1. The run without instrumentation (median of --runs): the reference wall time.
2. The same run instrumented: every function of the binding (nnc._nnc) is
   wrapped by a timer, and so are Solver.check_accuracy, model.loss and the
   update rule. It splits the wall time into the training steps and the
   accuracy passes, and each into native kernels and Python around them
   (nnc's layers, dispatch and checks, NumPy glue: batch indexing, the
   float64 -> float32 cast of the batch, the regularization terms).
3. Micro-measurements of the per-step NumPy work the Solver flow adds
   (with the shapes of this run), and of the first conv layer's backward
   with and without dx (the model computes it without).
4. --cprofile: cProfile's top entries of one run.

``--plain`` runs one uninstrumented training and exits (for py-spy:
``py-spy record -r 250 -f raw -o out.txt -- python benches/e2e_profile.py --plain``).
"""
import argparse
import functools
import os
import sys
import tempfile
import time

import numpy as np

import nnc
from nnc.bench.kernel_timer import KernelTimer
from nnc.bench import e2e


def _timed(fn, acc, key, on_enter=None, on_exit=None):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if on_enter:
            on_enter()
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[key] = acc.get(key, 0.0) + time.perf_counter() - t0
            if on_exit:
                on_exit()
    return wrapper


def make_solver(data, epochs):
    from nnc.solver import Solver

    c = e2e.CONFIG["convnet"]
    np.random.seed(e2e.SEED)
    model = e2e.build_nnc("convnet")
    solver = Solver(model, {k: data[k] for k in ("X_train", "y_train", "X_val", "y_val")},
                    update_rule="adam", optim_config={"learning_rate": c["learning_rate"]},
                    batch_size=c["batch_size"], num_epochs=epochs,
                    num_train_samples=c["num_train_samples"], verbose=False, progress=False)
    return model, solver


def plain_run(data, epochs):
    _, solver = make_solver(data, epochs)
    t0 = time.perf_counter()
    solver.train()
    return time.perf_counter() - t0, solver


def best_of(fn, reps=30):
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def micro(data, model):
    """Per-call costs (ms) of the NumPy work around the kernels, with this
    run's shapes, and the first conv's discarded dx."""
    from nnc.classifiers.fc_net import _reg_loss
    from nnc.fast_layers import conv_backward_fast, conv_backward_weights, conv_forward_fast

    X = data["X_train"]
    N = X.shape[0]
    bs = e2e.CONFIG["convnet"]["batch_size"]
    X32 = X.astype(np.float32)
    mask = np.random.choice(N, bs)
    emask = np.random.choice(N, 1000)
    xb = X[mask]
    p = model.params
    reg = model.reg
    W2 = p["W2"]
    g2 = np.ones_like(W2)
    out = {}
    out["batch index X_train[mask] (float64 data)"] = best_of(lambda: X[mask])
    out["batch index X_train[mask] (float32 data)"] = best_of(lambda: X32[mask])
    out["batch cast float64 -> float32 (50 images)"] = best_of(lambda: xb.astype(np.float32))
    out["eval draw X[mask] of 1000 (float64)"] = best_of(lambda: X[emask], 10)
    out["eval draw X[mask] of 1000 (float32)"] = best_of(lambda: X32[emask], 10)
    out["eval cast of 100 images"] = best_of(lambda: X[:100].astype(np.float32))
    out["_reg_loss (sum w*w over W1, W2, W3)"] = best_of(
        lambda: _reg_loss(p, reg, ("W1", "W2", "W3")))
    out["  same with np.vdot(w.ravel(), w.ravel())"] = best_of(
        lambda: 0.5 * reg * sum(float(np.vdot(p[n].ravel(), p[n].ravel()))
                                for n in ("W1", "W2", "W3")))
    out["grad + reg * w (W2 8192x100, new arrays)"] = best_of(
        lambda: [g2 + reg * W2 for _ in range(1)])
    out["  same in place: g += reg * w"] = best_of(lambda: np.add(g2, reg * W2, out=g2))
    c = e2e.CONFIG["convnet"]
    x = X32[:bs]
    w, b = p["W1"], p["b1"]
    cp = {"stride": 1, "pad": (c["filter_size"] - 1) // 2}
    y, cache = conv_forward_fast(x, w, b, cp)
    dy = np.random.randn(*y.shape).astype(np.float32)
    out["conv1 backward with dx (conv_backward_fast)"] = best_of(
        lambda: conv_backward_fast(dy, cache))
    out["conv1 backward without dx (conv_backward_weights)"] = best_of(
        lambda: conv_backward_weights(dy, cache))
    return {k: 1e3 * v for k, v in out.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--cprofile", action="store_true")
    p.add_argument("--plain", action="store_true")
    args = p.parse_args()
    if args.threads:
        nnc.set_num_threads(args.threads)
    nnc.set_backend("cpp")
    tmp = tempfile.mkdtemp(prefix="nnc-e2e-prof-")
    path = os.path.join(tmp, "data.npz")
    num_train, num_val = e2e.prepare_data(e2e.find_data_dir(args.data), False, path)
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    if args.plain:
        wall, _ = plain_run(data, args.epochs)
        print(f"plain run: {wall:.2f} s")
        return 0
    c = e2e.CONFIG["convnet"]
    iters = args.epochs * max(num_train // c["batch_size"], 1)
    print(f"ThreeLayerConvNet whole run: {num_train} train / {num_val} val images, "
          f"{args.epochs} epochs = {iters} steps of {c['batch_size']}, "
          f"{nnc.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}")

    walls = [plain_run(data, args.epochs)[0] for _ in range(args.runs)]
    wall0 = float(np.median(walls))
    print(f"1. uninstrumented: median {wall0:.2f} s of {args.runs} "
          f"({', '.join(f'{w:.2f}' for w in walls)}); {1e3 * wall0 / iters:.1f} ms per step "
          "including the accuracy passes")

    # instrumented: loss called from check_accuracy is timed apart
    model, solver = make_solver(data, args.epochs)
    acc = {}
    with KernelTimer() as tm:
        in_eval = [False]

        def to_eval():
            tm.phase, in_eval[0] = "eval", True

        def to_step():
            tm.phase, in_eval[0] = "step", False

        loss = model.loss

        def timed_loss(*a, **k):
            t0 = time.perf_counter()
            try:
                return loss(*a, **k)
            finally:
                key = "eval_loss" if in_eval[0] else "loss"
                acc[key] = acc.get(key, 0.0) + time.perf_counter() - t0
        model.loss = timed_loss
        solver.check_accuracy = _timed(solver.check_accuracy, acc, "eval", to_eval, to_step)
        solver.update_rule = _timed(solver.update_rule, acc, "update")
        step = solver._step
        per_step = []   # (wall, kernel time) of each training step

        def timed_step():
            k0, t0 = tm.seconds["step"], time.perf_counter()
            step()
            per_step.append((time.perf_counter() - t0, tm.seconds["step"] - k0))
        solver._step = _timed(timed_step, acc, "step")
        t0 = time.perf_counter()
        solver.train()
        wall = time.perf_counter() - t0
    ev, st = acc["eval"], acc["step"]
    upd_k = sum(v for (ph, n), v in tm.per_kernel.items() if ph == "step" and n == "adam")
    loss_k = tm.seconds["step"] - upd_k
    rest = wall - ev - st
    print(f"2. instrumented: {wall:.2f} s (the wrappers cost well under 1%; the rest of any "
          "difference from 1. is other processes)")
    rows = [
        ("training steps (Solver._step)", st),
        ("  model.loss: native kernels", loss_k),
        ("  model.loss: Python around them (layers, checks, cast, reg terms)",
         acc["loss"] - loss_k),
        ("  update rule (adam): native kernel", upd_k),
        ("  update rule: Python around it", acc["update"] - upd_k),
        ("  _step itself: batch draw and indexing, loss bookkeeping",
         st - acc["loss"] - acc["update"]),
        ("accuracy passes (check_accuracy)", ev),
        ("  forwards: native kernels", tm.seconds["eval"]),
        ("  forwards: Python around them (incl. the cast)", acc["eval_loss"] - tm.seconds["eval"]),
        ("  draw of 1000 train images, argmax, hstack", ev - acc["eval_loss"]),
        ("Solver loop, best-params copies", rest),
    ]
    for name, t in rows:
        print(f"   {name:70s} {t:7.2f} s {100 * t / wall:5.1f}%")
    print(f"   kernel calls: {tm.calls['step']} in steps ({tm.calls['step'] / iters:.0f} per "
          f"step), {tm.calls['eval']} in accuracy passes")
    sw = np.array([w for w, _ in per_step])
    so = np.array([w - k for w, k in per_step])
    print(f"   per training step (medians, robust to preemption): {1e3 * np.median(sw):.2f} ms, "
          f"of which {1e3 * np.median(so):.2f} ms ({100 * np.median(so / sw):.1f}%) outside "
          "native kernels")
    print("   kernels by time (training steps, then accuracy passes):")
    for (ph, n), t in sorted(tm.per_kernel.items(), key=lambda kv: (kv[0][0] != "step",
                                                                    -kv[1])):
        if t > 0.005 * wall:
            print(f"     {ph:5s} {n:28s} {t:7.2f} s {100 * t / wall:5.1f}%")

    print("3. per-call costs (median ms) of the work around the kernels, this run's shapes:")
    for name, ms in micro(data, model).items():
        print(f"   {name:60s} {ms:8.3f}")
    print(f"   ({iters} steps; the Solver ran {len(solver.train_acc_history)} checks)")

    if args.cprofile:
        import cProfile
        import pstats
        _, s2 = make_solver(data, args.epochs)
        pr = cProfile.Profile()
        pr.enable()
        s2.train()
        pr.disable()
        pstats.Stats(pr, stream=sys.stdout).sort_stats("tottime").print_stats(18)
    return 0


if __name__ == "__main__":
    sys.exit(main())
