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
//
// 3x3 filters with stride 1 take the Winograd F(2x2, 3x3) path below
// instead (2.25x fewer FLOPs), when the caller's ConvAlgo and the size rule
// of winograd.cpp say so. Stride-1 forwards with at most 4 input channels
// take the direct kernel below.
#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "bind.h"
#include "blas.h"
#include "winograd.h"

namespace nnc {
namespace {

// Bytes of one thread's column tile: half of a 2 MB L2. On the course's
// 5x5 RGB conv 1 MB measured 15-25% faster than 512 KB (fewer, longer
// GEMMs, each packing the small filter matrix once) and no slower than 2 MB.
constexpr i64 kTileBytes = 1024 * 1024;

struct NhwcConv {
    i64 N, H, W, C;   // x
    i64 HH, WW, F;    // w
    i64 stride, pad;
    i64 Ho, Wo;       // out
};

// Output pixel p = (n*Ho + oh)*Wo + ow as (n, oh, ow), stepped one pixel at
// a time (no 64-bit divisions per pixel).
struct Pixel {
    i64 n, oh, ow;
    Pixel(const NhwcConv& s, i64 p) : n(p / (s.Ho * s.Wo)), oh(p / s.Wo % s.Ho), ow(p % s.Wo) {}
    void next(const NhwcConv& s) {
        if (++ow < s.Wo) return;
        ow = 0;
        if (++oh < s.Ho) return;
        oh = 0;
        n++;
    }
};

// Taps kw in [kw0, kw1) of an output column whose window starts at padded
// column iw0 = ow*stride - pad lie inside the image.
inline void inside_taps(const NhwcConv& s, i64 iw0, i64* kw0, i64* kw1) {
    *kw0 = std::min(s.WW, std::max<i64>(0, -iw0));
    *kw1 = std::max(*kw0, std::min(s.WW, s.W - iw0));
}

// Values copied at once by im2col: one 64-byte vector of float (two of double).
constexpr i64 kChunk = 16;

// Rows [0, m) of col (row stride K + 1) for output pixels p0 .. p0 + m - 1
// (pixel p = (n*Ho + oh)*Wo + ow): the patch in (kh, kw, c) order, then a 1.
// Runs are short for few channels (15 values for a 5x5 RGB filter), which a
// vector loop would mostly spend in its scalar tail; so a run that lies
// wholly in the image is copied in whole chunks of kChunk values, running
// over into the next run's place (written next), the ones column (written
// last) or the next row (written later). col has kChunk values of slack at
// its end, and a run is copied exactly where its chunks would read past x.
template <class T>
NNC_CLONES void im2col_nhwc(T* col, const T* x, const NhwcConv& s, i64 p0, i64 m) {
    const i64 C = s.C, run = s.WW * C, K = s.HH * run;
    const i64 chunked = (run + kChunk - 1) / kChunk * kChunk;
    const T* x_end = x + s.N * s.H * s.W * C;
    Pixel px(s, p0);
    for (i64 i = 0; i < m; i++, px.next(s)) {
        const i64 n = px.n, oh = px.oh, ow = px.ow;
        const i64 iw0 = ow * s.stride - s.pad;
        i64 kw0, kw1;
        inside_taps(s, iw0, &kw0, &kw1);
        const i64 lo = kw0 * C, hi = kw1 * C;  // [lo, hi) of a run lies in the image
        T* row = col + i * (K + 1);
        for (i64 kh = 0; kh < s.HH; kh++) {
            T* dst = row + kh * run;
            const i64 ih = oh * s.stride - s.pad + kh;
            const T* src = x + ((n * s.H + ih) * s.W + iw0 + kw0) * C - lo;  // src[lo] is in x
            const bool inside = ih >= 0 && ih < s.H && hi > lo;
            if (inside && lo == 0 && hi == run && src + chunked <= x_end) {
                for (i64 j = 0; j < chunked; j += kChunk) {
#pragma omp simd
                    for (i64 u = 0; u < kChunk; u++) dst[j + u] = src[j + u];
                }
                continue;
            }
            // at an edge: zeros (in whole chunks too, not short memset calls),
            // then the part of the run that lies in the image
            for (i64 j = 0; j < chunked; j += kChunk) {
#pragma omp simd
                for (i64 u = 0; u < kChunk; u++) dst[j + u] = T(0);
            }
            if (!inside) continue;
#pragma omp simd
            for (i64 j = lo; j < hi; j++) dst[j] = src[j];
        }
        row[K] = T(1);
    }
}

// The adjoint of im2col_nhwc (without the ones column): dx += each run of
// rows [0, m) of dcol (row stride K) at the input pixels it was read from.
template <class T>
NNC_CLONES void col2im_nhwc(T* dx, const T* dcol, const NhwcConv& s, i64 p0, i64 m) {
    const i64 C = s.C, run = s.WW * C, K = s.HH * run;
    Pixel px(s, p0);
    for (i64 i = 0; i < m; i++, px.next(s)) {
        const i64 n = px.n, oh = px.oh, ow = px.ow;
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
// kTileBytes, at least 1.
template <class T>
i64 tile_pixels(i64 K) {
    return std::max<i64>(1, kTileBytes / (i64)sizeof(T) / (K + 1));
}

// Forward tiles for layers with little GEMM work per pixel (few channels
// and filters, such as a first layer): at most 100^3 multiply-adds per
// GEMM, the size up to which OpenBLAS's x86-64-v4 kernels multiply without
// packing the matrices first; a 5x5 RGB conv with 16 filters measured 101
// GFLOP/s in 512-pixel GEMMs against 73 from 1024 pixels on. 0 when the
// layer has more work per pixel (its GEMMs are efficient at any size).
inline i64 small_gemm_pixels(i64 K, i64 F) {
    const i64 per_pixel = (K + 1) * F;
    return per_pixel <= 4096 ? 1000000 / per_pixel : 0;
}

// The tile size for cutting n pixels into tiles of at most R: equal tiles
// (two of 512 for 1024 pixels and R = 822, not 822 + 202).
inline i64 even_tiles(i64 n, i64 R) {
    const i64 count = (n + R - 1) / R;
    return (n + count - 1) / count;
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

// dx of images [n0, n1) and their share of [dw; db], accumulated into dwb;
// wt is w^T (F, K), so that the dcol GEMM is an NN one (which OpenBLAS's
// small-matrix kernels take). dx null: the weight gradients only; dwb null:
// dx only.
template <class T>
void backward_images(T* dx, T* dwb, T* col, const T* dout, const T* x, const T* wt,
                     const NhwcConv& s, i64 n0, i64 n1, i64 R) {
    const i64 K = s.HH * s.WW * s.C, P = s.Ho * s.Wo, F = s.F;
    if (dx) std::fill(dx + n0 * s.H * s.W * s.C, dx + n1 * s.H * s.W * s.C, T(0));
    for (i64 q = n0 * P; q < n1 * P; q += R) {
        const i64 m = std::min(R, n1 * P - q);
        const T* g = dout + q * F;
        if (dwb) {
            im2col_nhwc(col, x, s, q, m);
            gemm<T>(true, false, K + 1, F, m, T(1), col, K + 1, g, F, T(1), dwb, F);  // [dw; db] += col^T g
        }
        if (!dx) continue;
        gemm<T>(false, false, m, K, F, T(1), g, F, wt, K, T(0), col, K);          // dcol = g w^T
        col2im_nhwc(dx, col, s, q, m);
    }
}

template <class T>
void im2col_forward(T* out, const T* x, const T* w, const T* b, const NhwcConv& s) {
    const i64 K = s.HH * s.WW * s.C, M = s.N * s.Ho * s.Wo;
    std::unique_ptr<T[]> wb(new T[(size_t)((K + 1) * s.F)]);  // [w; b]
    std::copy(w, w + K * s.F, wb.get());
    std::copy(b, b + s.F, wb.get() + K * s.F);
    const int nt = (int)std::min<i64>(threads(), M);
    // Equal shares of the pixels, cut into tiles of at most R pixels.
    i64 R = std::min(tile_pixels<T>(K), (M + nt - 1) / nt);
    if (const i64 small = small_gemm_pixels(K, s.F)) R = std::min(R, small);
    R = even_tiles((M + nt - 1) / nt, R);
    const i64 per = R * (K + 1) + kChunk;  // a column tile and im2col's slack
    std::unique_ptr<T[]> col(new T[(size_t)(nt * per)]);
    if (nt == 1) return forward_pixels(out, col.get(), x, wb.get(), s, 0, M, R);
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), prev = blas_set_threads_local(1);
        forward_pixels(out, col.get() + t * per, x, wb.get(), s, M * t / nt, M * (t + 1) / nt, R);
        blas_set_threads_local(prev);
    }
}

// dw null: dx only (db too is left alone).
template <class T>
void im2col_backward(T* dx, T* dw, T* db, const T* dout, const T* x, const T* w,
                     const NhwcConv& s) {
    const i64 K = s.HH * s.WW * s.C, P = s.Ho * s.Wo, KF = (K + 1) * s.F;
    i64 R = tile_pixels<T>(K);
    if (const i64 small = small_gemm_pixels(K, s.F)) R = std::min(R, small);
    // Whole images per tile when they are small (a tile of R pixels may span
    // several images), else tiles of rows of one image.
    const i64 images_per_tile = std::max<i64>(1, R / P);
    const i64 Rt = images_per_tile > 1 ? images_per_tile * P : even_tiles(P, R);
    const int nt = (int)std::min<i64>(threads(), s.N);
    std::unique_ptr<T[]> wt_buf(dx ? new T[(size_t)(K * s.F)] : nullptr);  // w^T (F, K)
    for (i64 k = 0; dx && k < K; k++)
        for (i64 f = 0; f < s.F; f++) wt_buf[f * K + k] = w[k * s.F + f];
    const T* wt = wt_buf.get();
    // per thread: a column tile with im2col's slack, then [dw; db]
    const i64 colsz = Rt * (K + 1) + kChunk, per = colsz + (dw ? KF : 0);
    std::unique_ptr<T[]> work(new T[(size_t)(nt * per)]);
    if (nt == 1) {
        T* dwb = dw ? work.get() + colsz : nullptr;
        if (dwb) std::fill(dwb, dwb + KF, T(0));
        backward_images(dx, dwb, work.get(), dout, x, wt, s, 0, s.N, Rt);
        if (!dwb) return;
        std::copy(dwb, dwb + K * s.F, dw);
        std::copy(dwb + K * s.F, dwb + KF, db);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), prev = blas_set_threads_local(1);
        T* col = work.get() + t * per;
        T* dwb = dw ? col + colsz : nullptr;
        if (dwb) std::fill(dwb, dwb + KF, T(0));
        const i64 n0 = s.N * t / nt, n1 = s.N * (t + 1) / nt;
        for (i64 n = n0; n < n1; n += images_per_tile)
            backward_images(dx, dwb, col, dout, x, wt, s, n, std::min(n1, n + images_per_tile), Rt);
        blas_set_threads_local(prev);
    }
    if (!dw) return;
    // Partial sums in thread order, in double: the same bits every run.
#pragma omp parallel for num_threads(nt) schedule(static) if (KF > 32768)
    for (i64 i = 0; i < KF; i++) {
        double acc = 0.0;
        for (int t = 0; t < nt; t++) acc += (double)work[(size_t)(t * per + colsz + i)];
        if (i < K * s.F) dw[i] = (T)acc;
        else db[i - K * s.F] = (T)acc;
    }
}


// --- Winograd F(2x2, 3x3), for 3x3 filters with stride 1 ---
// (Lavin and Gray 2016; winograd.cpp explains the method for NCHW.) Each 2x2
// block of output pixels (a tile) comes from the 4x4 input patch d under it:
//     Y = A^T [ sum_c (G g_c G^T) * (B^T d_c B) ] A
// with B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; 1/2 1/2 1/2;
// 1/2 -1/2 1/2; 0 0 1], A^T = [1 1 1 0; 0 1 -1 -1]. For each of the 16
// positions k of a transformed tile the sum over channels is a GEMM:
//     M[k] (tiles, F) = V[k] (tiles, C) @ U[k] (C, F)
// with V = B^T d B and U = G g G^T: 16 multiply-adds per tile, channel and
// filter instead of 36, i.e. 2.25x fewer FLOPs. In NHWC every transform is
// a vector operation over a pixel's contiguous channels (or a filter tap's
// contiguous filters), with no shuffles. Tiles run over the whole batch
// (n, tile row, tile column); tiles past an odd Ho or Wo read zeros and drop
// their extra pixels.
//   dx is the forward of dout, padded by 2 - pad, with the filters rotated
// by 180 degrees and C and F swapped (so pad <= 2).
//   dw = G^T [ sum over tiles of (A g A^T) * (B^T d B) ] G, g a 2x2 tile of
// dout: per k, Z[k] (C, F) += V[k]^T @ Gh[k] with Gh = A g A^T.
// Threads: each takes an equal share of the tiles, in blocks whose V and M
// (or Gh) fit in a few MB, with single-threaded GEMMs; dw's Z is summed per
// thread and the partial sums added in thread order, in double.

constexpr i64 kWinoBlockBytes = 2 * 1024 * 1024;

// The 16 planes of V, M or Gh (rows x cols each) start one cache line apart
// within a 4 KB page, or the transforms' 16 streams would share a few L1 sets.
template <class T>
i64 plane_stride(i64 rows, i64 cols) {
    const i64 page = 4096 / (i64)sizeof(T), line = 64 / (i64)sizeof(T);
    return (rows * cols + page - 1) / page * page + line;
}

struct WinoTiles {
    i64 TH, TW, total;  // tile rows and columns of one image; N * TH * TW
};

// Tiles per block: V (16, block, C) and M (16, block, F) in the byte budget, at most 256.
template <class T>
i64 wino_block(i64 C, i64 F) {
    const i64 fit = kWinoBlockBytes / (16 * (C + F) * (i64)sizeof(T));
    return std::max<i64>(1, std::min<i64>(256, fit));
}

// U[k][c][f] = (G g G^T)[k] with g[kh][kw] = w[kh, kw, c, f], for channels
// [c0, c1): computed in double along the contiguous filters, rounded once.
template <class T>
NNC_CLONES void wino_filter_transform(T* U, const T* w, i64 C, i64 F, i64 c0, i64 c1) {
    constexpr i64 FB = 64;
    for (i64 c = c0; c < c1; c++) {
        for (i64 f0 = 0; f0 < F; f0 += FB) {
            const i64 n = std::min(FB, F - f0);
            alignas(64) double t[4][3][FB];  // G g: along the height
            for (int j = 0; j < 3; j++) {
                const T* g0 = w + ((0 * 3 + j) * C + c) * F + f0;
                const T* g1 = w + ((1 * 3 + j) * C + c) * F + f0;
                const T* g2 = w + ((2 * 3 + j) * C + c) * F + f0;
#pragma omp simd
                for (i64 f = 0; f < n; f++) {
                    const double a = g0[f], b = g1[f], d = g2[f];
                    t[0][j][f] = a;
                    t[1][j][f] = 0.5 * (a + b + d);
                    t[2][j][f] = 0.5 * (a - b + d);
                    t[3][j][f] = d;
                }
            }
            for (int i = 0; i < 4; i++) {  // (G g) G^T: along the width
                T* u = U + c * F + f0;
                const i64 k0 = 4 * i * C * F;
#pragma omp simd
                for (i64 f = 0; f < n; f++) {
                    const double a = t[i][0][f], b = t[i][1][f], d = t[i][2][f];
                    u[k0 + f] = (T)a;
                    u[k0 + C * F + f] = (T)(0.5 * (a + b + d));
                    u[k0 + 2 * C * F + f] = (T)(0.5 * (a - b + d));
                    u[k0 + 3 * C * F + f] = (T)d;
                }
            }
        }
    }
}

// V[k][row][c] = (B^T d B)[k] of the tiles [t0, t0 + m) (row = tile - t0);
// pixels in the pad read zeros.
template <class T>
NNC_CLONES void wino_input_transform(T* V, i64 vplane, const T* x, const T* zeros,
                                     const NhwcConv& s, const WinoTiles& g, i64 t0, i64 m) {
    const i64 C = s.C;
    for (i64 r = 0; r < m; r++) {
        const i64 t = t0 + r, tw = t % g.TW, th = t / g.TW % g.TH, n = t / (g.TW * g.TH);
        const T* d[16];
        for (int i = 0; i < 4; i++) {
            const i64 ih = 2 * th - s.pad + i;
            for (int j = 0; j < 4; j++) {
                const i64 iw = 2 * tw - s.pad + j;
                d[4 * i + j] = ih >= 0 && ih < s.H && iw >= 0 && iw < s.W
                                   ? x + ((n * s.H + ih) * s.W + iw) * C : zeros;
            }
        }
        T* v = V + r * C;
#pragma omp simd
        for (i64 c = 0; c < C; c++) {
            T e[4][4];  // B^T d: along the height
            for (int j = 0; j < 4; j++) {
                e[0][j] = d[j][c] - d[8 + j][c];
                e[1][j] = d[4 + j][c] + d[8 + j][c];
                e[2][j] = d[8 + j][c] - d[4 + j][c];
                e[3][j] = d[4 + j][c] - d[12 + j][c];
            }
            for (int i = 0; i < 4; i++) {  // (B^T d) B: along the width
                v[(4 * i) * vplane + c] = e[i][0] - e[i][2];
                v[(4 * i + 1) * vplane + c] = e[i][1] + e[i][2];
                v[(4 * i + 2) * vplane + c] = e[i][2] - e[i][1];
                v[(4 * i + 3) * vplane + c] = e[i][1] - e[i][3];
            }
        }
    }
}

// out pixels of tiles [t0, t0 + m) = A^T M A + b; pixels past Ho or Wo go
// to the scratch row `drop`.
template <class T>
NNC_CLONES void wino_output_transform(T* out, const T* M, i64 mplane, const T* b, T* drop,
                                      const NhwcConv& s, const WinoTiles& g, i64 t0, i64 m) {
    const i64 F = s.F;
    for (i64 r = 0; r < m; r++) {
        const i64 t = t0 + r, tw = t % g.TW, th = t / g.TW % g.TH, n = t / (g.TW * g.TH);
        T* y[4];
        for (int p = 0; p < 2; p++)
            for (int q = 0; q < 2; q++) {
                const i64 oh = 2 * th + p, ow = 2 * tw + q;
                y[2 * p + q] = oh < s.Ho && ow < s.Wo ? out + ((n * s.Ho + oh) * s.Wo + ow) * F : drop;
            }
        const T* mk = M + r * F;
#pragma omp simd
        for (i64 f = 0; f < F; f++) {
            T a[2][4];  // A^T m: along the height
            for (int j = 0; j < 4; j++) {
                const T m0 = mk[j * mplane + f], m1 = mk[(4 + j) * mplane + f];
                const T m2 = mk[(8 + j) * mplane + f], m3 = mk[(12 + j) * mplane + f];
                a[0][j] = m0 + m1 + m2;
                a[1][j] = m1 - m2 - m3;
            }
            const T bias = b[f];
            for (int p = 0; p < 2; p++) {  // (A^T m) A: along the width
                y[2 * p][f] = a[p][0] + a[p][1] + a[p][2] + bias;
                y[2 * p + 1][f] = a[p][1] - a[p][2] - a[p][3] + bias;
            }
        }
    }
}

// Gh[k][row][f] = (A g A^T)[k] for the 2x2 dout tiles [t0, t0 + m); pixels
// past Ho or Wo read zeros.
template <class T>
NNC_CLONES void wino_dout_transform(T* Gh, i64 gplane, const T* dout, const T* zeros,
                                    const NhwcConv& s, const WinoTiles& g, i64 t0, i64 m) {
    const i64 F = s.F;
    for (i64 r = 0; r < m; r++) {
        const i64 t = t0 + r, tw = t % g.TW, th = t / g.TW % g.TH, n = t / (g.TW * g.TH);
        const T* q[4];
        for (int p = 0; p < 2; p++)
            for (int j = 0; j < 2; j++) {
                const i64 oh = 2 * th + p, ow = 2 * tw + j;
                q[2 * p + j] = oh < s.Ho && ow < s.Wo ? dout + ((n * s.Ho + oh) * s.Wo + ow) * F : zeros;
            }
        T* h = Gh + r * F;
#pragma omp simd
        for (i64 f = 0; f < F; f++) {
            T a[2][4];  // g A^T: each row along the width
            for (int p = 0; p < 2; p++) {
                const T e = q[2 * p][f], o = q[2 * p + 1][f];
                a[p][0] = e;
                a[p][1] = e + o;
                a[p][2] = e - o;
                a[p][3] = -o;
            }
            for (int j = 0; j < 4; j++) {  // A (g A^T): along the height
                h[j * gplane + f] = a[0][j];
                h[(4 + j) * gplane + f] = a[0][j] + a[1][j];
                h[(8 + j) * gplane + f] = a[0][j] - a[1][j];
                h[(12 + j) * gplane + f] = -a[1][j];
            }
        }
    }
}

// dw[kh, kw, c, f] = (G^T Z[.][c][f] G)[kh][kw] for channels [c0, c1), in
// double; Z holds the 16 planes (C, F), plane after plane.
NNC_CLONES void wino_weight_grad_transform(double* dw, const double* Z, i64 C, i64 F, i64 c0,
                                           i64 c1) {
    const i64 P = C * F;
    for (i64 c = c0; c < c1; c++) {
        const double* z = Z + c * F;
        double* d = dw + c * F;
#pragma omp simd
        for (i64 f = 0; f < F; f++) {
            double a[3][4];  // G^T Z: along the height
            for (int j = 0; j < 4; j++) {
                const double z0 = z[j * P + f], z1 = z[(4 + j) * P + f];
                const double z2 = z[(8 + j) * P + f], z3 = z[(12 + j) * P + f];
                const double h = 0.5 * (z1 + z2);
                a[0][j] = z0 + h;
                a[1][j] = 0.5 * (z1 - z2);
                a[2][j] = h + z3;
            }
            for (int i = 0; i < 3; i++) {  // (G^T Z) G: along the width
                const double h = 0.5 * (a[i][1] + a[i][2]);
                d[(3 * i) * P + f] = a[i][0] + h;
                d[(3 * i + 1) * P + f] = 0.5 * (a[i][1] - a[i][2]);
                d[(3 * i + 2) * P + f] = h + a[i][3];
            }
        }
    }
}

// out = conv(x, w) + b by Winograd (s: 3x3, stride 1, any pad).
template <class T>
void wino_forward(T* out, const T* x, const T* w, const T* b, const NhwcConv& s) {
    WinoTiles g{(s.Ho + 1) / 2, (s.Wo + 1) / 2, 0};
    g.total = s.N * g.TH * g.TW;
    const i64 C = s.C, F = s.F;
    std::unique_ptr<T[]> U(new T[(size_t)(16 * C * F)]);
#pragma omp parallel for num_threads(threads()) schedule(static) if (C * F > 4096)
    for (i64 c = 0; c < C; c++) wino_filter_transform(U.get(), w, C, F, c, c + 1);
    const int nt = (int)std::min<i64>(threads(), g.total);
    const i64 B = std::min(wino_block<T>(C, F), (g.total + nt - 1) / nt);
    const i64 vplane = plane_stride<T>(B, C), mplane = plane_stride<T>(B, F);
    // per thread: V, M, a zero pixel, a row for dropped pixels
    const i64 per = 16 * (vplane + mplane) + C + F;
    std::unique_ptr<T[]> work(new T[(size_t)(nt * per)]);
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), prev = nt > 1 ? blas_set_threads_local(1) : 0;
        T* V = work.get() + t * per;
        T* M = V + 16 * vplane;
        T* zeros = M + 16 * mplane;
        T* drop = zeros + C;
        std::fill(zeros, zeros + C, T(0));
        const i64 t1 = g.total * (t + 1) / nt;
        for (i64 t0 = g.total * t / nt; t0 < t1; t0 += B) {
            const i64 m = std::min(B, t1 - t0);
            wino_input_transform(V, vplane, x, zeros, s, g, t0, m);
            for (int k = 0; k < 16; k++)
                gemm<T>(false, false, m, F, C, T(1), V + k * vplane, C, U.get() + k * C * F, F,
                        T(0), M + k * mplane, F);
            wino_output_transform(out, M, mplane, b, drop, s, g, t0, m);
        }
        if (nt > 1) blas_set_threads_local(prev);
    }
}

