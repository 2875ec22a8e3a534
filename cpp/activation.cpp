// Elementwise activations over n contiguous values (any shape, flattened).
// Forward caches: relu, leaky relu and gelu keep x, tanh and sigmoid keep
// out (their derivatives are functions of the output).
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
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (parallel: n > kParallelMin)
    for (i64 i = 0; i < n; i++) out[i] = x[i] < T(0) ? T(0) : x[i];
}

// dx = dout where x > 0, else 0
template <class T>
NNC_CLONES void relu_backward(T* dx, const T* dout, const T* x, i64 n) {
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (parallel: n > kParallelMin)
    for (i64 i = 0; i < n; i++) {
        const T d = dout[i];  // read unconditionally: a select, not a masked load
        dx[i] = x[i] > T(0) ? d : T(0);
    }
}

// tanh(x) = sign(x) * em / (em + 2) with em = expm1(2|x|): no cancellation
// for small |x|, and |x| > 20 already rounds to +-1 in double.
template <class T>
NNC_CLONES void tanh_forward(T* out, const T* x, i64 n) {
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (parallel: n > kParallelMin / 8)
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
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (parallel: n > kParallelMin)
    for (i64 i = 0; i < n; i++) dx[i] = dout[i] * (T(1) - out[i] * out[i]);
}

// out = 1 / (1 + exp(-x)) through z = exp(-|x|), which is in (0, 1], so
// neither branch can overflow.
template <class T>
NNC_CLONES void sigmoid_forward(T* out, const T* x, i64 n) {
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (parallel: n > kParallelMin / 8)
    for (i64 i = 0; i < n; i++) {
        T z = vm::exp(-std::fabs(x[i]));
        out[i] = (x[i] >= T(0) ? T(1) : z) / (T(1) + z);
    }
}

// dx = dout * out * (1 - out)
template <class T>
NNC_CLONES void sigmoid_backward(T* dx, const T* dout, const T* out, i64 n) {
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (parallel: n > kParallelMin)
    for (i64 i = 0; i < n; i++) dx[i] = dout[i] * out[i] * (T(1) - out[i]);
}

// out = x where x > 0, else slope * x
template <class T>
NNC_CLONES void leaky_relu_forward(T* out, const T* x, double slope, i64 n) {
    const T a = (T)slope;
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (parallel: n > kParallelMin)
    for (i64 i = 0; i < n; i++) out[i] = x[i] > T(0) ? x[i] : x[i] * a;
}

// dx = dout where x > 0, else slope * dout
template <class T>
NNC_CLONES void leaky_relu_backward(T* dx, const T* dout, const T* x, double slope, i64 n) {
    const T a = (T)slope;
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (parallel: n > kParallelMin)
    for (i64 i = 0; i < n; i++) dx[i] = x[i] > T(0) ? dout[i] : dout[i] * a;
}

// GELU, the tanh approximation:
//   gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3).
// Since 0.5 (1 + tanh(u)) = sigmoid(2u) = s, gelu = x s with s from
// z = exp(-2|u|) <= 1: nothing overflows, and 1 + tanh(u) never cancels for
// x << 0. The derivative of the same approximation is
//   d gelu / dx = s + x * 2 s (1 - s) * du/dx,  du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2),
// with 1 - s also taken from z (no cancellation for x >> 0).
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kCubic = 0.044715;

template <class T>
NNC_CLONES void gelu_forward(T* out, const T* x, i64 n) {
    const T c = T(kSqrt2OverPi), a = T(kCubic);
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (parallel: n > kParallelMin / 8)
    for (i64 i = 0; i < n; i++) {
        const T xi = x[i];
        const T u = c * (xi + a * xi * xi * xi);
        const T z = vm::exp(T(-2) * std::fabs(u));
        const T s = (u >= T(0) ? T(1) : z) / (T(1) + z);  // sigmoid(2u)
        out[i] = xi * s;
    }
}

template <class T>
NNC_CLONES void gelu_backward(T* dx, const T* dout, const T* x, i64 n) {
    const T c = T(kSqrt2OverPi), a = T(kCubic);
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (parallel: n > kParallelMin / 8)
    for (i64 i = 0; i < n; i++) {
        // Beyond |x| = 1e4, s is exactly 0 or 1 and s (1 - s) exactly 0: the
        // clamp changes no result and keeps x^3 and x * du finite (no inf * 0).
        T xi = x[i];
        xi = xi > T(1e4) ? T(1e4) : xi;
        xi = xi < T(-1e4) ? T(-1e4) : xi;
        const T u = c * (xi + a * xi * xi * xi);
        const T z = vm::exp(T(-2) * std::fabs(u));
        const T inv = T(1) / (T(1) + z);
        const T s = (u >= T(0) ? T(1) : z) * inv;   // sigmoid(2u)
        const T sc = (u >= T(0) ? z : T(1)) * inv;  // 1 - sigmoid(2u)
        const T du = c * (T(1) + T(3) * a * xi * xi);
        dx[i] = dout[i] * (s + xi * (T(2) * s * sc) * du);
    }
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
    def_forward(m, "gelu_forward", [](auto... a) { gelu_forward(a...); },
                "out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), any shape");
    def_backward(m, "gelu_backward", "x", [](auto... a) { gelu_backward(a...); },
                 "dx of gelu_forward (the tanh approximation's derivative)");

    m.def("leaky_relu_forward", [](In x, double slope) {
        return dispatch(float_dtype({{"x", x.dtype()}}), [&](auto t) {
            using T = decltype(t);
            auto out = new_like<T>(x);
            {
                nb::gil_scoped_release nogil;
                leaky_relu_forward(out.data(), ptr<T>(x), slope, (i64)x.size());
            }
            return nb::object(nb::cast(out));
        });
    }, nb::arg("x"), nb::arg("negative_slope"), "out = x where x > 0, else negative_slope * x");
    m.def("leaky_relu_backward", [](In dout, In x, double slope) {
        const DType dt = float_dtype({{"dout", dout.dtype()}, {"x", x.dtype()}});
        check_same_shape(dout, "dout", x, "x");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_like<T>(dout);
            {
                nb::gil_scoped_release nogil;
                leaky_relu_backward(dx.data(), ptr<T>(dout), ptr<T>(x), slope, (i64)dout.size());
            }
            return nb::object(nb::cast(dx));
        });
    }, nb::arg("dout"), nb::arg("x"), nb::arg("negative_slope"),
       "dx = dout where x > 0, else negative_slope * dout");
}

}  // namespace nnc
