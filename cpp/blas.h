// The single BLAS wrapper: row-major GEMM on float/double through OpenBLAS.
#pragma once
#include "common.h"

namespace nnc {

// C[M,N] = alpha * op(A) * op(B) + beta * C, row-major, op = transpose when
// trans_* is true. lda/ldb/ldc are row strides. The caller has checked that
// every dimension fits in OpenBLAS's 32-bit blasint.
template <class T>
void gemm(bool trans_a, bool trans_b, i64 M, i64 N, i64 K, T alpha, const T* A, i64 lda,
          const T* B, i64 ldb, T beta, T* C, i64 ldc);

// Which kernel gemm runs: automatic takes nnc's own (gemm.cpp) on CPUs with
// AVX-512 whose OpenBLAS runs older kernels, for products of 2^17
// multiply-adds and more, where it measured 1.2-1.6x faster, and OpenBLAS
// everywhere else; the others force one (tests, benches).
// nnc's own kernel computes only alpha = 1 and beta in {0, 1} (all nnc uses);
// other calls go to OpenBLAS whatever the setting.
enum class GemmKernel : int { automatic = 0, openblas = 1, nnc = 2 };
void set_gemm_kernel(GemmKernel kernel);
// The kernel automatic runs on this machine ("nnc" or "openblas"), or the one forced.
const char* gemm_kernel_name();

// nnc's own kernel (gemm.cpp) on the calling thread, for the block of C in
// rows [m0, m1) and columns [n0, n1) of the whole product:
// C = (or += when accumulate) op(A) op(B). Blocks that start at multiples of
// packed_gemm_rows / packed_gemm_cols keep its register tiles whole.
template <class T>
void packed_gemm(bool trans_a, bool trans_b, i64 m0, i64 m1, i64 n0, i64 n1, i64 K, const T* A,
                 i64 lda, const T* B, i64 ldb, bool accumulate, T* C, i64 ldc);
// Whether nt threads should split a packed GEMM by rows of C (else by columns).
template <class T>
bool packed_gemm_split_rows(bool trans_a, bool trans_b, i64 M, i64 N, i64 K, int nt);
template <class T>
i64 packed_gemm_rows();
template <class T>
i64 packed_gemm_cols();

// blas_set_threads_local(1) asks for single-threaded GEMMs from the calling
// thread, so OpenMP and OpenBLAS do not fight over the same cores inside a
// parallel region; it returns the previous request (1, or 0 for none) to be
// passed back afterwards: prev = blas_set_threads_local(1); ...;
// blas_set_threads_local(prev). OpenBLAS (pthreads build) has only one
// process-wide count, so it runs single-threaded while any thread holds a
// request; blas_set_threads(n) sets the count used otherwise.
int blas_set_threads_local(int n);
void blas_set_threads(int n);
const char* blas_config();
const char* blas_corename();
// Whether OpenBLAS runs its AVX-512 kernels (core SkylakeX, Cooperlake or
// SapphireRapids). An AVX-512 CPU can still get AVX2 ones: an OpenBLAS that
// does not know the CPU, or OPENBLAS_CORETYPE set to an older core.
bool blas_runs_avx512();

}  // namespace nnc
