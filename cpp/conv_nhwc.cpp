// Convolution of channels-last images (cross-correlation, zero padding):
//   out[n, oh, ow, f] = b[f] + sum_{kh, kw, c} w[kh, kw, c, f] * xpad[n, oh*s + kh, ow*s + kw, c]
// x (N, H, W, C), w (HH, WW, C, F), out (N, Ho, Wo, F) with
// Ho = (H + 2 pad - HH) / s + 1 and Wo likewise, rounded down.
//
// Method: im2col + GEMM over tiles of output pixels. In NHWC the patch of
// output pixel (n, oh, ow) is, for each kh, ONE contiguous run of WW*C values
// x[n, ih, iw0 : iw0 + WW, :] (cut where it leaves the image), and its
// (kh, kw, c) order is w's row order. So a column-matrix row is HH copies of
// contiguous runs, w is used as stored (K = HH*WW*C rows by F columns), and
// the output pixels are out's rows:
//   out_tile (m, F) = col (m, K+1) @ [w; b] (K+1, F)
// where the last column of col is ones, so the GEMM adds the bias too.
// Backward, per tile:
//   [dw; db] += col^T @ dout_tile   (the ones column makes db the last row)
//   dcol = dout_tile @ w^T, then col2im adds each dcol run back onto dx.
//
// Threads: each thread takes a fixed, equal share of the output pixels
// (forward) or of the images (backward: col2im of two tiles of one image can
// add into the same dx pixels, so an image has one writer), in tiles small
// enough that a tile stays in L2 between im2col writing it and the GEMM
// reading it; GEMMs run single-threaded inside the region. dw is summed per
// thread and the partial sums are added in thread order, in double, so the
// result does not change from run to run. With fewer images than threads
// the backward runs serially and OpenBLAS threads the GEMMs.
#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>

#include "bind.h"
#include "blas.h"

// Bytes of one thread's column tile.
#ifndef NNC_CONV_NHWC_TILE_BYTES
#define NNC_CONV_NHWC_TILE_BYTES (512 * 1024)
#endif

