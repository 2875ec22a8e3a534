"""Issue 9's performance targets, measured side by side in one run:

1. NHWC conv forward+backward within 1.1x of nnc's NCHW conv on the same
   shape (the course's CNN layers and the deep conv);
2. each nnc.nn training step (SmallConvolutionalNetwork at batch 10 and
   100, TinyNet at 100) at least 1.5x faster than the same network in
   PyTorch eager at its best of NCHW and channels_last;
3. at batch 10, the time a step spends outside kernels under 25%
   (benches/nn_step_profile.py).

    python benches/nn_targets.py [--reps 15] [--threads 2]

The contenders of a comparison run in turns, one repetition each (A B A B
...), so a busy machine slows them alike; the table gives the best and the
median of each and their ratios. The cases and inputs are the bench
registry's (nnc.bench.suite).
"""
import argparse
import os
import sys
import time

import numpy as np

import nnc
from nnc.bench.suite import OPS, run_op

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def interleaved(fns, reps):
    """Best and median seconds of each zero-arg callable, run in turns."""
    for f in fns:
        f()
    times = [[] for _ in fns]
    for _ in range(reps):
        for i, f in enumerate(fns):
            t0 = time.perf_counter()
            f()
            times[i].append(time.perf_counter() - t0)
    return [(min(t), float(np.median(t))) for t in times]


def nnc_runner(op_name, shape, dtype=np.float32):
    op = OPS[op_name]
    inp = op.make(shape, dtype, 0)

    def run():
        with nnc.use_backend("cpp"):
            run_op(op, inp)
    return run


def conv_rows(reps):
    rows = []
    # shapes (N, C, H, W, F, HH, WW, stride, pad), as the registry's conv cases
    for name, shape in [
            ("course conv1 (100,32,32,3)*(5,5,3,16) p2", (100, 3, 32, 32, 16, 5, 5, 1, 2)),
            ("course conv2 (100,16,16,16)*(3,3,16,32) p1", (100, 16, 16, 16, 32, 3, 3, 1, 1)),
            ("course conv1, batch 10", (10, 3, 32, 32, 16, 5, 5, 1, 2)),
            ("course conv2, batch 10", (10, 16, 16, 16, 32, 3, 3, 1, 1)),
            ("deep conv (64,32,32,64)*(3,3,64,64) p1", (64, 64, 32, 32, 64, 3, 3, 1, 1))]:
        (nchw_b, nchw_m), (nhwc_b, nhwc_m) = interleaved(
            [nnc_runner("conv", shape), nnc_runner("conv_nhwc", shape)], reps)
        rows.append((f"NHWC vs NCHW conv fwd+bwd: {name}", "NCHW", nchw_b, nchw_m, "NHWC", nhwc_b,
                     nhwc_m, nhwc_b / nchw_b, "<= 1.1"))
    return rows


def step_rows(reps):
    rows = []
    for name, op_name, shape in [
            ("SmallConvolutionalNetwork step, batch 10", "smallcnn_step", (10,)),
            ("SmallConvolutionalNetwork step, batch 100", "smallcnn_step", (100,)),
            ("TinyNet step, batch 100", "tinynet_step", (100,))]:
        op = OPS[op_name]
        torch_run = op.torch(op.make(shape, np.float32, 0), True)   # PyTorch's best layout
        (n_b, n_m), (t_b, t_m) = interleaved([nnc_runner(op_name, shape), torch_run], reps)
        rows.append((f"step vs PyTorch: {name}", "torch", t_b, t_m, "nnc", n_b, n_m, t_b / n_b,
                     ">= 1.5"))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args()
    if args.threads:
        nnc.set_num_threads(args.threads)
    threads = nnc.get_num_threads()
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(threads)
        except ImportError:
            pass
    info = nnc.build_info()
    print(f"nnc {info['version']} | {info['simd']} | {threads} threads | OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')} | torch {torch.__version__ if torch else '-'} | "
          f"load average {os.getloadavg()[0]:.1f}")
    rows = conv_rows(args.reps) + (step_rows(args.reps) if torch else [])
    print(f"{'comparison':62s} {'A':>5s} {'best ms':>8s} {'median':>8s} {'B':>5s} {'best ms':>8s}"
          f" {'median':>8s} {'ratio':>6s} target")
    for name, a, ab, am, b, bb, bm, ratio, target in rows:
        print(f"{name:62s} {a:>5s} {1e3 * ab:8.2f} {1e3 * am:8.2f} {b:>5s} {1e3 * bb:8.2f} "
              f"{1e3 * bm:8.2f} {ratio:6.2f} {target}")
    print("(ratio: B's best over A's best for the conv rows, A's over B's for the steps: "
          "how many times faster nnc is)")
    from nn_step_profile import profile
    ms, outside, calls, _ = profile("SmallConvolutionalNetwork", 10, np.float32, steps=200)
    print(f"SmallConvolutionalNetwork step, batch 10: {ms:.2f} ms, {100 * outside:.1f}% outside "
          f"kernels ({calls} kernel calls per step; target < 25%)")


if __name__ == "__main__":
    main()
