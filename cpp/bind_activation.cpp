#include <type_traits>
#include <vector>

#include "activation.h"
#include "bind.h"

namespace nnc {
namespace {

template <class T>
using ForwardKernel = void (*)(T* out, const T* x, i64 n);
template <class T>
using BackwardKernel = void (*)(T* dx, const T* dout, const T* saved, i64 n);

// out = f(x) for x of any shape; the kernel sees x flattened.
void def_forward(nb::module_& m, const char* name, ForwardKernel<float> f32,
                 ForwardKernel<double> f64, const char* doc) {
    m.def(name, [f32, f64](In x) {
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
    }, nb::arg("x"), doc);
}

// dx = f(dout, saved), saved being x (relu) or out (tanh, sigmoid).
void def_backward(nb::module_& m, const char* name, const char* saved, BackwardKernel<float> f32,
                  BackwardKernel<double> f64, const char* doc) {
    m.def(name, [name, saved, f32, f64](In dout, In s) {
        DType dt = same_dtype({{"dout", dout.dtype()}, {saved, s.dtype()}});
        if (!same_shape(dout, s))
            fail_value(std::string(name) + ": dout has shape " + shape_of(dout) + " but " + saved +
                       " has shape " + shape_of(s) + "; they must match");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_like<T>(dout);
            {
                nb::gil_scoped_release nogil;
                if constexpr (std::is_same_v<T, float>)
                    f32(dx.data(), ptr<T>(dout), ptr<T>(s), (i64)dout.size());
                else f64(dx.data(), ptr<T>(dout), ptr<T>(s), (i64)dout.size());
            }
            return nb::object(nb::cast(dx));
        });
    }, nb::arg("dout"), nb::arg(saved), doc);
}

}  // namespace

void bind_activation(nb::module_& m) {
    def_forward(m, "relu_forward", relu_forward<float>, relu_forward<double>,
                "out = max(0, x), any shape");
    def_forward(m, "tanh_forward", tanh_forward<float>, tanh_forward<double>,
                "out = tanh(x), any shape");
    def_forward(m, "sigmoid_forward", sigmoid_forward<float>, sigmoid_forward<double>,
                "out = 1 / (1 + exp(-x)), any shape, never overflows");
    def_backward(m, "relu_backward", "x", relu_backward<float>, relu_backward<double>,
                 "dx = dout where x > 0, else 0");
    def_backward(m, "tanh_backward", "out", tanh_backward<float>, tanh_backward<double>,
                 "dx = dout * (1 - out**2), out = tanh(x)");
    def_backward(m, "sigmoid_backward", "out", sigmoid_backward<float>, sigmoid_backward<double>,
                 "dx = dout * out * (1 - out), out = sigmoid(x)");
}

}  // namespace nnc
