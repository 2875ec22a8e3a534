"""Thread scaling of the native kernels: 1 thread against N on the suite's
cases (issue 5 asks 2 threads >= 1.7x faster than 1 on the deep conv).

    python benches/threads.py [--filter "deep conv"] [--dtype float32]
"""
import argparse

import numpy as np

import nnc
from nnc.bench.harness import _runner, measure
from nnc.bench.suite import CASES, OPS


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--filter", default="deep conv")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--max-threads", type=int, default=nnc.get_num_threads())
    args = p.parse_args()
    dtype = np.dtype(args.dtype).type
    for case in CASES:
        if args.filter not in case.name:
            continue
        op = OPS[case.op]
        for backward in ([False, True] if op.backward else [False]):
            fn = _runner(op, case.shape, dtype, "cpp", backward)
            times = {}
            for n in sorted({1, args.max_threads}):
                nnc.set_num_threads(n)
                times[n], _, _ = measure(fn, budget=1.0, min_reps=5)
            kind = "fwd+bwd" if backward else "fwd"
            cells = "  ".join(f"{n} thr {t * 1e3:8.2f} ms" for n, t in times.items())
            print(f"{case.name:24s} {args.dtype} {kind:8s} {cells}  "
                  f"speedup {times[1] / times[args.max_threads]:.2f}x")


if __name__ == "__main__":
    main()
