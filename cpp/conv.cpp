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

// Rows [r0, r1) of the column matrix of one image xn (C, H, W); row r holds
// tap (c, kh, kw) = (r / (HH*WW), r / WW % HH, r % WW), column oh*Wout + ow.
// Padding is written as zeros here, so x is never copied into a padded buffer.
template <class T>
NNC_CLONES void im2col(T* col, i64 ldcol, const T* xn, const ConvShape& s, i64 r0, i64 r1) {
    for (i64 r = r0; r < r1; r++) {
        const i64 c = r / (s.HH * s.WW), kh = r / s.WW % s.HH, kw = r % s.WW;
        const T* xc = xn + c * s.H * s.W;
        T* row = col + r * ldcol;
        i64 ow0, ow1;
        valid_cols(kw, s, &ow0, &ow1);
        for (i64 oh = 0; oh < s.Hout; oh++) {
            T* dst = row + oh * s.Wout;
            const i64 ih = oh * s.stride - s.pad + kh;
            if (ih < 0 || ih >= s.H) {
                std::fill(dst, dst + s.Wout, T(0));
                continue;
            }
            for (i64 ow = 0; ow < ow0; ow++) dst[ow] = T(0);
            for (i64 ow = ow1; ow < s.Wout; ow++) dst[ow] = T(0);
            if (ow1 == ow0) continue;
            const T* src = xc + ih * s.W + ow0 * s.stride + kw - s.pad;  // x at column ow0
            T* d = dst + ow0;
            const i64 n = ow1 - ow0;
            if (s.stride == 1) {
                std::memcpy(d, src, n * sizeof(T));
            } else {
                const i64 st = s.stride;
                for (i64 i = 0; i < n; i++) d[i] = src[i * st];
            }
        }
    }
}

