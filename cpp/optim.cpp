#include "optim.h"

#include <cmath>

namespace nnc {
namespace {

// Memory-bound streams: threads split the arrays, SIMD does each chunk.
constexpr i64 kParallelMin = 1 << 15;

template <class T>
NNC_CLONES void sgd_impl(T* w, const T* dw, double lr, i64 n) {
    const T lr_ = (T)lr;
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin)
    for (i64 i = 0; i < n; i++) w[i] = w[i] - lr_ * dw[i];
}

template <class T>
NNC_CLONES void sgd_momentum_impl(T* w, T* v, const T* dw, double lr, double mu, i64 n) {
    const T lr_ = (T)lr, mu_ = (T)mu;
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin)
    for (i64 i = 0; i < n; i++) {
        const T vi = mu_ * v[i] - lr_ * dw[i];
        v[i] = vi;
        w[i] = w[i] + vi;
    }
}

template <class T>
NNC_CLONES void sgd_nesterov_impl(T* w, T* v, const T* dw, double lr, double mu, i64 n) {
    const T lr_ = (T)lr, mu_ = (T)mu;
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin)
    for (i64 i = 0; i < n; i++) {
        const T v_old = v[i];
        const T vi = mu_ * v_old - lr_ * dw[i];
        v[i] = vi;
        w[i] = (w[i] + vi) + mu_ * (vi - v_old);
    }
}

template <class T>
NNC_CLONES void rmsprop_impl(T* w, T* cache, const T* dw, double lr, double decay, double eps,
                             i64 n) {
    const T lr_ = (T)lr, d_ = (T)decay, one_minus_d = (T)(1.0 - decay), eps_ = (T)eps;
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin)
    for (i64 i = 0; i < n; i++) {
        const T g = dw[i];
        const T c = d_ * cache[i] + one_minus_d * (g * g);
        cache[i] = c;
        w[i] = w[i] - (lr_ * g) / (std::sqrt(c) + eps_);
    }
}

template <class T>
NNC_CLONES void adam_impl(T* w, T* m, T* v, const T* dw, double lr, double beta1, double beta2,
                          double eps, double bc1, double bc2, i64 n) {
    // Multiplying by the reciprocal bias corrections instead of dividing
    // (within an ulp of the reference's m / bc1, v / bc2) leaves one division
    // and one sqrt per element, which keeps the step memory-bound.
    const T lr_ = (T)lr, b1 = (T)beta1, b2 = (T)beta2, one_minus_b1 = (T)(1.0 - beta1),
            one_minus_b2 = (T)(1.0 - beta2), eps_ = (T)eps, inv_bc1 = (T)(1.0 / bc1),
            inv_bc2 = (T)(1.0 / bc2);
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > kParallelMin)
    for (i64 i = 0; i < n; i++) {
        const T g = dw[i];
        const T mi = b1 * m[i] + one_minus_b1 * g;
        const T vi = b2 * v[i] + one_minus_b2 * (g * g);
        m[i] = mi;
        v[i] = vi;
        w[i] = w[i] - (lr_ * (mi * inv_bc1)) / (std::sqrt(vi * inv_bc2) + eps_);
    }
}

}  // namespace

template <class T>
void sgd(T* w, const T* dw, double lr, i64 n) { sgd_impl(w, dw, lr, n); }
template <class T>
void sgd_momentum(T* w, T* v, const T* dw, double lr, double mu, i64 n) {
    sgd_momentum_impl(w, v, dw, lr, mu, n);
}
template <class T>
void sgd_nesterov_momentum(T* w, T* v, const T* dw, double lr, double mu, i64 n) {
    sgd_nesterov_impl(w, v, dw, lr, mu, n);
}
template <class T>
void rmsprop(T* w, T* cache, const T* dw, double lr, double decay, double eps, i64 n) {
    rmsprop_impl(w, cache, dw, lr, decay, eps, n);
}
template <class T>
void adam(T* w, T* m, T* v, const T* dw, double lr, double beta1, double beta2, double eps,
          double bc1, double bc2, i64 n) {
    adam_impl(w, m, v, dw, lr, beta1, beta2, eps, bc1, bc2, n);
}

#define NNC_INSTANTIATE(T)                                                                       \
    template void sgd<T>(T*, const T*, double, i64);                                             \
    template void sgd_momentum<T>(T*, T*, const T*, double, double, i64);                        \
    template void sgd_nesterov_momentum<T>(T*, T*, const T*, double, double, i64);               \
    template void rmsprop<T>(T*, T*, const T*, double, double, double, i64);                     \
    template void adam<T>(T*, T*, T*, const T*, double, double, double, double, double, double, \
                          i64);
NNC_INSTANTIATE(float)
NNC_INSTANTIATE(double)

}  // namespace nnc
