"""Measuring one case: validate the native result against the reference, then
time each implementation (median and spread after warm-up) and record its
peak extra memory."""
import time

import numpy as np

import nnc

from .suite import OPS, public_op, run_op


def measure(fn, budget=0.5, min_reps=5, max_reps=200, warmup=1):
    """Runs ``fn`` ``warmup`` times, then until ``budget`` seconds have passed
    (at least ``min_reps`` times). Returns (median s, relative spread, reps),
    the spread being the interquartile range over the median."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or
                                     time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    return float(med), float((q3 - q1) / med) if med > 0 else 0.0, len(times)


def _status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def peak_extra_bytes(fn):
    """Growth of the process's peak resident memory during one ``fn()`` call
    (Linux: resets the high-water mark through /proc/self/clear_refs), or
    None where that is not available. Memory the allocator kept from earlier
    calls is reused, so call it before timing, on fresh inputs."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _status_kb("VmRSS")
    except (OSError, KeyError):
        return None
    fn()
    return max(0, _status_kb("VmHWM") - base) * 1024


def gemm_roofline(dtype, n=2048, reps=5):
    """GFLOP/s of a large n x n x n GEMM through OpenBLAS (the cpp affine
    kernel with its GEMM kernel set to OpenBLAS's, whichever the ops run;
    its bias add is n^2 of 2n^3 operations). The best of ``reps`` runs: a
    ceiling, so a busy moment must not lower it."""
    from nnc import _nnc
    from nnc.layers import affine_forward

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    z = np.zeros(n, dtype)
    best = float("inf")
    _nnc.set_gemm_kernel("openblas")
    try:
        with nnc.use_backend("cpp"):
            affine_forward(a, b, z)
            for _ in range(reps):
                t0 = time.perf_counter()
                affine_forward(a, b, z)
                best = min(best, time.perf_counter() - t0)
    finally:
        _nnc.set_gemm_kernel("auto")
    return 2.0 * n ** 3 / best / 1e9


def compare(ref, got, dtype):
    """Max error of ``got`` against ``ref``, relative to each output's largest
    magnitude with a floor of 1 (the suite's inputs are O(1), so an output
    that cancels to ~0, like batchnorm's dx for N=2, is held to an absolute
    error instead); returns (ok, worst error)."""
    tol = 1e-10 if dtype == np.float64 else 1e-4
    worst = 0.0
    for r, g in zip(ref, got):
        if r.shape != g.shape:
            return False, float("inf")
        if r.size:
            scale = max(float(np.max(np.abs(r))), 1.0)
            worst = max(worst, float(np.max(np.abs(r.astype(np.float64) - g))) / scale)
    return worst <= tol, worst


def validate(op, shape, dtype):
    """Runs the op (forward and backward) on both backends from identical inputs."""
    res = {}
    for name in ("numpy", "cpp"):
        with nnc.use_backend(name):
            res[name] = run_op(op, op.make(shape, dtype, 0))
    return compare(res["numpy"], res["cpp"], dtype)


def missing(op, backend):
    have = set(nnc.implemented_ops(backend))
    return [n for n in op.needs if n not in have]


def _runner(op, shape, dtype, impl, backward):
    """A zero-arg callable doing the case's work in ``impl`` on fresh inputs.

    A forward op runs as torch's side does: its public function (and its
    backward) on arguments bound once, the backend switched by its context
    variable. ``run_op``'s output handling and a ``use_backend`` block cost
    about 4 us a call, as much again as the small embedding's whole lookup
    (7.96 against 3.7 us), so the bench timed them, not the op. Steps, update
    rules and losses, whose cost is far above that, keep ``run_op``."""
    from nnc.backends import _active, declared_ops

    inp = op.make(shape, dtype, 0)
    if impl == "torch":
        return op.torch(inp, backward)
    fwd = public_op(op.fn) if op.fn else None
    if op.run is None and op.extra is None and fwd.__name__ in declared_ops("forward"):
        args = tuple(inp[k] for k in op.args)
        bwd = public_op(op.bwd) if backward and op.bwd else None
        dout = inp.get("dout")

        def lean():
            token = _active.set(impl)  # what use_backend(impl) does, without its generator
            try:
                out, cache = fwd(*args)
                if bwd is not None:
                    bwd(dout, cache)
            finally:
                _active.reset(token)
        return lean

    def fn():
        with nnc.use_backend(impl):
            run_op(op, inp, backward)
    return fn


def bench_case(case, dtype, kind, impls, budget, min_reps, torch_threads=None):
    """Times one case for one dtype and kind ('fwd', 'fwdbwd' or 'step') over
    ``impls`` (subset of 'numpy', 'cpp', 'torch'). Returns a record dict."""
    op = OPS[case.op]
    backward = kind == "fwdbwd"
    rec = {"case": case.name, "op": case.op, "shape": list(case.shape),
           "dtype": np.dtype(dtype).name, "kind": kind}
    for impl in impls:
        if impl == "torch" and op.torch is None:
            continue
        gaps = [] if impl == "torch" else missing(op, impl)
        if gaps:
            rec[impl] = {"missing": gaps}
            continue
        try:
            fn = _runner(op, case.shape, dtype, impl, backward)
            peak = peak_extra_bytes(fn)
            med, spread, reps = measure(fn, budget=budget, min_reps=min_reps)
        except Exception as e:  # a bench keeps going; the record says what broke
            rec[impl] = {"error": f"{type(e).__name__}: {e}"}
            continue
        rec[impl] = {"median_ms": med * 1e3, "spread": spread, "reps": reps,
                     "peak_extra_mb": None if peak is None else peak / 2**20}
    cpp = rec.get("cpp", {}).get("median_ms")
    if cpp:
        if op.flops:
            f = op.flops(case.shape) * (1.0 + op.backward_flops if backward else 1.0)
            rec["gflops"] = f / (cpp * 1e-3) / 1e9
        if op.nbytes:
            b = op.nbytes(case.shape, np.dtype(dtype).itemsize) * (2.5 if backward else 1.0)
            rec["gbytes_per_s"] = b / (cpp * 1e-3) / 1e9
        for other in ("numpy", "torch"):
            t = rec.get(other, {}).get("median_ms")
            if t:
                rec[f"speedup_vs_{other}"] = t / cpp
    return rec
