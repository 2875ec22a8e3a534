// Classification and regression losses: each returns the mean loss over the
// N rows (bce: over all elements) and writes its gradient dx in the same
// pass over x. Rows are independent: each thread takes whole rows and keeps
// its partial loss in double; gradients mirror the reference's expression
// order in T.
#include <cmath>
#include <cstdint>

#include "bind.h"
#include "vmath.h"

namespace nnc {
namespace {

constexpr i64 kParallelMin = 1 << 15;

// Multiclass SVM (hinge) loss, margin 1: x[N,C] scores, y[N] labels in [0, C).
template <class T>
NNC_CLONES double svm_loss(T* dx, const T* x, const std::int64_t* y, i64 N, i64 C) {
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
            // max(0, margin) as np.maximum: a NaN margin (a NaN or Inf score)
            // makes the loss NaN; the gradient counts positive margins only
            row += (j != yn && !(margin <= T(0))) ? (double)margin : 0.0;
            positive += counts;
            g[j] = counts ? T(1) / fN : T(0);
        }
        g[yn] = (T)(-positive) / fN;
        loss += row;
    }
    return loss / (double)N;
}

// Softmax cross-entropy by log-sum-exp: x[N,C] logits, y[N] labels in [0, C).
// loss_n = log(sum_j exp(x_nj - max_n)) - (x_ny - max_n): no exp ever sees a
// positive argument, so huge logits cannot overflow.
template <class T>
NNC_CLONES double softmax_loss(T* dx, const T* x, const std::int64_t* y, i64 N, i64 C) {
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

// 0.5 * sum((x - y)^2) / N and dx = (x - y) / N; x, y [N,D].
template <class T>
NNC_CLONES double mse_loss(T* dx, const T* x, const T* y, i64 N, i64 D) {
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

// Binary cross-entropy on logits, mean over all n elements:
//
//   loss_i = max(x, 0) - x*y + log(1 + exp(-|x|))
//   dx_i   = (sigmoid(x) - y) / n
//
// evaluated as (z = exp(-|x|) <= 1, q = z / (1 + z) = sigmoid(-|x|))
//
//   loss_i = (x >= 0 ? x*(1 - y) : -x*y) + log1p(z)
//   dx_i   = (x >= 0 ? (1 - y) - q : q - y) / n
//
// No exp sees a positive argument and log1p sees z in [0, 1], so logits of
// any size give finite values; max(x, 0) - x*y is written as x*(1 - y) for
// x >= 0 because for y near 1 the difference of two numbers near x would
// cancel, and sigmoid(x) - y as (1 - y) - q for the same reason (1 - y is
// exact for y in [0.5, 1]). The numpy reference uses the same expressions.

// log(1 + z) for z in [0, 1], in plain arithmetic so that the loop
// vectorizes (there is no SIMD log1p in vmath.h). 1 + z = 2^k (1 + f) with
// k = 1 when 1 + z > sqrt(2), so f lies in [-0.293, 0.415]; then
// log(1 + f) = 2 atanh(s) = 2s (1 + s^2/3 + s^4/5 + ...) with s = f / (2 + f),
// |s| <= 0.1716, truncated where the next term is below 0.03 ulp. For small z,
// f = z exactly and the result keeps its relative accuracy.
template <class T>
static inline __attribute__((always_inline)) T log1p_unit(T z) {
    const bool big = z > T(0.41421356237309503);
    const T f = big ? (T(1) + z) * T(0.5) - T(1) : z;  // the subtraction is exact (Sterbenz)
    const T s = f / (T(2) + f);
    const T w = s * s;
    T p;
    if constexpr (sizeof(T) == 8) {
        p = 1.0 / 21;
        p = p * w + 1.0 / 19;
        p = p * w + 1.0 / 17;
        p = p * w + 1.0 / 15;
        p = p * w + 1.0 / 13;
        p = p * w + 1.0 / 11;
        p = p * w + 1.0 / 9;
        p = p * w + 1.0 / 7;
        p = p * w + 1.0 / 5;
        p = p * w + 1.0 / 3;
    } else {
        p = 1.0f / 9;
        p = p * w + 1.0f / 7;
        p = p * w + 1.0f / 5;
        p = p * w + 1.0f / 3;
    }
    const T r = T(2) * s + T(2) * s * (w * p);
    return big ? r + T(0.69314718055994531) : r;
}

// Returns the mean loss; writes dx[n].
template <class T>
NNC_CLONES double bce_loss(T* dx, const T* x, const T* y, i64 n) {
    const T fn = (T)n;
    double loss = 0.0;
#pragma omp parallel for simd num_threads(threads()) schedule(static) reduction(+ : loss) if (parallel: n > kParallelMin / 8)
    for (i64 i = 0; i < n; i++) {
        const T xi = x[i], yi = y[i];
        const T z = vm::exp(-std::fabs(xi));
        const T q = z / (T(1) + z);
        const bool pos = xi >= T(0);
        loss += (double)((pos ? xi * (T(1) - yi) : -xi * yi) + log1p_unit(z));
        dx[i] = (pos ? (T(1) - yi) - q : q - yi) / fn;
    }
    return loss / (double)n;
}

// x[N,C] float scores with N > 0, y[N] int64 labels in [0, C): a label
// indexes its row of x and dx.
void check_scores_labels(const In& x, const In& y) {
    check_ndim(x, "x", 2);
    const i64 N = x.shape(0), C = x.shape(1);
    check_nonempty(N, "x", "is an empty batch");
    check_dtype<std::int64_t>(y, "y");
    check_shape(y, "y", {N});
    const std::int64_t* labels = ptr<std::int64_t>(y);
    for (i64 n = 0; n < N; n++)
        if (labels[n] < 0 || labels[n] >= C)
            fail_value("y must lie in [0, " + std::to_string(C) + "), got y[" + std::to_string(n) +
                       "] = " + std::to_string(labels[n]));
}

// (loss, dx) = kernel(dx, x, y, N, C) for scores x and labels y.
template <class K>
void def_label_loss(nb::module_& m, const char* name, K kernel, const char* doc) {
    m.def(name, [kernel](In x, In y) {
        const DType dt = float_dtype({{"x", x.dtype()}});
        check_scores_labels(x, y);
        const i64 N = x.shape(0), C = x.shape(1);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_array<T>({N, C});
            double loss;
            {
                nb::gil_scoped_release nogil;
                loss = kernel(dx.data(), ptr<T>(x), ptr<std::int64_t>(y), N, C);
            }
            return nb::make_tuple(loss, dx);
        });
    }, nb::arg("x"), nb::arg("y"), doc);
}

}  // namespace

