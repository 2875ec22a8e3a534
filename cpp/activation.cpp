#include "activation.h"

#include <cmath>

#include "vmath.h"

namespace nnc {
namespace {

// Below this many elements a parallel region costs more than it saves.
constexpr i64 kParallelMin = 1 << 15;

template <class T>
NNC_CLONES void relu_forward_impl(T* out, const T* x, i64 n) {
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin)
    for (i64 i = 0; i < n; i++) out[i] = x[i] < T(0) ? T(0) : x[i];
}

template <class T>
NNC_CLONES void relu_backward_impl(T* dx, const T* dout, const T* x, i64 n) {
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin)
    for (i64 i = 0; i < n; i++) dx[i] = x[i] > T(0) ? dout[i] : T(0);
}

// tanh(x) = sign(x) * em / (em + 2) with em = expm1(2|x|): no cancellation
// for small |x|, and |x| > 20 already rounds to +-1 in double.
template <class T>
NNC_CLONES void tanh_forward_impl(T* out, const T* x, i64 n) {
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin / 8)
    for (i64 i = 0; i < n; i++) {
        T a = std::fabs(x[i]);
        a = a > T(20) ? T(20) : a;
        T em = vm::expm1_bounded(T(2) * a);
        out[i] = std::copysign(em / (em + T(2)), x[i]);
    }
}

template <class T>
NNC_CLONES void tanh_backward_impl(T* dx, const T* dout, const T* out, i64 n) {
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin)
    for (i64 i = 0; i < n; i++) dx[i] = dout[i] * (T(1) - out[i] * out[i]);
}

// z = exp(-|x|) is in (0, 1], so neither branch can overflow.
template <class T>
NNC_CLONES void sigmoid_forward_impl(T* out, const T* x, i64 n) {
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin / 8)
    for (i64 i = 0; i < n; i++) {
        T z = vm::exp(-std::fabs(x[i]));
        out[i] = (x[i] >= T(0) ? T(1) : z) / (T(1) + z);
    }
}

template <class T>
NNC_CLONES void sigmoid_backward_impl(T* dx, const T* dout, const T* out, i64 n) {
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin)
    for (i64 i = 0; i < n; i++) dx[i] = dout[i] * out[i] * (T(1) - out[i]);
}

}  // namespace

template <class T>
void relu_forward(T* out, const T* x, i64 n) { relu_forward_impl(out, x, n); }
template <class T>
void relu_backward(T* dx, const T* dout, const T* x, i64 n) { relu_backward_impl(dx, dout, x, n); }
template <class T>
void tanh_forward(T* out, const T* x, i64 n) { tanh_forward_impl(out, x, n); }
template <class T>
void tanh_backward(T* dx, const T* dout, const T* out, i64 n) { tanh_backward_impl(dx, dout, out, n); }
template <class T>
void sigmoid_forward(T* out, const T* x, i64 n) { sigmoid_forward_impl(out, x, n); }
template <class T>
void sigmoid_backward(T* dx, const T* dout, const T* out, i64 n) {
    sigmoid_backward_impl(dx, dout, out, n);
}

#define NNC_INSTANTIATE(T)                                                      \
    template void relu_forward<T>(T*, const T*, i64);                           \
    template void relu_backward<T>(T*, const T*, const T*, i64);                \
    template void tanh_forward<T>(T*, const T*, i64);                           \
    template void tanh_backward<T>(T*, const T*, const T*, i64);                \
    template void sigmoid_forward<T>(T*, const T*, i64);                        \
    template void sigmoid_backward<T>(T*, const T*, const T*, i64);
NNC_INSTANTIATE(float)
NNC_INSTANTIATE(double)

}  // namespace nnc
