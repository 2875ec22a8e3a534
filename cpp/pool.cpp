// Max pooling, no padding, any window and stride (overlapping windows
// included), of channels-first (N, C, H, W) and channels-last (N, H, W, C)
// images. argmax holds the flat index ih*W + iw in the image's H x W plane
// of each window's first maximum in row-major window order (as np.argmax;
// a NaN wins). No GEMM.
//
// NCHW: one (n, c) plane per loop iteration, so threads never share an
// output or, in the backward pass, a dx plane. NHWC: the C values of one
// pixel are contiguous, so every window tap is one vectorized
// compare-and-select over the channels.
#include <algorithm>
#include <cstdint>

#include "bind.h"
#include "pool.h"

namespace nnc {
namespace {

// The 2x2 stride-2 case (most CNNs) gets its own loop: fixed trip counts let
// the compiler keep the whole window in registers.
template <class T>
NNC_CLONES void pool_plane_2x2(T* out, int32_t* am, const T* x, i64 W, i64 Hout, i64 Wout,
                               int32_t index0 = 0) {
    for (i64 oh = 0; oh < Hout; oh++) {
        const T* r0 = x + 2 * oh * W;
        const T* r1 = r0 + W;
        const int32_t base = index0 + (int32_t)(2 * oh * W);
        for (i64 ow = 0; ow < Wout; ow++) {
            const T a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
            // first maximum in the order a, b, c, d; a NaN wins as in np.argmax
            T best = a;
            int32_t k = 0;
            if (b > best || (b != b && best == best)) best = b, k = 1;
            if (c > best || (c != c && best == best)) best = c, k = 2;
            if (d > best || (d != d && best == best)) best = d, k = 3;
            out[oh * Wout + ow] = best;
            am[oh * Wout + ow] = base + (int32_t)(2 * ow) + (k >> 1) * (int32_t)W + (k & 1);
        }
    }
}

template <class T>
NNC_CLONES void pool_plane(T* out, int32_t* am, const T* x, i64 H, i64 W, i64 ph, i64 pw,
                           i64 stride, i64 Hout, i64 Wout) {
    (void)H;
    for (i64 oh = 0; oh < Hout; oh++) {
        for (i64 ow = 0; ow < Wout; ow++) {
            const i64 h0 = oh * stride, w0 = ow * stride;
            T best = x[h0 * W + w0];
            i64 at = h0 * W + w0;
            for (i64 i = h0; i < h0 + ph; i++) {
                for (i64 j = w0; j < w0 + pw; j++) {
                    const T v = x[i * W + j];
                    if (v > best || (v != v && best == best)) best = v, at = i * W + j;
                }
            }
            out[oh * Wout + ow] = best;
            am[oh * Wout + ow] = (int32_t)at;
        }
    }
}

}  // namespace

// Max pooling over NC planes of H x W: out plane (Hout, Wout), window ph x pw
// moved by stride (windows may overlap). argmax[o] is the flat index ih*W + iw
// within its plane of the window's first maximum in row-major order (as
// np.argmax: the first NaN if there is one).
template <class T>
void max_pool_forward(T* out, int32_t* argmax, const T* x, i64 NC, i64 H, i64 W, i64 ph, i64 pw,
                      i64 stride) {
    const i64 Hout = 1 + (H - ph) / stride, Wout = 1 + (W - pw) / stride;
    const i64 HW = H * W, P = Hout * Wout;
    const bool is_2x2 = ph == 2 && pw == 2 && stride == 2;
#pragma omp parallel for num_threads(threads()) schedule(static) if (NC * HW > 32768)
    for (i64 p = 0; p < NC; p++) {
        if (is_2x2)
            pool_plane_2x2(out + p * P, argmax + p * P, x + p * HW, W, Hout, Wout);
        else
            pool_plane(out + p * P, argmax + p * P, x + p * HW, H, W, ph, pw, stride, Hout, Wout);
    }
}

// dx = 0, then dx[plane, argmax[o]] += dout[o] (sums where windows overlap).
template <class T>
void max_pool_backward(T* dx, const T* dout, const int32_t* argmax, i64 NC, i64 H, i64 W,
                       i64 Hout, i64 Wout) {
    const i64 HW = H * W, P = Hout * Wout;
#pragma omp parallel for num_threads(threads()) schedule(static) if (NC * HW > 32768)
    for (i64 p = 0; p < NC; p++) {
        T* d = dx + p * HW;
        const T* g = dout + p * P;
        const int32_t* am = argmax + p * P;
        std::fill(d, d + HW, T(0));
        for (i64 o = 0; o < P; o++) d[am[o]] += g[o];
    }
}

template <class T>
void pool_rows_2x2(T* out, int32_t* argmax, const T* x, i64 W, i64 Hout, i64 Wout,
                   int32_t index0) {
    pool_plane_2x2(out, argmax, x, W, Hout, Wout, index0);
}

template void max_pool_forward(float*, int32_t*, const float*, i64, i64, i64, i64, i64, i64);
template void max_pool_forward(double*, int32_t*, const double*, i64, i64, i64, i64, i64, i64);
template void max_pool_backward(float*, const float*, const int32_t*, i64, i64, i64, i64, i64);
template void max_pool_backward(double*, const double*, const int32_t*, i64, i64, i64, i64, i64);
template void pool_rows_2x2(float*, int32_t*, const float*, i64, i64, i64, int32_t);
template void pool_rows_2x2(double*, int32_t*, const double*, i64, i64, i64, int32_t);

namespace {

// ---- NHWC: x (N, H, W, C), out and argmax (N, Ho, Wo, C) ----

struct PoolShape {
    i64 N, H, W, C;
    i64 ph, pw, stride;
    i64 Ho, Wo;
};

// 32-byte vectors of values and the integer lanes their comparisons give
// (GCC vector extensions; the clones compile them to ymm, or pairs of xmm).
template <class T>
struct PoolLanes;
template <>
struct PoolLanes<float> {
    typedef float V __attribute__((vector_size(32)));
    typedef int32_t M __attribute__((vector_size(32)));
};
template <>
struct PoolLanes<double> {
    typedef double V __attribute__((vector_size(32)));
    typedef int64_t M __attribute__((vector_size(32)));
};

// The window's maximum and its index for K vectors of channels from first,
// held in registers: each tap is one load and one select, out and argmax
// are stored once. Written with vector types because GCC turned the plain
// loop's `o[c] = take ? v[c] : o[c]` into masked stores (vmaskmovps),
// microcoded on AMD: the NHWC 2x2 pool ran at 0.66-0.71x PyTorch's speed on
// an AVX2 EPYC, a quarter of its time on one such store.
template <class T, int K>
inline __attribute__((always_inline)) void pool_window_nhwc_vec(T* o, int32_t* a, const T* first,
                                                                int32_t first_at,
                                                                const PoolShape& s) {
    using V = typename PoolLanes<T>::V;
    using M = typename PoolLanes<T>::M;
    constexpr int L = 32 / sizeof(T);
    V best[K];
    M at[K];
    for (int k = 0; k < K; k++) {
        __builtin_memcpy(&best[k], first + k * L, sizeof(V));
        at[k] = M{} + first_at;
    }
    for (i64 i = 0; i < s.ph; i++) {
        for (i64 j = (i == 0 ? 1 : 0); j < s.pw; j++) {
            const T* v = first + (i * s.W + j) * s.C;
            const M tap_at = M{} + (first_at + (int32_t)(i * s.W + j));
            for (int k = 0; k < K; k++) {
                V x;
                __builtin_memcpy(&x, v + k * L, sizeof(V));
                // first maximum in window order; a NaN wins as in np.argmax
                const M take = (x > best[k]) | ((x != x) & (best[k] == best[k]));
                best[k] = take ? x : best[k];
                at[k] = take ? tap_at : at[k];
            }
        }
    }
    for (int k = 0; k < K; k++) {
        __builtin_memcpy(o + k * L, &best[k], sizeof(V));
        for (int l = 0; l < L; l++) a[k * L + l] = (int32_t)at[k][l];
    }
}

// The same for the nc channels left after the vector blocks, one at a time.
template <class T>
void pool_window_nhwc_tail(T* o, int32_t* a, const T* first, int32_t first_at, i64 nc,
                           const PoolShape& s) {
    for (i64 c = 0; c < nc; c++) {
        T best = first[c];
        int32_t at = first_at;
        for (i64 i = 0; i < s.ph; i++) {
            for (i64 j = (i == 0 ? 1 : 0); j < s.pw; j++) {
                const T v = first[(i * s.W + j) * s.C + c];
                if (v > best || (v != v && best == best))
                    best = v, at = first_at + (int32_t)(i * s.W + j);
            }
        }
        o[c] = best, a[c] = at;
    }
}

template <class T>
NNC_CLONES void max_pool_nhwc_forward(T* out, int32_t* argmax, const T* x, const PoolShape& s) {
    constexpr i64 L = 32 / sizeof(T);   // values per vector
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
            i64 c = 0;
            for (; c + 4 * L <= C; c += 4 * L)
                pool_window_nhwc_vec<T, 4>(o + c, a + c, first + c, first_at, s);
            for (; c + L <= C; c += L)
                pool_window_nhwc_vec<T, 1>(o + c, a + c, first + c, first_at, s);
            if (c < C) pool_window_nhwc_tail(o + c, a + c, first + c, first_at, C - c, s);
        }
    }
}

