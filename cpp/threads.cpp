#include <atomic>

#include "blas.h"
#include "common.h"

namespace nnc {

static std::atomic<int> g_threads{0};

int threads() {
    int n = g_threads.load(std::memory_order_relaxed);
    return n > 0 ? n : omp_get_max_threads();
}

void set_threads(int n) {
    g_threads.store(n, std::memory_order_relaxed);
    blas_set_threads(n);
}

// Mirrors the target_clones resolver's choice: the same CPU feature levels
// in the same order, so this names the clone every NNC_CLONES kernel runs.
const char* simd_isa() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(NNC_NO_CLONES)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4 (AVX-512)";
    if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3 (AVX2+FMA)";
    return "x86-64 (SSE2)";
#elif defined(__x86_64__)
    return "x86-64 (no run-time dispatch)";
#else
    return "generic";
#endif
}

}  // namespace nnc