// dx by Winograd: the forward of dout padded by 2 - pad with w rotated by
// 180 degrees, C and F swapped (s: 3x3, stride 1, pad <= 2).
template <class T>
void wino_dx(T* dx, const T* dout, const T* w, const NhwcConv& s) {
    NhwcConv t = s;  // dout (N, Ho, Wo, F) -> dx (N, H, W, C)
    t.H = s.Ho, t.W = s.Wo, t.C = s.F;
    t.Ho = s.H, t.Wo = s.W, t.F = s.C;
    t.pad = 2 - s.pad;
    const i64 C = s.C, F = s.F;
    std::unique_ptr<T[]> wt(new T[(size_t)(9 * C * F) + C]);  // (3, 3, F, C), then a zero bias
#pragma omp parallel for num_threads(threads()) schedule(static) if (C * F > 4096)
    for (i64 f = 0; f < F; f++)
        for (int k = 0; k < 9; k++)
            for (i64 c = 0; c < C; c++) wt[(k * F + f) * C + c] = w[((8 - k) * C + c) * F + f];
    std::fill(wt.get() + 9 * C * F, wt.get() + 9 * C * F + C, T(0));
    wino_forward(dx, dout, wt.get(), wt.get() + 9 * C * F, t);
}

// dw and db by Winograd (s: 3x3, stride 1, any pad).
template <class T>
void wino_dw(T* dw, T* db, const T* dout, const T* x, const NhwcConv& s) {
    WinoTiles g{(s.Ho + 1) / 2, (s.Wo + 1) / 2, 0};
    g.total = s.N * g.TH * g.TW;
    const i64 C = s.C, F = s.F, CF = C * F, rows = s.N * s.Ho * s.Wo;
    const int nt = (int)std::min<i64>(threads(), g.total);
    const i64 B = std::min(wino_block<T>(C, F), (g.total + nt - 1) / nt);
    const i64 vplane = plane_stride<T>(B, C), gplane = plane_stride<T>(B, F);
    const i64 per = 16 * (vplane + gplane + CF) + std::max(C, F);  // V, Gh, Z, zeros
    std::unique_ptr<T[]> work(new T[(size_t)(nt * per)]);
    std::unique_ptr<double[]> dbp(new double[(size_t)(nt * F)]);
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), prev = nt > 1 ? blas_set_threads_local(1) : 0;
        T* V = work.get() + t * per;
        T* Gh = V + 16 * vplane;
        T* Z = Gh + 16 * gplane;
        T* zeros = Z + 16 * CF;
        std::fill(zeros, zeros + std::max(C, F), T(0));
        std::fill(Z, Z + 16 * CF, T(0));
        const i64 t1 = g.total * (t + 1) / nt;
        for (i64 t0 = g.total * t / nt; t0 < t1; t0 += B) {
            const i64 m = std::min(B, t1 - t0);
            wino_input_transform(V, vplane, x, zeros, s, g, t0, m);
            wino_dout_transform(Gh, gplane, dout, zeros, s, g, t0, m);
            for (int k = 0; k < 16; k++)
                gemm<T>(true, false, C, F, m, T(1), V + k * vplane, C, Gh + k * gplane, F, T(1),
                        Z + k * CF, F);
        }
        // this thread's share of db: its equal share of dout's rows, in double
        double* acc = dbp.get() + t * F;
        std::fill(acc, acc + F, 0.0);
        for (i64 r = rows * t / nt; r < rows * (t + 1) / nt; r++) {
            const T* row = dout + r * F;
#pragma omp simd
            for (i64 f = 0; f < F; f++) acc[f] += (double)row[f];
        }
        if (nt > 1) blas_set_threads_local(prev);
    }
    // Partial sums in thread order, in double: the same bits every run.
    std::unique_ptr<double[]> Zs(new double[(size_t)(16 * CF)]), dwd(new double[(size_t)(9 * CF)]);
