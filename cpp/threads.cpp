#include <atomic>
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif

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

// By vendor, family and model (cpuid leaves 0 and 1): no feature flag tells
// how wide the FMA units are.
struct CpuModel {
    bool amd = false, hygon = false;
    unsigned family = 0, model = 0;
};
static CpuModel cpu_model() {
    CpuModel m;
#if defined(__x86_64__) && defined(__GNUC__)
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return m;
    m.amd = b == 0x68747541;    // "Auth" of AuthenticAMD
    m.hygon = b == 0x6f677948;  // "Hygo" of HygonGenuine
    if (!(m.amd || m.hygon) || !__get_cpuid(1, &a, &b, &c, &d)) return m;
    m.family = ((a >> 8) & 0xf) + ((a >> 20) & 0xff);
    m.model = ((a >> 4) & 0xf) | (((a >> 16) & 0xf) << 4);
#endif
    return m;
}

// Zen 2 (family 17h from model 30h) and later have full-width FMA units.
bool fma_splits_256bit() {
    static const bool split = [] {
        const CpuModel m = cpu_model();
        return (m.amd && (m.family == 0x15 || (m.family == 0x17 && m.model < 0x30))) ||
               (m.hygon && m.family == 0x18);
    }();
    return split;
}

// Zen 4 (family 19h) runs AVX-512 on 256-bit units, and so do the mobile
// Zen 5 parts (family 1Ah, models 20h-2Fh and 60h-7Fh); the Zen 5 of servers
// and desktops has 512-bit units.
bool fma_splits_512bit() {
    static const bool split = [] {
        const CpuModel m = cpu_model();
        return m.amd && (m.family == 0x19 ||
                         (m.family == 0x1a && ((m.model >= 0x20 && m.model < 0x30) ||
                                               (m.model >= 0x60 && m.model < 0x80))));
    }();
    return split;
}

}  // namespace nnc
