"""``python -m nnc.bench``: validate, then time nnc's kernels against the NumPy
reference and (when installed) PyTorch on the CPU.

    python -m nnc.bench --quick                 # under a minute
    python -m nnc.bench --filter conv --dtype float32 --json out.json --plot out.png
    python -m nnc.bench --e2e [--data DIR] [--epochs N] [--no-torch] [--json FILE]
                                                # whole trainings on CIFAR-10 vs PyTorch
"""
import argparse
import json
import sys
import time

import numpy as np

import nnc

from . import malloc, roofline
from .harness import bench_case, gemm_roofline, validate
from .suite import CASES, OPS

DTYPES = {"float32": np.float32, "float64": np.float64}


def _torch(threads):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def import_overhead_ms(repeats=5):
    """Median time ``import nnc`` adds on top of ``import numpy``, each in a
    fresh interpreter."""
    import subprocess

    code = ("import time; t0 = time.perf_counter(); import numpy; t1 = time.perf_counter(); "
            "import nnc; print((time.perf_counter() - t1) * 1e3)")
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True).stdout) for _ in range(repeats)]
    return float(np.median(times))


def _progress(i, total, label):
    width = 28
    done = int(width * i / total)
    sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {i}/{total} {label[:40]:40s}")
    sys.stderr.flush()
    if i == total:
        sys.stderr.write("\n")


def _fmt_ms(r):
    if not r:
        return "-"
    if "missing" in r:
        return "missing"
    if "error" in r:
        return "error"
    return f"{r['median_ms']:.3g}±{100 * r['spread']:.0f}%"


def add_fractions(rec, peak, gemm, bw):
    """The record's GFLOP/s as percentages of its dtype's FMA peak
    (pct_peak) and OpenBLAS GEMM rate (pct_gemm), its GB/s as a percentage
    of the stream triad bandwidth (pct_bw), where it has them."""
    g = rec.get("gflops")
    if g:
        rec["pct_peak"] = 100 * g / peak[rec["dtype"]]
        rec["pct_gemm"] = 100 * g / gemm[rec["dtype"]]
    if rec.get("gbytes_per_s"):
        rec["pct_bw"] = 100 * rec["gbytes_per_s"] / bw
    return rec


def _pct(r, key):
    return f"{r[key]:.0f}" if key in r else "-"