namespace nnc {
namespace {

struct NhwcConv {
    i64 N, H, W, C;   // x
    i64 HH, WW, F;    // w
    i64 stride, pad;
    i64 Ho, Wo;       // out
};

// Taps kw in [kw0, kw1) of an output column whose window starts at padded
// column iw0 = ow*stride - pad lie inside the image.
inline void inside_taps(const NhwcConv& s, i64 iw0, i64* kw0, i64* kw1) {
    *kw0 = std::min(s.WW, std::max<i64>(0, -iw0));
    *kw1 = std::max(*kw0, std::min(s.WW, s.W - iw0));
}

// Rows [0, m) of col (row stride K + 1) for output pixels p0 .. p0 + m - 1
// (pixel p = (n*Ho + oh)*Wo + ow): the patch in (kh, kw, c) order, then a 1.
template <class T>
NNC_CLONES void im2col_nhwc(T* col, const T* x, const NhwcConv& s, i64 p0, i64 m) {
    const i64 C = s.C, run = s.WW * C, K = s.HH * run;
    for (i64 i = 0; i < m; i++) {
        const i64 p = p0 + i, ow = p % s.Wo, oh = p / s.Wo % s.Ho, n = p / (s.Wo * s.Ho);
        const i64 iw0 = ow * s.stride - s.pad;
        i64 kw0, kw1;
        inside_taps(s, iw0, &kw0, &kw1);
        T* row = col + i * (K + 1);
        for (i64 kh = 0; kh < s.HH; kh++) {
            T* dst = row + kh * run;
            const i64 ih = oh * s.stride - s.pad + kh;
            if (ih < 0 || ih >= s.H) {
                std::fill(dst, dst + run, T(0));
                continue;
            }
            std::fill(dst, dst + kw0 * C, T(0));
            if (kw1 > kw0)
                std::memcpy(dst + kw0 * C, x + ((n * s.H + ih) * s.W + iw0 + kw0) * C,
                            (size_t)((kw1 - kw0) * C) * sizeof(T));
            std::fill(dst + kw1 * C, dst + run, T(0));
        }
        row[K] = T(1);
    }
}

// The adjoint of im2col_nhwc (without the ones column): dx += each run of
// rows [0, m) of dcol (row stride K) at the input pixels it was read from.
template <class T>
NNC_CLONES void col2im_nhwc(T* dx, const T* dcol, const NhwcConv& s, i64 p0, i64 m) {
    const i64 C = s.C, run = s.WW * C, K = s.HH * run;
    for (i64 i = 0; i < m; i++) {
        const i64 p = p0 + i, ow = p % s.Wo, oh = p / s.Wo % s.Ho, n = p / (s.Wo * s.Ho);
        const i64 iw0 = ow * s.stride - s.pad;
        i64 kw0, kw1;
        inside_taps(s, iw0, &kw0, &kw1);
        const T* row = dcol + i * K;
        for (i64 kh = 0; kh < s.HH; kh++) {
            const i64 ih = oh * s.stride - s.pad + kh;
            if (ih < 0 || ih >= s.H || kw1 == kw0) continue;
            T* dst = dx + ((n * s.H + ih) * s.W + iw0 + kw0) * C;
            const T* src = row + kh * run + kw0 * C;
            const i64 len = (kw1 - kw0) * C;
#pragma omp simd
            for (i64 j = 0; j < len; j++) dst[j] += src[j];
        }
    }
}

// Output pixels per column tile: one tile of (K+1) columns in
// NNC_CONV_NHWC_TILE_BYTES, at least 1.
template <class T>
i64 tile_pixels(i64 K) {
    return std::max<i64>(1, (i64)NNC_CONV_NHWC_TILE_BYTES / (i64)sizeof(T) / (K + 1));
}

// out rows [p0, p1) (output pixels), tile by tile.
template <class T>
void forward_pixels(T* out, T* col, const T* x, const T* wb, const NhwcConv& s, i64 p0, i64 p1,
                    i64 R) {
    const i64 K = s.HH * s.WW * s.C;
    for (i64 q = p0; q < p1; q += R) {
        const i64 m = std::min(R, p1 - q);
        im2col_nhwc(col, x, s, q, m);
        gemm<T>(false, false, m, s.F, K + 1, T(1), col, K + 1, wb, s.F, T(0), out + q * s.F, s.F);
    }
}

// dx of images [n0, n1) and their share of [dw; db], accumulated into dwb.
template <class T>
void backward_images(T* dx, T* dwb, T* col, const T* dout, const T* x, const T* w,
                     const NhwcConv& s, i64 n0, i64 n1, i64 R) {
    const i64 K = s.HH * s.WW * s.C, P = s.Ho * s.Wo, F = s.F;
    std::fill(dx + n0 * s.H * s.W * s.C, dx + n1 * s.H * s.W * s.C, T(0));
    for (i64 q = n0 * P; q < n1 * P; q += R) {
        const i64 m = std::min(R, n1 * P - q);
        const T* g = dout + q * F;
        im2col_nhwc(col, x, s, q, m);
        gemm<T>(true, false, K + 1, F, m, T(1), col, K + 1, g, F, T(1), dwb, F);  // [dw; db] += col^T g
        gemm<T>(false, true, m, K, F, T(1), g, F, w, F, T(0), col, K);            // dcol = g w^T
        col2im_nhwc(dx, col, s, q, m);
    }
}

template <class T>
void conv_nhwc_forward(T* out, const T* x, const T* w, const T* b, const NhwcConv& s) {
    const i64 K = s.HH * s.WW * s.C, M = s.N * s.Ho * s.Wo;
    std::unique_ptr<T[]> wb(new T[(size_t)((K + 1) * s.F)]);  // [w; b]
    std::copy(w, w + K * s.F, wb.get());
    std::copy(b, b + s.F, wb.get() + K * s.F);
    const int nt = (int)std::min<i64>(threads(), M);
    // Equal shares of the pixels, cut into tiles of at most R pixels.
    const i64 R = std::min(tile_pixels<T>(K), (M + nt - 1) / nt);
    std::unique_ptr<T[]> col(new T[(size_t)(nt * R * (K + 1))]);
    if (nt == 1) return forward_pixels(out, col.get(), x, wb.get(), s, 0, M, R);
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), prev = blas_set_threads_local(1);
        forward_pixels(out, col.get() + t * R * (K + 1), x, wb.get(), s, M * t / nt,
                       M * (t + 1) / nt, R);
        blas_set_threads_local(prev);
    }
}

