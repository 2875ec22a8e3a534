// Elementwise activations over n contiguous values (any shape, flattened).
// Forward caches: relu keeps x, tanh and sigmoid keep out (their derivatives
// are functions of the output).
#include <cmath>

#include "bind.h"
#include "vmath.h"

namespace nnc {
namespace {

// Below this many elements a parallel region costs more than it saves.
constexpr i64 kParallelMin = 1 << 15;

// out = max(0, x); NaN and -0.0 pass through as in np.maximum(0, x)
template <class T>
NNC_CLONES void relu_forward(T* out, const T* x, i64 n) {
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin)
    for (i64 i = 0; i < n; i++) out[i] = x[i] < T(0) ? T(0) : x[i];
}

// dx = dout where x > 0, else 0
template <class T>
NNC_CLONES void relu_backward(T* dx, const T* dout, const T* x, i64 n) {
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin)
    for (i64 i = 0; i < n; i++) dx[i] = x[i] > T(0) ? dout[i] : T(0);
}

// tanh(x) = sign(x) * em / (em + 2) with em = expm1(2|x|): no cancellation
// for small |x|, and |x| > 20 already rounds to +-1 in double.
template <class T>
NNC_CLONES void tanh_forward(T* out, const T* x, i64 n) {
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin / 8)
    for (i64 i = 0; i < n; i++) {
        T a = std::fabs(x[i]);
        a = a > T(20) ? T(20) : a;
        T em = vm::expm1_bounded(T(2) * a);
        out[i] = std::copysign(em / (em + T(2)), x[i]);
    }
}

// dx = dout * (1 - out^2)
template <class T>
NNC_CLONES void tanh_backward(T* dx, const T* dout, const T* out, i64 n) {
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin)
    for (i64 i = 0; i < n; i++) dx[i] = dout[i] * (T(1) - out[i] * out[i]);
}

// out = 1 / (1 + exp(-x)) through z = exp(-|x|), which is in (0, 1], so
// neither branch can overflow.
template <class T>
NNC_CLONES void sigmoid_forward(T* out, const T* x, i64 n) {
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin / 8)
    for (i64 i = 0; i < n; i++) {
        T z = vm::exp(-std::fabs(x[i]));
        out[i] = (x[i] >= T(0) ? T(1) : z) / (T(1) + z);
    }
}

// dx = dout * out * (1 - out)
template <class T>
NNC_CLONES void sigmoid_backward(T* dx, const T* dout, const T* out, i64 n) {
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin)
    for (i64 i = 0; i < n; i++) dx[i] = dout[i] * out[i] * (T(1) - out[i]);
}

// out = f(x) for x of any shape; kernel(out, x, n) sees x flattened.
template <class K>
void def_forward(nb::module_& m, const char* name, K kernel, const char* doc) {
    m.def(name, [kernel](In x) {
        return dispatch(float_dtype({{"x", x.dtype()}}), [&](auto t) {
            using T = decltype(t);
            auto out = new_like<T>(x);
            {
                nb::gil_scoped_release nogil;
                kernel(out.data(), ptr<T>(x), (i64)x.size());
            }
            return nb::object(nb::cast(out));
        });
    }, nb::arg("x"), doc);
}

// dx = f(dout, saved), saved being x (relu) or out (tanh, sigmoid).
template <class K>
void def_backward(nb::module_& m, const char* name, const char* saved, K kernel, const char* doc) {
    m.def(name, [saved, kernel](In dout, In s) {
        const DType dt = float_dtype({{"dout", dout.dtype()}, {saved, s.dtype()}});
        check_same_shape(dout, "dout", s, saved);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_like<T>(dout);
            {
                nb::gil_scoped_release nogil;
                kernel(dx.data(), ptr<T>(dout), ptr<T>(s), (i64)dout.size());
            }
            return nb::object(nb::cast(dx));
        });
    }, nb::arg("dout"), nb::arg(saved), doc);
}

}  // namespace

void bind_activation(nb::module_& m) {
    def_forward(m, "relu_forward", [](auto... a) { relu_forward(a...); },
                "out = max(0, x), any shape");
    def_forward(m, "tanh_forward", [](auto... a) { tanh_forward(a...); },
                "out = tanh(x), any shape");
    def_forward(m, "sigmoid_forward", [](auto... a) { sigmoid_forward(a...); },
                "out = 1 / (1 + exp(-x)), any shape, never overflows");
    def_backward(m, "relu_backward", "x", [](auto... a) { relu_backward(a...); },
                 "dx = dout where x > 0, else 0");
    def_backward(m, "tanh_backward", "out", [](auto... a) { tanh_backward(a...); },
                 "dx = dout * (1 - out**2), out = tanh(x)");
    def_backward(m, "sigmoid_backward", "out", [](auto... a) { sigmoid_backward(a...); },
                 "dx = dout * out * (1 - out), out = sigmoid(x)");
}

}  // namespace nnc
