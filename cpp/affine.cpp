// Fully connected layer: out[N,M] = x[N,D] @ w[D,M] + b[M] through OpenBLAS,
// the bias and its gradient in OpenMP + SIMD loops.
#include <algorithm>

#include "bind.h"
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

// db[M] = sum over rows of g[N,M]. Column blocks keep the accumulators in L1
// and give each thread its own columns, so the reduction needs no atomics.
// Accumulating in double keeps float32 sums over large batches accurate.
template <class T>
NNC_CLONES void sum_rows(T* db, const T* g, i64 N, i64 M) {
    constexpr i64 BM = 512;
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

// out[N,M] = x[N,D] @ w[D,M] + b[M]
template <class T>
void affine_forward(T* out, const T* x, const T* w, const T* b, i64 N, i64 D, i64 M) {
    if (D == 0) {
        std::fill(out, out + N * M, T(0));
    } else {
        gemm<T>(false, false, N, M, D, T(1), x, D, w, M, T(0), out, M);
    }
    add_bias_rows(out, b, N, M);
}

// dx[N,D] = dout @ w^T, dw[D,M] = x^T @ dout, db[M] = sum_n dout[n,:].
// dx null (and w unused): the weight gradients only, for a network's first
// layer, whose input gradient nothing uses (PyTorch skips it likewise for an
// input that does not require grad); that saves a third of the backward.
template <class T>
void affine_backward(T* dx, T* dw, T* db, const T* dout, const T* x, const T* w, i64 N, i64 D,
                     i64 M) {
    if (M == 0 || N == 0) {
        if (dx) std::fill(dx, dx + N * D, T(0));
        std::fill(dw, dw + D * M, T(0));
    } else if (D > 0) {
        if (dx) gemm<T>(false, true, N, D, M, T(1), dout, M, w, M, T(0), dx, D);
        gemm<T>(true, false, D, M, N, T(1), x, D, dout, M, T(0), dw, M);
    }
    sum_rows(db, dout, N, M);
}

}  // namespace

void bind_affine(nb::module_& m) {
    m.def("affine_forward", [](In x, In w, In b) {
        const DType dt = float_dtype({{"x", x.dtype()}, {"w", w.dtype()}, {"b", b.dtype()}});
        check_ndim(x, "x", 2);
        check_ndim(w, "w", 2);
        const i64 N = x.shape(0), D = x.shape(1), M = w.shape(1);
        check_shape(w, "w", {D, M});
        check_shape(b, "b", {M});
        check_blas_dim(N, "N"), check_blas_dim(D, "D"), check_blas_dim(M, "M");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_array<T>({N, M});
            {
                nb::gil_scoped_release nogil;
                affine_forward(out.data(), ptr<T>(x), ptr<T>(w), ptr<T>(b), N, D, M);
            }
            return nb::object(nb::cast(out));
        });
    }, nb::arg("x"), nb::arg("w"), nb::arg("b"),
       "out[N,M] = x[N,D] @ w[D,M] + b[M] (x already flattened to 2-D)");

    m.def("affine_backward", [](In dout, In x, In w) {
        const DType dt = float_dtype({{"dout", dout.dtype()}, {"x", x.dtype()}, {"w", w.dtype()}});
        check_ndim(x, "x", 2);
        check_ndim(w, "w", 2);
        const i64 N = x.shape(0), D = x.shape(1), M = w.shape(1);
        check_shape(w, "w", {D, M});
        check_shape(dout, "dout", {N, M});
        check_blas_dim(N, "N"), check_blas_dim(D, "D"), check_blas_dim(M, "M");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_array<T>({N, D});
            auto dw = new_array<T>({D, M});
            auto db = new_array<T>({M});
            {
                nb::gil_scoped_release nogil;
                affine_backward(dx.data(), dw.data(), db.data(), ptr<T>(dout), ptr<T>(x),
                                ptr<T>(w), N, D, M);
            }
            return nb::make_tuple(dx, dw, db);
        });
    }, nb::arg("dout"), nb::arg("x"), nb::arg("w"),
       "(dx[N,D], dw[D,M], db[M]) for out = x @ w + b");

    m.def("affine_backward_weights", [](In dout, In x) {
        const DType dt = float_dtype({{"dout", dout.dtype()}, {"x", x.dtype()}});
        check_ndim(x, "x", 2);
        check_ndim(dout, "dout", 2);
        const i64 N = x.shape(0), D = x.shape(1), M = dout.shape(1);
        check_shape(dout, "dout", {N, M});
        check_blas_dim(N, "N"), check_blas_dim(D, "D"), check_blas_dim(M, "M");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dw = new_array<T>({D, M});
            auto db = new_array<T>({M});
            {
                nb::gil_scoped_release nogil;
                affine_backward<T>(nullptr, dw.data(), db.data(), ptr<T>(dout), ptr<T>(x),
                                   nullptr, N, D, M);
            }
            return nb::make_tuple(dw, db);
        });
    }, nb::arg("dout"), nb::arg("x"),
       "(dw[D,M], db[M]) for out = x @ w + b (x already flattened to 2-D), without dx");
}

}  // namespace nnc
