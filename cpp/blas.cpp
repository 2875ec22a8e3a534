#include "blas.h"

#include <cblas.h>

#include <mutex>

namespace nnc {

static CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }

namespace {
thread_local bool t_blas_single = false;  // this thread asked for single-threaded GEMMs

// Below this many multiply-adds a GEMM runs on one thread. OpenBLAS threads
// much smaller products, and on a machine whose cores are shared its workers
// (asleep after OPENBLAS_THREAD_TIMEOUT) wake late: the ThreeLayerConvNet
// hidden layer (50, 8192) x (8192, 100), 41M multiply-adds, took 1.5-150 ms
// on 2 threads against 0.9-1.2 ms on one, and made a whole 2-thread CIFAR
// run 2.6x PyTorch's time. The 1024^3 affine (1G) still gains 1.9x from 2.
constexpr double kThreadedGemmMin = double(1 << 27);

template <class F>
void maybe_single(i64 M, i64 N, i64 K, F&& call) {
    if (t_blas_single || (double)M * (double)N * (double)K >= kThreadedGemmMin) return call();
    const int prev = blas_set_threads_local(1);
    call();
    blas_set_threads_local(prev);
}
}  // namespace

template <>
void gemm<float>(bool ta, bool tb, i64 M, i64 N, i64 K, float alpha, const float* A, i64 lda,
                 const float* B, i64 ldb, float beta, float* C, i64 ldc) {
    maybe_single(M, N, K, [&] {
        scipy_cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), (blasint)M, (blasint)N, (blasint)K, alpha,
                          A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
    });
}

template <>
void gemm<double>(bool ta, bool tb, i64 M, i64 N, i64 K, double alpha, const double* A, i64 lda,
                  const double* B, i64 ldb, double beta, double* C, i64 ldc) {
    maybe_single(M, N, K, [&] {
        scipy_cblas_dgemm(CblasRowMajor, tr(ta), tr(tb), (blasint)M, (blasint)N, (blasint)K, alpha,
                          A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
    });
}

// OpenBLAS's pthreads build has no per-thread count: its
// openblas_set_num_threads_local() sets the process-wide count, and the
// scipy-openblas wheel does not even export it. So nnc keeps the count it
// was asked for (set_threads) and the number of threads that currently want
// single-threaded GEMMs, and OpenBLAS runs on 1 thread while any does.
// Threads of one OpenMP region, or of concurrent calls from several Python
// threads, then never restore a count another thread still relies on.
namespace {
std::mutex g_blas_mutex;
int g_blas_configured = 0;        // 0 until blas_set_threads is first called
int g_blas_single_holders = 0;    // threads inside blas_set_threads_local(1)

void apply_blas_threads_locked() {
    const int want = g_blas_single_holders > 0 ? 1 : g_blas_configured;
    if (want > 0 && want != scipy_openblas_get_num_threads()) scipy_openblas_set_num_threads(want);
}
}  // namespace

int blas_set_threads_local(int n) {
    std::lock_guard<std::mutex> lock(g_blas_mutex);
    const int prev = t_blas_single ? 1 : 0;
    const bool single = n == 1;
    if (single != t_blas_single) {
        t_blas_single = single;
        g_blas_single_holders += single ? 1 : -1;
        apply_blas_threads_locked();
    }
    return prev;
}

void blas_set_threads(int n) {
    std::lock_guard<std::mutex> lock(g_blas_mutex);
    g_blas_configured = n;
    apply_blas_threads_locked();
}
const char* blas_config() { return scipy_openblas_get_config(); }
const char* blas_corename() { return scipy_openblas_get_corename(); }

}  // namespace nnc
