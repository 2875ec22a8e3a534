"""How a sweep scales: the same 8-trial ThreeLayerConvNet grid run serially
with 1 and 2 native threads, on a 2-worker x 1-thread LocalCluster and on a
1-worker x 2-thread one.

    python benches/sweep_scaling.py                 # CIFAR-10 subset, else synthetic
    python benches/sweep_scaling.py --synthetic --epochs 1 --json out.json

Each configuration runs --repeat times (default 2, the order rotated) and the
best run counts. Reports trials per minute (over the whole run, cluster start
included, and over the trials alone: first trial start to last trial end), the
speedup over serial with 1 thread, the efficiency (speedup / cores used), and
the load average. It also checks that runs with the same thread count give
identical records.
Needs Dask (pip install 'nnc[dask]'). Not a test: on a shared machine the
numbers move by tens of percent.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import nnc
import nnc.sweep as sw
from nnc.data_utils import ENV_VAR, load_CIFAR_batch

REPO = Path(__file__).resolve().parents[1]
# The shared CIFAR-10 subset sits beside the repository (one more level up
# from a worktree under wt/).
CIFAR_CANDIDATES = [REPO.parent / "shared/data/cifar-10-batches-py",
                    REPO.parent.parent / "shared/data/cifar-10-batches-py"]

# (label, runner, workers, threads per worker)
CONFIGS = [
    ("serial, 1 thread", "serial", 1, 1),
    ("serial, 2 threads", "serial", 1, 2),
    ("local, 2 workers x 1 thread", "local", 2, 1),
    ("local, 1 worker x 2 threads", "local", 1, 2),
]


def load_data(num_training, num_validation, synthetic):
    """A small CIFAR-10 subset (from data_batch_1 alone, so the full data set
    is never loaded), or synthetic 3x32x32 images when there is none."""
    dirs = ([Path(os.environ[ENV_VAR])] if os.environ.get(ENV_VAR) else []) + CIFAR_CANDIDATES
    root = next((d for d in dirs if (d / "data_batch_1").is_file()), None)
    n = num_training + num_validation
    if root is not None and not synthetic:
        X, y = load_CIFAR_batch(str(root / "data_batch_1"))
        if len(X) >= n:
            X = X[:n].transpose(0, 3, 1, 2).astype(np.float32)
            X -= X[:num_training].mean(axis=0)
            return (f"CIFAR-10 ({root}, {num_training} train / {num_validation} val)",
                    {"X_train": X[:num_training], "y_train": y[:num_training],
                     "X_val": X[num_training:], "y_val": y[num_training:n]})
    data = sw.synthetic_data(num_train=num_training, num_val=num_validation, shape=(3, 32, 32))
    data = {k: v.astype(np.float32) if k.startswith("X") else v for k, v in data.items()}
    return f"synthetic 3x32x32 ({num_training} train / {num_validation} val)", data


def trials_span(records):
    """Seconds from the first trial's start to the last trial's end."""
    starts = [r["finished_at"] - r["wall_time"] for r in records]
    return max(r["finished_at"] for r in records) - min(starts)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num-training", type=int, default=1000)
    p.add_argument("--num-validation", type=int, default=100)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--synthetic", action="store_true", help="skip CIFAR-10")
    p.add_argument("--repeat", type=int, default=2, help="runs per configuration (best counts)")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)

    what, data = load_data(args.num_training, args.num_validation, args.synthetic)
    spec = sw.Spec("convnet", data, model_kwargs={"weight_scale": 1e-3},
                   solver={"update_rule": "adam", "num_epochs": args.epochs, "batch_size": 50},
                   grid={"learning_rate": [1e-4, 3e-4, 1e-3, 3e-3], "reg": [0.0, 1e-3]})
    info = nnc.build_info()
    load_before = os.getloadavg()
    print(f"nnc {nnc.__version__}, {info['simd']}, {os.cpu_count()} cores; data: {what}")
    print("load average before (1/5/15 min): " + " / ".join(f"{v:.1f}" for v in load_before))
    print(f"8 trials of ThreeLayerConvNet (32 7x7 filters, hidden 100), {args.epochs} epochs, "
          "batch 50, adam\n")

    # Best of --repeat runs per configuration, the order rotated each round, so
    # a burst of load from other processes does not fall on one configuration.
    best, by_threads = {}, {}
    for rep in range(args.repeat):
        order = CONFIGS[rep % len(CONFIGS):] + CONFIGS[:rep % len(CONFIGS)]
        for label, runner, workers, threads in order:
            kw = {"n_workers": workers} if runner == "local" else {}
            t0 = time.perf_counter()
            records = sw.run(spec, runner=runner, threads_per_worker=threads, progress=False,
                             timeout=3600, **kw)
            wall = time.perf_counter() - t0
            assert all(r["status"] == "ok" for r in records), [r["error"] for r in records]
            computed = [{k: v for k, v in r.items() if k not in sw.RUN_FIELDS} for r in records]
            same = by_threads.setdefault(threads, computed) == computed
            row = best.setdefault(label, {"config": label, "runner": runner, "workers": workers,
                                          "threads": threads, "cores": workers * threads,
                                          "wall_s": [], "trials_s": [], "median_trial_s": [],
                                          "same_records": True})
            row["wall_s"].append(wall)
            row["trials_s"].append(trials_span(records))
            row["median_trial_s"].append(float(np.median([r["wall_time"] for r in records])))
            row["same_records"] &= same
            print(f"  round {rep + 1}: {label:30s} {wall:6.1f} s", flush=True)
    rows = [best[c[0]] for c in CONFIGS]
    for r in rows:
        r["runs"] = {k: r[k] for k in ("wall_s", "trials_s", "median_trial_s")}
        for k in ("wall_s", "trials_s", "median_trial_s"):
            r[k] = min(r[k])

    base = rows[0]
    print("\n| configuration | cores | wall s | trials/min (wall) | trials/min (trials) | "
          "median trial s | speedup | efficiency | same records |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        r["per_min_wall"] = 8 / r["wall_s"] * 60
        r["per_min_trials"] = 8 / r["trials_s"] * 60
        r["speedup"] = base["trials_s"] / r["trials_s"]
        r["efficiency"] = r["speedup"] / r["cores"]
        print(f"| {r['config']} | {r['cores']} | {r['wall_s']:.1f} | {r['per_min_wall']:.1f} | "
              f"{r['per_min_trials']:.1f} | {r['median_trial_s']:.2f} | {r['speedup']:.2f} | "
              f"{r['efficiency']:.0%} | {'yes' if r['same_records'] else 'NO'} |")
    print(f"\nbest of {args.repeat} runs each; speedup and efficiency: trials-only time against "
          "serial with 1 thread; same records: identical to the first run with the same "
          "thread count")
    load_after = os.getloadavg()
    print("load average after (1/5/15 min): " + " / ".join(f"{v:.1f}" for v in load_after)
          + "  (other processes on the machine take cores from the runs above)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"data": what, "epochs": args.epochs, "build_info": info, "rows": rows,
                       "load_before": load_before, "load_after": load_after}, f, indent=1)
    return 0 if all(r["same_records"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