#pragma omp parallel for num_threads(threads()) schedule(static) if (16 * CF > 32768)
    for (i64 i = 0; i < 16 * CF; i++) {
        double a = 0.0;
        for (int t = 0; t < nt; t++) a += (double)work[(size_t)(t * per + 16 * (vplane + gplane) + i)];
        Zs[i] = a;
    }
#pragma omp parallel for num_threads(threads()) schedule(static) if (CF > 4096)
    for (i64 c = 0; c < C; c++) wino_weight_grad_transform(dwd.get(), Zs.get(), C, F, c, c + 1);
    for (i64 i = 0; i < 9 * CF; i++) dw[i] = (T)dwd[i];
    for (i64 f = 0; f < F; f++) {
        double a = 0.0;
        for (int t = 0; t < nt; t++) a += dbp[t * F + f];
        db[f] = (T)a;
    }
}

// The NCHW size rule of winograd.cpp (the same counts hold here: im2col
// moves 36*C values and does 72*C*F multiply-adds per 2x2 output tile,
// Winograd 16*(C + F) values and 32*C*F), unless algo forces a path.
bool wino_forward_applies(const NhwcConv& s, ConvAlgo algo) {
    if (s.HH != 3 || s.WW != 3 || s.stride != 1) return false;
    if (algo == ConvAlgo::im2col || algo == ConvAlgo::direct) return false;
    return algo == ConvAlgo::winograd ||
           winograd_size_pays(s.C, s.F, s.N * ((s.Ho + 1) / 2) * ((s.Wo + 1) / 2));
}

