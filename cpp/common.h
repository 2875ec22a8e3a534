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
// for every stride-1 geometry (conv.cpp; its backward is im2col's).
enum class ConvAlgo : int { automatic = 0, im2col = 1, winograd = 2, direct = 3 };

// The ISA that target_clones picked on this CPU ("x86-64-v3", ...).
const char* simd_isa();

}  // namespace nnc

// Elementwise loops are compiled three times and the loader picks the best
// clone for the running CPU, so wheels stay portable while getting AVX2/FMA
// or AVX-512. Functions using it must have internal linkage (anonymous
// namespace or static), or gcc 12 exports their IFUNC resolvers.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(NNC_NO_CLONES)
#define NNC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define NNC_CLONES
#endif
