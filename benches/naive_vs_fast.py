"""How many times faster the fast conv and pool paths are than nnc's own naive
teaching loops, on the seed-002 shapes, timed in one run (issue 4).

The seed's Cython fast layers were 280x (conv forward), 633x (conv backward),
141x (pool forward) and 33x (pool backward) faster than its naive loops.

    python benches/naive_vs_fast.py [--backend cpp]
"""
import argparse

import numpy as np

import nnc
from nnc.bench.harness import measure
from nnc.fast_layers import (conv_backward_fast, conv_forward_fast, max_pool_backward_fast,
                             max_pool_forward_fast)
from nnc.layers import (conv_backward_naive, conv_forward_naive, max_pool_backward_naive,
                        max_pool_forward_naive)

SEED_RATIOS = {"conv forward": 280, "conv backward": 633, "pool forward": 141, "pool backward": 33}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--backend", default="cpp", choices=nnc.available_backends())
    args = p.parse_args()
    rng = np.random.default_rng(231)
    x = rng.standard_normal((100, 3, 31, 31))
    w = rng.standard_normal((25, 3, 3, 3))
    b = rng.standard_normal(25)
    cp = {"stride": 2, "pad": 1}
    out, nc = conv_forward_naive(x, w, b, cp)
    dout = rng.standard_normal(out.shape)
    px = rng.standard_normal((100, 3, 32, 32))
    pp = {"pool_height": 2, "pool_width": 2, "stride": 2}
    pout, npc = max_pool_forward_naive(px, pp)
    pdout = rng.standard_normal(pout.shape)
    with nnc.use_backend(args.backend):
        _, fc = conv_forward_fast(x, w, b, cp)
        _, fpc = max_pool_forward_fast(px, pp)
        pairs = {
            "conv forward": (lambda: conv_forward_naive(x, w, b, cp),
                             lambda: conv_forward_fast(x, w, b, cp)),
            "conv backward": (lambda: conv_backward_naive(dout, nc),
                              lambda: conv_backward_fast(dout, fc)),
            "pool forward": (lambda: max_pool_forward_naive(px, pp),
                             lambda: max_pool_forward_fast(px, pp)),
            "pool backward": (lambda: max_pool_backward_naive(pdout, npc),
                              lambda: max_pool_backward_fast(pdout, fpc)),
        }
        print(f"backend {args.backend}, float64, x (100,3,31,31) w (25,3,3,3) stride 2 pad 1; "
              f"pool 2x2/2 on (100,3,32,32)")
        print(f"{'':14s} {'naive ms':>10s} {'fast ms':>10s} {'ratio':>8s} {'seed Cython':>12s}")
        for name, (naive, fast) in pairs.items():
            tn, _, _ = measure(naive, budget=1.0, min_reps=3, warmup=0)
            tf, _, _ = measure(fast, budget=0.5, min_reps=20)
            print(f"{name:14s} {tn * 1e3:10.2f} {tf * 1e3:10.3f} {tn / tf:7.0f}x "
                  f"{SEED_RATIOS[name]:11d}x")


if __name__ == "__main__":
    main()