// dx and dw together, as winograd.cpp: dx needs pad <= 2, whatever algo says.
bool wino_backward_applies(const NhwcConv& s, ConvAlgo algo) {
    if (s.HH != 3 || s.WW != 3 || s.stride != 1 || s.pad > 2) return false;
    if (algo == ConvAlgo::im2col || algo == ConvAlgo::direct) return false;
    return algo == ConvAlgo::winograd ||
           winograd_size_pays(s.C, s.F, s.N * ((s.H + 1) / 2) * ((s.W + 1) / 2));
}

// ---- direct forward, stride 1 ----
//
// A first layer on RGB images has K = HH*WW*C small, and the column matrix
// costs as much to build as the GEMM that reads it (the course's 5x5 RGB conv
// 1 took twice PyTorch's time through im2col). Here each block of PB output
// pixels of one row x FB filters is held in registers: for every tap (kh, kw,
// c), the FB weights w[kh, kw, c, f0:] (contiguous in w's layout) are loaded
// once and multiplied by PB input values broadcast from a zero-padded window
// of the rows the block reads. In channels-last order the taps (kw, c) of one
// kh are one contiguous run of the window row, so with C a template
// parameter (C <= 4) every broadcast is at a fixed offset from one pointer;
// beyond that C is a run-time value (template C = 0), and the PB offsets
// k*C are loop invariants of the tap loop.