template <class T>
void conv_nhwc_backward(T* dx, T* dw, T* db, const T* dout, const T* x, const T* w,
                        const NhwcConv& s) {
    const i64 K = s.HH * s.WW * s.C, P = s.Ho * s.Wo, KF = (K + 1) * s.F;
    const i64 R = tile_pixels<T>(K);
    // Whole images per tile when they are small (a tile of R pixels may span
    // several images), else tiles of rows of one image.
    const i64 images_per_tile = std::max<i64>(1, R / P), Rt = images_per_tile > 1 ? images_per_tile * P : R;
    const int nt = (int)std::min<i64>(threads(), s.N);
    std::unique_ptr<T[]> work(new T[(size_t)(nt * (Rt * (K + 1) + KF))]);  // per thread: col, [dw; db]
    if (nt == 1) {
        T* dwb = work.get() + Rt * (K + 1);
        std::fill(dwb, dwb + KF, T(0));
        backward_images(dx, dwb, work.get(), dout, x, w, s, 0, s.N, Rt);
        std::copy(dwb, dwb + K * s.F, dw);
        std::copy(dwb + K * s.F, dwb + KF, db);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), prev = blas_set_threads_local(1);
        T* col = work.get() + t * (Rt * (K + 1) + KF);
        T* dwb = col + Rt * (K + 1);
        std::fill(dwb, dwb + KF, T(0));
        const i64 n0 = s.N * t / nt, n1 = s.N * (t + 1) / nt;
        for (i64 n = n0; n < n1; n += images_per_tile)
            backward_images(dx, dwb, col, dout, x, w, s, n, std::min(n1, n + images_per_tile), Rt);
        blas_set_threads_local(prev);
    }
    // Partial sums in thread order, in double: the same bits every run.
#pragma omp parallel for num_threads(nt) schedule(static) if (KF > 32768)
    for (i64 i = 0; i < KF; i++) {
        double acc = 0.0;
        for (int t = 0; t < nt; t++) acc += (double)work[(size_t)(t * (Rt * (K + 1) + KF) + Rt * (K + 1) + i)];
        if (i < K * s.F) dw[i] = (T)acc;
        else db[i - K * s.F] = (T)acc;
    }
}

// --- bindings: every check that protects memory, GIL release, kernel call ---

std::string str(i64 v) { return std::to_string(v); }

NhwcConv conv_shape(const std::string& fn, const In& x, const In& w, i64 stride, i64 pad) {
    check_ndim(x, "x", 4);
    check_ndim(w, "w", 4);
    if (stride < 1) fail_value(fn + ": stride must be >= 1, got " + str(stride));
    if (pad < 0) fail_value(fn + ": pad must be >= 0, got " + str(pad));
    if (pad > (1 << 30)) fail_value(fn + ": pad = " + str(pad) + " is unreasonably large");
    NhwcConv s{};
    s.N = x.shape(0), s.H = x.shape(1), s.W = x.shape(2), s.C = x.shape(3);
    s.HH = w.shape(0), s.WW = w.shape(1), s.F = w.shape(3);
    s.stride = stride, s.pad = pad;
    for (size_t i = 0; i < 4; i++)
        if (x.shape(i) == 0 || w.shape(i) == 0)
            fail_value(fn + ": x of shape " + shape_of(x) + " and w of shape " + shape_of(w) +
                       " must have no zero-size dimension");
    if ((i64)w.shape(2) != s.C)
        fail_value(fn + ": x has shape " + shape_of(x) + " with C=" + str(s.C) +
                   " channels but w has shape " + shape_of(w));
    if (s.HH > s.H + 2 * pad || s.WW > s.W + 2 * pad)
        fail_value(fn + ": the " + str(s.HH) + "x" + str(s.WW) + " filter does not fit in the " +
                   str(s.H) + "x" + str(s.W) + " input padded by " + str(pad));
    s.Ho = 1 + (s.H + 2 * pad - s.HH) / stride;
    s.Wo = 1 + (s.W + 2 * pad - s.WW) / stride;
    // GEMM dimensions: K + 1 = HH*WW*C + 1 and F, and up to N*Ho*Wo rows.
    check_blas_dim(s.HH * s.WW * s.C + 1, "HH*WW*C + 1");
    check_blas_dim(s.F, "F");
    check_blas_dim(s.N * s.Ho * s.Wo, "N*Ho*Wo");
    return s;
}

}  // namespace

