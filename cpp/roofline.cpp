// The machine's limits, which the bench's %peak and %bw columns divide by
// (python/nnc/bench/roofline.py): the FMA throughput of nnc's thread pool on
// register-resident data, and the memory bandwidth of two STREAM kernels.
//
// FMA peak. Peak throughput needs (FMA latency) x (FMA ports) independent
// FMAs in flight: 4 cycles x 2 ports = 8 on Skylake-X and its successors, 5 x
// 2 = 10 on Haswell. Each variant runs more independent chains than that,
// each a vector register, and still leaves registers for the two constants:
//   x86-64-v4: 16 zmm chains (of 32 registers), 32-bit 16 lanes / 64-bit 8
//   x86-64-v3: 12 ymm chains (of 16), AVX2 + FMA
//   baseline:  12 xmm chains, SSE2: no FMA instruction, so a mul and an add
// chosen at run time by the CPU feature levels the NNC_CLONES resolvers use
// (so simd_isa() names the variant that ran; no -march=native, wheels stay
// portable). An FMA or a mul+add counts 2 flops per lane.
// The vectors are GCC vector extensions, and `acc * x + y` becomes one FMA
// only by GCC's default -ffp-contract=fast (the GNU dialect CMake compiles
// with), so check the disassembly after touching this file or the flags
// (objdump -d --no-show-raw-insn build/dev/_nnc*.so, then the runs of
// vfmadd). With GCC 12 the loops are exactly, per iteration:
//   v4:       16 x vfmadd132ps %zmm1,%zmm0,%zmmN (pd for float64), N = 2..17
//   v3:       12 x vfmadd132ps %ymm1,%ymm0,%ymmN
//   baseline: 12 x mulps %xmm1 + 12 x addps %xmm0
// plus add/cmp/jne of the counter: the widest registers, no load, no spill.
//
// Stream bandwidth. copy a = b and triad a = b + s c over arrays the caller
// sizes well past the last-level cache, counted as STREAM counts: the bytes
// the loop reads plus the bytes it writes (copy 2, triad 3 per element).
// The loops use ordinary stores, so the hardware also reads each line of `a`
// before writing it (write-allocate): the memory really moves 3/2 (copy) and
// 4/3 (triad) of the counted bytes. nnc's kernels use ordinary stores too and
// the bench counts their bytes the same way, so %bw compares like with like.
//
// The bindings cap their repetition counts: tests call every binding with
// random and extreme ints, and no call may run for more than about a second.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>

#include "bind.h"

