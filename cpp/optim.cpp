// First-order update rules (CS231n optim.py), fused: one pass over memory
// that updates w and the rule's state arrays in place. Each element's
// arithmetic follows the reference's expression order in T, with the
// hyperparameters rounded to T as NumPy does with Python floats. Memory-bound
// streams: threads split the arrays, SIMD does each chunk.
#include <cmath>

#include "bind.h"

namespace nnc {
namespace {

constexpr i64 kParallelMin = 1 << 15;

// w -= lr * dw
template <class T>
NNC_CLONES void sgd(T* w, const T* dw, double lr, i64 n) {
    const T lr_ = (T)lr;
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (parallel: n > kParallelMin)
    for (i64 i = 0; i < n; i++) w[i] = w[i] - lr_ * dw[i];
}

// v = mu * v - lr * dw; w += v
template <class T>
NNC_CLONES void sgd_momentum(T* w, T* v, const T* dw, double lr, double mu, i64 n) {
    const T lr_ = (T)lr, mu_ = (T)mu;
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (parallel: n > kParallelMin)
    for (i64 i = 0; i < n; i++) {
        const T vi = mu_ * v[i] - lr_ * dw[i];
        v[i] = vi;
        w[i] = w[i] + vi;
    }
}

// v_old = v; v = mu * v - lr * dw; w += v + mu * (v - v_old)
template <class T>
NNC_CLONES void sgd_nesterov_momentum(T* w, T* v, const T* dw, double lr, double mu, i64 n) {
    const T lr_ = (T)lr, mu_ = (T)mu;
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (parallel: n > kParallelMin)
    for (i64 i = 0; i < n; i++) {
        const T v_old = v[i];
        const T vi = mu_ * v_old - lr_ * dw[i];
        v[i] = vi;
        w[i] = (w[i] + vi) + mu_ * (vi - v_old);
    }
}

// cache = decay * cache + (1 - decay) * dw^2; w -= lr * dw / (sqrt(cache) + eps)
template <class T>
NNC_CLONES void rmsprop(T* w, T* cache, const T* dw, double lr, double decay, double eps, i64 n) {
    const T lr_ = (T)lr, d_ = (T)decay, one_minus_d = (T)(1.0 - decay), eps_ = (T)eps;
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (parallel: n > kParallelMin)
    for (i64 i = 0; i < n; i++) {
        const T g = dw[i];
        const T c = d_ * cache[i] + one_minus_d * (g * g);
        cache[i] = c;
        w[i] = w[i] - (lr_ * g) / (std::sqrt(c) + eps_);
    }
}

// m = b1 m + (1 - b1) dw; v = b2 v + (1 - b2) dw^2;
// w -= lr * (m / bc1) / (sqrt(v / bc2) + eps), where bc1 = 1 - b1^t and
// bc2 = 1 - b2^t are the bias corrections for the (already incremented) step t.
template <class T>
NNC_CLONES void adam(T* w, T* m, T* v, const T* dw, double lr, double beta1, double beta2,
                     double eps, double bc1, double bc2, i64 n) {
    // Multiplying by the reciprocal bias corrections instead of dividing
    // (within an ulp of the reference's m / bc1, v / bc2) leaves one division
    // and one sqrt per element, which keeps the step memory-bound.
    const T lr_ = (T)lr, b1 = (T)beta1, b2 = (T)beta2, one_minus_b1 = (T)(1.0 - beta1),
            one_minus_b2 = (T)(1.0 - beta2), eps_ = (T)eps, inv_bc1 = (T)(1.0 / bc1),
            inv_bc2 = (T)(1.0 / bc2);
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (parallel: n > kParallelMin)
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

// w and the state arrays are updated in place, so they are bound with
// .noconvert(): a wrong dtype or a non-contiguous array raises TypeError
// instead of nanobind handing the kernel a temporary copy. dw is only read.
// Every array has w's shape.
void bind_optim(nb::module_& m) {
    m.def("sgd", [](InOut w, In dw, double lr) {
        const DType dt = float_dtype({{"w", w.dtype()}, {"dw", dw.dtype()}});
        check_same_shape(dw, "dw", w, "w");
        dispatch(dt, [&](auto t) {
            using T = decltype(t);
            nb::gil_scoped_release nogil;
            sgd(mut<T>(w), ptr<T>(dw), lr, (i64)w.size());
        });
    }, nb::arg("w").noconvert(), nb::arg("dw"), nb::arg("learning_rate"),
       "w -= learning_rate * dw, in place");

    m.def("sgd_momentum", [](InOut w, InOut v, In dw, double lr, double mu) {
        const DType dt =
            float_dtype({{"w", w.dtype()}, {"velocity", v.dtype()}, {"dw", dw.dtype()}});
        check_same_shape(dw, "dw", w, "w");
        check_same_shape(v, "velocity", w, "w");
        dispatch(dt, [&](auto t) {
            using T = decltype(t);
            nb::gil_scoped_release nogil;
            sgd_momentum(mut<T>(w), mut<T>(v), ptr<T>(dw), lr, mu, (i64)w.size());
        });
    }, nb::arg("w").noconvert(), nb::arg("velocity").noconvert(), nb::arg("dw"),
       nb::arg("learning_rate"), nb::arg("momentum"),
       "v = momentum * v - learning_rate * dw; w += v; w and v in place");

    m.def("sgd_nesterov_momentum", [](InOut w, InOut v, In dw, double lr, double mu) {
        const DType dt =
            float_dtype({{"w", w.dtype()}, {"velocity", v.dtype()}, {"dw", dw.dtype()}});
        check_same_shape(dw, "dw", w, "w");
        check_same_shape(v, "velocity", w, "w");
        dispatch(dt, [&](auto t) {
            using T = decltype(t);
            nb::gil_scoped_release nogil;
            sgd_nesterov_momentum(mut<T>(w), mut<T>(v), ptr<T>(dw), lr, mu, (i64)w.size());
        });
    }, nb::arg("w").noconvert(), nb::arg("velocity").noconvert(), nb::arg("dw"),
       nb::arg("learning_rate"), nb::arg("momentum"),
       "v_old = v; v = momentum * v - learning_rate * dw; w += v + momentum * (v - v_old); "
       "w and v in place");

    m.def("rmsprop", [](InOut w, InOut cache, In dw, double lr, double decay, double eps) {
        const DType dt =
            float_dtype({{"w", w.dtype()}, {"cache", cache.dtype()}, {"dw", dw.dtype()}});
        check_same_shape(dw, "dw", w, "w");
        check_same_shape(cache, "cache", w, "w");
        dispatch(dt, [&](auto t) {
            using T = decltype(t);
            nb::gil_scoped_release nogil;
            rmsprop(mut<T>(w), mut<T>(cache), ptr<T>(dw), lr, decay, eps, (i64)w.size());
        });
    }, nb::arg("w").noconvert(), nb::arg("cache").noconvert(), nb::arg("dw"),
       nb::arg("learning_rate"), nb::arg("decay_rate"), nb::arg("epsilon"),
       "cache = decay_rate * cache + (1 - decay_rate) * dw**2; "
       "w -= learning_rate * dw / (sqrt(cache) + epsilon); w and cache in place");

    m.def("adam", [](InOut w, InOut mo, InOut v, In dw, double lr, double beta1, double beta2,
                     double eps, double bc1, double bc2) {
        const DType dt = float_dtype(
            {{"w", w.dtype()}, {"m", mo.dtype()}, {"v", v.dtype()}, {"dw", dw.dtype()}});
        check_same_shape(dw, "dw", w, "w");
        check_same_shape(mo, "m", w, "w");
        check_same_shape(v, "v", w, "w");
        dispatch(dt, [&](auto t) {
            using T = decltype(t);
            nb::gil_scoped_release nogil;
            adam(mut<T>(w), mut<T>(mo), mut<T>(v), ptr<T>(dw), lr, beta1, beta2, eps, bc1, bc2,
                 (i64)w.size());
        });
    }, nb::arg("w").noconvert(), nb::arg("m").noconvert(), nb::arg("v").noconvert(),
       nb::arg("dw"), nb::arg("learning_rate"), nb::arg("beta1"), nb::arg("beta2"),
       nb::arg("epsilon"), nb::arg("bias_correction1"), nb::arg("bias_correction2"),
       "Adam step with bias corrections 1 - beta1**t, 1 - beta2**t for the incremented t; "
       "w, m and v in place");
}

}  // namespace nnc