void bind_loss(nb::module_& m) {
    def_label_loss(m, "svm_loss", [](auto... a) { return svm_loss(a...); },
                   "(loss, dx): multiclass hinge loss (margin 1, mean over N) of x[N,C], y[N]");
    def_label_loss(m, "softmax_loss", [](auto... a) { return softmax_loss(a...); },
                   "(loss, dx): softmax cross-entropy (log-sum-exp, mean over N) of x[N,C], y[N]");

    m.def("mse_loss", [](In x, In y) {
        const DType dt = float_dtype({{"x", x.dtype()}, {"y", y.dtype()}});
        check_ndim(x, "x", 2);
        const i64 N = x.shape(0), D = x.shape(1);
        check_nonempty(N, "x", "is an empty batch");
        check_shape(y, "y", {N, D});
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_array<T>({N, D});
            double loss;
            {
                nb::gil_scoped_release nogil;
                loss = mse_loss(dx.data(), ptr<T>(x), ptr<T>(y), N, D);
            }
            return nb::make_tuple(loss, dx);
        });
    }, nb::arg("x"), nb::arg("y"),
       "(loss, dx): 0.5 * sum((x - y)**2) / N and dx = (x - y) / N for x, y [N,D]");

    m.def("bce_loss", [](In x, In y) {
        const DType dt = float_dtype({{"x", x.dtype()}, {"y", y.dtype()}});
        check_same_shape(y, "y", x, "x");
        const i64 n = (i64)x.size();
        check_nonempty(n, "x", "is empty");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_like<T>(x);
            double loss;
            {
                nb::gil_scoped_release nogil;
                loss = bce_loss<T>(dx.data(), ptr<T>(x), ptr<T>(y), n);
            }
            return nb::make_tuple(loss, dx);
        });
    }, nb::arg("x"), nb::arg("y"),
       "(loss, dx): binary cross-entropy of logits x and targets y in [0, 1] (any shape, mean "
       "over all elements); dx = (sigmoid(x) - y) / x.size");
}

}  // namespace nnc
