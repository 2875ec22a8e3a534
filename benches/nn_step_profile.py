"""Where a training step of nnc.nn spends its time: inside the native kernels
or outside them (Python: the layers, the registry's dispatch and checks,
the optimizer loop, allocation of small arrays).

    python benches/nn_step_profile.py [--model SmallConvolutionalNetwork] [--batch 10]
                                      [--dtype float32] [--steps 200] [--cprofile]

The profiler wraps every function of the binding (nnc._nnc) with a timer, so
"in kernels" is the wall time spent inside native calls (including the GIL
release, the argument conversion and the output allocation nanobind does)
and "outside" is everything else in the step. The wrappers add well under a
microsecond per call; the step's time without them is printed too.
"""
import argparse
import time

import numpy as np

import nnc
import nnc.nn as nn
from nnc.bench.kernel_timer import KernelTimer


def make_step(model_name, batch, dtype, seed=0):
    np.random.seed(seed)
    model = getattr(nn, model_name)()
    model.net.astype(dtype)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 32, 32, 3)).astype(dtype)
    y = rng.integers(0, 20, size=batch)
    loss = nn.cross_entropy()
    opt = nn.Adam(model.net, 1e-3)

    def step():
        scores = model.forward(x)
        loss.forward(scores, y)
        model.backward(loss.backward(), input_grad=False)   # as train_net
        opt.step()
    return step


def timed(step, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return np.array(times)


def profile(model_name="SmallConvolutionalNetwork", batch=10, dtype=np.float32, steps=200,
            warmup=20):
    """(median step ms without wrappers, median fraction of a step spent
    outside kernels, kernel calls per step, {kernel: median ms per step}).
    Medians over the steps, so that a step another process preempted does
    not count (on a busy machine the means drift by tens of percent)."""
    with nnc.use_backend("cpp"):
        step = make_step(model_name, batch, dtype)
        for _ in range(warmup):
            step()
        plain = timed(step, steps)
        fractions, per_step, calls = [], [], 0
        with KernelTimer() as kt:
            for _ in range(steps):
                kt.reset()
                t0 = time.perf_counter()
                step()
                fractions.append(1.0 - kt.seconds["step"] / (time.perf_counter() - t0))
                per_step.append({name: t for (_, name), t in kt.per_kernel.items()})
                calls = kt.calls["step"]
    per = {n: 1e3 * float(np.median([p.get(n, 0.0) for p in per_step])) for n in per_step[0]}
    per = dict(sorted(per.items(), key=lambda kv: -kv[1]))
    return 1e3 * np.median(plain), float(np.median(fractions)), calls, per


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="SmallConvolutionalNetwork")
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--cprofile", action="store_true", help="also print cProfile's top entries")
    args = p.parse_args()
    dtype = np.dtype(args.dtype).type
    ms, outside, calls, per = profile(args.model, args.batch, dtype, args.steps)
    print(f"{args.model} step, batch {args.batch}, {args.dtype}, {nnc.get_num_threads()} threads: "
          f"median {ms:.3f} ms; {100 * outside:.1f}% of the step outside kernels (median) "
          f"({calls} kernel calls per step)")
    for name, t in per.items():
        print(f"  {name:28s} {t:8.3f} ms/step (median)")
    if args.cprofile:
        import cProfile
        import pstats
        step = make_step(args.model, args.batch, dtype)
        step()
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(args.steps):
            step()
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