// The adjoint of im2col for channels [c0, c1) of one image: each tap's row is
// added back onto the input pixels it read. A channel's plane of dxn is
// written only by that channel's rows, so splitting channels needs no locks.
template <class T>
NNC_CLONES void col2im(T* dxn, const T* dcol, i64 ldcol, const ConvShape& s, i64 c0, i64 c1) {
    for (i64 c = c0; c < c1; c++) {
        T* dxc = dxn + c * s.H * s.W;
        std::fill(dxc, dxc + s.H * s.W, T(0));
        for (i64 kh = 0; kh < s.HH; kh++) {
            for (i64 kw = 0; kw < s.WW; kw++) {
                const T* row = dcol + ((c * s.HH + kh) * s.WW + kw) * ldcol;
                i64 ow0, ow1;
                valid_cols(kw, s, &ow0, &ow1);
                for (i64 oh = 0; oh < s.Hout; oh++) {
                    const i64 ih = oh * s.stride - s.pad + kh;
                    if (ih < 0 || ih >= s.H) continue;
                    if (ow1 == ow0) continue;
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

// out_n[f, p] = g[f*ldg + p] + b[f] for the m images of a block (g may alias out_n when m == 1).
template <class T>
NNC_CLONES void add_bias_unpack(T* out, const T* g, i64 ldg, const T* b, i64 m, i64 F, i64 P) {
    for (i64 j = 0; j < m; j++) {
        for (i64 f = 0; f < F; f++) {
            T* dst = out + (j * F + f) * P;
            const T* src = g + f * ldg + j * P;
            const T bf = b[f];
#pragma omp simd
            for (i64 p = 0; p < P; p++) dst[p] = src[p] + bf;
        }
    }
}

// dblk (F, m*P) from the m images' dout (m, F, P): the GEMM layout of a block.
template <class T>
void pack_block(T* dblk, const T* dout, i64 m, i64 F, i64 P) {
    for (i64 j = 0; j < m; j++)
        for (i64 f = 0; f < F; f++)
            std::memcpy(dblk + f * m * P + j * P, dout + (j * F + f) * P, P * sizeof(T));
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

// Images per block: enough GEMM columns (~2048) to amortize OpenBLAS's
// packing and call overhead, a column buffer of at most ~4 MB per thread,
// and blocks spread evenly over the threads.
template <class T>
i64 images_per_block(const ConvShape& s, int nt) {
    const i64 K = s.C * s.HH * s.WW, P = s.Hout * s.Wout;
    const i64 per_thread = (s.N + nt - 1) / nt;
    i64 m = std::min<i64>(per_thread, (2048 + P - 1) / P);
    m = std::min<i64>(m, std::max<i64>(1, (i64)(4 << 20) / (i64)(K * P * sizeof(T))));
    m = std::max<i64>(m, 1);
    const i64 blocks_per_thread = (per_thread + m - 1) / m;
    return (s.N + nt * blocks_per_thread - 1) / (nt * blocks_per_thread);
}

}  // namespace

template <class T>
void conv_forward(T* out, const T* x, const T* w, const T* b, const ConvShape& s) {
    const i64 K = s.C * s.HH * s.WW, P = s.Hout * s.Wout, CHW = s.C * s.H * s.W;
    const i64 F = s.F;
    const int nt = threads();
    if (s.N >= nt) {
        const i64 m = images_per_block<T>(s, nt);
        const i64 nblocks = (s.N + m - 1) / m;
        const i64 col_size = K * m * P, tmp_size = m > 1 ? F * m * P : 0;
        std::unique_ptr<T[]> work(new T[(size_t)nt * (col_size + tmp_size)]);
#pragma omp parallel num_threads(nt)
        {
            const int prev = blas_set_threads_local(1);
            T* col = work.get() + (size_t)omp_get_thread_num() * (col_size + tmp_size);
            T* tmp = col + col_size;
#pragma omp for schedule(static)
            for (i64 blk = 0; blk < nblocks; blk++) {
                const i64 n0 = blk * m, mb = std::min(m, s.N - n0), ld = mb * P;
                for (i64 j = 0; j < mb; j++) im2col(col + j * P, ld, x + (n0 + j) * CHW, s, 0, K);
                T* g = mb == 1 ? out + n0 * F * P : tmp;
                gemm<T>(false, false, F, ld, K, T(1), w, K, col, ld, T(0), g, ld);
                add_bias_unpack(out + n0 * F * P, g, ld, b, mb, F, P);
            }
            blas_set_threads_local(prev);
        }
        return;
    }
    std::unique_ptr<T[]> col(new T[(size_t)(K * P)]);
    for (i64 n = 0; n < s.N; n++) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (i64 r = 0; r < K; r++) im2col(col.get(), P, x + n * CHW, s, r, r + 1);
        T* on = out + n * F * P;
        gemm<T>(false, false, F, P, K, T(1), w, K, col.get(), P, T(0), on, P);
        add_bias_unpack(on, on, P, b, 1, F, P);
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
        const i64 m = images_per_block<T>(s, nt);
        const i64 nblocks = (s.N + m - 1) / m;
        const i64 col_size = K * m * P, blk_size = m > 1 ? F * m * P : 0, dw_size = F * K;
        const i64 per_thread = col_size + blk_size + dw_size;
        std::unique_ptr<T[]> work(new T[(size_t)nt * per_thread]);
#pragma omp parallel num_threads(nt)
        {
            const int prev = blas_set_threads_local(1);
            T* col = work.get() + (size_t)omp_get_thread_num() * per_thread;
            T* dblk = col + col_size;
            T* dw_part = dblk + blk_size;
            std::fill(dw_part, dw_part + dw_size, T(0));
#pragma omp for schedule(static)
            for (i64 blk = 0; blk < nblocks; blk++) {
                const i64 n0 = blk * m, mb = std::min(m, s.N - n0), ld = mb * P;
                for (i64 j = 0; j < mb; j++) im2col(col + j * P, ld, x + (n0 + j) * CHW, s, 0, K);
                const T* g = dout + n0 * F * P;
                if (mb > 1) {
                    pack_block(dblk, g, mb, F, P);
                    g = dblk;
                }
                // dw += dout_blk @ col^T, then col is reused for dcol = w^T @ dout_blk
                gemm<T>(false, true, F, K, ld, T(1), g, ld, col, ld, T(1), dw_part, K);
                gemm<T>(true, false, K, ld, F, T(1), w, K, g, ld, T(0), col, ld);
                for (i64 j = 0; j < mb; j++) col2im(dx + (n0 + j) * CHW, col + j * P, ld, s, 0, s.C);
            }
            blas_set_threads_local(prev);
        }
        // Partial sums in thread order, in double: the same bits every run.
#pragma omp parallel for num_threads(nt) schedule(static) if (F * K > 32768)
        for (i64 i = 0; i < F * K; i++) {
            double acc = 0.0;
            for (int t = 0; t < nt; t++) acc += (double)work[(size_t)t * per_thread + col_size + blk_size + i];
            dw[i] = (T)acc;
        }
        return;
    }
    std::unique_ptr<T[]> col(new T[(size_t)(K * P)]);
    for (i64 n = 0; n < s.N; n++) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (i64 r = 0; r < K; r++) im2col(col.get(), P, x + n * CHW, s, r, r + 1);
        const T* g = dout + n * F * P;
        gemm<T>(false, true, F, K, P, T(1), g, P, col.get(), P, n == 0 ? T(0) : T(1), dw, K);
        gemm<T>(true, false, K, P, F, T(1), w, K, g, P, T(0), col.get(), P);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (i64 c = 0; c < s.C; c++) col2im(dx + n * CHW, col.get(), P, s, c, c + 1);
    }
}

#define NNC_INSTANTIATE(T)                                                                   \
    template void conv_forward<T>(T*, const T*, const T*, const T*, const ConvShape&);      \
    template void conv_backward<T>(T*, T*, T*, const T*, const T*, const T*, const ConvShape&);
NNC_INSTANTIATE(float)
NNC_INSTANTIATE(double)

}  // namespace nnc
