// Shared by every kernel file: sizes, the thread knob, and the SIMD dispatch macro.
#pragma once
#include <cstdint>
#include <omp.h>

namespace nnc {

using i64 = std::int64_t;

// nnc's one thread count. omp_set_num_threads() only affects the calling
// thread, so every parallel region passes num_threads(nnc::threads()) instead.
int threads();
void set_threads(int n);

// The conv algorithm a caller asks for (the conv bindings' `algo`, which
// nnc.set_conv_algorithm sets): automatic takes Winograd where the size rule
// of winograd.cpp says it is faster than im2col, winograd forces it for every
// geometry it can do, im2col never takes it, direct takes the direct forward
// (NCHW: every stride-1 geometry; NHWC: C <= 4) and the direct dw for every
// stride-1 geometry, with im2col's dx.
enum class ConvAlgo : int { automatic = 0, im2col = 1, winograd = 2, direct = 3 };

// automatic's rule for the direct dw of a stride-1 conv, in both layouts
// (conv.cpp, conv_nhwc.cpp): a kernel of at least 9 taps, 48 taps in all
// (below, the NCHW kernel's transpose of dout costs more than it saves), and
// C*F up to limit, where it beat the other paths (benches/README.md, "The
// direct dw beyond the first layer").
inline bool direct_dw_pays(i64 C, i64 F, i64 kernel_taps, i64 limit) {
    return kernel_taps >= 9 && C * kernel_taps >= 48 && C * F <= limit;
}

// The direct forwards' per-thread window of input rows (conv.cpp,
// conv_nhwc.cpp) stays within this many bytes, so it is read back from L2
// (many channels of large images would make it tens of MB).
constexpr i64 kDirectWindowBytes = 512 * 1024;

// The ISA that target_clones picked on this CPU ("x86-64-v3", ...).
const char* simd_isa();

// Whether this CPU runs each 256-bit FMA as two 128-bit halves (AMD's
// Excavator, Zen and Zen+, Hygon's Dhyana): AVX2 code, but half the FMA rate
// per instruction, which moves the conv kernels' break-even points.
bool fma_splits_256bit();
// Whether this CPU runs each 512-bit FMA on 256-bit units (Zen 4, mobile Zen
// 5): AVX-512 code at the FMA rate of AVX2, so the loads of a register block
// weigh less beside its FMAs.
bool fma_splits_512bit();

}  // namespace nnc

// Elementwise loops are compiled three times and the loader picks the best
// clone for the running CPU, so wheels stay portable while getting AVX2/FMA
// or AVX-512. Functions using it must have internal linkage (anonymous
// namespace or static), or gcc 12 exports their IFUNC resolvers.
//
// Their `parallel for simd` loops take `if (parallel: n > ...)`: a bare
// `if` applies to the simd construct too (OpenMP 5), and GCC then compiles
// every loop below the threshold as scalar code. That made a (100, 100)
// relu backward a branchy scalar loop, 40-53 us inside a training step
// instead of 4-5.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(NNC_NO_CLONES)
#define NNC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define NNC_CLONES
#endif
