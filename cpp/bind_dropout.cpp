#include <cstdint>
#include <vector>

#include "bind.h"
#include "dropout.h"

namespace nnc {
namespace {

void check_p(double p) {
    if (!(p > 0.0 && p <= 1.0))
        fail_value("dropout: p (the keep probability) must be in (0, 1], got " + std::to_string(p));
}

// The MT19937 key as np.random.get_state()[1] returns it: uint32[624].
void check_mt_state(const InOut& key, int pos) {
    if (key.dtype() != nb::dtype<std::uint32_t>())
        fail_type("dropout: key must be the uint32 array from np.random.get_state(), got " +
                  dtype_name(key.dtype()));
    if (key.ndim() != 1 || key.shape(0) != (size_t)kMTWords)
        fail_value("dropout: key must have shape (624,), got " + shape_of(key));
    if (pos < 0 || pos > kMTWords)
        fail_value("dropout: pos must be in [0, 624], got " + std::to_string(pos));
}

}  // namespace

void bind_dropout(nb::module_& m) {
    // The GIL stays held: the caller reads np.random's state before and
    // writes it back after, and no other Python thread may draw from the
    // global generator in between (NumPy would serialize those draws).
    m.def("dropout_forward_train", [](In x, double p, InOut key, int pos) {
        DType dt = same_dtype({{"x", x.dtype()}});
        check_p(p);
        check_mt_state(key, pos);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_like<T>(x);
            auto keep = new_like<std::uint8_t>(x);
            dropout_forward_train<T>(out.data(), keep.data(), mut<std::uint32_t>(key), &pos,
                                     ptr<T>(x), p, (i64)x.size());
            return nb::make_tuple(out, keep, pos);
        });
    }, nb::arg("x"), nb::arg("p"), nb::arg("key").noconvert(), nb::arg("pos"),
       "(out, keep, pos): inverted dropout with the mask np.random.rand(*x.shape) < p would give "
       "for the MT19937 state (key, pos); key is advanced in place, the new pos is returned");

    m.def("dropout_backward", [](In dout, In keep, double p) {
        DType dt = same_dtype({{"dout", dout.dtype()}});
        check_p(p);
        if (keep.dtype() != nb::dtype<std::uint8_t>())
            fail_type("dropout_backward: keep must be uint8, got " + dtype_name(keep.dtype()));
        if (!same_shape(dout, keep))
            fail_value("dropout_backward: dout has shape " + shape_of(dout) +
                       " but the forward input had shape " + shape_of(keep));
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_like<T>(dout);
            {
                nb::gil_scoped_release nogil;
                dropout_backward<T>(dx.data(), ptr<T>(dout), ptr<std::uint8_t>(keep), p,
                                    (i64)dout.size());
            }
            return nb::object(nb::cast(dx));
        });
    }, nb::arg("dout"), nb::arg("keep"), nb::arg("p"), "dx = dout * keep / p");

    m.def("mt19937_random_sample", [](InOut key, int pos, int64_t n) {
        check_mt_state(key, pos);
        if (n < 0) fail_value("n must be >= 0, got " + std::to_string(n));
        auto u = new_array<double>({(size_t)n});
        mt19937_random_sample(u.data(), mut<std::uint32_t>(key), &pos, n);
        return nb::make_tuple(u, pos);
    }, nb::arg("key").noconvert(), nb::arg("pos"), nb::arg("n"),
       "(u, pos): the n doubles np.random.random_sample(n) draws from MT19937 state (key, pos); "
       "key is advanced in place");
}

}  // namespace nnc
