// Max pooling of channels-last images, no padding, any window and stride
// (overlapping windows included):
//   out[n, oh, ow, c] = max over i < ph, j < pw of x[n, oh*s + i, ow*s + j, c]
// with Ho = (H - ph) / s + 1, Wo = (W - pw) / s + 1 (rounded down).
// argmax[n, oh, ow, c] is the flat index ih*W + iw in the image's H x W plane
// of the first maximum in row-major window order (as np.argmax; a NaN wins).
//
// In NHWC the C values of one pixel are contiguous, so every window tap is
// one vectorized compare-and-select over the channels.
#include <algorithm>
#include <climits>
#include <cstdint>

#include "bind.h"

namespace nnc {
namespace {

struct PoolShape {
    i64 N, H, W, C;
    i64 ph, pw, stride;
    i64 Ho, Wo;
};

template <class T>
NNC_CLONES void max_pool_nhwc_forward_kernel(T* out, int32_t* argmax, const T* x,
                                             const PoolShape& s) {
    const i64 C = s.C;
#pragma omp parallel for num_threads(threads()) schedule(static) if (s.N * s.H * s.W * C > 32768)
    for (i64 row = 0; row < s.N * s.Ho; row++) {  // one output row (n, oh) per iteration
        const i64 n = row / s.Ho, oh = row % s.Ho;
        for (i64 ow = 0; ow < s.Wo; ow++) {
            T* o = out + (row * s.Wo + ow) * C;
            int32_t* a = argmax + (row * s.Wo + ow) * C;
            const i64 ih0 = oh * s.stride, iw0 = ow * s.stride;
            const T* first = x + ((n * s.H + ih0) * s.W + iw0) * C;
            const int32_t first_at = (int32_t)(ih0 * s.W + iw0);
            for (i64 c = 0; c < C; c++) o[c] = first[c], a[c] = first_at;
            for (i64 i = 0; i < s.ph; i++) {
                for (i64 j = (i == 0 ? 1 : 0); j < s.pw; j++) {
                    const T* v = x + ((n * s.H + ih0 + i) * s.W + iw0 + j) * C;
                    const int32_t at = (int32_t)((ih0 + i) * s.W + iw0 + j);
#pragma omp simd
                    for (i64 c = 0; c < C; c++) {
                        const bool take = v[c] > o[c] || (v[c] != v[c] && o[c] == o[c]);
                        o[c] = take ? v[c] : o[c];
                        a[c] = take ? at : a[c];
                    }
                }
            }
        }
    }
}

// dx[n, argmax, c] += dout[n, oh, ow, c]. Windows may overlap, so one image's
// dx has one writer: threads split the images.
template <class T>
NNC_CLONES void max_pool_nhwc_backward_kernel(T* dx, const T* dout, const int32_t* argmax,
                                              const PoolShape& s) {
    const i64 C = s.C, HWC = s.H * s.W * C, P = s.Ho * s.Wo;
#pragma omp parallel for num_threads(threads()) schedule(static) if (s.N * HWC > 32768)
    for (i64 n = 0; n < s.N; n++) {
        T* d = dx + n * HWC;
        std::fill(d, d + HWC, T(0));
        const T* g = dout + n * P * C;
        const int32_t* a = argmax + n * P * C;
        for (i64 p = 0; p < P; p++)
            for (i64 c = 0; c < C; c++) d[(i64)a[p * C + c] * C + c] += g[p * C + c];
    }
}

std::string str(i64 v) { return std::to_string(v); }

// The window fits the H x W plane, and the int32 argmax can index it.
PoolShape pool_shape(const std::string& fn, i64 N, i64 H, i64 W, i64 C, i64 ph, i64 pw,
                     i64 stride) {
    if (ph < 1 || pw < 1 || stride < 1)
        fail_value(fn + ": pool_height, pool_width and stride must be >= 1, got " + str(ph) +
                   ", " + str(pw) + ", " + str(stride));
    if (N == 0) fail_value(fn + ": x is an empty batch");
    if (C == 0) fail_value(fn + ": x has no channels");
    if (ph > H || pw > W)
        fail_value(fn + ": the " + str(ph) + "x" + str(pw) + " pool window does not fit in a " +
                   str(H) + "x" + str(W) + " input");
    if (H > INT32_MAX || W > INT32_MAX || H * W > INT32_MAX)
        fail_value(fn + ": a " + str(H) + "x" + str(W) + " plane exceeds the int32 argmax range");
    return PoolShape{N, H, W, C, ph, pw, stride, 1 + (H - ph) / stride, 1 + (W - pw) / stride};
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

void bind_pool_nhwc(nb::module_& m) {
    m.def("max_pool_nhwc_forward", [](In x, i64 pool_height, i64 pool_width, i64 stride) {
        DType dt = float_dtype(x, "x");
        check_ndim(x, "x", 4);
        const PoolShape s = pool_shape("max_pool_nhwc_forward", x.shape(0), x.shape(1),
                                       x.shape(2), x.shape(3), pool_height, pool_width, stride);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            const std::vector<size_t> shape{(size_t)s.N, (size_t)s.Ho, (size_t)s.Wo, (size_t)s.C};
            auto out = new_array<T>(shape);
            auto argmax = new_array<int32_t>(shape);
            {
                nb::gil_scoped_release nogil;
                max_pool_nhwc_forward_kernel<T>(out.data(), argmax.data(), ptr<T>(x), s);
            }
            return nb::make_tuple(out, argmax);
        });
    }, nb::arg("x"), nb::arg("pool_height"), nb::arg("pool_width"), nb::arg("stride"),
       "(out (N, Ho, Wo, C), argmax int32 (N, Ho, Wo, C)): max pooling of x (N, H, W, C); argmax "
       "is the flat index ih*W + iw of each window's first maximum");

