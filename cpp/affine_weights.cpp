// The weight gradients of an affine layer out = x @ w + b without dx:
//   dw (D, M) = x^T @ dout,   db (M) = sum over the N rows of dout.
// For a network's first layer, whose input gradient nothing uses (PyTorch
// skips it likewise for an input that does not require grad): it saves the
// dx GEMM, a third of the layer's backward.
#include <algorithm>

#include "bind.h"
#include "blas.h"

namespace nnc {
namespace {

// db[m] = sum_n g[n, m] in double: threads take column blocks, so no two
// threads write one db entry and the sum order is fixed.
template <class T>
NNC_CLONES void column_sums(T* db, const T* g, i64 N, i64 M) {
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

template <class T>
void affine_backward_weights(T* dw, T* db, const T* dout, const T* x, i64 N, i64 D, i64 M) {
    if (N == 0) std::fill(dw, dw + D * M, T(0));
    else if (D > 0 && M > 0) gemm<T>(true, false, D, M, N, T(1), x, D, dout, M, T(0), dw, M);
    column_sums(db, dout, N, M);
}

}  // namespace

void bind_affine_weights(nb::module_& m) {
    m.def("affine_backward_weights", [](In dout, In x) {
        DType dt = same_dtype({{"dout", dout.dtype()}, {"x", x.dtype()}});
        check_ndim(dout, "dout", 2);
        check_ndim(x, "x", 2);
        const i64 N = x.shape(0), D = x.shape(1), M = dout.shape(1);
        if ((i64)dout.shape(0) != N)
            fail_value("affine_backward_weights: dout has shape " + shape_of(dout) + " but x has "
                       "shape " + shape_of(x) + "; they must have the same number of rows");
        check_blas_dim(N, "N"), check_blas_dim(D, "D"), check_blas_dim(M, "M");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dw = new_array<T>({(size_t)D, (size_t)M});
            auto db = new_array<T>({(size_t)M});
            {
                nb::gil_scoped_release nogil;
                affine_backward_weights<T>(dw.data(), db.data(), ptr<T>(dout), ptr<T>(x), N, D, M);
            }
            return nb::make_tuple(dw, db);
        });
    }, nb::arg("dout"), nb::arg("x"),
       "(dw[D,M], db[M]) for out = x @ w + b (x already flattened to 2-D), without dx");
}

}  // namespace nnc
