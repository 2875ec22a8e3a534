#include "affine.h"

#include <algorithm>
#include <vector>

#include "blas.h"

namespace nnc {
namespace {

template <class T>
NNC_CLONES void add_bias_rows(T* out, const T* b, i64 N, i64 M) {
#pragma omp parallel for num_threads(threads()) schedule(static) if (N * M > 32768)
    for (i64 n = 0; n < N; n++) {
        T* row = out + n * M;
#pragma omp simd
        for (i64 m = 0; m < M; m++) row[m] += b[m];
    }
}

// Column blocks keep the accumulators in L1 and give each thread its own
// columns, so the reduction needs no atomics. Accumulating in double keeps
// float32 sums over large batches accurate.
template <class T>
NNC_CLONES void sum_rows_impl(T* db, const T* g, i64 N, i64 M) {
    const i64 BM = 512;
    const i64 nblocks = (M + BM - 1) / BM;
#pragma omp parallel for num_threads(threads()) schedule(static) if (N * M > 32768 && nblocks > 1)
    for (i64 blk = 0; blk < nblocks; blk++) {
        const i64 m0 = blk * BM, m1 = std::min(M, m0 + BM);
        double acc[BM];
        for (i64 m = m0; m < m1; m++) acc[m - m0] = 0.0;
        for (i64 n = 0; n < N; n++) {
            const T* row = g + n * M;
#pragma omp simd
            for (i64 m = m0; m < m1; m++) acc[m - m0] += (double)row[m];
        }
        for (i64 m = m0; m < m1; m++) db[m] = (T)acc[m - m0];
    }
}

}  // namespace

template <class T>
void sum_rows(T* db, const T* g, i64 N, i64 M) {
    sum_rows_impl(db, g, N, M);
}

template <class T>
void affine_forward(T* out, const T* x, const T* w, const T* b, i64 N, i64 D, i64 M) {
    if (D == 0) {
        std::fill(out, out + N * M, T(0));
    } else {
        gemm<T>(false, false, N, M, D, T(1), x, D, w, M, T(0), out, M);
    }
    add_bias_rows(out, b, N, M);
}

template <class T>
void affine_backward(T* dx, T* dw, T* db, const T* dout, const T* x, const T* w, i64 N, i64 D,
                     i64 M) {
    if (M == 0 || N == 0) {
        std::fill(dx, dx + N * D, T(0));
        std::fill(dw, dw + D * M, T(0));
    } else if (D > 0) {
        gemm<T>(false, true, N, D, M, T(1), dout, M, w, M, T(0), dx, D);
        gemm<T>(true, false, D, M, N, T(1), x, D, dout, M, T(0), dw, M);
    }
    sum_rows_impl(db, dout, N, M);
}

#define NNC_INSTANTIATE(T)                                                                      \
    template void affine_forward<T>(T*, const T*, const T*, const T*, i64, i64, i64);         \
    template void affine_backward<T>(T*, T*, T*, const T*, const T*, const T*, i64, i64, i64); \
    template void sum_rows<T>(T*, const T*, i64, i64);
NNC_INSTANTIATE(float)
NNC_INSTANTIATE(double)

}  // namespace nnc