    m.def("max_pool_nhwc_backward", [](In dout, In argmax, i64 H, i64 W) {
        DType dt = float_dtype(dout, "dout");
        if (argmax.dtype() != nb::dtype<int32_t>())
            fail_type("max_pool_nhwc_backward: argmax must be int32, got " +
                      dtype_name(argmax.dtype()));
        check_ndim(dout, "dout", 4);
        if (!same_shape(dout, argmax))
            fail_value("max_pool_nhwc_backward: dout has shape " + shape_of(dout) +
                       " but argmax has shape " + shape_of(argmax));
        if (H < 1 || W < 1 || H > INT32_MAX || W > INT32_MAX || H * W > INT32_MAX)
            fail_value("max_pool_nhwc_backward: bad input plane size H=" + str(H) + ", W=" + str(W));
        PoolShape s{};
        s.N = dout.shape(0), s.Ho = dout.shape(1), s.Wo = dout.shape(2), s.C = dout.shape(3);
        s.H = H, s.W = W;
        // A stray index would write outside dx: check them all, without the GIL.
        const int32_t* am = ptr<int32_t>(argmax);
        int32_t lo = 0, hi = 0;
        {
            nb::gil_scoped_release nogil;
            index_range(am, (i64)argmax.size(), &lo, &hi);
        }
        if (lo < 0 || hi >= H * W)
            fail_value("max_pool_nhwc_backward: argmax holds values in [" + str(lo) + ", " +
                       str(hi) + "], outside the H*W = " + str(H * W) + " plane");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_array<T>({(size_t)s.N, (size_t)H, (size_t)W, (size_t)s.C});
            {
                nb::gil_scoped_release nogil;
                max_pool_nhwc_backward_kernel<T>(dx.data(), ptr<T>(dout), am, s);
            }
            return nb::object(nb::cast(dx));
        });
    }, nb::arg("dout"), nb::arg("argmax"), nb::arg("H"), nb::arg("W"),
       "dx (N, H, W, C) of max_pool_nhwc_forward: dout routed to the argmax positions");
}

}  // namespace nnc