// A first layer's shape: C <= 4, at least 8 output columns and 9 taps.
bool nhwc_first_layer(const NhwcConv& s) { return s.C <= 4 && s.Wo >= 8 && s.HH * s.WW >= 9; }

// Whether the direct kernels' filter block is one vector (of the widest the
// CPU has) rather than two: F fits in one, or fills an odd number of them.
template <class T>
bool nhwc_one_vector_of_filters(i64 F) {
    const i64 v = (__builtin_cpu_supports("avx512f") ? 64 : 32) / (i64)sizeof(T);
    return F <= v || (F + v - 1) / v % 2 == 1;
}

// Whether F fills those filter blocks: at most an eighth of them padding.
template <class T>
bool nhwc_filters_fill(i64 F) {
    const i64 v = (__builtin_cpu_supports("avx512f") ? 64 : 32) / (i64)sizeof(T);
    const i64 fb = nhwc_one_vector_of_filters<T>(F) ? v : 2 * v;
    return (F + fb - 1) / fb * fb * 7 <= F * 8;
}

// Auto: a first layer's shape; on AVX2 CPUs, up to 32 channels beside at
// most 16 filters, or 16 channels in float32, with F filling the filter
// blocks; and on AVX-512 CPUs, up to 128 channels with
// F filling the filter blocks, in place of im2col, or of Winograd when
// OpenBLAS runs AVX2 kernels (against Winograd on AVX-512 GEMMs it lost from
// C = 32 on; benches/README.md, "The direct kernel beyond few channels").
// ConvAlgo::direct forces it for any stride-1 shape.
template <class T>
bool nhwc_direct_applies(const NhwcConv& s, ConvAlgo algo) {
    if (s.stride != 1 || algo == ConvAlgo::im2col || algo == ConvAlgo::winograd) return false;
    if (algo == ConvAlgo::direct || nhwc_first_layer(s)) return true;
    if (s.Wo < 8 || s.HH * s.WW < 9) return false;
    // AVX2 CPUs: the direct kernel beat Winograd on OpenBLAS's AVX2 GEMMs up
    // to C = 32 with F <= 16 (0.72-0.92x its time on a Zen 3 EPYC, both
    // dtypes), and up to C = 16 with more filters in float32 (the course
    // conv2 forward 0.70x); in float64 with F = 32, and from C = 32 with
    // F = 32, it did not (1.0-1.4x).
    // Where 256-bit FMAs run as two halves (Zen 1), Winograd won from C*F =
    // 512 in float32 (the direct forward 1.17-1.25x its time; 0.95-1.00x up
    // to C*F = 256); float64 was within +-10% either way and keeps the rule.
    if (!__builtin_cpu_supports("avx512f")) {
        if (std::is_same<T, float>::value && fma_splits_256bit() && s.C * s.F > 256 &&
            wino_forward_applies(s, algo))
            return false;
        return nhwc_filters_fill<T>(s.F) &&
               (s.F <= 16 ? s.C <= 32 : std::is_same<T, float>::value && s.C <= 16);
    }
    if (s.C > 128 || !nhwc_filters_fill<T>(s.F)) return false;
    return !wino_forward_applies(s, algo) || !blas_runs_avx512();
}

// The shape whose direct forward is dx: dout (N, Ho, Wo, F) padded by
// HH-1-pad, with C and F swapped (direct_dx_nhwc).
NhwcConv nhwc_dx_as_forward(const NhwcConv& s) {
    return NhwcConv{s.N, s.Ho, s.Wo, s.F, s.HH, s.WW, s.C, 1, s.HH - 1 - s.pad, s.H, s.W};
}

// dx by the direct kernel: a square kernel with pad below its size, and the
// direct forward of that shape applies.
template <class T>
bool nhwc_direct_dx_applies(const NhwcConv& s, ConvAlgo algo) {
    if (s.stride != 1 || s.HH != s.WW || s.pad >= s.HH) return false;
    return nhwc_direct_applies<T>(nhwc_dx_as_forward(s), algo);
}

// dw and db by the direct kernel (direct_dw_nhwc, below), any C, whatever
// path the forward and dx take. With auto: a first layer's (where the
// forward is direct), and where direct_dw_pays (common.h) with C*F up to
// 2048 against im2col (4096 on AVX-512 CPUs), and up to 512 against
// Winograd, whose NHWC dw is the faster one beyond that.
bool nhwc_direct_dw_applies(const NhwcConv& s, ConvAlgo algo) {
    if (s.stride != 1 || algo == ConvAlgo::im2col || algo == ConvAlgo::winograd) return false;
    if (algo == ConvAlgo::direct || nhwc_first_layer(s)) return true;
    const i64 limit = wino_backward_applies(s, algo)      ? 512
                      : __builtin_cpu_supports("avx512f") ? 4096
                                                          : 2048;
    return direct_dw_pays(s.C, s.F, s.HH * s.WW, limit);
}

