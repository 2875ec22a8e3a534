#include <cstdint>
#include <type_traits>

#include "bind.h"
#include "loss.h"

namespace nnc {
namespace {

template <class T>
using LabelLoss = double (*)(T* dx, const T* x, const std::int64_t* y, i64 N, i64 C);

// x[N,C] float scores, y[N] int64 labels in [0, C).
void check_scores_labels(const char* op, const In& x, const In& y) {
    check_ndim(x, "x", 2);
    const i64 N = x.shape(0), C = x.shape(1);
    if (N == 0) fail_value(std::string(op) + ": x is an empty batch (shape " + shape_of(x) + ")");
    if (y.dtype() != nb::dtype<std::int64_t>())
        fail_type(std::string(op) + ": y must hold int64 class labels, got " + dtype_name(y.dtype()));
    if (y.ndim() != 1 || (i64)y.shape(0) != N)
        fail_value(std::string(op) + ": y must have shape (" + std::to_string(N) +
                   ",) to match x of shape " + shape_of(x) + ", got " + shape_of(y));
    const std::int64_t* labels = ptr<std::int64_t>(y);
    for (i64 n = 0; n < N; n++)
        if (labels[n] < 0 || labels[n] >= C)
            fail_value(std::string(op) + ": y must lie in [0, " + std::to_string(C) + "), got y[" +
                       std::to_string(n) + "] = " + std::to_string(labels[n]));
}

void def_label_loss(nb::module_& m, const char* name, LabelLoss<float> f32, LabelLoss<double> f64,
                    const char* doc) {
    m.def(name, [name, f32, f64](In x, In y) {
        DType dt = same_dtype({{"x", x.dtype()}});
        check_scores_labels(name, x, y);
        const i64 N = x.shape(0), C = x.shape(1);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_array<T>({(size_t)N, (size_t)C});
            double loss;
            {
                nb::gil_scoped_release nogil;
                if constexpr (std::is_same_v<T, float>)
                    loss = f32(dx.data(), ptr<T>(x), ptr<std::int64_t>(y), N, C);
                else loss = f64(dx.data(), ptr<T>(x), ptr<std::int64_t>(y), N, C);
            }
            return nb::make_tuple(loss, dx);
        });
    }, nb::arg("x"), nb::arg("y"), doc);
}

}  // namespace

void bind_loss(nb::module_& m) {
    def_label_loss(m, "svm_loss", svm_loss<float>, svm_loss<double>,
                   "(loss, dx): multiclass hinge loss (margin 1, mean over N) of x[N,C], y[N]");
    def_label_loss(m, "softmax_loss", softmax_loss<float>, softmax_loss<double>,
                   "(loss, dx): softmax cross-entropy (log-sum-exp, mean over N) of x[N,C], y[N]");

    m.def("mse_loss", [](In x, In y) {
        DType dt = same_dtype({{"x", x.dtype()}, {"y", y.dtype()}});
        check_ndim(x, "x", 2);
        check_ndim(y, "y", 2);
        const i64 N = x.shape(0), D = x.shape(1);
        if (N == 0) fail_value("mse_loss: x is an empty batch (shape " + shape_of(x) + ")");
        if (y.shape(0) != x.shape(0) || y.shape(1) != x.shape(1))
            fail_value("mse_loss: y has shape " + shape_of(y) + " but x has shape " + shape_of(x) +
                       "; they must match");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_array<T>({(size_t)N, (size_t)D});
            double loss;
            {
                nb::gil_scoped_release nogil;
                loss = mse_loss<T>(dx.data(), ptr<T>(x), ptr<T>(y), N, D);
            }
            return nb::make_tuple(loss, dx);
        });
    }, nb::arg("x"), nb::arg("y"),
       "(loss, dx): 0.5 * sum((x - y)**2) / N and dx = (x - y) / N for x, y [N,D]");
}

}  // namespace nnc
