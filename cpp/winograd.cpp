// Winograd F(2x2, 3x3) convolution (Lavin and Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016) for 3x3 kernels with stride 1: the
// forward, dx (the forward of dout with the filters rotated, see
// conv_dx_winograd) and dw (conv_dw_winograd).
//
// Each 2x2 block of output pixels (a tile) comes from the 4x4 input patch d
// under it (patches overlap by 2) as
//     Y = A^T [ sum_c (G g_c G^T) * (B^T d_c B) ] A      (* elementwise)
// with
//     B^T = [1  0 -1  0]    G = [ 1    0    0 ]    A^T = [1  1  1  0]
//           [0  1  1  0]        [1/2  1/2  1/2]          [0  1 -1 -1]
//           [0 -1  1  0]        [1/2 -1/2  1/2]
//           [0  1  0 -1]        [ 0    0    1 ]
// For each of the 16 positions k of the 4x4 transformed tile, the sum over
// channels is a GEMM: M[k] (F, tiles) = U[k] (F, C) @ V[k] (C, tiles), with
// U = G g G^T (the filters, transformed once per call) and V = B^T d B. That
// is 16 multiply-adds per tile, channel and filter instead of the 36 of the
// direct sum: 2.25x fewer FLOPs, for transforms that cost O(C + F) per tile.
// F(2x2, 3x3) loses almost nothing to rounding (G's entries are powers of
// two); the larger F(4x4, 3x3) would lose too much in float32. Non-finite
// inputs are the one visible difference from the direct sum: an inf reaches
// the same outputs, but through differences of transformed values, so some
// of them come out nan rather than inf.
//
// Tiles are numbered over the whole batch (image, tile row, tile column) and
// cut into blocks of block_tiles() tiles; V and M of one block take at most
// a few MB whatever the batch. Tiles past the bottom or right edge of an odd
// Hout or Wout read zeros and their extra pixels are dropped.
//
// Threads: with at least as many blocks as threads (small batches are cut
// into one block per thread), each thread takes fixed blocks
// (schedule(static)) with its own V and M and runs single-threaded GEMMs.
// With fewer (under 16 tiles per thread), the blocks go one at a time: the
// transforms split the channels and filters, and OpenBLAS threads the GEMMs.
// Results do not change from run to run; with another thread count the
// blocks may be cut elsewhere, which changes only the rounding.
//
// conv.cpp takes this path when winograd_applies() and
// winograd_backward_applies() say so: by the size rule at the end of this
// file, unless the caller's ConvAlgo forces a path.
#include "winograd.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "blas.h"