// Window rows [oh0, oh0 + R) (padded numbering) of image xn (H, W, C), each
// Lp pixels of C values, zero outside the image.
template <class T>
NNC_CLONES void fill_window_nhwc(T* xw, const T* xn, const NhwcConv& s, i64 Lp, i64 oh0,
                                 i64 R) {
    const i64 C = s.C, len = Lp * C;
    for (i64 r = 0; r < R; r++) {
        T* row = xw + r * len;
        const i64 ih = oh0 + r - s.pad;
        if (ih < 0 || ih >= s.H) {
            std::fill(row, row + len, T(0));
            continue;
        }
        std::fill(row, row + s.pad * C, T(0));
        std::copy(xn + ih * s.W * C, xn + (ih + 1) * s.W * C, row + s.pad * C);
        std::fill(row + (s.pad + s.W) * C, row + len, T(0));
    }
}

// Output rows [oh0, oh1) of one image, out_n (Ho, Wo, F), from its window xw
// (fill_window_nhwc at oh0); wp is w with F padded to Fp (a multiple of FB).
template <class T, int CT, int FB, int PB>
NNC_CLONES void direct_rows_nhwc(T* out_n, const T* xw, const T* wp, const T* b,
                                 const NhwcConv& s, i64 Lp, i64 Fp, i64 oh0, i64 oh1) {
    const i64 C = CT > 0 ? CT : s.C, run = s.WW * C;  // taps (kw, c) of one kh
    for (i64 oh = oh0; oh < oh1; oh++) {
        for (i64 ow0 = 0; ow0 < s.Wo; ow0 += PB) {
            const int np = (int)std::min<i64>(PB, s.Wo - ow0);
            for (i64 f0 = 0; f0 < Fp; f0 += FB) {
                const int nf = (int)std::min<i64>(FB, s.F - f0);
                T acc[PB][FB];
                for (int k = 0; k < PB; k++)
#pragma omp simd
                    for (int j = 0; j < FB; j++) acc[k][j] = j < nf ? b[f0 + j] : T(0);
                for (i64 kh = 0; kh < s.HH; kh++) {
                    const T* xr = xw + ((oh - oh0 + kh) * Lp + ow0) * C;
                    const T* wt = wp + kh * run * Fp + f0;
                    for (i64 t = 0; t < run; t++, wt += Fp) {
#pragma GCC unroll 32
                        for (int k = 0; k < PB; k++) {
                            const T xv = xr[k * C + t];
#pragma omp simd
                            for (int j = 0; j < FB; j++) acc[k][j] += xv * wt[j];
                        }
                    }
                }
                for (int k = 0; k < np; k++) {
                    T* o = out_n + (oh * s.Wo + ow0 + k) * s.F + f0;
                    if (nf == FB) {  // whole vectors: the scalar loop cost a third of the time
#pragma omp simd
                        for (int j = 0; j < FB; j++) o[j] = acc[k][j];
                    } else {
                        for (int j = 0; j < nf; j++) o[j] = acc[k][j];
                    }
                }
            }
        }
    }
}

template <class T, int CT, int FB, int PB>
void direct_forward_nhwc_blocked(T* out, const T* x, const T* w, const T* b, const NhwcConv& s) {
    const i64 C = CT > 0 ? CT : s.C;
    // Window rows of Lp >= (Wo rounded up to PB) + WW - 1 pixels, so a last
    // block reads zeros past Wo without bounds checks.
    const i64 Lp = (s.Wo + PB - 1) / PB * PB + s.WW - 1, Fp = (s.F + FB - 1) / FB * FB;
    const i64 taps = s.HH * s.WW * C;
    std::vector<T> wp((size_t)(taps * Fp), T(0));
    for (i64 t = 0; t < taps; t++) std::copy(w + t * s.F, w + (t + 1) * s.F, wp.data() + t * Fp);
    const int nt = threads();
    // Work items: runs of output rows of one image, a few per thread, each
    // with its own window of at most kDirectWindowBytes where one row allows
    // it; dynamic, as the NCHW direct forward.
    const i64 fit = kDirectWindowBytes / (i64)sizeof(T) / (Lp * C) - s.HH + 1;
    const i64 rows = std::max<i64>(1, std::min<i64>({s.Ho, s.N * s.Ho / (4 * nt), fit}));
    const i64 per_image = (s.Ho + rows - 1) / rows, win = (rows + s.HH - 1) * Lp * C;
    std::vector<T> windows((size_t)(nt * win));
#pragma omp parallel num_threads(nt)
    {
        T* xw = windows.data() + (size_t)omp_get_thread_num() * win;
#pragma omp for schedule(dynamic)
        for (i64 item = 0; item < s.N * per_image; item++) {
            const i64 n = item / per_image, oh0 = item % per_image * rows;
            const i64 oh1 = std::min(s.Ho, oh0 + rows);
            fill_window_nhwc(xw, x + n * s.H * s.W * C, s, Lp, oh0, oh1 - oh0 + s.HH - 1);
            direct_rows_nhwc<T, CT, FB, PB>(out + n * s.Ho * s.Wo * s.F, xw, wp.data(), b, s, Lp,
                                            Fp, oh0, oh1);
        }
    }
}

// 16 accumulators: PB pixels x FB filters, FB one vector or two (when F
// fills two without much padding), for 512-bit or 256-bit vectors.
template <class T, int C>
void direct_forward_nhwc_c(T* out, const T* x, const T* w, const T* b, const NhwcConv& s) {
    constexpr int V512 = 64 / sizeof(T), V256 = 32 / sizeof(T);
    const bool narrow = nhwc_one_vector_of_filters<T>(s.F);
    if (__builtin_cpu_supports("avx512f")) {
        if (narrow)
            direct_forward_nhwc_blocked<T, C, V512, 16>(out, x, w, b, s);
        else
            direct_forward_nhwc_blocked<T, C, 2 * V512, 8>(out, x, w, b, s);
    } else {
        if (narrow)
            direct_forward_nhwc_blocked<T, C, V256, 8>(out, x, w, b, s);
        else
            direct_forward_nhwc_blocked<T, C, 2 * V256, 4>(out, x, w, b, s);
    }
}

template <class T>
void direct_forward_nhwc(T* out, const T* x, const T* w, const T* b, const NhwcConv& s) {
    switch (s.C) {
        case 1: return direct_forward_nhwc_c<T, 1>(out, x, w, b, s);
        case 2: return direct_forward_nhwc_c<T, 2>(out, x, w, b, s);
        case 3: return direct_forward_nhwc_c<T, 3>(out, x, w, b, s);
        case 4: return direct_forward_nhwc_c<T, 4>(out, x, w, b, s);
        default: return direct_forward_nhwc_c<T, 0>(out, x, w, b, s);
    }
}

// ---- direct dw, stride 1 (a first layer's weights, and few C*F) ----
//
// dw[kh, kw, c, f] = sum_{n, oh, ow} xpad[n, oh + kh, ow + kw, c] * dout[n, oh, ow, f].
// dout is channels-last, so each pixel's filters are one vector run (the
// NCHW dw has to transpose dout first): TB taps x FB filters of dw are an
// outer product held in registers over the pixels of a few output rows, with
// each input value broadcast from the rows' zero-padded window.