// dx[n, argmax, c] += dout[n, oh, ow, c]. Windows may overlap, so one image's
// dx has one writer: threads split the images.
template <class T>
NNC_CLONES void max_pool_nhwc_backward(T* dx, const T* dout, const int32_t* argmax,
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

// ---- binding checks, shared by both layouts ----

// argmax is int32: an H x W plane must fit its range.
void check_plane(i64 H, i64 W) {
    if (H > INT32_MAX || W > INT32_MAX || H * W > INT32_MAX)
        fail_value("a " + std::to_string(H) + "x" + std::to_string(W) +
                   " plane exceeds the int32 argmax range");
}

}  // namespace

// The window fits an H x W plane (which argmax's int32 can index). Hout and
// Wout round down when the window does not tile the plane (the public layer
// refuses that).
void check_pool_window(i64 H, i64 W, i64 ph, i64 pw, i64 stride) {
    if (ph < 1 || pw < 1 || stride < 1)
        fail_value("pool_height, pool_width and stride must be >= 1, got " + std::to_string(ph) +
                   ", " + std::to_string(pw) + ", " + std::to_string(stride));
    if (ph > H || pw > W)
        fail_value("the pool window does not fit in the input");
    check_plane(H, W);
}

namespace {

// Smallest and largest of a[0..n) (0 and 0 when n = 0). On all threads and
// the widest vectors: the argmax of a conv layer's pool is megabytes, and
// this check took a tenth of ThreeLayerConvNet's conv backward on one
// thread in baseline SSE2 code. Chunks with a plain inner loop: GCC 12 left
// `parallel for simd reduction(min/max)` scalar in every clone (one element
// per vpminsd, 2% of conv_pool_backward_weights in perf), and vectorizes this.
NNC_CLONES void index_range(const int32_t* a, i64 n, int32_t* lo, int32_t* hi) {
    int32_t mn = n ? a[0] : 0, mx = mn;
    constexpr i64 chunk = 16384;
    const i64 nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for num_threads(threads()) schedule(static) if (n > 65536) \
    reduction(min : mn) reduction(max : mx)
    for (i64 c = 0; c < nchunks; c++) {
        const i64 end = std::min(n, (c + 1) * chunk);
        int32_t cmn = a[c * chunk], cmx = cmn;
        for (i64 i = c * chunk; i < end; i++) {
            const int32_t v = a[i];
            cmn = v < cmn ? v : cmn;
            cmx = v > cmx ? v : cmx;
        }
        mn = std::min(mn, cmn);
        mx = std::max(mx, cmx);
    }
    *lo = mn, *hi = mx;
}

}  // namespace

