"""``nnc sweep SPEC.toml``: run a sweep from the shell.

    nnc sweep SPEC.toml                                   # serial, 1 thread
    nnc sweep SPEC.toml --runner local --workers 2 --threads-per-worker 1
    nnc sweep SPEC.toml --runner address --address tcp://host:8786
    python -m nnc.sweep SPEC.toml ...                     # the same

Results go to ``--out DIR`` (default ``runs/sweep-<spec name>``): trials.jsonl and
best_model.npz. Running the same command again resumes an interrupted sweep.
A mistake (bad spec, missing file, no Dask, unreachable scheduler) prints one
line and exits non-zero.
"""
import argparse
import importlib.util
import os
import sys

EXIT_USAGE = 2  # as argparse: the command or the spec is wrong
EXIT_FAILED = 1  # the sweep could not run or finish (scheduler, timeout)
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


def _parser():
    p = argparse.ArgumentParser(
        prog="nnc sweep", description="Run a hyperparameter sweep from a TOML spec; run it "
        "again to resume.")
    p.add_argument("spec", metavar="SPEC.toml", help="the sweep spec")
    p.add_argument("--runner", choices=("serial", "local", "address"),
                   help="where trials run (default: address if --address is given, else serial)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="worker processes of --runner local (default: cores // threads)")
    p.add_argument("--threads-per-worker", type=int, default=1, metavar="T",
                   help="native threads of each trial, on every runner (default 1)")
    p.add_argument("--address", metavar="tcp://HOST:PORT",
                   help="the Dask scheduler of --runner address")
    p.add_argument("--out", metavar="DIR",
                   help="output directory (default: runs/sweep-<spec name>)")
    p.add_argument("--max-trials", type=int, metavar="N",
                   help="run at most N new trials, then stop (resume later)")
    p.add_argument("--retries", type=int, default=1,
                   help="Dask retries of a trial whose task raised (default 1)")
    p.add_argument("--top", type=int, default=10, metavar="K",
                   help="rows of the results table (default 10)")
    p.add_argument("--plot", action="store_true", help="also save DIR/sweep.png (matplotlib)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _fail(msg, code):
    print(f"nnc sweep: error: {msg}", file=sys.stderr)
    return code


def main(argv=None):
    """Run ``nnc sweep`` with ``argv`` (the arguments after ``nnc sweep``;
    default ``sys.argv[1:]``). Returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Accept the subcommand name too, so a dispatcher may pass argv[1:] of
    # `nnc sweep ...` or argv[2:].
    if argv[:1] == ["sweep"] and not os.path.isfile("sweep"):
        argv = argv[1:]
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # --help, or a usage error argparse has printed
        return int(e.code or 0)

    from . import results, runners
    from .tomlfile import load_toml

    if args.runner == "address" and args.address is None:
        return _fail("--runner address needs --address tcp://HOST:PORT", EXIT_USAGE)
    if args.address is not None and args.runner not in (None, "address"):
        return _fail(f"--address is for --runner address, not --runner {args.runner}", EXIT_USAGE)
    for name in ("workers", "threads_per_worker", "max_trials", "top"):
        v = getattr(args, name)
        if v is not None and v < 1:
            return _fail(f"--{name.replace('_', '-')} must be >= 1, got {v}", EXIT_USAGE)
    if args.retries < 0:
        return _fail(f"--retries must be >= 0, got {args.retries}", EXIT_USAGE)
    if args.workers is not None and args.runner != "local":
        return _fail("--workers is for --runner local (an address cluster has its own workers)",
                     EXIT_USAGE)

    if args.plot and importlib.util.find_spec("matplotlib") is None:
        return _fail("--plot needs matplotlib: pip install matplotlib", EXIT_USAGE)

    try:
        spec = load_toml(args.spec)
    except FileNotFoundError:
        return _fail(f"no such spec file: {args.spec}", EXIT_USAGE)
    except (ValueError, ImportError, OSError) as e:
        return _fail(str(e), EXIT_USAGE)
    out = args.out or os.path.join("runs", f"sweep-{spec.name}")

    try:
        records = runners.run(
            spec, runner=args.runner, n_workers=args.workers,
            threads_per_worker=args.threads_per_worker, address=args.address, out=out,
            max_trials=args.max_trials, retries=args.retries, progress=not args.no_progress)
    except KeyboardInterrupt:
        done = len(results.load(out)) if os.path.exists(os.path.join(out, results.RECORDS_FILE)) \
            else 0
        print(f"nnc sweep: interrupted; {done} of {len(spec)} trials are in {out}; run the same "
              "command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, FileNotFoundError, ImportError) as e:
        return _fail(str(e), EXIT_USAGE)
    except (runners.SweepStopped, OSError) as e:  # OSError: connecting to the scheduler
        return _fail(f"{type(e).__name__}: {e}" if isinstance(e, OSError) else str(e),
                     EXIT_FAILED)

    print(results.table(records, args.top))
    missing = len(spec) - len(records)
    failed = sum(r["status"] != "ok" for r in records)
    print(f"\n{len(records)} of {len(spec)} trials recorded in {out}"
          + (f", {failed} failed" if failed else "")
          + (f"; {missing} still to run (run again to resume)" if missing else ""))
    if os.path.exists(os.path.join(out, results.MODEL_FILE)):
        print(f"best model: {os.path.join(out, results.MODEL_FILE)}")
    if args.plot and records:
        try:
            path = os.path.join(out, "sweep.png")
            results.plot(records, path)
            print(f"plot: {path}")
        except ImportError as e:
            return _fail(str(e), EXIT_FAILED)
    return 0
