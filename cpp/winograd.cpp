// Winograd F(2x2, 3x3) convolution (Lavin and Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016) for 3x3 kernels with stride 1.
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
// two); the larger F(4x4, 3x3) would lose too much in float32.
//
// Tiles are numbered over the whole batch (image, tile row, tile column) and
// cut into fixed blocks of block_tiles() tiles; V and M of one block are a
// few MB whatever the batch. Tiles past the bottom or right edge of an odd
// Hout or Wout read zeros and their extra pixels are dropped.
//
// Threads: with at least as many blocks as threads, each thread takes fixed
// blocks (schedule(static)) with its own V and M and runs single-threaded
// GEMMs. With fewer, the blocks go one at a time: the transforms split the
// channels and filters, and OpenBLAS threads the GEMMs. Either way each
// output is computed by the same operations, so results do not change from
// run to run.
#include "winograd.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "blas.h"

// Bytes of one thread's V and M (see block_tiles).
#ifndef NNC_WINOGRAD_BLOCK_BYTES
#define NNC_WINOGRAD_BLOCK_BYTES (2 * 1024 * 1024)
#endif

namespace nnc {
namespace {

// Tiles transformed at once, a run of one tile row, from stack buffers.
constexpr i64 RUN = 64;

struct Tiling {
    i64 TH, TW;          // tile rows and columns of one image
    i64 total;           // N * TH * TW
    i64 block;           // tiles per block (the row stride of V[k] and M[k])
    i64 vplane, mplane;  // from V[k] to V[k+1], from M[k] to M[k+1]
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

// Tiles per block: V (16, C, block) and M (16, F, block) in one thread's
// NNC_WINOGRAD_BLOCK_BYTES, at least 64 tiles so each GEMM stays efficient
// even for very many channels, and a multiple of 16 so rows stay aligned.
template <class T>
i64 block_tiles(const ConvShape& s, i64 total) {
    const i64 bytes_per_tile = 16 * (s.C + s.F) * (i64)sizeof(T);
    i64 b = std::max<i64>(64, (i64)NNC_WINOGRAD_BLOCK_BYTES / bytes_per_tile) / 16 * 16;
    if (const char* e = std::getenv("NNC_WINOGRAD_TILES")) b = std::max<i64>(16, std::atol(e));
    return std::min(b, (total + 15) / 16 * 16);
}

// Calls fn(n, th, tw0, len, offset) for runs of at most RUN tiles of one
// tile row that together cover tiles [t0, t1); offset is the run's first
// tile counted from t0.
template <class Fn>
void for_each_run(const Tiling& g, i64 t0, i64 t1, Fn&& fn) {
    for (i64 t = t0; t < t1;) {
        const i64 row = t / g.TW, tw0 = t % g.TW;
        const i64 len = std::min(std::min(t1 - t, g.TW - tw0), RUN);
        fn(row / g.TH, row % g.TH, tw0, len, t - t0);
        t += len;
    }
}

// U[k][f][c] = (G w[f,c] G^T)[k], computed in double and rounded once.
// With flip, the filters of the transposed convolution (dx of a 3x3
// stride-1 conv): U[k][c][f] from w[f,c] rotated by 180 degrees.
template <class T>
void filter_transform(T* U, const T* w, i64 F, i64 C, bool flip) {
    const i64 KF = flip ? C : F, KC = flip ? F : C;  // U's (rows, columns) per k
#pragma omp parallel for num_threads(threads()) schedule(static) if (F * C > 4096)
    for (i64 f = 0; f < F; f++) {
        for (i64 c = 0; c < C; c++) {
            const T* g = w + (f * C + c) * 9;
            double k[3][3], t[4][3], u[4][4];
            for (int i = 0; i < 9; i++) k[i / 3][i % 3] = flip ? g[8 - i] : g[i];
            for (int j = 0; j < 3; j++) {
                t[0][j] = k[0][j];
                t[1][j] = 0.5 * (k[0][j] + k[1][j] + k[2][j]);
                t[2][j] = 0.5 * (k[0][j] - k[1][j] + k[2][j]);
                t[3][j] = k[2][j];
            }
            for (int a = 0; a < 4; a++) {
                u[a][0] = t[a][0];
                u[a][1] = 0.5 * (t[a][0] + t[a][1] + t[a][2]);
                u[a][2] = 0.5 * (t[a][0] - t[a][1] + t[a][2]);
                u[a][3] = t[a][2];
            }
            const i64 row = flip ? c : f, col = flip ? f : c;
            for (int i = 0; i < 16; i++) U[(i * KF + row) * KC + col] = (T)u[i / 4][i % 4];
        }
    }
}

// V[k][c][t] = (B^T d B)[k] for channels [c0, c1) and the tiles of block
// [t0, t1); x is the batch (N, C, H, W).
template <class T>
NNC_CLONES void input_transform(T* V, const T* x, const ConvShape& s, const Tiling& g, i64 t0,
                                i64 t1, i64 c0, i64 c1) {
    const i64 ldv = g.block, kstride = g.vplane;
    for_each_run(g, t0, t1, [&](i64 n, i64 th, i64 tw0, i64 len, i64 off) {
        // A run's four input rows, split into even and odd padded columns:
        // tile tw0 + t reads ev[t], od[t], ev[t+1], od[t+1] of each row.
        alignas(64) T ev[4][RUN + 1], od[4][RUN + 1];
        const i64 col0 = 2 * tw0 - s.pad;  // x column of ev[.][0]
        // j in [j_lo, j_hi): both columns col0 + 2j and col0 + 2j + 1 lie in x
        const i64 j_lo = std::min(len + 1, col0 >= 0 ? 0 : (1 - col0) / 2);
        const i64 j_hi = std::max(j_lo, std::min(len + 1, s.W - 2 - col0 < 0
                                                               ? 0 : (s.W - 2 - col0) / 2 + 1));
        for (i64 c = c0; c < c1; c++) {
            const T* xc = x + (n * s.C + c) * s.H * s.W;
            for (int i = 0; i < 4; i++) {
                const i64 ih = 2 * th - s.pad + i;
                if (ih < 0 || ih >= s.H) {
                    std::fill(ev[i], ev[i] + len + 1, T(0));
                    std::fill(od[i], od[i] + len + 1, T(0));
                    continue;
                }
                const T* xr = xc + ih * s.W + col0;  // xr[j] is padded column 2*tw0 + j
                auto edge = [&](i64 j) {
                    const i64 ce = col0 + 2 * j;
                    ev[i][j] = ce >= 0 && ce < s.W ? xr[2 * j] : T(0);
                    od[i][j] = ce + 1 >= 0 && ce + 1 < s.W ? xr[2 * j + 1] : T(0);
                };
                for (i64 j = 0; j < j_lo; j++) edge(j);
#pragma omp simd
                for (i64 j = j_lo; j < j_hi; j++) {
                    ev[i][j] = xr[2 * j];
                    od[i][j] = xr[2 * j + 1];
                }
                for (i64 j = j_hi; j <= len; j++) edge(j);
            }
            T* v = V + c * ldv + off;
#pragma omp simd
            for (i64 t = 0; t < len; t++) {
                T r[4][4];  // d B: row i of the tile, transformed along the width
                for (int i = 0; i < 4; i++) {
                    r[i][0] = ev[i][t] - ev[i][t + 1];
                    r[i][1] = od[i][t] + ev[i][t + 1];
                    r[i][2] = ev[i][t + 1] - od[i][t];
                    r[i][3] = od[i][t] - od[i][t + 1];
                }
                for (int j = 0; j < 4; j++) {  // B^T (d B)
                    v[(0 + j) * kstride + t] = r[0][j] - r[2][j];
                    v[(4 + j) * kstride + t] = r[1][j] + r[2][j];
                    v[(8 + j) * kstride + t] = r[2][j] - r[1][j];
                    v[(12 + j) * kstride + t] = r[1][j] - r[3][j];
                }
            }
        }
    });
}

// out tiles = A^T M A + b for filters [f0, f1) and the tiles of block
// [t0, t1); b may be null.
template <class T>
NNC_CLONES void output_transform(T* out, const T* M, const T* b, const ConvShape& s,
                                 const Tiling& g, i64 t0, i64 t1, i64 f0, i64 f1) {
    const i64 ldm = g.block, kstride = g.mplane;
    for_each_run(g, t0, t1, [&](i64 n, i64 th, i64 tw0, i64 len, i64 off) {
        alignas(64) T y0[2 * RUN], y1[2 * RUN];  // the run's two output rows
        const i64 oh = 2 * th, ow = 2 * tw0, width = std::min(2 * len, s.Wout - ow);
        for (i64 f = f0; f < f1; f++) {
            const T* m = M + f * ldm + off;
            const T bias = b ? b[f] : T(0);
#pragma omp simd
            for (i64 t = 0; t < len; t++) {
                T r0[4], r1[4];  // A^T m: the two rows, still transformed along the width
                for (int j = 0; j < 4; j++) {
                    const T m0 = m[j * kstride + t], m1 = m[(4 + j) * kstride + t];
                    const T m2 = m[(8 + j) * kstride + t], m3 = m[(12 + j) * kstride + t];
                    r0[j] = m0 + m1 + m2;
                    r1[j] = m1 - m2 - m3;
                }
                y0[2 * t] = r0[0] + r0[1] + r0[2] + bias;
                y0[2 * t + 1] = r0[1] - r0[2] - r0[3] + bias;
                y1[2 * t] = r1[0] + r1[1] + r1[2] + bias;
                y1[2 * t + 1] = r1[1] - r1[2] - r1[3] + bias;
            }
            T* o = out + ((n * s.F + f) * s.Hout + oh) * s.Wout + ow;
            std::memcpy(o, y0, (size_t)width * sizeof(T));
            if (oh + 1 < s.Hout) std::memcpy(o + s.Wout, y1, (size_t)width * sizeof(T));
        }
    });
}

// M[k] (F, len) = U[k] (F, C) @ V[k] (C, len) for the 16 positions k.
template <class T>
void block_gemms(T* M, const T* U, const T* V, const Tiling& g, i64 len, const ConvShape& s) {
    for (int k = 0; k < 16; k++)
        gemm<T>(false, false, s.F, len, s.C, T(1), U + k * s.F * s.C, s.C, V + k * g.vplane,
                g.block, T(0), M + k * g.mplane, g.block);
}

// T[] aligned to 64 bytes, freed with std::free.
template <class T>
std::unique_ptr<T[], decltype(&std::free)> aligned_array(i64 n) {
    const size_t bytes = ((size_t)n * sizeof(T) + 63) / 64 * 64;
    return {static_cast<T*>(std::aligned_alloc(64, bytes)), &std::free};
}

// The Winograd forward; flip selects the filters of the transposed
// convolution (see filter_transform), where w is (s.C, s.F, 3, 3).
template <class T>
void winograd(T* out, const T* x, const T* w, const T* b, const ConvShape& s, bool flip) {
    Tiling g;
    g.TH = (s.Hout + 1) / 2, g.TW = (s.Wout + 1) / 2, g.total = s.N * g.TH * g.TW;
    g.block = block_tiles<T>(s, g.total);
    g.vplane = plane_stride<T>(s.C, g.block), g.mplane = plane_stride<T>(s.F, g.block);
    const i64 ld = g.block, nblocks = (g.total + ld - 1) / ld;
    const i64 v_size = 16 * g.vplane, per_block = v_size + 16 * g.mplane;
    const auto U = aligned_array<T>(16 * s.F * s.C);
    if (flip)
        filter_transform(U.get(), w, s.C, s.F, true);
    else
        filter_transform(U.get(), w, s.F, s.C, false);
    const int nt = threads();
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

}  // namespace

bool winograd_applies(const ConvShape& s) {
    if (s.HH != 3 || s.WW != 3 || s.stride != 1) return false;
    if (const char* e = std::getenv("NNC_CONV_WINOGRAD")) {
        if (e[0] == '0') return false;
        if (e[0] == '1') return true;
    }
    return s.C >= 16 && s.F >= 16;
}

bool winograd_dx_applies(const ConvShape& s) { return s.pad <= 2 && winograd_applies(s); }

template <class T>
void conv_forward_winograd(T* out, const T* x, const T* w, const T* b, const ConvShape& s) {
    winograd(out, x, w, b, s, false);
}

template <class T>
void conv_dx_winograd(T* dx, const T* dout, const T* w, const ConvShape& s) {
    ConvShape t = s;  // dout (N, F, Hout, Wout) -> dx (N, C, H, W)
    t.C = s.F, t.H = s.Hout, t.W = s.Wout;
    t.F = s.C, t.Hout = s.H, t.Wout = s.W;
    t.pad = 2 - s.pad;
    winograd(dx, dout, w, (const T*)nullptr, t, true);
}

#define NNC_INSTANTIATE(T)                                                                   \
    template void conv_forward_winograd<T>(T*, const T*, const T*, const T*, const ConvShape&); \
    template void conv_dx_winograd<T>(T*, const T*, const T*, const ConvShape&);
NNC_INSTANTIATE(float)
NNC_INSTANTIATE(double)

}  // namespace nnc
