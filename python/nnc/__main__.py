"""``python -m nnc``: build info, backends, and a tiny timing of each backend.
``python -m nnc COMMAND ...`` runs the nnc command line (nnc.cli: train, info,
bench, sweep)."""
import sys
import time

import numpy as np

import nnc
from nnc.layers import affine_backward, affine_forward


def _time(fn, repeat=20):
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    print(f"nnc {nnc.__version__}")
    for k, v in nnc.build_info().items():
        print(f"  {k:12s} {v}")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 512)).astype(np.float32)
    w = rng.standard_normal((512, 512)).astype(np.float32)
    b = rng.standard_normal(512).astype(np.float32)
    print("\naffine forward+backward, (256,512) x (512,512), float32, best of 20:")
    for name in nnc.available_backends():
        with nnc.use_backend(name):
            def step():
                out, cache = affine_forward(x, w, b)
                affine_backward(out, cache)
            print(f"  {name:6s} {_time(step) * 1e3:8.3f} ms   ops: {len(nnc.implemented_ops())}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        from nnc.cli import main as cli_main

        sys.exit(cli_main(sys.argv[1:]))
    main()
