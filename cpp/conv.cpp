// Convolution as im2col + GEMM (as Caffe and CS231n's fast layers do it).
//
// The column matrix of one image has K = C*HH*WW rows, one per filter tap
// (c, kh, kw), and P = Hout*Wout columns, one per output pixel; then
// out_n (F, P) = w (F, K) @ col (K, P). A block of m images lays its columns
// side by side, col (K, m*P), so small images still make one GEMM big enough
// for OpenBLAS to run near its peak.
//
// Threads: when there are at least as many images as threads, each thread
// takes a fixed range of blocks (schedule(static)) with its own bounded
// column buffer and runs single-threaded GEMMs; dw is summed per thread and
// the partial sums are added in thread order, so results do not change from
// run to run. With fewer images than threads, the images go one at a time:
// im2col and col2im split rows/channels across threads and OpenBLAS runs each
// GEMM on all threads.
#include "conv.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "blas.h"

namespace nnc {
namespace {

// Bytes of one thread's column tile (see tile_rows).
#ifndef NNC_CONV_TILE_BYTES
#define NNC_CONV_TILE_BYTES (512 * 1024)
#endif

// Output columns [ow0, ow1) whose input column ow*stride - pad + kw lies in [0, W).
inline void valid_cols(i64 kw, const ConvShape& s, i64* ow0, i64* ow1) {
    const i64 lo = s.pad - kw;  // need ow*stride >= lo
    const i64 hi = s.W - 1 + s.pad - kw;  // need ow*stride <= hi
    i64 a = lo > 0 ? (lo + s.stride - 1) / s.stride : 0;
    i64 e = hi < 0 ? 0 : std::min(s.Wout, hi / s.stride + 1);
    a = std::min(a, s.Wout);
    *ow0 = a;
    *ow1 = std::max(a, e);
}

// Rows [r0, r1) and output rows [oh0, oh1) of the column matrix of one image
// xn (C, H, W): row r holds tap (c, kh, kw) = (r / (HH*WW), r / WW % HH, r % WW),
// column (oh - oh0)*Wout + ow. Padding is written as zeros here, so x is
// never copied into a padded buffer.
template <class T>
NNC_CLONES void im2col(T* col, i64 ldcol, const T* xn, const ConvShape& s, i64 r0, i64 r1,
                       i64 oh0, i64 oh1) {
    for (i64 r = r0; r < r1; r++) {
        const i64 c = r / (s.HH * s.WW), kh = r / s.WW % s.HH, kw = r % s.WW;
        const T* xc = xn + c * s.H * s.W;
        T* row = col + r * ldcol - oh0 * s.Wout;
        i64 ow0, ow1;
        valid_cols(kw, s, &ow0, &ow1);
        for (i64 oh = oh0; oh < oh1; oh++) {
            T* dst = row + oh * s.Wout;
            const i64 ih = oh * s.stride - s.pad + kh;
            if (ih < 0 || ih >= s.H) {
                for (i64 ow = 0; ow < s.Wout; ow++) dst[ow] = T(0);
                continue;
            }
            for (i64 ow = 0; ow < ow0; ow++) dst[ow] = T(0);
            for (i64 ow = ow1; ow < s.Wout; ow++) dst[ow] = T(0);
            if (ow1 == ow0) continue;
            const T* src = xc + ih * s.W + ow0 * s.stride + kw - s.pad;  // x at column ow0
            T* d = dst + ow0;
            const i64 n = ow1 - ow0;
            if (s.stride == 1) {
#pragma omp simd
                for (i64 i = 0; i < n; i++) d[i] = src[i];
            } else {
                const i64 st = s.stride;
                for (i64 i = 0; i < n; i++) d[i] = src[i * st];
            }
        }
    }
}

// The adjoint of im2col for channels [c0, c1) and output rows [oh0, oh1):
// each tap's row is added back onto the input pixels it read. A channel's
// plane of dxn is written only by that channel's rows, so splitting channels
// needs no locks; the caller zeroes dxn first.
template <class T>
NNC_CLONES void col2im(T* dxn, const T* dcol, i64 ldcol, const ConvShape& s, i64 c0, i64 c1,
                       i64 oh0, i64 oh1) {
    for (i64 c = c0; c < c1; c++) {
        T* dxc = dxn + c * s.H * s.W;
        for (i64 kh = 0; kh < s.HH; kh++) {
            for (i64 kw = 0; kw < s.WW; kw++) {
                const T* row = dcol + ((c * s.HH + kh) * s.WW + kw) * ldcol - oh0 * s.Wout;
                i64 ow0, ow1;
                valid_cols(kw, s, &ow0, &ow1);
                if (ow1 == ow0) continue;
                for (i64 oh = oh0; oh < oh1; oh++) {
                    const i64 ih = oh * s.stride - s.pad + kh;
                    if (ih < 0 || ih >= s.H) continue;
                    T* dst = dxc + ih * s.W + ow0 * s.stride + kw - s.pad;  // dx at column ow0
                    const T* src = row + oh * s.Wout + ow0;
                    const i64 n = ow1 - ow0;
                    if (s.stride == 1) {
#pragma omp simd
                        for (i64 i = 0; i < n; i++) dst[i] += src[i];
                    } else {
                        const i64 st = s.stride;
                        for (i64 i = 0; i < n; i++) dst[i * st] += src[i];
                    }
                }
            }
        }
    }
}

template <class T>
NNC_CLONES void fill_value(T* a, i64 n, T v) {
#pragma omp simd
    for (i64 i = 0; i < n; i++) a[i] = v;
}

template <class T>
NNC_CLONES void add_bias(T* out, const T* b, i64 F, i64 P) {
    for (i64 f = 0; f < F; f++) {
        T* o = out + f * P;
        const T bf = b[f];
#pragma omp simd
        for (i64 p = 0; p < P; p++) o[p] += bf;
    }
}

// db[f] = sum over images and pixels of dout, accumulated in double.
template <class T>
NNC_CLONES void bias_grad(T* db, const T* dout, i64 N, i64 F, i64 P) {
#pragma omp parallel for num_threads(threads()) schedule(static) if (N * F * P > 32768)
    for (i64 f = 0; f < F; f++) {
        double acc = 0.0;
        for (i64 n = 0; n < N; n++) {
            const T* g = dout + (n * F + f) * P;
#pragma omp simd reduction(+ : acc)
            for (i64 p = 0; p < P; p++) acc += (double)g[p];
        }
        db[f] = (T)acc;
    }
}

// Output rows per tile: the column tile (K+1 rows of rows*Wout) stays within
// about half of a 1 MB L2, where im2col leaves it for the GEMM to read back.
template <class T>
i64 tile_rows(const ConvShape& s) {
    const i64 K = s.C * s.HH * s.WW + 1;
    const i64 budget = (i64)NNC_CONV_TILE_BYTES / (i64)sizeof(T);
    return std::max<i64>(1, std::min<i64>(s.Hout, budget / (K * s.Wout)));
}

}  // namespace

template <class T>
void conv_forward(T* out, const T* x, const T* w, const T* b, const ConvShape& s) {
    const i64 K = s.C * s.HH * s.WW, P = s.Hout * s.Wout, CHW = s.C * s.H * s.W;
    const i64 F = s.F;
    const int nt = threads();
    if (s.N >= nt) {
        // w_ext = [w | b] and a row of ones under each column tile: the GEMM adds the bias.
        std::unique_ptr<T[]> w_ext(new T[(size_t)(F * (K + 1))]);
        for (i64 f = 0; f < F; f++) {
            std::copy(w + f * K, w + (f + 1) * K, w_ext.get() + f * (K + 1));
            w_ext[f * (K + 1) + K] = b[f];
        }
        const i64 rows = tile_rows<T>(s), ntiles = (s.Hout + rows - 1) / rows;
        const i64 col_size = (K + 1) * rows * s.Wout;
        std::unique_ptr<T[]> work(new T[(size_t)nt * col_size]);
#pragma omp parallel num_threads(nt)
        {
            const int prev = blas_set_threads_local(1);
            T* col = work.get() + (size_t)omp_get_thread_num() * col_size;
            i64 ones_len = 0;
#pragma omp for schedule(static)
            for (i64 item = 0; item < s.N * ntiles; item++) {
                const i64 n = item / ntiles, oh0 = item % ntiles * rows;
                const i64 oh1 = std::min(s.Hout, oh0 + rows), cols = (oh1 - oh0) * s.Wout;
                im2col(col, cols, x + n * CHW, s, 0, K, oh0, oh1);
                if (ones_len != cols) fill_value(col + K * cols, cols, T(1)), ones_len = cols;
                gemm<T>(false, false, F, cols, K + 1, T(1), w_ext.get(), K + 1, col, cols, T(0),
                        out + n * F * P + oh0 * s.Wout, P);
            }
            blas_set_threads_local(prev);
        }
        return;
    }
    std::unique_ptr<T[]> col(new T[(size_t)(K * P)]);
    for (i64 n = 0; n < s.N; n++) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (i64 r = 0; r < K; r++) im2col(col.get(), P, x + n * CHW, s, r, r + 1, 0, s.Hout);
        T* on = out + n * F * P;
        gemm<T>(false, false, F, P, K, T(1), w, K, col.get(), P, T(0), on, P);
        add_bias(on, b, F, P);
    }
}

