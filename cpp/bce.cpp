// Binary cross-entropy on logits, averaged over all n elements (PyTorch's
// BCEWithLogitsLoss):
//   loss = (1/n) sum_i max(x_i, 0) - x_i y_i + log(1 + exp(-|x_i|))
//   dx_i = (sigmoid(x_i) - y_i) / n
// with z = exp(-|x|) <= 1, so no logit overflows; sigmoid comes from the same z.
// Each element is computed in double (the loss is a sum of n terms).
#include <cmath>

#include "bind.h"

namespace nnc {
namespace {

constexpr i64 kParallelMin = 1 << 14;

template <class T>
double bce_loss_kernel(T* dx, const T* x, const T* y, i64 n) {
    const double inv_n = 1.0 / (double)n;
    double loss = 0.0;
#pragma omp parallel for num_threads(threads()) schedule(static) reduction(+ : loss) if (n > kParallelMin)
    for (i64 i = 0; i < n; i++) {
        const double xi = x[i], yi = y[i];
        const double z = std::exp(-std::fabs(xi));
        loss += (xi > 0.0 ? xi : 0.0) - xi * yi + std::log1p(z);
        const double s = (xi >= 0.0 ? 1.0 : z) / (1.0 + z);
        dx[i] = (T)((s - yi) * inv_n);
    }
    return loss * inv_n;
}

}  // namespace

void bind_bce(nb::module_& m) {
    m.def("bce_loss", [](In x, In y) {
        DType dt = same_dtype({{"x", x.dtype()}, {"y", y.dtype()}});
        if (x.size() == 0) fail_value("bce_loss: x is empty (shape " + shape_of(x) + ")");
        if (!same_shape(x, y))
            fail_value("bce_loss: y has shape " + shape_of(y) + " but x has shape " + shape_of(x) +
                       "; they must match");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_like<T>(x);
            double loss;
            {
                nb::gil_scoped_release nogil;
                loss = bce_loss_kernel<T>(dx.data(), ptr<T>(x), ptr<T>(y), (i64)x.size());
            }
            return nb::make_tuple(loss, dx);
        });
    }, nb::arg("x"), nb::arg("y"),
       "(loss, dx): binary cross-entropy of logits x and targets y (same shape), mean over all "
       "elements; dx = (sigmoid(x) - y) / x.size");
}

}  // namespace nnc
