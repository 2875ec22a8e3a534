#include <algorithm>
#include <climits>

#include "bind.h"
#include "pool.h"

namespace nnc {
namespace {

std::string str(i64 v) { return std::to_string(v); }

// The pool window fits an H x W plane and tiles it: (H - ph) and (W - pw)
// are multiples of stride; and the int32 argmax can index the plane.
void check_window(const std::string& fn, i64 H, i64 W, i64 ph, i64 pw, i64 stride) {
    if (ph < 1 || pw < 1 || stride < 1)
        fail_value(fn + ": pool_height, pool_width and stride must be >= 1, got " + str(ph) +
                   ", " + str(pw) + ", " + str(stride));
    if (ph > H || pw > W)
        fail_value(fn + ": the " + str(ph) + "x" + str(pw) + " pool window does not fit in a " +
                   str(H) + "x" + str(W) + " input");
    if ((H - ph) % stride != 0 || (W - pw) % stride != 0)
        fail_value(fn + ": the pool window does not tile the input: (H=" + str(H) + " - " +
                   str(ph) + ") and (W=" + str(W) + " - " + str(pw) +
                   ") must be multiples of stride=" + str(stride));
    if (H > INT32_MAX || W > INT32_MAX || H * W > INT32_MAX)
        fail_value(fn + ": a " + str(H) + "x" + str(W) + " plane exceeds the int32 argmax range");
}

// Smallest and largest of a[0..n) (0 and 0 when n = 0).
void index_range(const int32_t* a, i64 n, int32_t* lo, int32_t* hi) {
    int32_t mn = n ? a[0] : 0, mx = mn;
#pragma omp simd reduction(min : mn) reduction(max : mx)
    for (i64 i = 0; i < n; i++) {
        mn = std::min(mn, a[i]);
        mx = std::max(mx, a[i]);
    }
    *lo = mn, *hi = mx;
}

}  // namespace

void bind_pool(nb::module_& m) {
    m.def("max_pool_forward", [](In x, i64 pool_height, i64 pool_width, i64 stride) {
        DType dt = float_dtype(x, "x");
        check_ndim(x, "x", 4);
        const i64 N = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3);
        if (N == 0) fail_value("max_pool_forward: x is an empty batch (shape " + shape_of(x) + ")");
        if (C == 0) fail_value("max_pool_forward: x of shape " + shape_of(x) + " has no channels");
        check_window("max_pool_forward", H, W, pool_height, pool_width, stride);
        const i64 Hout = 1 + (H - pool_height) / stride, Wout = 1 + (W - pool_width) / stride;
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_array<T>({(size_t)N, (size_t)C, (size_t)Hout, (size_t)Wout});
            auto argmax = new_array<int32_t>({(size_t)N, (size_t)C, (size_t)Hout, (size_t)Wout});
            {
                nb::gil_scoped_release nogil;
                max_pool_forward<T>(out.data(), argmax.data(), ptr<T>(x), N * C, H, W,
                                    pool_height, pool_width, stride);
            }
            return nb::make_tuple(out, argmax);
        });
    }, nb::arg("x"), nb::arg("pool_height"), nb::arg("pool_width"), nb::arg("stride"),
       "(out (N, C, Hout, Wout), argmax int32 (N, C, Hout, Wout)): max pooling; argmax is the "
       "flat index in its H x W plane of each window's first maximum");

    m.def("max_pool_backward", [](In dout, In argmax, i64 H, i64 W) {
        DType dt = float_dtype(dout, "dout");
        if (argmax.dtype() != nb::dtype<int32_t>())
            fail_type("max_pool_backward: argmax must be int32, got " + dtype_name(argmax.dtype()));
        check_ndim(dout, "dout", 4);
        check_ndim(argmax, "argmax", 4);
        for (size_t i = 0; i < 4; i++)
            if (argmax.shape(i) != dout.shape(i))
                fail_value("max_pool_backward: dout has shape " + shape_of(dout) +
                           " but argmax has shape " + shape_of(argmax));
        if (H < 1 || W < 1 || H > INT32_MAX || W > INT32_MAX || H * W > INT32_MAX)
            fail_value("max_pool_backward: bad input plane size H=" + str(H) + ", W=" + str(W));
        const i64 N = dout.shape(0), C = dout.shape(1), Hout = dout.shape(2), Wout = dout.shape(3);
        // A stray index would write outside dx: check them all, without the GIL.
        const int32_t* am = ptr<int32_t>(argmax);
        const i64 total = N * C * Hout * Wout, HW = H * W;
        int32_t lo = 0, hi = 0;
        {
            nb::gil_scoped_release nogil;
            index_range(am, total, &lo, &hi);
        }
        if (lo < 0 || hi >= HW)
            fail_value("max_pool_backward: argmax holds values in [" + str(lo) + ", " + str(hi) +
                       "], outside the H*W = " + str(HW) + " plane");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_array<T>({(size_t)N, (size_t)C, (size_t)H, (size_t)W});
            {
                nb::gil_scoped_release nogil;
                max_pool_backward<T>(dx.data(), ptr<T>(dout), am, N * C, H, W, Hout, Wout);
            }
            return nb::object(nb::cast(dx));
        });
    }, nb::arg("dout"), nb::arg("argmax"), nb::arg("H"), nb::arg("W"),
       "dx (N, C, H, W) of max_pool_forward: dout routed to the argmax positions");
}

}  // namespace nnc