template <class T>
void conv_backward(T* dx, T* dw, T* db, const T* dout, const T* x, const T* w,
                   const ConvShape& s) {
    const i64 K = s.C * s.HH * s.WW, P = s.Hout * s.Wout, CHW = s.C * s.H * s.W;
    const i64 F = s.F;
    const int nt = threads();
    bias_grad(db, dout, s.N, F, P);
    if (s.N >= nt) {
        const i64 rows = tile_rows<T>(s);
        const i64 col_size = K * rows * s.Wout, dw_size = F * K, per_thread = col_size + dw_size;
        std::unique_ptr<T[]> work(new T[(size_t)nt * per_thread]);
#pragma omp parallel num_threads(nt)
        {
            const int prev = blas_set_threads_local(1);
            T* col = work.get() + (size_t)omp_get_thread_num() * per_thread;
            T* dw_part = col + col_size;
            fill_value(dw_part, dw_size, T(0));
#pragma omp for schedule(static)
            for (i64 n = 0; n < s.N; n++) {
                T* dxn = dx + n * CHW;
                fill_value(dxn, CHW, T(0));
                for (i64 oh0 = 0; oh0 < s.Hout; oh0 += rows) {
                    const i64 oh1 = std::min(s.Hout, oh0 + rows), cols = (oh1 - oh0) * s.Wout;
                    const T* g = dout + n * F * P + oh0 * s.Wout;
                    im2col(col, cols, x + n * CHW, s, 0, K, oh0, oh1);
                    // dw += dout_tile @ col^T; then col is reused for dcol = w^T @ dout_tile
                    gemm<T>(false, true, F, K, cols, T(1), g, P, col, cols, T(1), dw_part, K);
                    gemm<T>(true, false, K, cols, F, T(1), w, K, g, P, T(0), col, cols);
                    col2im(dxn, col, cols, s, 0, s.C, oh0, oh1);
                }
            }
            blas_set_threads_local(prev);
        }
        // Partial sums in thread order, in double: the same bits every run.
#pragma omp parallel for num_threads(nt) schedule(static) if (F * K > 32768)
        for (i64 i = 0; i < F * K; i++) {
            double acc = 0.0;
            for (int t = 0; t < nt; t++) acc += (double)work[(size_t)t * per_thread + col_size + i];
            dw[i] = (T)acc;
        }
        return;
    }
    std::unique_ptr<T[]> col(new T[(size_t)(K * P)]);
    for (i64 n = 0; n < s.N; n++) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (i64 r = 0; r < K; r++) im2col(col.get(), P, x + n * CHW, s, r, r + 1, 0, s.Hout);
        const T* g = dout + n * F * P;
        gemm<T>(false, true, F, K, P, T(1), g, P, col.get(), P, n == 0 ? T(0) : T(1), dw, K);
        gemm<T>(true, false, K, P, F, T(1), w, K, g, P, T(0), col.get(), P);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (i64 c = 0; c < s.C; c++) {
            fill_value(dx + n * CHW + c * s.H * s.W, s.H * s.W, T(0));
            col2im(dx + n * CHW, col.get(), P, s, c, c + 1, 0, s.Hout);
        }
    }
}

#define NNC_INSTANTIATE(T)                                                                   \
    template void conv_forward<T>(T*, const T*, const T*, const T*, const ConvShape&);      \
    template void conv_backward<T>(T*, T*, T*, const T*, const T*, const T*, const ConvShape&);
NNC_INSTANTIATE(float)
NNC_INSTANTIATE(double)

}  // namespace nnc