// dwp[t, f] (taps, Fp) += the sums over output rows [0, nrows) of the window
// xw (fill_window_nhwc) and their dout rows g (nrows * Wo pixels of Fp). A
// block is TB consecutive taps (kw, c) of one kh, so its broadcasts are at
// fixed offsets from one pointer; a short last block reads on into the next
// values (the window has TB of slack) and drops those sums.
template <class T, int TB, int FB>
NNC_CLONES void direct_dw_rows_nhwc(T* dwp, const T* xw, const T* g, const NhwcConv& s, i64 Lp,
                                    i64 Fp, i64 nrows) {
    const i64 C = s.C, run = s.WW * C, pitch = Lp * C;
    for (i64 f0 = 0; f0 < Fp; f0 += FB) {
        for (i64 kh = 0; kh < s.HH; kh++) {
            for (i64 j0 = 0; j0 < run; j0 += TB) {
                T acc[TB][FB];
#pragma GCC unroll 32
                for (int k = 0; k < TB; k++)
#pragma omp simd
                    for (int j = 0; j < FB; j++) acc[k][j] = T(0);
                for (i64 oh = 0; oh < nrows; oh++) {
                    const T* xr = xw + (oh + kh) * pitch + j0;
                    const T* gr = g + oh * s.Wo * Fp + f0;
                    for (i64 ow = 0; ow < s.Wo; ow++, xr += C, gr += Fp) {
#pragma GCC unroll 32
                        for (int k = 0; k < TB; k++) {
                            const T xv = xr[k];
#pragma omp simd
                            for (int j = 0; j < FB; j++) acc[k][j] += xv * gr[j];
                        }
                    }
                }
                // Constant bounds (see direct_dw_image in conv.cpp).
                const int nk = (int)std::min<i64>(TB, run - j0);
                T* d = dwp + (kh * run + j0) * Fp + f0;
#pragma GCC unroll 32
                for (int k = 0; k < TB; k++) {
                    if (k >= nk) break;
#pragma omp simd
                    for (int j = 0; j < FB; j++) d[k * Fp + j] += acc[k][j];
                }
            }
        }
    }
}

template <class T, int TB, int FB>
void direct_dw_nhwc_blocked(T* dw, T* db, const T* dout, const T* x, const NhwcConv& s) {
    const i64 Lp = s.W + 2 * s.pad, Fp = (s.F + FB - 1) / FB * FB, taps = s.HH * s.WW * s.C;
    // Output rows per piece: their dout (Fp filters each) in 16 KB, so it
    // stays in L1 while every tap block reads it.
    const i64 rows = std::max<i64>(1, std::min<i64>(s.Ho, 16384 / (i64)sizeof(T) / (s.Wo * Fp)));
    const i64 win = (rows + s.HH - 1) * Lp * s.C + TB, gsz = rows * s.Wo * Fp, part = taps * Fp;
    const int nt = threads();
    // Each thread sums its fixed share of the images into its own dw (and db,
    // in double), added in thread order, in double: the same bits every run.
    const i64 per = win + gsz + part;
    std::unique_ptr<T[]> work(new T[(size_t)(nt * per)]);
    std::vector<double> db_parts((size_t)(nt * s.F), 0.0);
#pragma omp parallel num_threads(nt)
    {
        const int me = omp_get_thread_num();
        T* xw = work.get() + (size_t)me * per;
        T* g = xw + win;
        T* dwp = g + gsz;
        double* dbp = db_parts.data() + (size_t)me * s.F;
        std::fill(dwp, dwp + part, T(0));
        std::fill(xw + win - TB, xw + win, T(0));  // the slack a short last block reads
        for (i64 n = s.N * me / nt; n < s.N * (me + 1) / nt; n++) {
            for (i64 oh0 = 0; oh0 < s.Ho; oh0 += rows) {
                const i64 nr = std::min(rows, s.Ho - oh0);
                fill_window_nhwc(xw, x + n * s.H * s.W * s.C, s, Lp, oh0, nr + s.HH - 1);
                // dout rows with F padded to Fp (zeros); db's sums over the
                // piece in T (a few hundred pixels), then into double
                const T* src = dout + (n * s.Ho + oh0) * s.Wo * s.F;
                for (i64 p = 0; p < nr * s.Wo; p++) {
                    std::copy(src + p * s.F, src + (p + 1) * s.F, g + p * Fp);
                    std::fill(g + p * Fp + s.F, g + (p + 1) * Fp, T(0));
                }
                for (i64 f0 = 0; f0 < Fp; f0 += FB) {
                    T sum[FB] = {};
                    for (i64 p = 0; p < nr * s.Wo; p++)
#pragma omp simd
                        for (int j = 0; j < FB; j++) sum[j] += g[p * Fp + f0 + j];
                    for (int j = 0; j < FB && f0 + j < s.F; j++) dbp[f0 + j] += (double)sum[j];
                }
                direct_dw_rows_nhwc<T, TB, FB>(dwp, xw, g, s, Lp, Fp, nr);
            }
        }
    }
#pragma omp parallel for num_threads(nt) schedule(static) if (taps * s.F > 32768)
    for (i64 i = 0; i < taps * s.F; i++) {
        const i64 t = i / s.F, f = i % s.F;
        double acc = 0.0;
        for (int u = 0; u < nt; u++) acc += (double)work[(size_t)(u * per + win + gsz + t * Fp + f)];
        dw[i] = (T)acc;
    }
    for (i64 f = 0; f < s.F; f++) {
        double acc = 0.0;
        for (int u = 0; u < nt; u++) acc += db_parts[(size_t)(u * s.F + f)];
        db[f] = (T)acc;
    }
}

// TB x FB accumulators: up to 24 of the 32 512-bit registers or 12 of the
// 16 256-bit ones, filter blocks one vector wide when two would be mostly
// padding. Of two tap-block lengths, the one that wastes fewer taps of a
// row of WW*C (15 for a 5x5 RGB filter: 16 rather than 24).
template <class T, int FB, int TB_SHORT, int TB_LONG>
void direct_dw_nhwc_fb(T* dw, T* db, const T* dout, const T* x, const NhwcConv& s) {
    const i64 run = s.WW * s.C;
    const auto waste = [&](i64 tb) { return (run + tb - 1) / tb * tb - run; };
    if (waste(TB_SHORT) < waste(TB_LONG))
        direct_dw_nhwc_blocked<T, TB_SHORT, FB>(dw, db, dout, x, s);
    else
        direct_dw_nhwc_blocked<T, TB_LONG, FB>(dw, db, dout, x, s);
}

template <class T>
void direct_dw_nhwc(T* dw, T* db, const T* dout, const T* x, const NhwcConv& s) {
    constexpr int V512 = 64 / sizeof(T), V256 = 32 / sizeof(T);
    const bool narrow = nhwc_one_vector_of_filters<T>(s.F);
    if (__builtin_cpu_supports("avx512f")) {
        if (narrow)
            direct_dw_nhwc_fb<T, V512, 16, 24>(dw, db, dout, x, s);
        else
            direct_dw_nhwc_fb<T, 2 * V512, 8, 12>(dw, db, dout, x, s);
    } else {
        if (narrow)
            direct_dw_nhwc_fb<T, V256, 8, 12>(dw, db, dout, x, s);
        else
            direct_dw_nhwc_fb<T, 2 * V256, 4, 6>(dw, db, dout, x, s);
    }
}

template <class T>
void conv_nhwc_forward(T* out, const T* x, const T* w, const T* b, const NhwcConv& s,
                       ConvAlgo algo) {
    if (nhwc_direct_applies<T>(s, algo)) return direct_forward_nhwc(out, x, w, b, s);
    if (wino_forward_applies(s, algo)) return wino_forward(out, x, w, b, s);
    im2col_forward(out, x, w, b, s);
}