namespace nnc {
namespace {

// --- FMA peak ------------------------------------------------------------------

template <class T, int Bytes>
struct Vec {
    typedef T type __attribute__((vector_size(Bytes)));
};

// K independent chains acc = acc * x + y on Bytes-wide vectors, iters times;
// returns the lanes' sum, which the caller keeps, and adds the flops done to
// *flops (2 per lane per FMA, or per mul + add). Each chain and each lane
// starts from its own value, so no two compute the same thing and none can
// be merged. With 0 < x < 1 every chain converges to y / (1 - x) = 1: no
// overflow and no denormal (which would slow the FMA units down).
// always_inline: it is compiled into each variant below, with that variant's
// target ISA (called, it would be baseline code).
template <class T, int Bytes, int K>
[[gnu::always_inline]] inline T fma_chains(double* flops, i64 iters) {
    using V = typename Vec<T, Bytes>::type;
    constexpr int L = Bytes / sizeof(T);
    const V x = V{} + T(0.999), y = V{} + T(0.001);
    V acc[K];
    for (int k = 0; k < K; k++)
        for (int l = 0; l < L; l++) acc[k][l] = T(1) + T(k * L + l) / T(K * L);
    for (i64 i = 0; i < iters; i++) {
#pragma GCC unroll 32
        for (int k = 0; k < K; k++) acc[k] = acc[k] * x + y;
    }
    V s = acc[0];
    for (int k = 1; k < K; k++) s += acc[k];
    T r = 0;
    for (int l = 0; l < L; l++) r += s[l];
    *flops += 2.0 * K * L * (double)iters;
    return r;
}

// One thread's chains in each ISA variant: a real call (once per thread per
// measurement), so each is compiled for its own target with the chains
// inlined into it.
template <class T>
T chains_baseline(double* flops, i64 iters) {
    return fma_chains<T, 16, 12>(flops, iters);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(NNC_NO_CLONES)
#define NNC_FMA_DISPATCH 1
template <class T>
__attribute__((target("arch=x86-64-v4"))) T chains_v4(double* flops, i64 iters) {
    return fma_chains<T, 64, 16>(flops, iters);
}

template <class T>
__attribute__((target("arch=x86-64-v3"))) T chains_v3(double* flops, i64 iters) {
    return fma_chains<T, 32, 12>(flops, iters);
}
#endif

// Every thread of nnc's pool runs the widest variant's chains at once (the
// peak of the whole pool, as the ops use it): *sum gets their results,
// *rate the sum of the threads' rates in flop/s, each thread timed from its
// own start to its own end. FMA units belong to a core, so the rates add up
// to what the pool does when each thread has a core: the CPU's limit, which
// is what %peak divides by. A region-wide time measures instead how many
// cores the OS gave the pool at that moment: on the shared 2-core machine at
// a load of 3 the threads mostly ran one after the other on whichever core
// was free, and the region-wide rate was 134-141 GFLOP/s against 272-288 for
// the threads' own rates, in the same runs. The barrier starts the threads
// together, so threads that share a core (SMT) overlap and each measures its
// share; only when the OS runs them one at a time on such a pair would the
// sum count the core twice.
template <class T>
void fma_peak(T* sum, double* rate, i64 iters) {
    T (*chains)(double*, i64) = chains_baseline<T>;
#ifdef NNC_FMA_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) chains = chains_v4<T>;
    else if (__builtin_cpu_supports("x86-64-v3")) chains = chains_v3<T>;
#endif
    T s = 0;
    double r = 0;
#pragma omp parallel num_threads(threads()) reduction(+ : s, r)
    {
        double f = 0;
#pragma omp barrier
        const double t0 = omp_get_wtime();
        s += chains(&f, iters);
        r += f / std::max(omp_get_wtime() - t0, 1e-9);
    }
    *sum = s;
    *rate = r;
}

// --- stream bandwidth -------------------------------------------------------------

// a = b
template <class T>
NNC_CLONES void stream_copy(T* a, const T* b, i64 n) {
#pragma omp parallel for simd num_threads(threads()) schedule(static)
    for (i64 i = 0; i < n; i++) a[i] = b[i];
}

// a = b + s c
template <class T>
NNC_CLONES void stream_triad(T* a, const T* b, const T* c, double s, i64 n) {
    const T t = (T)s;
#pragma omp parallel for simd num_threads(threads()) schedule(static)
    for (i64 i = 0; i < n; i++) a[i] = b[i] + t * c[i];
}

// --- limits and timing ------------------------------------------------------------

// About 0.2 s per call on AVX-512 at 3 GHz (8 cycles per iteration), 0.3 s
// for the baseline variant.
constexpr i64 kMaxIters = i64(1) << 26;
constexpr i64 kMaxReps = 100;
// Counted bytes over all repetitions: about a second at 16-32 GB/s.
constexpr double kMaxStreamBytes = double(i64(1) << 34);

// The chains' results end here, so the loops that make them stay live code.
std::atomic<double> g_sink{0.0};

double seconds_since(std::chrono::steady_clock::time_point t0) {
    std::chrono::duration<double> d = std::chrono::steady_clock::now() - t0;
    return std::max(d.count(), 1e-9);
}

template <class T>
double fma_gflops(i64 iters) {
    if (iters < 1 || iters > kMaxIters)
        fail_value("iters must be in [1, " + std::to_string(kMaxIters) + "], got " +
                   std::to_string(iters));
    T sum = 0;
    double rate = 0;
    {
        nb::gil_scoped_release nogil;
        fma_peak(&sum, &rate, iters);
    }
    g_sink.store((double)sum, std::memory_order_relaxed);
    return rate / 1e9;
}

void check_reps(i64 reps, double bytes_per_rep) {
    if (reps < 1 || reps > kMaxReps)
        fail_value("reps must be in [1, " + std::to_string(kMaxReps) + "], got " +
                   std::to_string(reps));
    if (bytes_per_rep * (double)reps > kMaxStreamBytes)
        fail_value("reps * bytes per pass must be at most 2**34 (about a second of memory "
                   "traffic), got " + std::to_string(reps) + " passes of " +
                   std::to_string((i64)bytes_per_rep) + " bytes");
}

// The best of reps timed passes of pass(), as GB/s of `bytes` each.
template <class F>
double best_gbytes_per_s(i64 reps, double bytes, F&& pass) {
    double best = 1e300;
    nb::gil_scoped_release nogil;
    for (i64 r = 0; r < reps; r++) {
        auto t0 = std::chrono::steady_clock::now();
        pass();
        best = std::min(best, seconds_since(t0));
    }
    return bytes / best / 1e9;
}

}  // namespace

void bind_roofline(nb::module_& m) {
    m.def("fma_peak_f32", &fma_gflops<float>, nb::arg("iters"),
          "GFLOP/s of float32 FMAs on every thread of nnc's pool at once: each thread runs "
          "iters iterations of independent register-resident FMA chains on the widest vectors "
          "the CPU has (simd_isa() names the variant), 2 flops per lane per FMA; the sum of "
          "the threads' rates, each timed on its own");
    m.def("fma_peak_f64", &fma_gflops<double>, nb::arg("iters"),
          "fma_peak_f32 in float64");
    m.def("stream_copy", [](InOut a, In b, std::int64_t reps) {
        const DType dt = float_dtype({{"a", a.dtype()}, {"b", b.dtype()}});
        check_same_shape(a, "a", b, "b");
        check_nonempty((i64)a.size(), "a", "must not be empty");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            const i64 n = (i64)a.size();
            const double bytes = 2.0 * sizeof(T) * (double)n;
            check_reps(reps, bytes);
            return best_gbytes_per_s(reps, bytes, [&] { stream_copy(mut<T>(a), ptr<T>(b), n); });
        });
    }, nb::arg("a").noconvert(), nb::arg("b"), nb::arg("reps"),
       "Memory bandwidth of a = b in GB/s, the best of reps passes; counts the bytes read "
       "and written (2 per element's size), not the write-allocate reads of a");
    m.def("stream_triad", [](InOut a, In b, In c, double s, std::int64_t reps) {
        const DType dt = float_dtype({{"a", a.dtype()}, {"b", b.dtype()}, {"c", c.dtype()}});
        check_same_shape(a, "a", b, "b");
        check_same_shape(a, "a", c, "c");
        check_nonempty((i64)a.size(), "a", "must not be empty");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            const i64 n = (i64)a.size();
            const double bytes = 3.0 * sizeof(T) * (double)n;
            check_reps(reps, bytes);
            return best_gbytes_per_s(reps, bytes, [&] {
                stream_triad(mut<T>(a), ptr<T>(b), ptr<T>(c), s, n);
            });
        });
    }, nb::arg("a").noconvert(), nb::arg("b"), nb::arg("c"), nb::arg("s"), nb::arg("reps"),
       "Memory bandwidth of a = b + s * c in GB/s, the best of reps passes; counts the bytes "
       "read and written (3 per element's size), not the write-allocate reads of a");
}

}  // namespace nnc
