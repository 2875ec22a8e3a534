#include "affine.h"
#include "bind.h"

namespace nnc {

void bind_affine(nb::module_& m) {
    m.def("affine_forward", [](In x, In w, In b) {
        DType dt = same_dtype({{"x", x.dtype()}, {"w", w.dtype()}, {"b", b.dtype()}});
        check_ndim(x, "x", 2);
        check_ndim(w, "w", 2);
        check_ndim(b, "b", 1);
        const i64 N = x.shape(0), D = x.shape(1), M = w.shape(1);
        if ((i64)w.shape(0) != D)
            fail_value("affine_forward: x flattens to " + shape_of(x) + " but w has shape " +
                       shape_of(w) + "; w.shape[0] must equal D = " + std::to_string(D));
        if ((i64)b.shape(0) != M)
            fail_value("affine_forward: b has shape " + shape_of(b) + " but w has shape " +
                       shape_of(w) + "; b must have M = " + std::to_string(M) + " entries");
        check_blas_dim(N, "N"), check_blas_dim(D, "D"), check_blas_dim(M, "M");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_array<T>({(size_t)N, (size_t)M});
            {
                nb::gil_scoped_release nogil;
                affine_forward<T>(out.data(), ptr<T>(x), ptr<T>(w), ptr<T>(b), N, D, M);
            }
            return nb::object(nb::cast(out));
        });
    }, nb::arg("x"), nb::arg("w"), nb::arg("b"),
       "out[N,M] = x[N,D] @ w[D,M] + b[M] (x already flattened to 2-D)");

    m.def("affine_backward", [](In dout, In x, In w) {
        DType dt = same_dtype({{"dout", dout.dtype()}, {"x", x.dtype()}, {"w", w.dtype()}});
        check_ndim(dout, "dout", 2);
        check_ndim(x, "x", 2);
        check_ndim(w, "w", 2);
        const i64 N = x.shape(0), D = x.shape(1), M = w.shape(1);
        if ((i64)w.shape(0) != D)
            fail_value("affine_backward: x has shape " + shape_of(x) + " but w has shape " +
                       shape_of(w));
        if ((i64)dout.shape(0) != N || (i64)dout.shape(1) != M)
            fail_value("affine_backward: dout has shape " + shape_of(dout) + ", expected (" +
                       std::to_string(N) + ", " + std::to_string(M) + ")");
        check_blas_dim(N, "N"), check_blas_dim(D, "D"), check_blas_dim(M, "M");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_array<T>({(size_t)N, (size_t)D});
            auto dw = new_array<T>({(size_t)D, (size_t)M});
            auto db = new_array<T>({(size_t)M});
            {
                nb::gil_scoped_release nogil;
                affine_backward<T>(dx.data(), dw.data(), db.data(), ptr<T>(dout), ptr<T>(x),
                                   ptr<T>(w), N, D, M);
            }
            return nb::make_tuple(dx, dw, db);
        });
    }, nb::arg("dout"), nb::arg("x"), nb::arg("w"),
       "(dx[N,D], dw[D,M], db[M]) for out = x @ w + b");
}

}  // namespace nnc
