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

// Threads OpenBLAS uses for calls made from the current thread. Kernels that
// call gemm from inside an OpenMP region set it to 1 so the two pools do not
// fight over the same cores; returns the previous value.
int blas_set_threads_local(int n);
void blas_set_threads(int n);
const char* blas_config();
const char* blas_corename();

}  // namespace nnc
