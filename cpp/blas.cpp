#include "blas.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <mutex>
#include <string>

namespace nnc {

static CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }

namespace {
thread_local bool t_blas_single = false;  // this thread asked for single-threaded GEMMs

// From this many multiply-adds on, OpenBLAS threads a GEMM itself. It
// threads much smaller products too, but on a machine whose cores are shared
// its workers (asleep after OPENBLAS_THREAD_TIMEOUT) wake late: the
// ThreeLayerConvNet hidden layer (50, 8192) x (8192, 100), 41M multiply-adds,
// took 1.5-150 ms on 2 threads against 0.9-1.2 ms on one, and made a whole
// 2-thread CIFAR run 2.6x PyTorch's time. The 1024^3 affine (1G) gains 1.9x
// from OpenBLAS's 2 threads.
constexpr double kThreadedGemmMin = double(1 << 27);

// Between kSplitGemmMin and kThreadedGemmMin, nnc splits the GEMM itself:
// one single-threaded OpenBLAS GEMM per nnc thread, over the rows or columns
// of C, on nnc's OpenMP pool, whose workers wake in microseconds. Measured
// side by side at 2 threads, that made the affine layers of the seeds'
// models (e.g. (50, 8192) x (8192, 100)) 1.4-1.8x faster than one thread.
// Below kSplitGemmMin the GEMM runs on the calling thread.
constexpr double kSplitGemmMin = double(1 << 21);

// C[M, N] = op(A) op(B): call(m0, m1, n0, n1) computes the block of C in
// rows [m0, m1) and columns [n0, n1), single-threaded; blocks start at
// multiples of unit_m rows or unit_n columns. threads_itself: call may run
// the whole product threaded (OpenBLAS above kThreadedGemmMin). split_rows(nt):
// whether nt threads split C by rows (else by columns).
template <class S, class F>
void run_gemm(i64 M, i64 N, i64 K, i64 unit_m, i64 unit_n, bool threads_itself, S&& split_rows,
              F&& call) {
    const double macs = (double)M * (double)N * (double)K;
    if (t_blas_single || (threads_itself && macs >= kThreadedGemmMin)) return call(0, M, 0, N);
    const int prev = blas_set_threads_local(1);
    const int nt = threads();
    // In whole units, so the kernels' tiles stay whole.
    const bool by_rows = split_rows(nt);
    const i64 side = by_rows ? M : N, unit = by_rows ? unit_m : unit_n;
    const i64 blocks = (side + unit - 1) / unit;
    if (nt < 2 || macs < kSplitGemmMin || blocks < nt) {
        call(0, M, 0, N);
    } else {
#pragma omp parallel num_threads(nt)
        {
            const int me = omp_get_thread_num();
            const int inner = blas_set_threads_local(1);
            const i64 a = blocks * me / nt * unit;
            const i64 b = std::min(side, blocks * (me + 1) / nt * unit);
            if (by_rows)
                call(a, b, 0, N);
            else
                call(0, M, a, b);
            blas_set_threads_local(inner);
        }
    }
    blas_set_threads_local(prev);
}

std::atomic<int> g_gemm_kernel{(int)GemmKernel::automatic};

// Whether the NNC_CLONES kernels run their x86-64-v4 (AVX-512) clones.
bool cpu_runs_avx512() {
    static const bool v4 = std::string(simd_isa()).rfind("x86-64-v4", 0) == 0;
    return v4;
}

bool packed_gemm_wins() { return cpu_runs_avx512() && !blas_runs_avx512(); }

// Below this many multiply-adds automatic keeps OpenBLAS even where nnc's
// kernel wins: its packing and its per-thread buffers cost about a
// microsecond, which products of (10, 100) x (100, 10) notice (1.03-1.09x
// OpenBLAS's time, fwd+bwd alternating; from (10, 256) x (256, 64), 164K
// multiply-adds, nnc's is 0.71-0.76x).
constexpr double kPackedGemmMin = double(1 << 17);

template <class T>
bool runs_packed(i64 M, i64 N, i64 K, T alpha, T beta) {
    if (alpha != T(1) || (beta != T(0) && beta != T(1))) return false;
    switch ((GemmKernel)g_gemm_kernel.load(std::memory_order_relaxed)) {
        case GemmKernel::nnc: return true;
        case GemmKernel::openblas: return false;
        default: return packed_gemm_wins() && (double)M * (double)N * (double)K >= kPackedGemmMin;
    }
}

// nnc's own kernel, split over nnc's threads in whole register tiles.
template <class T>
void packed_blocks(bool ta, bool tb, i64 M, i64 N, i64 K, const T* A, i64 lda, const T* B, i64 ldb,
                   T beta, T* C, i64 ldc) {
    run_gemm(M, N, K, packed_gemm_rows<T>(), packed_gemm_cols<T>(), false,
             [&](int nt) { return packed_gemm_split_rows<T>(ta, tb, M, N, K, nt); },
             [&](i64 m0, i64 m1, i64 n0, i64 n1) {
                 packed_gemm(ta, tb, m0, m1, n0, n1, K, A, lda, B, ldb, beta != T(0), C, ldc);
             });
}
}  // namespace

