#include "loss.h"

#include <cmath>

#include "vmath.h"

namespace nnc {
namespace {

// Rows are independent: each thread takes whole rows and keeps its partial
// loss in double; gradients mirror the reference's expression order in T.
constexpr i64 kParallelMin = 1 << 15;

template <class T>
NNC_CLONES double svm_loss_impl(T* dx, const T* x, const std::int64_t* y, i64 N, i64 C) {
    const T fN = (T)N;
    double loss = 0.0;
#pragma omp parallel for num_threads(threads()) schedule(static) reduction(+ : loss) if (N * C > kParallelMin)
    for (i64 n = 0; n < N; n++) {
        const T* xr = x + n * C;
        T* g = dx + n * C;
        const i64 yn = y[n];
        const T correct = xr[yn];
        double row = 0.0;
        i64 positive = 0;
#pragma omp simd reduction(+ : row, positive)
        for (i64 j = 0; j < C; j++) {
            const T margin = xr[j] - correct + T(1);
            const bool counts = margin > T(0) && j != yn;
            row += counts ? (double)margin : 0.0;
            positive += counts;
            g[j] = counts ? T(1) / fN : T(0);
        }
        g[yn] = (T)(-positive) / fN;
        loss += row;
    }
    return loss / (double)N;
}

// loss_n = log(sum_j exp(x_nj - max_n)) - (x_ny - max_n): no exp ever sees a
// positive argument, so huge logits cannot overflow.
template <class T>
NNC_CLONES double softmax_loss_impl(T* dx, const T* x, const std::int64_t* y, i64 N, i64 C) {
    const T fN = (T)N;
    double loss = 0.0;
#pragma omp parallel for num_threads(threads()) schedule(static) reduction(+ : loss) if (N * C > kParallelMin / 8)
    for (i64 n = 0; n < N; n++) {
        const T* xr = x + n * C;
        T* g = dx + n * C;
        const i64 yn = y[n];
        T mx = xr[0];
#pragma omp simd reduction(max : mx)
        for (i64 j = 0; j < C; j++) mx = xr[j] > mx ? xr[j] : mx;
        double Z = 0.0;
#pragma omp simd reduction(+ : Z)
        for (i64 j = 0; j < C; j++) {
            const T e = vm::exp(xr[j] - mx);
            g[j] = e;  // exp(shifted) parked in dx until Z is known
            Z += (double)e;
        }
        loss += std::log(Z) - (double)(xr[yn] - mx);
        const double invZ = 1.0 / Z;
#pragma omp simd
        for (i64 j = 0; j < C; j++) {
            T prob = (T)((double)g[j] * invZ);
            prob = j == yn ? prob - T(1) : prob;
            g[j] = prob / fN;
        }
    }
    return loss / (double)N;
}

template <class T>
NNC_CLONES double mse_loss_impl(T* dx, const T* x, const T* y, i64 N, i64 D) {
    const T fN = (T)N;
    double loss = 0.0;
#pragma omp parallel for num_threads(threads()) schedule(static) reduction(+ : loss) if (N * D > kParallelMin)
    for (i64 n = 0; n < N; n++) {
        const T* xr = x + n * D;
        const T* yr = y + n * D;
        T* g = dx + n * D;
        double row = 0.0;
#pragma omp simd reduction(+ : row)
        for (i64 j = 0; j < D; j++) {
            const T d = xr[j] - yr[j];
            row += (double)d * (double)d;
            g[j] = d / fN;
        }
        loss += row;
    }
    return 0.5 * loss / (double)N;
}

}  // namespace

template <class T>
double svm_loss(T* dx, const T* x, const std::int64_t* y, i64 N, i64 C) {
    return svm_loss_impl(dx, x, y, N, C);
}
template <class T>
double softmax_loss(T* dx, const T* x, const std::int64_t* y, i64 N, i64 C) {
    return softmax_loss_impl(dx, x, y, N, C);
}
template <class T>
double mse_loss(T* dx, const T* x, const T* y, i64 N, i64 D) {
    return mse_loss_impl(dx, x, y, N, D);
}

#define NNC_INSTANTIATE(T)                                                       \
    template double svm_loss<T>(T*, const T*, const std::int64_t*, i64, i64);     \
    template double softmax_loss<T>(T*, const T*, const std::int64_t*, i64, i64); \
    template double mse_loss<T>(T*, const T*, const T*, i64, i64);
NNC_INSTANTIATE(float)
NNC_INSTANTIATE(double)

}  // namespace nnc
