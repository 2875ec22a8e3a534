"""nnc and PyTorch in one process: does either slow the other down?

    python benches/beside_torch.py [--reps 30] [--json out.json]

Each configuration runs in a fresh interpreter, because an OpenMP runtime
reads OMP_WAIT_POLICY only when it loads:

- nnc alone (torch never imported)
- torch imported first, OMP_WAIT_POLICY unset (torch's pool spins)
- torch imported first, OMP_WAIT_POLICY=PASSIVE in the environment
- nnc imported first, OMP_WAIT_POLICY unset (nnc sets its policy, PASSIVE with
  GOMP_SPINCOUNT=10000, before torch loads)

In each, the affine layer (float32, forward + backward, the bench's 1024^3
case) and a small training step (a 3-layer MLP, batch 64) run alone and then
alternating with the same work in PyTorch. Every nnc result is checked
against PyTorch's before anything is timed. Reported: medians in ms, and
nnc's time over PyTorch's when their calls alternate. Needs torch.
"""
import argparse
import json
import os
import subprocess
import sys

CONFIGS = [  # (name, import order, OMP_WAIT_POLICY or None)
    ("nnc alone", "nnc", None),
    ("torch first, policy unset", "torch,nnc", None),
    ("torch first, PASSIVE", "torch,nnc", "PASSIVE"),
    ("nnc first, policy unset", "nnc,torch", None),
]

CHILD = r'''
import json, sys, time
order, reps = sys.argv[1].split(","), int(sys.argv[2])
for name in order:
    __import__(name)
import numpy as np
import nnc
from nnc.layers import affine_backward, affine_forward, relu_backward, relu_forward, softmax_loss

torch = sys.modules.get("torch")
rng = np.random.default_rng(0)
f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
x, w, b, dout = f32(1024, 1024), f32(1024, 1024) * 0.03, f32(1024), f32(1024, 1024)
X, y = f32(64, 256), rng.integers(0, 10, 64)
W = [f32(256, 128) * 0.05, f32(128, 128) * 0.05, f32(128, 10) * 0.05]
B = [np.zeros(128, np.float32), np.zeros(128, np.float32), np.zeros(10, np.float32)]


def nnc_affine():
    out, cache = affine_forward(x, w, b)
    return (out,) + affine_backward(dout, cache)


def nnc_step():   # forward, loss, backward, SGD update of an MLP
    h, caches = X, []
    for i in range(3):
        h, c = affine_forward(h, W[i], B[i])
        caches.append(c)
        if i < 2:
            h, rc = relu_forward(h)
            caches.append(rc)
    loss, d = softmax_loss(h, y)
    for i in reversed(range(3)):
        if i < 2:
            d = relu_backward(d, caches.pop())
        d, dw, db = affine_backward(d, caches.pop())
        W[i] -= 1e-3 * dw
        B[i] -= 1e-3 * db
    return loss


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


res = {"threads": nnc.get_num_threads(), "omp_runtimes": nnc.build_info().get("omp_runtimes")}
cases = {"affine": nnc_affine, "mlp step": nnc_step}
if torch is not None:
    torch.set_num_threads(nnc.get_num_threads())
    tx, tw, tb, tdout = (torch.from_numpy(a.copy()) for a in (x, w, b, dout))
    tw.requires_grad_(True), tb.requires_grad_(True)
    tx.requires_grad_(True)
    net = torch.nn.Sequential(torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128),
                              torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    tX, ty = torch.from_numpy(X), torch.from_numpy(y)

    def torch_affine():
        tx.grad = tw.grad = tb.grad = None
        out = tx @ tw + tb
        out.backward(tdout)
        return out, tx.grad, tw.grad, tb.grad

    def torch_step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(tX), ty)
        loss.backward()
        opt.step()
        return loss

    # validate before timing
    for a, t in zip(nnc_affine(), torch_affine()):
        t = t.detach().numpy()
        assert np.allclose(a, t, rtol=1e-3, atol=1e-3 * np.abs(t).max()), "affine disagrees"
    peers = {"affine": torch_affine, "mlp step": torch_step}
for case, fn in cases.items():
    for _ in range(3):
        fn()
    r = {"nnc alone": float(np.median([timed(fn) for _ in range(reps)]))}
    if torch is not None:
        peer = peers[case]
        for _ in range(3):
            peer()
        r["torch alone"] = float(np.median([timed(peer) for _ in range(reps)]))
        mine, theirs = [], []
        for _ in range(reps):
            mine.append(timed(fn))
            theirs.append(timed(peer))
        r["nnc alternating"] = float(np.median(mine))
        r["torch alternating"] = float(np.median(theirs))
    res[case] = r
print(json.dumps(res))
'''


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.exit("beside_torch.py needs torch (pip install torch)")
    results = {}
    for name, order, policy in CONFIGS:
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        if policy:
            env["OMP_WAIT_POLICY"] = policy
        proc = subprocess.run([sys.executable, "-c", CHILD, order, str(args.reps)],
                              capture_output=True, text=True, env=env)
        if proc.returncode:
            sys.exit(f"{name}: {proc.stderr.strip().splitlines()[-1]}")
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    print("medians in ms; 'alt' = nnc and torch calls alternating in one process")
    print(f"{'configuration':28s} {'case':9s} {'nnc':>8s} {'torch':>8s} {'nnc alt':>8s} "
          f"{'torch alt':>9s} {'nnc/torch alt':>13s}")
    for name, r in results.items():
        for case in ("affine", "mlp step"):
            c = r[case]
            cells = [c["nnc alone"], c.get("torch alone"), c.get("nnc alternating"),
                     c.get("torch alternating")]
            ratio = f"{cells[2] / cells[3]:.2f}" if cells[3] else "-"
            print(f"{name:28s} {case:9s} " + " ".join(
                f"{v:8.2f}" if v is not None else f"{'-':>8s}" for v in cells) + f" {ratio:>13s}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
