"""The machine's limits that the bench's %peak and %bw columns divide by,
measured by nnc's own microbenchmarks (cpp/roofline.cpp):

- the FMA peak of nnc's thread pool in float32 and float64: every thread runs
  independent register-resident FMA chains on the widest vectors the CPU has,
  and the threads' own rates add up (what the pool does when each thread has
  a core);
- the STREAM copy (a = b) and triad (a = b + s c) bandwidth, float64 arrays
  that together are four times the last-level cache, bytes read + written
  (write-allocate not counted, as STREAM and the bench's GB/s count them).

Each is the best of several runs: a ceiling, so a moment when other
processes hold a core must not lower it. ``measure()`` runs them once per thread count
and keeps the result for the rest of the process.

    python -m nnc.bench.roofline               # at 1 thread and at nnc's thread count
    python -m nnc.bench.roofline --threads 2 --json roof.json
"""
import argparse
import glob
import json
import os
import sys
import time

import numpy as np

# Per thread and run: 2**17 iterations of 16 FMAs, about 0.4 ms at 2.9 GHz
# with AVX-512; runs for FMA_BUDGET seconds per dtype. Short runs, many of
# them: on the shared 2-core machine at a load of 7, the best 12 ms run got
# 103 GFLOP/s (float32, 1 thread) where runs of 0.7-3 ms got 177-178: short
# runs find the moments when a thread has its core.
FMA_ITERS = 1 << 17
FMA_BUDGET = 0.25
STREAM_REPS = 5
# Arrays are at least this large, whatever the cache size says: a VM can
# report no L3, or the host's, which other guests share.
STREAM_MIN_ARRAY_BYTES = 64 << 20

_cache = {}


def _nnc():
    from nnc import _nnc

    return _nnc


def fma_peak(dtype, budget=FMA_BUDGET, iters=FMA_ITERS, min_reps=5):
    """GFLOP/s of float32 or float64 FMAs on every thread of nnc's pool at
    once (2 flops per lane per FMA, the threads' own rates added up): the
    best run of ``iters`` iterations per thread over ``budget`` seconds (at
    least ``min_reps`` runs)."""
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    fn = _nnc().fma_peak_f32 if dt == np.float32 else _nnc().fma_peak_f64
    fn(iters)   # wakes the pool's threads and the wide vector units
    best, reps, end = 0.0, 0, time.perf_counter() + budget
    while reps < min_reps or time.perf_counter() < end:
        best = max(best, fn(iters))
        reps += 1
    return best


def last_level_cache_bytes():
    """The size of CPU 0's largest cache (Linux sysfs; the L3 on x86), or None."""
    sizes = []
    for d in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            with open(os.path.join(d, "size")) as f:
                s = f.read().strip()
        except OSError:
            continue
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1:].upper(), 1)
        try:
            sizes.append(int(s.rstrip("KkMmGg")) * mult)
        except ValueError:
            continue
    return max(sizes) if sizes else None


def stream_elements():
    """float64 elements per array: the three arrays together are four times
    the last-level cache (and each at least STREAM_MIN_ARRAY_BYTES), but at
    most a quarter of the memory available now."""
    llc = last_level_cache_bytes() or 0
    per_array = max(4 * llc // 3, STREAM_MIN_ARRAY_BYTES)
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        per_array = min(per_array, avail // 12)
    except (OSError, ValueError, AttributeError):
        pass
    return max(per_array // 8, 1)


def stream_bandwidth(reps=STREAM_REPS, n=None):
    """{'copy': GB/s, 'triad': GB/s, 'array_mb': each array's size}, each
    the best of ``reps`` passes over ``n`` float64 elements per array."""
    n = stream_elements() if n is None else n
    nat = _nnc()
    a = np.zeros(n)
    b = np.ones(n)
    c = np.full(n, 2.0)
    a[:] = 0.0        # np.zeros maps pages lazily: fault them in before the timing
    # No more passes than the binding allows (about a second of traffic each).
    passes = max(1, min(reps, int(2 ** 34 // (3 * a.nbytes))))
    copy = nat.stream_copy(a, b, passes)
    triad = nat.stream_triad(a, b, c, 3.0, passes)
    return {"copy": copy, "triad": triad, "array_mb": a.nbytes / 2 ** 20}


def measure(quick=False):
    """The roofline at nnc's current thread count, measured the first time
    and cached for the process: {'threads', 'simd', 'peak_gflops':
    {'float32', 'float64'}, 'stream_gbytes_per_s': {'copy', 'triad'},
    'stream_array_mb'}. ``quick`` takes fewer repetitions (a quick result
    is replaced when a full one is asked for)."""
    nat = _nnc()
    threads = nat.get_num_threads()
    hit = _cache.get(threads)
    if hit is not None and (quick or not hit["quick"]):
        return hit
    scale = 2 if quick else 1
    bw = stream_bandwidth(reps=max(2, STREAM_REPS // scale))
    roof = {
        "threads": threads,
        "simd": nat.simd_isa(),
        "peak_gflops": {d: fma_peak(d, budget=FMA_BUDGET / scale)
                        for d in ("float32", "float64")},
        "stream_gbytes_per_s": {"copy": bw["copy"], "triad": bw["triad"]},
        "stream_array_mb": bw["array_mb"],
        "quick": quick,
    }
    _cache[threads] = roof
    return roof


def describe(roof):
    """One line: FMA peaks and stream bandwidth."""
    p, s = roof["peak_gflops"], roof["stream_gbytes_per_s"]
    return (f"FMA peak float32 {p['float32']:.0f}, float64 {p['float64']:.0f} GFLOP/s"
            f" | stream copy {s['copy']:.1f}, triad {s['triad']:.1f} GB/s")


def main(argv=None):
    import nnc

    p = argparse.ArgumentParser(prog="python -m nnc.bench.roofline", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=None,
                   help="thread counts to measure (default: 1 and nnc's count)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = p.parse_args(argv)
    if "cpp" not in nnc.available_backends():
        sys.exit("the roofline needs the cpp backend; build_info: %s" % nnc.build_info())
    before = nnc.get_num_threads()
    counts = args.threads or sorted({1, before})
    llc = last_level_cache_bytes()
    print(f"nnc {nnc.__version__} | simd {_nnc().simd_isa()} | last-level cache "
          f"{'unknown' if llc is None else f'{llc / 2 ** 20:.0f} MiB'} | stream arrays "
          f"{stream_elements() * 8 / 2 ** 20:.0f} MiB x 3")
    results = []
    try:
        for t in counts:
            nnc.set_num_threads(t)
            roof = measure()
            results.append(roof)
            print(f"{t} thread{'s' if t > 1 else ''}: {describe(roof)}")
    finally:
        nnc.set_num_threads(before)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