// argmax (dtype, dout's shape) and H, W for a backward; then every index
// in [0, H*W), since a stray one would write outside dx (checked without
// the GIL).
void check_argmax(const In& dout, const In& argmax, i64 H, i64 W) {
    check_dtype<int32_t>(argmax, "argmax");
    check_ndim(dout, "dout", 4);
    check_same_shape(dout, "dout", argmax, "argmax");
    if (H < 1 || W < 1)
        fail_value("H and W must be >= 1, got " + std::to_string(H) + ", " + std::to_string(W));
    check_plane(H, W);
    int32_t lo = 0, hi = 0;
    {
        nb::gil_scoped_release nogil;
        index_range(ptr<int32_t>(argmax), (i64)argmax.size(), &lo, &hi);
    }
    if (lo < 0 || hi >= H * W)
        fail_value("argmax holds values in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                   "], outside the H*W = " + std::to_string(H * W) + " plane");
}

void bind_pool(nb::module_& m) {
    m.def("max_pool_forward", [](In x, i64 pool_height, i64 pool_width, i64 stride) {
        const DType dt = float_dtype({{"x", x.dtype()}});
        check_ndim(x, "x", 4);
        const i64 N = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3);
        check_nonempty(N, "x", "is an empty batch");
        check_nonempty(C, "x", "has no channels");
        check_pool_window(H, W, pool_height, pool_width, stride);
        const i64 Hout = 1 + (H - pool_height) / stride, Wout = 1 + (W - pool_width) / stride;
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_array<T>({N, C, Hout, Wout});
            auto argmax = new_array<int32_t>({N, C, Hout, Wout});
            {
                nb::gil_scoped_release nogil;
                max_pool_forward(out.data(), argmax.data(), ptr<T>(x), N * C, H, W, pool_height,
                                 pool_width, stride);
            }
            return nb::make_tuple(out, argmax);
        });
    }, nb::arg("x"), nb::arg("pool_height"), nb::arg("pool_width"), nb::arg("stride"),
       "(out (N, C, Hout, Wout), argmax int32 (N, C, Hout, Wout)): max pooling; argmax is the "
       "flat index in its H x W plane of each window's first maximum");

    m.def("max_pool_backward", [](In dout, In argmax, i64 H, i64 W) {
        const DType dt = float_dtype({{"dout", dout.dtype()}});
        check_argmax(dout, argmax, H, W);
        const i64 N = dout.shape(0), C = dout.shape(1), Hout = dout.shape(2), Wout = dout.shape(3);
        const int32_t* am = ptr<int32_t>(argmax);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_array<T>({N, C, H, W});
            {
                nb::gil_scoped_release nogil;
                max_pool_backward(dx.data(), ptr<T>(dout), am, N * C, H, W, Hout, Wout);
            }
            return nb::object(nb::cast(dx));
        });
    }, nb::arg("dout"), nb::arg("argmax"), nb::arg("H"), nb::arg("W"),
       "dx (N, C, H, W) of max_pool_forward: dout routed to the argmax positions");
}