// dx[n,h,w,c] = sum_{kh,kw,f} dout[n,h+pad-kh,w+pad-kw,f] * w[kh,kw,c,f]: a
// stride-1 conv of dout padded by HH-1-pad with the filters flipped and
// their channels swapped, wt[kh,kw,f,c] = w[HH-1-kh,WW-1-kw,c,f].
template <class T>
void direct_dx_nhwc(T* dx, const T* dout, const T* w, const NhwcConv& s) {
    const i64 kk = s.HH * s.WW;
    std::vector<T> wt((size_t)(kk * s.F * s.C)), zero((size_t)s.C, T(0));
    for (i64 k = 0; k < kk; k++)
        for (i64 c = 0; c < s.C; c++)
            for (i64 f = 0; f < s.F; f++)
                wt[((kk - 1 - k) * s.F + f) * s.C + c] = w[(k * s.C + c) * s.F + f];
    direct_forward_nhwc(dx, dout, wt.data(), zero.data(), nhwc_dx_as_forward(s));
}

// dx null: dw and db only (a network's first layer, whose input gradient
// nothing uses).
template <class T>
void conv_nhwc_backward(T* dx, T* dw, T* db, const T* dout, const T* x, const T* w,
                        const NhwcConv& s, ConvAlgo algo) {
    const bool wino = wino_backward_applies(s, algo);
    if (dx && nhwc_direct_dx_applies<T>(s, algo)) {
        direct_dx_nhwc(dx, dout, w, s);
        dx = nullptr;  // done: the paths below build dw and db only
    }
    if (nhwc_direct_dw_applies(s, algo)) {
        direct_dw_nhwc(dw, db, dout, x, s);
        if (dx && wino) wino_dx(dx, dout, w, s);
        else if (dx) im2col_backward(dx, (T*)nullptr, db, dout, x, w, s);
        return;
    }
    if (!wino) return im2col_backward(dx, dw, db, dout, x, w, s);
    if (dx) wino_dx(dx, dout, w, s);
    wino_dw(dw, db, dout, x, s);
}

std::string str(i64 v) { return std::to_string(v); }

// The geometry of x (N, H, W, C) and w (HH, WW, C, F), or ValueError when
// the sizes could not index the buffers.
NhwcConv conv_shape(const In& x, const In& w, i64 stride, i64 pad) {
    check_ndim(x, "x", 4);
    check_ndim(w, "w", 4);
    if (stride < 1) fail_value("stride must be >= 1, got " + str(stride));
    if (pad < 0) fail_value("pad must be >= 0, got " + str(pad));
    if (pad > (1 << 30)) fail_value("pad is unreasonably large, got " + str(pad));
    NhwcConv s{};
    s.N = x.shape(0), s.H = x.shape(1), s.W = x.shape(2), s.C = x.shape(3);
    s.HH = w.shape(0), s.WW = w.shape(1), s.F = w.shape(3);
    s.stride = stride, s.pad = pad;
    for (size_t i = 0; i < 4; i++)
        if (x.shape(i) == 0 || w.shape(i) == 0)
            fail_value("x and w must have no zero-size dimension");
    check_shape(w, "w", {s.HH, s.WW, s.C, s.F});
    if (s.HH > s.H + 2 * pad || s.WW > s.W + 2 * pad)
        fail_value("the filter does not fit in the padded input");
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
    m.def("conv_nhwc_forward", [](In x, In w, In b, i64 stride, i64 pad, int algo) {
        const DType dt = float_dtype({{"x", x.dtype()}, {"w", w.dtype()}, {"b", b.dtype()}});
        const NhwcConv s = conv_shape(x, w, stride, pad);
        const ConvAlgo a = conv_algo_arg(algo);
        check_shape(b, "b", {s.F});
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_array<T>({s.N, s.Ho, s.Wo, s.F});
            {
                nb::gil_scoped_release nogil;
                conv_nhwc_forward<T>(out.data(), ptr<T>(x), ptr<T>(w), ptr<T>(b), s, a);
            }
            return nb::object(nb::cast(out));
        });
    }, nb::arg("x"), nb::arg("w"), nb::arg("b"), nb::arg("stride"), nb::arg("pad"),
       nb::arg("algo") = 0,
       "out (N, Ho, Wo, F) = conv(x (N, H, W, C), w (HH, WW, C, F)) + b (F): cross-correlation "
       "with zero padding, output sizes rounded down; algo: 0 auto, 1 im2col, 2 winograd, 3 direct");

    for (const bool with_dx : {true, false}) {
        const char* name = with_dx ? "conv_nhwc_backward" : "conv_nhwc_backward_weights";
        m.def(name, [with_dx](In dout, In x, In w, i64 stride, i64 pad, int algo) {
            const DType dt =
                float_dtype({{"dout", dout.dtype()}, {"x", x.dtype()}, {"w", w.dtype()}});
            const NhwcConv s = conv_shape(x, w, stride, pad);
            const ConvAlgo a = conv_algo_arg(algo);
            check_shape(dout, "dout", {s.N, s.Ho, s.Wo, s.F});
            return dispatch(dt, [&](auto t) {
                using T = decltype(t);
                auto dw = new_array<T>({s.HH, s.WW, s.C, s.F});
                auto db = new_array<T>({s.F});
                if (!with_dx) {
                    {
                        nb::gil_scoped_release nogil;
                        conv_nhwc_backward<T>(nullptr, dw.data(), db.data(), ptr<T>(dout),
                                              ptr<T>(x), ptr<T>(w), s, a);
                    }
                    return nb::make_tuple(dw, db);
                }
                auto dx = new_array<T>({s.N, s.H, s.W, s.C});
                {
                    nb::gil_scoped_release nogil;
                    conv_nhwc_backward<T>(dx.data(), dw.data(), db.data(), ptr<T>(dout),
                                          ptr<T>(x), ptr<T>(w), s, a);
                }
                return nb::make_tuple(dx, dw, db);
            });
        }, nb::arg("dout"), nb::arg("x"), nb::arg("w"), nb::arg("stride"), nb::arg("pad"),
           nb::arg("algo") = 0,
           with_dx ? "(dx (N, H, W, C), dw (HH, WW, C, F), db (F,)) of conv_nhwc_forward"
                   : "(dw (HH, WW, C, F), db (F,)) of conv_nhwc_forward, without dx");
    }

    m.def("conv_nhwc_paths", [](In x, In w, i64 stride, i64 pad, int algo) {
        const DType dt = float_dtype({{"x", x.dtype()}, {"w", w.dtype()}});
        const NhwcConv s = conv_shape(x, w, stride, pad);
        const ConvAlgo a = conv_algo_arg(algo);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            return conv_path_names(nhwc_direct_applies<T>(s, a), wino_forward_applies(s, a),
                                   nhwc_direct_dx_applies<T>(s, a), wino_backward_applies(s, a),
                                   nhwc_direct_dw_applies(s, a));
        });
    }, nb::arg("x"), nb::arg("w"), nb::arg("stride"), nb::arg("pad"), nb::arg("algo") = 0,
       "(forward, dx, dw): the path, 'winograd', 'direct' or 'im2col', that conv_nhwc_forward "
       "and conv_nhwc_backward take for these shapes, dtype and algo (0 auto, 1 im2col, "
       "2 winograd, 3 direct)");
}

}  // namespace nnc
