// GELU (tanh approximation) and leaky ReLU, elementwise over n contiguous
// values (any shape, flattened). Forward caches keep x only: the backward
// passes recompute what they need from it.
//
// gelu(x) = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3).
// Since 0.5 (1 + tanh(u)) = sigmoid(2u) = s, the kernels compute gelu = x s
// with s from z = exp(-2|u|) <= 1: nothing overflows, and 1 + tanh(u) never
// cancels for x << 0. The derivative of the same approximation is
//   d gelu / dx = s + x * 2 s (1 - s) * du/dx,  du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2),
// with 1 - s also taken from z (no cancellation for x >> 0).
#include <cmath>
#include <type_traits>

#include "bind.h"
#include "vmath.h"

namespace nnc {
namespace {

constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kCubic = 0.044715;
// Below this many elements a parallel region costs more than it saves; the
// exp makes gelu about 8x more work per element than leaky_relu.
constexpr i64 kParallelMin = 1 << 15;

template <class T>
NNC_CLONES void gelu_forward_kernel(T* out, const T* x, i64 n) {
    const T c = T(kSqrt2OverPi), a = T(kCubic);
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin / 8)
    for (i64 i = 0; i < n; i++) {
        const T xi = x[i];
        const T u = c * (xi + a * xi * xi * xi);
        const T z = vm::exp(T(-2) * std::fabs(u));
        const T s = (u >= T(0) ? T(1) : z) / (T(1) + z);  // sigmoid(2u)
        out[i] = xi * s;
    }
}

template <class T>
NNC_CLONES void gelu_backward_kernel(T* dx, const T* dout, const T* x, i64 n) {
    const T c = T(kSqrt2OverPi), a = T(kCubic);
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin / 8)
    for (i64 i = 0; i < n; i++) {
        // Beyond |x| = 1e4, s is exactly 0 or 1 and s (1 - s) exactly 0: the
        // clamp changes no result and keeps x^3 and x * du finite (no inf * 0).
        T xi = x[i];
        xi = xi > T(1e4) ? T(1e4) : xi;
        xi = xi < T(-1e4) ? T(-1e4) : xi;
        const T u = c * (xi + a * xi * xi * xi);
        const T z = vm::exp(T(-2) * std::fabs(u));
        const T inv = T(1) / (T(1) + z);
        const T s = (u >= T(0) ? T(1) : z) * inv;       // sigmoid(2u)
        const T sc = (u >= T(0) ? z : T(1)) * inv;      // 1 - sigmoid(2u)
        const T du = c * (T(1) + T(3) * a * xi * xi);
        dx[i] = dout[i] * (s + xi * (T(2) * s * sc) * du);
    }
}

template <class T>
NNC_CLONES void leaky_relu_forward_kernel(T* out, const T* x, double slope, i64 n) {
    const T a = (T)slope;
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin)
    for (i64 i = 0; i < n; i++) out[i] = x[i] > T(0) ? x[i] : x[i] * a;
}

template <class T>
NNC_CLONES void leaky_relu_backward_kernel(T* dx, const T* dout, const T* x, double slope, i64 n) {
    const T a = (T)slope;
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin)
    for (i64 i = 0; i < n; i++) dx[i] = x[i] > T(0) ? dout[i] : dout[i] * a;
}

// --- bindings: dtype and shape checks, GIL release, kernel call ---

// out = f(x) for x of any shape.
template <class F32, class F64>
nb::object unary(const In& x, F32 f32, F64 f64) {
    DType dt = same_dtype({{"x", x.dtype()}});
    return dispatch(dt, [&](auto t) {
        using T = decltype(t);
        auto out = new_like<T>(x);
        {
            nb::gil_scoped_release nogil;
            if constexpr (std::is_same_v<T, float>) f32(out.data(), ptr<T>(x), (i64)x.size());
            else f64(out.data(), ptr<T>(x), (i64)x.size());
        }
        return nb::object(nb::cast(out));
    });
}

// dx = f(dout, x); dout and x of one shape and dtype.
template <class F32, class F64>
nb::object binary(const char* name, const In& dout, const In& x, F32 f32, F64 f64) {
    DType dt = same_dtype({{"dout", dout.dtype()}, {"x", x.dtype()}});
    if (!same_shape(dout, x))
        fail_value(std::string(name) + ": dout has shape " + shape_of(dout) + " but x has shape " +
                   shape_of(x) + "; they must match");
    return dispatch(dt, [&](auto t) {
        using T = decltype(t);
        auto dx = new_like<T>(dout);
        {
            nb::gil_scoped_release nogil;
            if constexpr (std::is_same_v<T, float>)
                f32(dx.data(), ptr<T>(dout), ptr<T>(x), (i64)dout.size());
            else f64(dx.data(), ptr<T>(dout), ptr<T>(x), (i64)dout.size());
        }
        return nb::object(nb::cast(dx));
    });
}

}  // namespace

void bind_activation_ext(nb::module_& m) {
    m.def("gelu_forward", [](In x) {
        return unary(x, gelu_forward_kernel<float>, gelu_forward_kernel<double>);
    }, nb::arg("x"), "out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), any shape");

    m.def("gelu_backward", [](In dout, In x) {
        return binary("gelu_backward", dout, x, gelu_backward_kernel<float>,
                      gelu_backward_kernel<double>);
    }, nb::arg("dout"), nb::arg("x"), "dx of gelu_forward (the tanh approximation's derivative)");

    m.def("leaky_relu_forward", [](In x, double slope) {
        return unary(
            x, [slope](float* o, const float* v, i64 n) { leaky_relu_forward_kernel(o, v, slope, n); },
            [slope](double* o, const double* v, i64 n) { leaky_relu_forward_kernel(o, v, slope, n); });
    }, nb::arg("x"), nb::arg("negative_slope"), "out = x where x > 0, else negative_slope * x");

    m.def("leaky_relu_backward", [](In dout, In x, double slope) {
        return binary(
            "leaky_relu_backward", dout, x,
            [slope](float* d, const float* g, const float* v, i64 n) {
                leaky_relu_backward_kernel(d, g, v, slope, n);
            },
            [slope](double* d, const double* g, const double* v, i64 n) {
                leaky_relu_backward_kernel(d, g, v, slope, n);
            });
    }, nb::arg("dout"), nb::arg("x"), nb::arg("negative_slope"),
       "dx = dout where x > 0, else negative_slope * dout");
}

}  // namespace nnc