void bind_pool_nhwc(nb::module_& m) {
    m.def("max_pool_nhwc_forward", [](In x, i64 pool_height, i64 pool_width, i64 stride) {
        const DType dt = float_dtype({{"x", x.dtype()}});
        check_ndim(x, "x", 4);
        const i64 N = x.shape(0), H = x.shape(1), W = x.shape(2), C = x.shape(3);
        check_nonempty(N, "x", "is an empty batch");
        check_nonempty(C, "x", "has no channels");
        check_pool_window(H, W, pool_height, pool_width, stride);
        const PoolShape s{N, H, W, C, pool_height, pool_width, stride,
                          1 + (H - pool_height) / stride, 1 + (W - pool_width) / stride};
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_array<T>({N, s.Ho, s.Wo, C});
            auto argmax = new_array<int32_t>({N, s.Ho, s.Wo, C});
            {
                nb::gil_scoped_release nogil;
                max_pool_nhwc_forward<T>(out.data(), argmax.data(), ptr<T>(x), s);
            }
            return nb::make_tuple(out, argmax);
        });
    }, nb::arg("x"), nb::arg("pool_height"), nb::arg("pool_width"), nb::arg("stride"),
       "(out (N, Ho, Wo, C), argmax int32 (N, Ho, Wo, C)): max pooling of x (N, H, W, C); argmax "
       "is the flat index ih*W + iw of each window's first maximum");

    m.def("max_pool_nhwc_backward", [](In dout, In argmax, i64 H, i64 W) {
        const DType dt = float_dtype({{"dout", dout.dtype()}});
        check_argmax(dout, argmax, H, W);
        PoolShape s{};
        s.N = dout.shape(0), s.Ho = dout.shape(1), s.Wo = dout.shape(2), s.C = dout.shape(3);
        s.H = H, s.W = W;
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_array<T>({s.N, H, W, s.C});
            {
                nb::gil_scoped_release nogil;
                max_pool_nhwc_backward<T>(dx.data(), ptr<T>(dout), ptr<int32_t>(argmax), s);
            }
            return nb::object(nb::cast(dx));
        });
    }, nb::arg("dout"), nb::arg("argmax"), nb::arg("H"), nb::arg("W"),
       "dx (N, H, W, C) of max_pool_nhwc_forward: dout routed to the argmax positions");
}

}  // namespace nnc