void bind_conv_nhwc(nb::module_& m) {
    m.def("conv_nhwc_forward", [](In x, In w, In b, i64 stride, i64 pad) {
        DType dt = same_dtype({{"x", x.dtype()}, {"w", w.dtype()}, {"b", b.dtype()}});
        const NhwcConv s = conv_shape("conv_nhwc_forward", x, w, stride, pad);
        check_ndim(b, "b", 1);
        if ((i64)b.shape(0) != s.F)
            fail_value("conv_nhwc_forward: b has shape " + shape_of(b) + " but w has shape " +
                       shape_of(w) + "; b must have " + str(s.F) + " entries");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_array<T>({(size_t)s.N, (size_t)s.Ho, (size_t)s.Wo, (size_t)s.F});
            {
                nb::gil_scoped_release nogil;
                conv_nhwc_forward<T>(out.data(), ptr<T>(x), ptr<T>(w), ptr<T>(b), s);
            }
            return nb::object(nb::cast(out));
        });
    }, nb::arg("x"), nb::arg("w"), nb::arg("b"), nb::arg("stride"), nb::arg("pad"),
       "out (N, Ho, Wo, F) = conv(x (N, H, W, C), w (HH, WW, C, F)) + b (F): cross-correlation "
       "with zero padding, output sizes rounded down");

    m.def("conv_nhwc_backward", [](In dout, In x, In w, i64 stride, i64 pad) {
        DType dt = same_dtype({{"dout", dout.dtype()}, {"x", x.dtype()}, {"w", w.dtype()}});
        const NhwcConv s = conv_shape("conv_nhwc_backward", x, w, stride, pad);
        check_ndim(dout, "dout", 4);
        if ((i64)dout.shape(0) != s.N || (i64)dout.shape(1) != s.Ho ||
            (i64)dout.shape(2) != s.Wo || (i64)dout.shape(3) != s.F)
            fail_value("conv_nhwc_backward: dout has shape " + shape_of(dout) + ", expected (" +
                       str(s.N) + ", " + str(s.Ho) + ", " + str(s.Wo) + ", " + str(s.F) + ")");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_array<T>({(size_t)s.N, (size_t)s.H, (size_t)s.W, (size_t)s.C});
            auto dw = new_array<T>({(size_t)s.HH, (size_t)s.WW, (size_t)s.C, (size_t)s.F});
            auto db = new_array<T>({(size_t)s.F});
            {
                nb::gil_scoped_release nogil;
                conv_nhwc_backward<T>(dx.data(), dw.data(), db.data(), ptr<T>(dout), ptr<T>(x),
                                      ptr<T>(w), s);
            }
            return nb::make_tuple(dx, dw, db);
        });
    }, nb::arg("dout"), nb::arg("x"), nb::arg("w"), nb::arg("stride"), nb::arg("pad"),
       "(dx (N, H, W, C), dw (HH, WW, C, F), db (F,)) of conv_nhwc_forward");
}

}  // namespace nnc
