"""What the output-buffer cache buys: suite cases timed on the cpp backend
with the cache on (the default limit) and off (``nnc.set_buffer_cache(0)``),
side by side in one run.

The two settings alternate in blocks of reps, so the machine's noise hits
both alike; each block starts with one untimed call, which refills the cache
after it was off. The table gives the median of all reps of each setting.

    python benches/buffer_cache.py [--filter conv1] [--dtype float32] [--reps 60]
"""
import argparse
import time

import numpy as np

import nnc
from nnc.bench.harness import _runner
from nnc.bench.suite import CASES, OPS, Case

DEFAULT_CASES = ("convnet conv1", "deep conv", "batchnorm", "layernorm", "relu",
                 "ThreeLayerConvNet step", "batchnorm 4096x4096")
# Outputs of 32 MB and more, which glibc maps anew on every allocation.
EXTRA = [Case("batchnorm 4096x4096", "batchnorm", (4096, 4096))]


def timed(fn, reps):
    fn()  # with the cache on, this call refills it
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--filter", default=None, help="only cases whose name contains this")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--reps", type=int, default=60, help="timed reps per setting and case")
    p.add_argument("--block", type=int, default=5, help="reps per block before switching")
    args = p.parse_args()
    dtype = np.dtype(args.dtype).type
    limit = nnc.get_buffer_cache()["limit"] or 256 << 20
    cases = [c for c in CASES + EXTRA if (c.name in DEFAULT_CASES if args.filter is None
                                          else args.filter in c.name)]
    info = nnc.build_info()
    print(f"nnc {info['version']} | simd {info['simd']} | threads {info['num_threads']} | "
          f"{args.dtype} | cache limit {limit >> 20} MB | median of {args.reps} reps each")
    print(f"{'case':24s} {'kind':8s} {'cache on':>10s} {'cache off':>10s} {'off/on':>7s}")
    try:
        for case in cases:
            op = OPS[case.op]
            kind = "step" if op.is_step else "fwd+bwd" if op.backward else "fwd"
            fn = _runner(op, case.shape, dtype, "cpp", backward=True)
            times = {"on": [], "off": []}
            while len(times["off"]) < args.reps:
                for setting in ("on", "off"):
                    nnc.set_buffer_cache(limit if setting == "on" else 0)
                    times[setting] += timed(fn, args.block)
            on, off = (float(np.median(times[s])) for s in ("on", "off"))
            print(f"{case.name:24s} {kind:8s} {on * 1e3:8.2f}ms {off * 1e3:8.2f}ms "
                  f"{off / on:6.2f}x", flush=True)
    finally:
        nnc.set_buffer_cache(limit)


if __name__ == "__main__":
    main()