namespace nnc {
namespace {

// Tiles transformed at once (a run), from stack buffers.
constexpr i64 RUN = 64;
// Tiles per block, and the most bytes one thread's V and M may take (see block_tiles).
constexpr i64 kBlockTiles = 256;
constexpr i64 kBlockBytes = i64(4) << 20;

struct Tiling {
    i64 TH, TW;                  // tile rows and columns of one image
    i64 total;                   // N * TH * TW
    i64 block;                   // tiles per block (the row stride of V[k] and M[k])
    i64 uplane, vplane, mplane;  // from U[k] to U[k+1], V[k] to V[k+1], M[k] to M[k+1]
};

// Distance between the 16 planes of V or M holding rows x cols: the transforms
// read or write all 16 at once, so each starts one cache line further in a
// 4 KB page than the previous one, or the 16 streams would compete for the
// same few sets of the L1 cache.
template <class T>
i64 plane_stride(i64 rows, i64 cols) {
    const i64 page = 4096 / (i64)sizeof(T), line = 64 / (i64)sizeof(T);
    return (rows * cols + page - 1) / page * page + line;
}

// Tiles per block, a multiple of 16 so rows stay aligned. 256 tiles make
// GEMMs big enough for OpenBLAS to run near its peak (128 to 384 measure
// within a few percent of each other on the deep conv); with very many
// channels the block shrinks so V (16, C, block) and M (16, F, block) stay
// in kBlockBytes, the GEMMs being long enough in C then. The block count
// is then rounded up to a multiple of the threads, so that the static
// schedule gives each the same work (640 tiles in blocks of 256 gave one
// thread of two 2 blocks and the other 1); a small batch is so cut into one
// block per thread where it can.
template <class T>
i64 block_tiles(const ConvShape& s, i64 total, int threads) {
    const i64 bytes_per_tile = 16 * (s.C + s.F) * (i64)sizeof(T);
    const i64 fit = std::max<i64>(1, kBlockBytes / bytes_per_tile);
    const i64 most = std::min(kBlockTiles, fit);
    const i64 blocks = ((total + most - 1) / most + threads - 1) / threads * threads;
    const i64 b = (total + blocks - 1) / blocks;
    return std::max<i64>(16, (b + 15) / 16 * 16);
}

// The part of a run in one tile row (a segment): tiles (n, th, tw0 + i) for
// i < len <= RUN, at column off + i of the range run_at was given. The input
// and output transforms' runs (and dout_transform's) span tile rows and
// images, and load or store them segment by segment.
struct Run {
    i64 n, th, tw0, len, off;
};

// The segment starting at tile t of the range [t0, t1). (The transforms loop
// over segments themselves: a loop inside a lambda would not get NNC_CLONES.)
inline Run run_at(const Tiling& g, i64 t, i64 t0, i64 t1) {
    const i64 row = t / g.TW, tw0 = t % g.TW;
    return {row / g.TH, row % g.TH, tw0, std::min(std::min(t1 - t, g.TW - tw0), RUN), t - t0};
}

// U[k][f][c] = (G w[f,c] G^T)[k] for filters [f0, f1), computed in double
// and rounded once; uplane is the distance from U[k] to U[k+1].
template <class T>
NNC_CLONES void filter_transform(T* U, i64 uplane, const T* w, i64 C, i64 f0, i64 f1) {
    for (i64 f = f0; f < f1; f++) {
        for (i64 c0 = 0; c0 < C; c0 += RUN) {
            const i64 n = std::min(RUN, C - c0);
            alignas(64) double g[9][RUN], t[4][3][RUN];  // tap i of channel c0 + c is g[i][c]
            const T* wc = w + (f * C + c0) * 9;
            for (i64 c = 0; c < n; c++)
                for (int i = 0; i < 9; i++) g[i][c] = (double)wc[c * 9 + i];
            for (int j = 0; j < 3; j++) {  // G g: along the height
#pragma omp simd
                for (i64 c = 0; c < n; c++) {
                    const double g0 = g[j][c], g1 = g[3 + j][c], g2 = g[6 + j][c];
                    t[0][j][c] = g0;
                    t[1][j][c] = 0.5 * (g0 + g1 + g2);
                    t[2][j][c] = 0.5 * (g0 - g1 + g2);
                    t[3][j][c] = g2;
                }
            }
            for (int a = 0; a < 4; a++) {  // (G g) G^T: along the width
                T* u = U + 4 * a * uplane + f * C + c0;
                const double *t0 = t[a][0], *t1 = t[a][1], *t2 = t[a][2];
#pragma omp simd
                for (i64 c = 0; c < n; c++) {
                    u[c] = (T)t0[c];
                    u[uplane + c] = (T)(0.5 * (t0[c] + t1[c] + t2[c]));
                    u[2 * uplane + c] = (T)(0.5 * (t0[c] - t1[c] + t2[c]));
                    u[3 * uplane + c] = (T)t2[c];
                }
            }
        }
    }
}

// V[k][c][t] = (B^T d B)[k] for channels [c0, c1) and the tiles of block
// [t0, t1); x is the batch (N, C, H, W). The tiles go RUN at a time, across
// tile rows and images, so that the transform's vectors are full even for
// small images (a 16x16 image has tile rows of 8); the patches are loaded
// one tile row (a segment, run_at) at a time.
template <class T>
NNC_CLONES void input_transform(T* V, const T* x, const ConvShape& s, const Tiling& g, i64 t0,
                                i64 t1, i64 c0, i64 c1) {
    const i64 ldv = g.block, kstride = g.vplane;
    for (i64 r0 = t0; r0 < t1; r0 += RUN) {
        const i64 r1 = std::min(t1, r0 + RUN), len = r1 - r0;
        alignas(64) T d[4][4][RUN];   // the tiles' 4x4 patches, [row][column][tile]
        alignas(64) T row[2 * RUN + 2];  // one input row under a segment, padded
        alignas(64) T db[4][4][RUN];  // d B, [row][column][tile]
        for (i64 c = c0; c < c1; c++) {
            for (i64 tile = r0; tile < r1;) {
                const Run seg = run_at(g, tile, r0, r1);
                const i64 ls = seg.len, off = seg.off;
                tile += ls;
                const T* xc = x + (seg.n * s.C + c) * s.H * s.W;
                const i64 col0 = 2 * seg.tw0 - s.pad;  // x column of the first patch's column 0
                // the segment's columns [col0, col0 + width) of x, inside x from j_lo to j_hi
                const i64 width = 2 * ls + 2;
                const i64 j_lo = std::min(width, std::max<i64>(0, -col0));
                const i64 j_hi = std::max(j_lo, std::min(width, s.W - col0));
                for (int i = 0; i < 4; i++) {
                    T *q0 = d[i][0] + off, *q1 = d[i][1] + off, *q2 = d[i][2] + off,
                      *q3 = d[i][3] + off;
                    const i64 ih = 2 * seg.th - s.pad + i;
                    if (ih < 0 || ih >= s.H) {
                        for (i64 t = 0; t < ls; t++) q0[t] = q1[t] = q2[t] = q3[t] = T(0);
                        continue;
                    }
                    // The row's part under the segment, zero in the pad, so that the
                    // tiles read it without bounds checks (per element, they cost
                    // more than the transform at the edge tiles of short rows).
                    const T* xr = xc + ih * s.W + col0;
                    for (i64 j = 0; j < j_lo; j++) row[j] = T(0);
                    for (i64 j = j_lo; j < j_hi; j++) row[j] = xr[j];
                    for (i64 j = j_hi; j < width; j++) row[j] = T(0);
#pragma omp simd
                    for (i64 t = 0; t < ls; t++) {
                        q0[t] = row[2 * t];
                        q1[t] = row[2 * t + 1];
                        q2[t] = row[2 * t + 2];
                        q3[t] = row[2 * t + 3];
                    }
                }
            }
            for (int i = 0; i < 4; i++) {  // d B: each row along the width
                const T *e0 = d[i][0], *e1 = d[i][1], *e2 = d[i][2], *e3 = d[i][3];
                T *r0p = db[i][0], *r1p = db[i][1], *r2p = db[i][2], *r3p = db[i][3];
#pragma omp simd
                for (i64 t = 0; t < len; t++) {
                    r0p[t] = e0[t] - e2[t];
                    r1p[t] = e1[t] + e2[t];
                    r2p[t] = e2[t] - e1[t];
                    r3p[t] = e1[t] - e3[t];
                }
            }
            for (int j = 0; j < 4; j++) {  // B^T (d B): along the height
                const T *d0 = db[0][j], *d1 = db[1][j], *d2 = db[2][j], *d3 = db[3][j];
                T* v0 = V + j * kstride + c * ldv + (r0 - t0);
                T *v1 = v0 + 4 * kstride, *v2 = v0 + 8 * kstride, *v3 = v0 + 12 * kstride;
#pragma omp simd
                for (i64 t = 0; t < len; t++) {
                    v0[t] = d0[t] - d2[t];
                    v1[t] = d1[t] + d2[t];
                    v2[t] = d2[t] - d1[t];
                    v3[t] = d1[t] - d3[t];
                }
            }
        }
    }
}

// out tiles = A^T M A + b for filters [f0, f1) and the tiles of block
// [t0, t1); b may be null.
template <class T>
NNC_CLONES void output_transform(T* out, const T* M, const T* b, const ConvShape& s,
                                 const Tiling& g, i64 t0, i64 t1, i64 f0, i64 f1) {
    const i64 ldm = g.block, kstride = g.mplane;
    for (i64 r0 = t0; r0 < t1; r0 += RUN) {  // RUN tiles at a time, as input_transform
        const i64 r1 = std::min(t1, r0 + RUN), len = r1 - r0, off = r0 - t0;
        alignas(64) T am[2][4][RUN];            // A^T m, [row][column][tile]
        alignas(64) T y[2][2 * RUN];            // the tiles' two output rows, tile after tile
        for (i64 f = f0; f < f1; f++) {
            for (int j = 0; j < 4; j++) {  // A^T m: along the height
                const T* m0 = M + j * kstride + f * ldm + off;
                const T *m1 = m0 + 4 * kstride, *m2 = m0 + 8 * kstride, *m3 = m0 + 12 * kstride;
                T *a0 = am[0][j], *a1 = am[1][j];
#pragma omp simd
                for (i64 t = 0; t < len; t++) {
                    a0[t] = m0[t] + m1[t] + m2[t];
                    a1[t] = m1[t] - m2[t] - m3[t];
                }
            }
            const T bias = b ? b[f] : T(0);
            for (int p = 0; p < 2; p++) {  // (A^T m) A: along the width
                const T *a0 = am[p][0], *a1 = am[p][1], *a2 = am[p][2], *a3 = am[p][3];
                T* yp = y[p];
#pragma omp simd
                for (i64 t = 0; t < len; t++) {
                    yp[2 * t] = a0[t] + a1[t] + a2[t] + bias;
                    yp[2 * t + 1] = a1[t] - a2[t] - a3[t] + bias;
                }
            }
            for (i64 tile = r0; tile < r1;) {  // one tile row at a time
                const Run seg = run_at(g, tile, r0, r1);
                tile += seg.len;
                const i64 oh = 2 * seg.th, ow = 2 * seg.tw0;
                const i64 width = std::min(2 * seg.len, s.Wout - ow);
                T* o = out + ((seg.n * s.F + f) * s.Hout + oh) * s.Wout + ow;
                std::memcpy(o, y[0] + 2 * seg.off, (size_t)width * sizeof(T));
                if (oh + 1 < s.Hout)
                    std::memcpy(o + s.Wout, y[1] + 2 * seg.off, (size_t)width * sizeof(T));
            }
        }
    }
}

// M[k] (F, len) = U[k] (F, C) @ V[k] (C, len) for the 16 positions k.
template <class T>
void block_gemms(T* M, const T* U, const T* V, const Tiling& g, i64 len, const ConvShape& s) {
    for (int k = 0; k < 16; k++)
        gemm<T>(false, false, s.F, len, s.C, T(1), U + k * g.uplane, s.C, V + k * g.vplane,
                g.block, T(0), M + k * g.mplane, g.block);
}

// T[] aligned to 64 bytes, freed with std::free; throws std::bad_alloc like
// new (so Python gets a MemoryError). Called outside parallel regions only.
template <class T>
std::unique_ptr<T[], decltype(&std::free)> aligned_array(i64 n) {
    const size_t bytes = ((size_t)n * sizeof(T) + 63) / 64 * 64;
    T* p = static_cast<T*>(std::aligned_alloc(64, bytes));
    if (!p) throw std::bad_alloc();
    return {p, &std::free};
}

// Gh[k][f][t] = (A g A^T)[k] for the 2x2 tiles g of dout (N, F, Hout, Wout),
// filters [f0, f1) and the tiles of block [t0, t1); pixels past the bottom
// or right edge of an odd Hout or Wout count as zeros. Gh is laid out as M.
template <class T>
NNC_CLONES void dout_transform(T* Gh, const T* dout, const ConvShape& s, const Tiling& g, i64 t0,
                               i64 t1, i64 f0, i64 f1) {
    const i64 ldg = g.block, kstride = g.mplane;
    for (i64 r0 = t0; r0 < t1; r0 += RUN) {  // RUN tiles at a time, as input_transform
        const i64 r1 = std::min(t1, r0 + RUN), len = r1 - r0, off = r0 - t0;
        alignas(64) T ev[2][RUN], od[2][RUN];  // the tiles' even and odd columns, per row
        alignas(64) T ga[2][4][RUN];           // g A^T, [row][column][tile]
        for (i64 f = f0; f < f1; f++) {
            for (i64 tile = r0; tile < r1;) {  // one tile row at a time
                const Run seg = run_at(g, tile, r0, r1);
                tile += seg.len;
                const i64 ow = 2 * seg.tw0, ls = seg.len;
                const i64 full = std::min(ls, (s.Wout - ow) / 2);  // tiles 2 pixels wide
                for (int p = 0; p < 2; p++) {
                    T *e = ev[p] + seg.off, *o = od[p] + seg.off;
                    const i64 oh = 2 * seg.th + p;
                    if (oh >= s.Hout) {
                        std::fill(e, e + ls, T(0));
                        std::fill(o, o + ls, T(0));
                        continue;
                    }
                    const T* gr = dout + ((seg.n * s.F + f) * s.Hout + oh) * s.Wout + ow;
#pragma omp simd
                    for (i64 t = 0; t < full; t++) {
                        e[t] = gr[2 * t];
                        o[t] = gr[2 * t + 1];
                    }
                    for (i64 t = full; t < ls; t++) e[t] = gr[2 * t], o[t] = T(0);
                }
            }
            for (int p = 0; p < 2; p++) {  // g A^T: each row along the width
                const T *e = ev[p], *o = od[p];
                T *z0 = ga[p][0], *z1 = ga[p][1], *z2 = ga[p][2], *z3 = ga[p][3];
#pragma omp simd
                for (i64 t = 0; t < len; t++) {
                    z0[t] = e[t];
                    z1[t] = e[t] + o[t];
                    z2[t] = e[t] - o[t];
                    z3[t] = -o[t];
                }
            }
            for (int j = 0; j < 4; j++) {  // A (g A^T): along the height
                const T *a = ga[0][j], *c = ga[1][j];
                T* h0 = Gh + j * kstride + f * ldg + off;
                T *h1 = h0 + 4 * kstride, *h2 = h0 + 8 * kstride, *h3 = h0 + 12 * kstride;
#pragma omp simd
                for (i64 t = 0; t < len; t++) {
                    h0[t] = a[t];
                    h1[t] = a[t] + c[t];
                    h2[t] = a[t] - c[t];
                    h3[t] = -c[t];
                }
            }
        }
    }
}

// dw[f, c] = G^T Z[.][f][c] G for filters [f0, f1), in double; Z is (16, F, C)
// with zplane from Z[k] to Z[k+1].
template <class T>
NNC_CLONES void weight_grad_transform(T* dw, const T* Z, i64 zplane, i64 C, i64 f0, i64 f1) {
    for (i64 f = f0; f < f1; f++) {
        for (i64 c0 = 0; c0 < C; c0 += RUN) {
            const i64 n = std::min(RUN, C - c0);
            alignas(64) double gz[3][4][RUN], out[9][RUN];  // G^T Z, then (G^T Z) G
            for (int b = 0; b < 4; b++) {  // G^T Z: along the height
                const T *z0 = Z + b * zplane + f * C + c0, *z1 = z0 + 4 * zplane;
                const T *z2 = z0 + 8 * zplane, *z3 = z0 + 12 * zplane;
#pragma omp simd
                for (i64 c = 0; c < n; c++) {
                    const double h = 0.5 * ((double)z1[c] + (double)z2[c]);
                    gz[0][b][c] = (double)z0[c] + h;
                    gz[1][b][c] = 0.5 * ((double)z1[c] - (double)z2[c]);
                    gz[2][b][c] = h + (double)z3[c];
                }
            }
            for (int i = 0; i < 3; i++) {  // (G^T Z) G: along the width
                const double *a0 = gz[i][0], *a1 = gz[i][1], *a2 = gz[i][2], *a3 = gz[i][3];
#pragma omp simd
                for (i64 c = 0; c < n; c++) {
                    const double h = 0.5 * (a1[c] + a2[c]);
                    out[3 * i][c] = a0[c] + h;
                    out[3 * i + 1][c] = 0.5 * (a1[c] - a2[c]);
                    out[3 * i + 2][c] = h + a3[c];
                }
            }
            T* d = dw + (f * C + c0) * 9;
            for (i64 c = 0; c < n; c++)
                for (int i = 0; i < 9; i++) d[c * 9 + i] = (T)out[i][c];
        }
    }
}

}  // namespace

// The size rule. Per 2x2 output tile, im2col copies 36*C values into its
// column matrix (or, for dx, adds them back) and its GEMM does 72*C*F
// multiply-adds; Winograd moves 16*C values through V and 16*F through M
// (written, zeroed first by OpenBLAS, read back) and does 32*C*F. So
// Winograd wins when C*F is large against F, and loses for few channels
// and for F much larger than C. 7*C*F + 50*C > 120*F fits the 2-core
// AVX2 measurements (float32 and float64, forward and dx): it takes C=F=8
// and C=F=16, F up to 4*C from C=16 on, any F from C=64 on, and leaves
// C=3 or 4 and C=8 with F=64 to im2col. Below 32 tiles the per-call
// filter transform (as large as the weights) outweighs the GEMM savings.
bool winograd_size_pays(i64 C, i64 F, i64 tiles) {
    return tiles >= 32 && 7 * C * F + 50 * C > 120 * F;
}

bool winograd_applies(const ConvShape& s, ConvAlgo algo) {
    if (s.HH != 3 || s.WW != 3 || s.stride != 1) return false;
    if (algo == ConvAlgo::im2col || algo == ConvAlgo::direct) return false;
    return algo == ConvAlgo::winograd ||
           winograd_size_pays(s.C, s.F, s.N * ((s.Hout + 1) / 2) * ((s.Wout + 1) / 2));
}

bool winograd_backward_applies(const ConvShape& s, ConvAlgo algo) {
    if (s.HH != 3 || s.WW != 3 || s.stride != 1 || s.pad > 2) return false;
    if (algo == ConvAlgo::im2col || algo == ConvAlgo::direct) return false;
    return algo == ConvAlgo::winograd ||
           winograd_size_pays(s.C, s.F, s.N * ((s.H + 1) / 2) * ((s.W + 1) / 2));
}

// The forward (winograd.h), with b null for no bias.
template <class T>
void conv_forward_winograd(T* out, const T* x, const T* w, const T* b, const ConvShape& s) {
    Tiling g;
    g.TH = (s.Hout + 1) / 2, g.TW = (s.Wout + 1) / 2, g.total = s.N * g.TH * g.TW;
    const int nt = threads();
    g.block = block_tiles<T>(s, g.total, nt);
    g.uplane = plane_stride<T>(s.F, s.C);
    g.vplane = plane_stride<T>(s.C, g.block), g.mplane = plane_stride<T>(s.F, g.block);
    const i64 ld = g.block, nblocks = (g.total + ld - 1) / ld;
    const i64 v_size = 16 * g.vplane, per_block = v_size + 16 * g.mplane;
    const auto U = aligned_array<T>(16 * g.uplane);
#pragma omp parallel for num_threads(nt) schedule(static) if (s.F * s.C > 4096)
    for (i64 f = 0; f < s.F; f++) filter_transform(U.get(), g.uplane, w, s.C, f, f + 1);
    if (nblocks >= nt) {
        const auto work = aligned_array<T>(nt * per_block);
#pragma omp parallel num_threads(nt)
        {
            const int prev = blas_set_threads_local(1);
            T* V = work.get() + (size_t)omp_get_thread_num() * per_block;
            T* M = V + v_size;
#pragma omp for schedule(static)
            for (i64 blk = 0; blk < nblocks; blk++) {
                const i64 t0 = blk * ld, t1 = std::min(g.total, t0 + ld);
                input_transform(V, x, s, g, t0, t1, 0, s.C);
                block_gemms(M, U.get(), V, g, t1 - t0, s);
                output_transform(out, M, b, s, g, t0, t1, 0, s.F);
            }
            blas_set_threads_local(prev);
        }
        return;
    }
    const auto work = aligned_array<T>(per_block);
    T* V = work.get();
    T* M = V + v_size;
    for (i64 blk = 0; blk < nblocks; blk++) {
        const i64 t0 = blk * ld, t1 = std::min(g.total, t0 + ld);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (i64 c = 0; c < s.C; c++) input_transform(V, x, s, g, t0, t1, c, c + 1);
        block_gemms(M, U.get(), V, g, t1 - t0, s);
#pragma omp parallel for num_threads(nt) schedule(static)
        for (i64 f = 0; f < s.F; f++) output_transform(out, M, b, s, g, t0, t1, f, f + 1);
    }
}


template <class T>
void conv_dx_winograd(T* dx, const T* dout, const T* w, const ConvShape& s) {
    ConvShape t = s;  // dout (N, F, Hout, Wout) -> dx (N, C, H, W)
    t.C = s.F, t.H = s.Hout, t.W = s.Wout;
    t.F = s.C, t.Hout = s.H, t.Wout = s.W;
    t.pad = 2 - s.pad;
    // The filters of that convolution: w_t[c, f] = w[f, c] rotated by 180 degrees.
    const auto w_t = aligned_array<T>(s.C * s.F * 9);
#pragma omp parallel for num_threads(threads()) schedule(static) if (s.F * s.C > 4096)
    for (i64 c = 0; c < s.C; c++)
        for (i64 f = 0; f < s.F; f++)
            for (int i = 0; i < 9; i++) w_t[(c * s.F + f) * 9 + i] = w[(f * s.C + c) * 9 + 8 - i];
    conv_forward_winograd(dx, dout, w_t.get(), (const T*)nullptr, t);
}

// dw of conv_forward_winograd: since sum(g * Y) = <G^T [(A g A^T) * V] G, w>
// for each tile, dw = G^T [ sum over tiles of (A g A^T) * (B^T d B) ] G. The
// sum is, for each k, a GEMM over tiles: Z[k] (F, C) += Gh[k] (F, tiles) @
// V[k]^T, accumulated block by block. Threads share each block: they split
// the transforms by channel and filter, then the 16 GEMMs (single-threaded)
// by k, so every Z[k] is summed by one thread in block order, and dw does
// not depend on the thread count.
template <class T>
void conv_dw_winograd(T* dw, const T* dout, const T* x, const ConvShape& s) {
    Tiling g;
    g.TH = (s.Hout + 1) / 2, g.TW = (s.Wout + 1) / 2, g.total = s.N * g.TH * g.TW;
    g.block = block_tiles<T>(s, g.total, 1);
    g.uplane = plane_stride<T>(s.F, s.C);
    g.vplane = plane_stride<T>(s.C, g.block), g.mplane = plane_stride<T>(s.F, g.block);
    const i64 nblocks = (g.total + g.block - 1) / g.block;
    const auto work = aligned_array<T>(16 * (g.vplane + g.mplane + g.uplane));
    T* V = work.get();
    T* Gh = V + 16 * g.vplane;
    T* Z = Gh + 16 * g.mplane;
#pragma omp parallel num_threads(threads())
    {
        const int prev = blas_set_threads_local(1);
        for (i64 blk = 0; blk < nblocks; blk++) {
            const i64 t0 = blk * g.block, t1 = std::min(g.total, t0 + g.block);
#pragma omp for schedule(static)
            for (i64 c = 0; c < s.C; c++) input_transform(V, x, s, g, t0, t1, c, c + 1);
#pragma omp for schedule(static)
            for (i64 f = 0; f < s.F; f++) dout_transform(Gh, dout, s, g, t0, t1, f, f + 1);
#pragma omp for schedule(static)
            for (int k = 0; k < 16; k++)
                gemm<T>(false, true, s.F, s.C, t1 - t0, T(1), Gh + k * g.mplane, g.block,
                        V + k * g.vplane, g.block, blk ? T(1) : T(0), Z + k * g.uplane, s.C);
        }
#pragma omp for schedule(static)
        for (i64 f = 0; f < s.F; f++) weight_grad_transform(dw, Z, g.uplane, s.C, f, f + 1);
        blas_set_threads_local(prev);
    }
}


// conv.cpp's instantiations.
template void conv_forward_winograd(float*, const float*, const float*, const float*,
                                    const ConvShape&);
template void conv_forward_winograd(double*, const double*, const double*, const double*,
                                    const ConvShape&);
template void conv_dx_winograd(float*, const float*, const float*, const ConvShape&);
template void conv_dx_winograd(double*, const double*, const double*, const ConvShape&);
template void conv_dw_winograd(float*, const float*, const float*, const ConvShape&);
template void conv_dw_winograd(double*, const double*, const double*, const ConvShape&);

}  // namespace nnc
