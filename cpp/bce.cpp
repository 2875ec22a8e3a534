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
#include <cmath>
#include <string>

#include "bind.h"
#include "vmath.h"

namespace nnc {
namespace {

constexpr i64 kParallelMin = 1 << 12;

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
#pragma omp parallel for simd num_threads(threads()) schedule(static) reduction(+ : loss) if (n > kParallelMin)
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

}  // namespace

void bind_bce(nb::module_& m) {
    m.def("bce_loss", [](In x, In y) {
        DType dt = same_dtype({{"x", x.dtype()}, {"y", y.dtype()}});
        if (!same_shape(x, y))
            fail_value("bce_loss: y has shape " + shape_of(y) + " but x has shape " + shape_of(x) +
                       "; they must match");
        const i64 n = (i64)x.size();
        if (n == 0) fail_value("bce_loss: x is empty (shape " + shape_of(x) + ")");
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