def _table(records):
    cols = ["case", "dtype", "kind", "numpy ms", "cpp ms", "torch ms", "x numpy", "x torch",
            "GFLOP/s", "%peak", "%gemm", "GB/s", "%bw", "cpp MB", "torch MB", "check"]
    rows = []
    for r in records:
        cpp, tor = r.get("cpp") or {}, r.get("torch") or {}
        g = r.get("gflops")
        rows.append([
            r["case"], r["dtype"], r["kind"], _fmt_ms(r.get("numpy")), _fmt_ms(cpp), _fmt_ms(tor),
            f"{r['speedup_vs_numpy']:.1f}" if "speedup_vs_numpy" in r else "-",
            f"{r['speedup_vs_torch']:.2f}" if "speedup_vs_torch" in r else "-",
            f"{g:.1f}" if g else "-", _pct(r, "pct_peak"), _pct(r, "pct_gemm"),
            f"{r['gbytes_per_s']:.1f}" if "gbytes_per_s" in r else "-", _pct(r, "pct_bw"),
            f"{cpp['peak_extra_mb']:.1f}" if cpp.get("peak_extra_mb") is not None else "-",
            f"{tor['peak_extra_mb']:.1f}" if tor.get("peak_extra_mb") is not None else "-",
            r.get("check", "-"),
        ])
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths))
    out = [line, "-" * len(line)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join(out)


def _plot(records, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['case']} {r['dtype'][5:]} {r['kind']}" for r in records]
    fig, axes = plt.subplots(1, 2, figsize=(14, max(4, 0.28 * len(records))), sharey=True)
    y = np.arange(len(records))
    for key, off, name in (("speedup_vs_torch", -0.2, "vs PyTorch"),
                           ("speedup_vs_numpy", 0.2, "vs numpy")):
        vals = [r.get(key, np.nan) for r in records]
        axes[0].barh(y + off, vals, height=0.4, label=name)
    axes[0].axvline(1.0, color="k", lw=0.8)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("speedup of nnc cpp (x, log scale)")
    axes[0].legend()
    for key, off, name, color in (("pct_peak", -0.2, "of the FMA peak", "tab:green"),
                                  ("pct_gemm", 0.2, "of OpenBLAS's GEMM", "tab:olive")):
        axes[1].barh(y + off, [r.get(key, np.nan) for r in records], height=0.4, label=name,
                     color=color)
    axes[1].set_xlabel("% of the measured GFLOP/s limits")
    axes[1].legend()
    axes[0].set_yticks(y, labels, fontsize=7)
    axes[0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m nnc.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a few cases, float32, short budgets")
    p.add_argument("--filter", default="", help="only cases whose name or op contains this")
    p.add_argument("--dtype", choices=["float32", "float64", "both"], default=None)
    p.add_argument("--threads", type=int, default=None, help="threads for nnc and torch")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    p.add_argument("--no-numpy", action="store_true", help="skip timing the numpy reference")
    p.add_argument("--json", metavar="FILE", help="write all records as JSON")
    p.add_argument("--plot", metavar="FILE", help="write a matplotlib chart (PNG/SVG)")
    e2e = p.add_argument_group("whole-run benchmark (nnc.bench.e2e)")
    e2e.add_argument("--e2e", action="store_true",
                     help="train the CIFAR-10 models end to end in nnc and PyTorch, each in "
                          "its own process (--quick: 300 images, one epoch)")
    e2e.add_argument("--data", metavar="DIR", default=None,
                     help="the cifar-10-batches-py folder (default: $NNC_CIFAR10_DIR, the "
                          "shared subset next to the repo, the nnc.datasets cache)")
    e2e.add_argument("--epochs", type=int, default=None, help="epochs per model (default 5)")
    e2e.add_argument("--repeat", type=int, default=1,
                     help="alternate the libraries this many times; the table gives medians")
    e2e.add_argument("--models", default=None,
                     help="comma-separated subset of convnet,fcnet,nn_cnn")
    e2e.add_argument("--numpy", action="store_true",
                     help="also train on nnc's numpy backend (slow)")
    e2e.add_argument("--channels-last", action="store_true",
                     help="PyTorch's convs in channels_last (default NCHW)")
    args = p.parse_args(argv)

    if "cpp" not in nnc.available_backends():
        sys.exit("nnc.bench needs the cpp backend; build_info: %s" % nnc.build_info())
    if args.e2e:
        from .e2e import run
        return run(args)
    if args.threads:
        nnc.set_num_threads(args.threads)
    threads = nnc.get_num_threads()
    # before any case allocates: otherwise a library that allocates its
    # outputs per call runs at a speed set by what the cases before it freed
    malloc_note = malloc.apply_in_process()
    torch = None if args.no_torch else _torch(threads)
    dtype_arg = args.dtype or ("float32" if args.quick else "both")
    dtypes = ["float32", "float64"] if dtype_arg == "both" else [dtype_arg]
    cases = [c for c in CASES if (c.quick or not args.quick) and
             (args.filter in c.name or args.filter in c.op)]
    if not cases:
        sys.exit(f"no case matches --filter {args.filter!r}")
    budget, min_reps = (0.15, 3) if args.quick else (0.6, 5)

    info = nnc.build_info()
    print(f"nnc {info['version']} | {info['blas']} | gemm {info['gemm']} | simd {info['simd']}"
          f" | threads {threads} | torch {torch.__version__ if torch else 'not installed'}"
          f" | {malloc_note}")
    imp = import_overhead_ms()
    print(f"import nnc adds {imp:.1f} ms on top of import numpy (median of 5 fresh interpreters)")
    roof = roofline.measure(quick=args.quick)
    gemm = {d: gemm_roofline(DTYPES[d], n=1024 if args.quick else 2048) for d in dtypes}
    print(f"limits ({threads} threads): {roofline.describe(roof)} | OpenBLAS GEMM "
          + ", ".join(f"{d} {g:.0f}" for d, g in gemm.items()) + " GFLOP/s")
    peak, bw = roof["peak_gflops"], roof["stream_gbytes_per_s"]["triad"]

    jobs = []
    for c in cases:
        op = OPS[c.op]
        kinds = ["step"] if op.is_step else (["fwd", "fwdbwd"] if op.backward else ["fwd"])
        jobs += [(c, d, k) for d in dtypes for k in kinds]
    impls = [i for i in ("numpy", "cpp") if not (i == "numpy" and args.no_numpy)]
    impls += ["torch"] if torch else []

    records, checked = [], {}
    t0 = time.time()
    for i, (c, d, k) in enumerate(jobs):
        _progress(i, len(jobs), f"{c.name} {d} {k}")
        key = (c.name, d)
        if key not in checked:    # validate before timing: cpp must equal the reference
            try:
                ok, err = validate(OPS[c.op], c.shape, DTYPES[d])
                checked[key] = f"ok {err:.0e}" if ok else f"FAIL {err:.1e}"
            except NotImplementedError:
                checked[key] = "missing"
            except Exception as e:  # report, keep benchmarking the rest
                checked[key] = f"error {type(e).__name__}"
        rec = bench_case(c, DTYPES[d], k, impls, budget, min_reps)
        rec["check"] = checked[key]
        records.append(add_fractions(rec, peak, gemm, bw))
    _progress(len(jobs), len(jobs), "done")

    print(_table(records))
    print(f"({time.time() - t0:.0f} s; 'x numpy'/'x torch': how many times faster nnc cpp is; "
          f"%peak: GFLOP/s over the dtype's measured FMA peak, %gemm: over OpenBLAS's large "
          f"GEMM, %bw: GB/s over the stream triad (bytes read + written, write-allocate not "
          f"counted); fwdbwd counts 3x the forward's FLOPs (2x for a dw-and-db-only backward) "
          f"and 2.5x its bytes; convs count the direct method's FLOPs, also where they "
          f"run Winograd)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"build_info": info, "threads": threads, "malloc": malloc_note,
                       "gemm_gflops": gemm,
                       "peak_gflops": peak, "stream_gbytes_per_s": roof["stream_gbytes_per_s"],
                       "stream_array_mb": roof["stream_array_mb"], "import_ms": imp,
                       "torch": torch.__version__ if torch else None, "records": records}, f,
                      indent=1)
    if args.plot:
        _plot(records, args.plot)
    return 1 if any(v.startswith("FAIL") for v in checked.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
