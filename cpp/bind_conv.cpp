#include "bind.h"
#include "conv.h"
#include "winograd.h"

namespace nnc {
namespace {

std::string str(i64 v) { return std::to_string(v); }

// Every check of one conv call, with the values in the message; returns the geometry.
ConvShape conv_shape(const std::string& fn, const In& x, const In& w, i64 stride, i64 pad) {
    check_ndim(x, "x", 4);
    check_ndim(w, "w", 4);
    if (stride < 1) fail_value(fn + ": stride must be >= 1, got " + str(stride));
    if (pad < 0) fail_value(fn + ": pad must be >= 0, got " + str(pad));
    if (pad > (1 << 30)) fail_value(fn + ": pad = " + str(pad) + " is unreasonably large");
    ConvShape s{};
    s.N = x.shape(0), s.C = x.shape(1), s.H = x.shape(2), s.W = x.shape(3);
    s.F = w.shape(0), s.HH = w.shape(2), s.WW = w.shape(3);
    s.stride = stride, s.pad = pad;
    if (s.N == 0) fail_value(fn + ": x is an empty batch (shape " + shape_of(x) + ")");
    for (size_t i = 0; i < 4; i++)
        if (x.shape(i) == 0 || w.shape(i) == 0)
            fail_value(fn + ": x of shape " + shape_of(x) + " and w of shape " + shape_of(w) +
                       " must have no zero-size dimension");
    if ((i64)w.shape(1) != s.C)
        fail_value(fn + ": x has shape " + shape_of(x) + " with C=" + str(s.C) +
                   " channels but w has shape " + shape_of(w));
    const i64 sizes[2] = {s.H, s.W}, taps[2] = {s.HH, s.WW};
    const char* names[2] = {"H", "W"};
    for (int d = 0; d < 2; d++) {
        const std::string size = names[d] + std::string("=") + str(sizes[d]) + " + 2*pad=" +
                                 str(2 * pad);
        if (taps[d] > sizes[d] + 2 * pad)
            fail_value(fn + ": the " + str(s.HH) + "x" + str(s.WW) +
                       " filter does not fit in the padded input: " + size + " < " +
                       str(taps[d]));
        if ((sizes[d] + 2 * pad - taps[d]) % stride != 0)
            fail_value(fn + ": the filter does not tile the input: (" + size + " - " +
                       str(taps[d]) + ") % stride=" + str(stride) + " != 0 (x shape " +
                       shape_of(x) + ", w shape " + shape_of(w) + ")");
    }
    s.Hout = 1 + (s.H + 2 * pad - s.HH) / stride;
    s.Wout = 1 + (s.W + 2 * pad - s.WW) / stride;
    // GEMM dims: F, K + 1 = C*HH*WW + 1 and up to Hout*Wout columns per call,
    // which is also the row stride of out and dout.
    check_blas_dim(s.F, "F");
    check_blas_dim(s.C * s.HH * s.WW + 1, "C*HH*WW + 1");
    check_blas_dim(s.Hout * s.Wout, "Hout*Wout");
    if ((double)s.N * (double)s.F * (double)(s.Hout * s.Wout) > 1e17)
        fail_value(fn + ": the output (" + str(s.N) + ", " + str(s.F) + ", " + str(s.Hout) +
                   ", " + str(s.Wout) + ") is too large to allocate");
    return s;
}

}  // namespace

void bind_conv(nb::module_& m) {
    m.def("conv_forward", [](In x, In w, In b, i64 stride, i64 pad) {
        DType dt = same_dtype({{"x", x.dtype()}, {"w", w.dtype()}, {"b", b.dtype()}});
        const ConvShape s = conv_shape("conv_forward", x, w, stride, pad);
        check_ndim(b, "b", 1);
        if ((i64)b.shape(0) != s.F)
            fail_value("conv_forward: b has shape " + shape_of(b) + " but w has shape " +
                       shape_of(w) + "; b must have " + str(s.F) + " entries");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_array<T>({(size_t)s.N, (size_t)s.F, (size_t)s.Hout, (size_t)s.Wout});
            {
                nb::gil_scoped_release nogil;
                conv_forward<T>(out.data(), ptr<T>(x), ptr<T>(w), ptr<T>(b), s);
            }
            return nb::object(nb::cast(out));
        });
    }, nb::arg("x"), nb::arg("w"), nb::arg("b"), nb::arg("stride"), nb::arg("pad"),
       "out (N, F, Hout, Wout) = conv(x (N, C, H, W), w (F, C, HH, WW)) + b (F): "
       "cross-correlation with zero padding");

    m.def("conv_backward", [](In dout, In x, In w, i64 stride, i64 pad) {
        DType dt = same_dtype({{"dout", dout.dtype()}, {"x", x.dtype()}, {"w", w.dtype()}});
        const ConvShape s = conv_shape("conv_backward", x, w, stride, pad);
        check_ndim(dout, "dout", 4);
        if ((i64)dout.shape(0) != s.N || (i64)dout.shape(1) != s.F ||
            (i64)dout.shape(2) != s.Hout || (i64)dout.shape(3) != s.Wout)
            fail_value("conv_backward: dout has shape " + shape_of(dout) + ", expected (" +
                       str(s.N) + ", " + str(s.F) + ", " + str(s.Hout) + ", " + str(s.Wout) + ")");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_array<T>({(size_t)s.N, (size_t)s.C, (size_t)s.H, (size_t)s.W});
            auto dw = new_array<T>({(size_t)s.F, (size_t)s.C, (size_t)s.HH, (size_t)s.WW});
            auto db = new_array<T>({(size_t)s.F});
            {
                nb::gil_scoped_release nogil;
                conv_backward<T>(dx.data(), dw.data(), db.data(), ptr<T>(dout), ptr<T>(x),
                                 ptr<T>(w), s);
            }
            return nb::make_tuple(dx, dw, db);
        });
    }, nb::arg("dout"), nb::arg("x"), nb::arg("w"), nb::arg("stride"), nb::arg("pad"),
       "(dx, dw, db) of conv_forward");

    m.def("conv_paths", [](In x, In w, i64 stride, i64 pad) {
        const ConvShape s = conv_shape("conv_paths", x, w, stride, pad);
        return nb::make_tuple(winograd_applies(s) ? "winograd" : "im2col",
                              winograd_backward_applies(s) ? "winograd" : "im2col");
    }, nb::arg("x"), nb::arg("w"), nb::arg("stride"), nb::arg("pad"),
       "(forward, backward): the algorithm, 'winograd' or 'im2col', that conv_forward and "
       "conv_backward (dx and dw) take for these shapes; NNC_CONV_WINOGRAD=0/1 in the "
       "environment overrides the size rule");
}

}  // namespace nnc
