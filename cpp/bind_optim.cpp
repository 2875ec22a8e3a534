#include "bind.h"
#include "optim.h"

namespace nnc {
namespace {

// w and the state arrays are updated in place, so they are bound with
// .noconvert(): a wrong dtype or a non-contiguous array raises TypeError
// instead of nanobind handing the kernel a temporary copy. dw is only read.
template <class A>
void check_same_shape(const char* op, const InOut& w, const A& a, const char* name) {
    bool same = a.ndim() == w.ndim();
    for (size_t i = 0; same && i < w.ndim(); i++) same = a.shape(i) == w.shape(i);
    if (!same)
        fail_value(std::string(op) + ": " + name + " has shape " + shape_of(a) + " but w has shape " +
                   shape_of(w) + "; they must match");
}

}  // namespace

void bind_optim(nb::module_& m) {
    m.def("sgd", [](InOut w, In dw, double lr) {
        DType dt = same_dtype({{"w", w.dtype()}, {"dw", dw.dtype()}});
        check_same_shape("sgd", w, dw, "dw");
        dispatch(dt, [&](auto t) {
            using T = decltype(t);
            nb::gil_scoped_release nogil;
            sgd<T>(mut<T>(w), ptr<T>(dw), lr, (i64)w.size());
        });
    }, nb::arg("w").noconvert(), nb::arg("dw"), nb::arg("learning_rate"),
       "w -= learning_rate * dw, in place");

    m.def("sgd_momentum", [](InOut w, InOut v, In dw, double lr, double mu) {
        DType dt = same_dtype({{"w", w.dtype()}, {"velocity", v.dtype()}, {"dw", dw.dtype()}});
        check_same_shape("sgd_momentum", w, dw, "dw");
        check_same_shape("sgd_momentum", w, v, "velocity");
        dispatch(dt, [&](auto t) {
            using T = decltype(t);
            nb::gil_scoped_release nogil;
            sgd_momentum<T>(mut<T>(w), mut<T>(v), ptr<T>(dw), lr, mu, (i64)w.size());
        });
    }, nb::arg("w").noconvert(), nb::arg("velocity").noconvert(), nb::arg("dw"),
       nb::arg("learning_rate"), nb::arg("momentum"),
       "v = momentum * v - learning_rate * dw; w += v; w and v in place");

    m.def("sgd_nesterov_momentum", [](InOut w, InOut v, In dw, double lr, double mu) {
        DType dt = same_dtype({{"w", w.dtype()}, {"velocity", v.dtype()}, {"dw", dw.dtype()}});
        check_same_shape("sgd_nesterov_momentum", w, dw, "dw");
        check_same_shape("sgd_nesterov_momentum", w, v, "velocity");
        dispatch(dt, [&](auto t) {
            using T = decltype(t);
            nb::gil_scoped_release nogil;
            sgd_nesterov_momentum<T>(mut<T>(w), mut<T>(v), ptr<T>(dw), lr, mu, (i64)w.size());
        });
    }, nb::arg("w").noconvert(), nb::arg("velocity").noconvert(), nb::arg("dw"),
       nb::arg("learning_rate"), nb::arg("momentum"),
       "v_old = v; v = momentum * v - learning_rate * dw; w += v + momentum * (v - v_old); "
       "w and v in place");

    m.def("rmsprop", [](InOut w, InOut cache, In dw, double lr, double decay, double eps) {
        DType dt = same_dtype({{"w", w.dtype()}, {"cache", cache.dtype()}, {"dw", dw.dtype()}});
        check_same_shape("rmsprop", w, dw, "dw");
        check_same_shape("rmsprop", w, cache, "cache");
        dispatch(dt, [&](auto t) {
            using T = decltype(t);
            nb::gil_scoped_release nogil;
            rmsprop<T>(mut<T>(w), mut<T>(cache), ptr<T>(dw), lr, decay, eps, (i64)w.size());
        });
    }, nb::arg("w").noconvert(), nb::arg("cache").noconvert(), nb::arg("dw"),
       nb::arg("learning_rate"), nb::arg("decay_rate"), nb::arg("epsilon"),
       "cache = decay_rate * cache + (1 - decay_rate) * dw**2; "
       "w -= learning_rate * dw / (sqrt(cache) + epsilon); w and cache in place");

    m.def("adam", [](InOut w, InOut mo, InOut v, In dw, double lr, double beta1, double beta2,
                     double eps, double bc1, double bc2) {
        DType dt = same_dtype(
            {{"w", w.dtype()}, {"m", mo.dtype()}, {"v", v.dtype()}, {"dw", dw.dtype()}});
        check_same_shape("adam", w, dw, "dw");
        check_same_shape("adam", w, mo, "m");
        check_same_shape("adam", w, v, "v");
        dispatch(dt, [&](auto t) {
            using T = decltype(t);
            nb::gil_scoped_release nogil;
            adam<T>(mut<T>(w), mut<T>(mo), mut<T>(v), ptr<T>(dw), lr, beta1, beta2, eps, bc1, bc2,
                    (i64)w.size());
        });
    }, nb::arg("w").noconvert(), nb::arg("m").noconvert(), nb::arg("v").noconvert(),
       nb::arg("dw"), nb::arg("learning_rate"), nb::arg("beta1"), nb::arg("beta2"),
       nb::arg("epsilon"), nb::arg("bias_correction1"), nb::arg("bias_correction2"),
       "Adam step with bias corrections 1 - beta1**t, 1 - beta2**t for the incremented t; "
       "w, m and v in place");
}

}  // namespace nnc