// One (sub-)GEMM per block of C, through cblas_sgemm or cblas_dgemm.
template <class T, class Cblas>
void gemm_blocks(Cblas cblas, bool ta, bool tb, i64 M, i64 N, i64 K, T alpha, const T* A,
                 i64 lda, const T* B, i64 ldb, T beta, T* C, i64 ldc) {
    const auto longer_side = [&](int) { return M >= N; };
    run_gemm(M, N, K, 16, 16, true, longer_side, [&](i64 m0, i64 m1, i64 n0, i64 n1) {
        if (m1 <= m0 || n1 <= n0) return;
        cblas(CblasRowMajor, tr(ta), tr(tb), (blasint)(m1 - m0), (blasint)(n1 - n0), (blasint)K,
              alpha, ta ? A + m0 : A + m0 * lda, (blasint)lda, tb ? B + n0 * ldb : B + n0,
              (blasint)ldb, beta, C + m0 * ldc + n0, (blasint)ldc);
    });
}

template <>
void gemm<float>(bool ta, bool tb, i64 M, i64 N, i64 K, float alpha, const float* A, i64 lda,
                 const float* B, i64 ldb, float beta, float* C, i64 ldc) {
    if (runs_packed(M, N, K, alpha, beta))
        return packed_blocks(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
    gemm_blocks(scipy_cblas_sgemm, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <>
void gemm<double>(bool ta, bool tb, i64 M, i64 N, i64 K, double alpha, const double* A, i64 lda,
                  const double* B, i64 ldb, double beta, double* C, i64 ldc) {
    if (runs_packed(M, N, K, alpha, beta))
        return packed_blocks(ta, tb, M, N, K, A, lda, B, ldb, beta, C, ldc);
    gemm_blocks(scipy_cblas_dgemm, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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

void set_gemm_kernel(GemmKernel kernel) {
    g_gemm_kernel.store((int)kernel, std::memory_order_relaxed);
}

const char* gemm_kernel_name() {
    switch ((GemmKernel)g_gemm_kernel.load(std::memory_order_relaxed)) {
        case GemmKernel::nnc: return "nnc";
        case GemmKernel::openblas: return "openblas";
        default: return packed_gemm_wins() ? "nnc" : "openblas";
    }
}

bool blas_runs_avx512() {
    static const bool wide = [] {
        std::string core = blas_corename();
        for (char& ch : core) ch = (char)std::tolower((unsigned char)ch);
        for (const char* name : {"skylakex", "cooperlake", "sapphirerapids"})
            if (core.find(name) != std::string::npos) return true;
        return false;
    }();
    return wide;
}

}  // namespace nnc
