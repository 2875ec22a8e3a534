#include "blas.h"

#include <cblas.h>

namespace nnc {

static CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }

template <>
void gemm<float>(bool ta, bool tb, i64 M, i64 N, i64 K, float alpha, const float* A, i64 lda,
                 const float* B, i64 ldb, float beta, float* C, i64 ldc) {
    scipy_cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), (blasint)M, (blasint)N, (blasint)K, alpha, A,
                      (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

template <>
void gemm<double>(bool ta, bool tb, i64 M, i64 N, i64 K, double alpha, const double* A, i64 lda,
                  const double* B, i64 ldb, double beta, double* C, i64 ldc) {
    scipy_cblas_dgemm(CblasRowMajor, tr(ta), tr(tb), (blasint)M, (blasint)N, (blasint)K, alpha, A,
                      (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}

int blas_set_threads_local(int n) { return scipy_openblas_set_num_threads_local(n); }
void blas_set_threads(int n) { scipy_openblas_set_num_threads(n); }
const char* blas_config() { return scipy_openblas_get_config(); }
const char* blas_corename() { return scipy_openblas_get_corename(); }

}  // namespace nnc
