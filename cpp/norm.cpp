#include "norm.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

namespace nnc {
namespace {

// Below this many elements a kernel runs on one thread: waking the team
// costs more than the loop.
constexpr i64 kParallelMin = 32768;

// ---- precision ----
//
// Statistics are sums of c = x - shift and c * c, with shift the running
// mean of the values summed so far (rounded to T), over pieces of the data
// (chunks of a row or plane, blocks of rows of a column): a piece's own mean
// and m2 follow as in corrected_stats, and Chan's update merges the pieces
// in double. x - shift is exact in T for x near the mean (Sterbenz), so a
// large offset costs nothing, and rounding a piece's sum of squares,
// n * (d^2 + var) for a piece whose mean lies d from the shift, stays
// relative to what that piece adds to m2 (at least n * var + n * d^2 / 2
// once as many values precede it), so drifting or sorted data cost nothing
// either. The first piece is summed around its own mean, from one more
// pass over it in cache.
//
// Sums run in T on SIMD lanes: each lane adds kRun values, then the lanes
// are added into double. Float runs take the full SIMD width of float and
// no conversions, and the double totals keep the statistics of float32
// data at double quality over any number of values. Elementwise passes
// also work in T around m = T(mean): out = (x - m) * scale + shift, with
// per-group coefficients rounded once from double.

// Four AVX2 registers of partial sums: one accumulator would chain each add
// on the previous one's latency.
template <class T>
constexpr int kLanes = 128 / sizeof(T);
constexpr i64 kRun = 8;
// Values of a row or plane summed around one shift.
constexpr i64 kChunk = 1024;
// Rows of a column block summed around one shift, and widest row segment of
// a column block, in bytes: rows up to 16 KB are taken whole, so tiles
// stream contiguous memory, and a block's per-column accumulators stay in
// L1/L2.
constexpr int kBlockRows = 16;
constexpr i64 kBlockBytes = 16384;

// Merges the statistics of a second group of samples (count_b, mean_b, m2_b)
// into those of a first (count_a, mean_a, m2_a); m2 is the sum of squared
// deviations from the group's own mean (Chan, Golub and LeVeque's pairwise
// update). Only a difference of means is squared, so large offsets cost no
// precision.
inline void merge_stats(double& mean_a, double& m2_a, double count_a, double mean_b, double m2_b,
                        double count_b) {
    const double count = count_a + count_b;
    const double delta = mean_b - mean_a;
    mean_a += delta * (count_b / count);
    m2_a += m2_b + delta * delta * (count_a * count_b / count);
}

// Mean and m2 of n values from s1 = sum of (x - shift), s2 = sum of
// (x - shift)^2.
inline void corrected_stats(double& mean, double& m2, double shift, double s1, double s2,
                            double n) {
    mean = shift + s1 / n;
    m2 = std::max(0.0, s2 - s1 * (s1 / n));
}

// total[0..8) += the kLanes accumulators of a run, folded to 8 lanes.
template <class T>
inline void flush_lanes(double* total, const T* acc) {
    for (int j = 0; j < 8; j++) {
        T folded = acc[j];
        for (int k = 8; k < kLanes<T>; k += 8) folded += acc[k + j];
        total[j] += folded;
    }
}

inline double sum8(const double* t) {
    return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}

// ---- contiguous runs: layernorm rows, NCHW planes and groups ----

template <class T>
NNC_CLONES double sum_of(const T* x, i64 n) {
    constexpr int L = kLanes<T>;
    const i64 blocks = n / L;
    double total[8] = {};
    for (i64 b0 = 0; b0 < blocks; b0 += kRun) {
        const i64 b1 = std::min(blocks, b0 + kRun);
        T acc[L] = {};
        for (i64 b = b0; b < b1; b++) {
            const T* xb = x + b * L;
#pragma omp simd
            for (int j = 0; j < L; j++) acc[j] += xb[j];
        }
        flush_lanes(total, acc);
    }
    double sum = sum8(total);
    for (i64 i = blocks * L; i < n; i++) sum += x[i];
    return sum;
}

// s1 = sum of (x - m), s2 = sum of (x - m)^2.
template <class T>
NNC_CLONES void centered_sums(double* s1, double* s2, const T* x, T m, i64 n) {
    constexpr int L = kLanes<T>;
    const i64 blocks = n / L;
    double t1[8] = {}, t2[8] = {};
    for (i64 b0 = 0; b0 < blocks; b0 += kRun) {
        const i64 b1 = std::min(blocks, b0 + kRun);
        T a1[L] = {}, a2[L] = {};
        for (i64 b = b0; b < b1; b++) {
            const T* xb = x + b * L;
#pragma omp simd
            for (int j = 0; j < L; j++) {
                const T c = xb[j] - m;
                a1[j] += c;
                a2[j] += c * c;
            }
        }
        flush_lanes(t1, a1);
        flush_lanes(t2, a2);
    }
    double u = sum8(t1), v = sum8(t2);
    for (i64 i = blocks * L; i < n; i++) {
        const T c = x[i] - m;
        u += c;
        v += (double)c * c;
    }
    *s1 = u;
    *s2 = v;
}

// Mean and m2 of x[0..n), read from memory once: chunks of kChunk values
// around the running mean.
template <class T>
void stats_of(double* mean, double* m2, const T* x, i64 n) {
    const i64 first = std::min(n, kChunk);
    T shift = T(sum_of(x, first) / (double)first);
    double count = 0.0;
    *mean = *m2 = 0.0;
    for (i64 i = 0; i < n; i += kChunk) {
        const i64 len = std::min(kChunk, n - i);
        double s1, s2, chunk_mean, chunk_m2;
        centered_sums(&s1, &s2, x + i, shift, len);
        corrected_stats(chunk_mean, chunk_m2, shift, s1, s2, (double)len);
        merge_stats(*mean, *m2, count, chunk_mean, chunk_m2, (double)len);
        count += (double)len;
        shift = T(*mean);
    }
}

// sg = sum of g, sgt = sum of g * (x - m), with g = dout.
template <class T>
NNC_CLONES void grad_sums(double* sg, double* sgt, const T* dout, const T* x, T m, i64 n) {
    constexpr int L = kLanes<T>;
    const i64 blocks = n / L;
    double t1[8] = {}, t2[8] = {};
    for (i64 b0 = 0; b0 < blocks; b0 += kRun) {
        const i64 b1 = std::min(blocks, b0 + kRun);
        T a1[L] = {}, a2[L] = {};
        for (i64 b = b0; b < b1; b++) {
            const T* gb = dout + b * L;
            const T* xb = x + b * L;
#pragma omp simd
            for (int j = 0; j < L; j++) {
                a1[j] += gb[j];
                a2[j] += gb[j] * (xb[j] - m);
            }
        }
        flush_lanes(t1, a1);
        flush_lanes(t2, a2);
    }
    double u = sum8(t1), v = sum8(t2);
    for (i64 i = blocks * L; i < n; i++) {
        u += dout[i];
        v += (double)dout[i] * (x[i] - m);
    }
    *sg = u;
    *sgt = v;
}

// The same with g = dout * gamma (layernorm, gamma along the row).
template <class T>
NNC_CLONES void scaled_grad_sums(double* sg, double* sgt, const T* dout, const T* gamma,
                                 const T* x, T m, i64 n) {
    constexpr int L = kLanes<T>;
    const i64 blocks = n / L;
    double t1[8] = {}, t2[8] = {};
    for (i64 b0 = 0; b0 < blocks; b0 += kRun) {
        const i64 b1 = std::min(blocks, b0 + kRun);
        T a1[L] = {}, a2[L] = {};
        for (i64 b = b0; b < b1; b++) {
            const T* gb = dout + b * L;
            const T* wb = gamma + b * L;
            const T* xb = x + b * L;
#pragma omp simd
            for (int j = 0; j < L; j++) {
                const T g = gb[j] * wb[j];
                a1[j] += g;
                a2[j] += g * (xb[j] - m);
            }
        }
        flush_lanes(t1, a1);
        flush_lanes(t2, a2);
    }
    double u = sum8(t1), v = sum8(t2);
    for (i64 i = blocks * L; i < n; i++) {
        const T g = dout[i] * gamma[i];
        u += g;
        v += (double)g * (x[i] - m);
    }
    *sg = u;
    *sgt = v;
}

// out = (x - m) * scale + shift.
template <class T>
NNC_CLONES void affine_of(T* out, const T* x, T m, T scale, T shift, i64 n) {
#pragma omp simd
    for (i64 i = 0; i < n; i++) out[i] = (x[i] - m) * scale + shift;
}

// dx = a * dout + b * (x - m) + c: every normalization's dx is this map of
// dout and xhat (an affine function of x - m) with per-group coefficients.
template <class T>
NNC_CLONES void dx_of(T* dx, const T* dout, const T* x, T m, T a, T b, T c, i64 n) {
#pragma omp simd
    for (i64 i = 0; i < n; i++) dx[i] = a * dout[i] + ((x[i] - m) * b + c);
}

// ---- column blocks: per column sums over R rows ld apart (batchnorm) ----
//
// R = kBlockRows for whole blocks; the rows left over go one at a time with
// R = 1. Memory is read a few rows at a time into accumulators in L1: the
// hardware prefetchers follow a few streams, not one per row.

// shift[j] = mean in T of column j over R rows: where block_stats starts.
template <class T, int R>
NNC_CLONES void block_mean(T* shift, const T* x, i64 ld, i64 w) {
#pragma omp simd
    for (i64 j = 0; j < w; j++) {
        T sum = 0;
        for (int r = 0; r < R; r++) sum += x[r * ld + j];
        shift[j] = sum / T(R);
    }
}

// Folds the statistics of R more rows into mean[j], m2[j] (over count rows
// so far), summed in T around shift[j], the running mean (block_mean's
// before the first block), which it updates. R = 1 is Welford's update.
// s1 and s2 are scratch.
template <class T, int R>
NNC_CLONES void block_stats(double* mean, double* m2, T* shift, T* s1, T* s2, const T* x, i64 ld,
                            i64 w, double count) {
    if (R == 1) {
#pragma omp simd
        for (i64 j = 0; j < w; j++) merge_stats(mean[j], m2[j], count, x[j], 0.0, 1.0);
        return;
    }
    constexpr int G = R < 4 ? R : 4;  // rows per step
#pragma omp simd
    for (i64 j = 0; j < w; j++) s1[j] = s2[j] = T(0);
    for (int r0 = 0; r0 < R; r0 += G) {
#pragma omp simd
        for (i64 j = 0; j < w; j++) {
            T a = s1[j], b = s2[j];
            for (int r = r0; r < r0 + G; r++) {
                const T c = x[r * ld + j] - shift[j];
                a += c;
                b += c * c;
            }
            s1[j] = a;
            s2[j] = b;
        }
    }
#pragma omp simd
    for (i64 j = 0; j < w; j++) {
        double block_mean, block_m2;
        corrected_stats(block_mean, block_m2, shift[j], s1[j], s2[j], (double)R);
        merge_stats(mean[j], m2[j], count, block_mean, block_m2, (double)R);
        shift[j] = T(mean[j]);
    }
}

// sg[j] += sum of dout, sgt[j] += sum of dout * (x - m[j]) over R rows, in
// T and steps of a few rows; acc is scratch for 2 * w values.
template <class T, int R>
NNC_CLONES void block_grad_sums(double* sg, double* sgt, T* acc, const T* dout, const T* x,
                                i64 ld, const T* m, i64 w) {
    constexpr int G = R < 4 ? R : 4;  // rows per step
    T* a = acc;
    T* b = acc + w;
#pragma omp simd
    for (i64 j = 0; j < w; j++) a[j] = b[j] = T(0);
    for (int r0 = 0; r0 < R; r0 += G) {
#pragma omp simd
        for (i64 j = 0; j < w; j++) {
            T u = a[j], v = b[j];
            for (int r = r0; r < r0 + G; r++) {
                u += dout[r * ld + j];
                v += dout[r * ld + j] * (x[r * ld + j] - m[j]);
            }
            a[j] = u;
            b[j] = v;
        }
    }
#pragma omp simd
    for (i64 j = 0; j < w; j++) {
        sg[j] += a[j];
        sgt[j] += b[j];
    }
}

// Two row segments a and b (which may be the same) with per-column
// coefficients: the coefficient arrays, which with the rows overflow L1,
// come from L2 once for both rows.
template <class T>
NNC_CLONES void affine_cols(T* out_a, T* out_b, const T* xa, const T* xb, const T* m,
                            const T* scale, const T* shift, i64 n) {
#pragma omp simd
    for (i64 i = 0; i < n; i++) {
        out_a[i] = (xa[i] - m[i]) * scale[i] + shift[i];
        out_b[i] = (xb[i] - m[i]) * scale[i] + shift[i];
    }
}

template <class T>
NNC_CLONES void dx_cols(T* dx_a, T* dx_b, const T* dout_a, const T* dout_b, const T* xa,
                        const T* xb, const T* m, const T* a, const T* b, const T* c, i64 n) {
#pragma omp simd
    for (i64 i = 0; i < n; i++) {
        dx_a[i] = a[i] * dout_a[i] + ((xa[i] - m[i]) * b[i] + c[i]);
        dx_b[i] = a[i] * dout_b[i] + ((xb[i] - m[i]) * b[i] + c[i]);
    }
}

// Column tiles of a row-major (N, D) array (batchnorm's statistics and every
// dgamma/dbeta of an (N, D) layer): row chunk x column block. A tile is read
// row by row, so memory is walked in contiguous row segments whatever D is
// (a loop per column would stride by D); splitting the rows as well gives
// tall, narrow arrays (D = 3, N = 65536) work for every thread. Each row
// chunk sums into its own partial rows, which are combined afterwards in a
// fixed order. Elementwise passes reuse the tiles.
struct Tiles {
    i64 N, D;
    i64 chunks, rows;  // row chunks, rows per chunk
    i64 blocks, cols;  // column blocks, columns per block
    bool parallel;
    i64 n0(i64 r) const { return r * rows; }
    i64 n1(i64 r) const { return std::min(N, (r + 1) * rows); }
    i64 d0(i64 b) const { return b * cols; }
    i64 d1(i64 b) const { return std::min(D, (b + 1) * cols); }
};

template <class T>
Tiles column_tiles(i64 N, i64 D) {
    constexpr i64 max_cols = kBlockBytes / sizeof(T), vec = 32 / sizeof(T);
    Tiles t;
    t.N = N;
    t.D = D;
    t.parallel = N * D > kParallelMin;
    t.blocks = std::max<i64>(1, (D + max_cols - 1) / max_cols);
    t.cols = std::max<i64>(1, ((D + t.blocks - 1) / t.blocks + vec - 1) / vec * vec);
    // About four tiles per thread; rows are split only when the column
    // blocks alone are too few, so the partial rows stay small. Chunks are
    // whole kBlockRows blocks.
    const i64 nt = t.parallel ? threads() : 1;
    const i64 want = t.parallel ? std::min(std::max<i64>(N, 1), (4 * nt + t.blocks - 1) / t.blocks)
                                : 1;
    t.rows = ((N + want - 1) / want + kBlockRows - 1) / kBlockRows * kBlockRows;
    t.chunks = std::max<i64>(1, (N + t.rows - 1) / t.rows);
    return t;
}

// out[j] = sum over r of part[r * len + j]: the partial rows of every chunk.
void add_chunks(double* out, const double* part, i64 chunks, i64 len) {
    for (i64 j = 0; j < len; j++) out[j] = 0.0;
    for (i64 r = 0; r < chunks; r++)
        for (i64 j = 0; j < len; j++) out[j] += part[r * len + j];
}

// Per group: m = T(mean) and out = (x - m) * scale + shift equal to
// gamma * (x - mean) * rstd + beta, the part of the mean that m drops folded
// into the shift in double.
template <class T>
struct Affine {
    T m, scale, shift;
};
template <class T>
Affine<T> affine_for(double mean, double rstd, double gamma, double beta) {
    const T m = T(mean);
    const double scale = gamma * rstd;
    return {m, T(scale), T(beta - (mean - (double)m) * scale)};
}

// dx = a * dout + b * (x - m) + c for one group, from its sums of dout (sg)
// and of dout * (x - m) (sgt), given the group's M elements and dout's
// weight w = gamma * rstd. Train mode:
//   dx = w * (dout - mean(dout) - xhat * mean(dout * xhat)),
//   xhat = (x - m) * rstd + off, off = (m - mean) * rstd;
// otherwise mean and rstd were constants and dx = w * dout. Also returns
// the sum of dout * xhat (dgamma's share).
template <class T>
struct DxMap {
    T m, a, b, c;
    double sum_gxhat;
};
template <class T>
DxMap<T> dx_map(double mean, double rstd, double w, double sg, double sgt, double M, bool train) {
    const T m = T(mean);
    const double off = ((double)m - mean) * rstd;
    const double sum_gxhat = rstd * sgt + off * sg;
    const double mean_g = train ? sg / M : 0.0, mean_gx = train ? sum_gxhat / M : 0.0;
    return {m, T(w), T(-w * mean_gx * rstd), T(-w * (mean_g + mean_gx * off)), sum_gxhat};
}

// ---- batchnorm, x[N,D], statistics per column ----

template <class T>
void batchnorm_stats(double* mean, double* var, const T* x, i64 N, i64 D) {
    const Tiles t = column_tiles<T>(N, D);
    // Per row chunk: mean, then m2, of each column.
    std::vector<double> part_v(t.chunks * 2 * D, 0.0);
    double* part = part_v.data();
#pragma omp parallel for collapse(2) num_threads(threads()) schedule(static) if (t.parallel)
    for (i64 r = 0; r < t.chunks; r++)
        for (i64 b = 0; b < t.blocks; b++) {
            const i64 d0 = t.d0(b), w = t.d1(b) - d0;
            double* chunk_mean = part + r * 2 * D + d0;
            double* chunk_m2 = chunk_mean + D;
            constexpr i64 max_cols = kBlockBytes / sizeof(T);
            T shift[max_cols], s1[max_cols], s2[max_cols];
            i64 n = t.n0(r);
            if (n + kBlockRows <= t.n1(r)) block_mean<T, kBlockRows>(shift, x + n * D + d0, D, w);
            for (; n + kBlockRows <= t.n1(r); n += kBlockRows)
                block_stats<T, kBlockRows>(chunk_mean, chunk_m2, shift, s1, s2, x + n * D + d0, D,
                                           w, (double)(n - t.n0(r)));
            for (; n < t.n1(r); n++)
                block_stats<T, 1>(chunk_mean, chunk_m2, shift, s1, s2, x + n * D + d0, D, w,
                                  (double)(n - t.n0(r)));
        }
    // Merge the row chunks in order.
    std::vector<double> m2(D);
    for (i64 d = 0; d < D; d++) mean[d] = part[d], m2[d] = part[D + d];
    for (i64 r = 1; r < t.chunks; r++) {
        const double count_a = (double)t.n0(r), count_b = (double)(t.n1(r) - t.n0(r));
        const double* chunk = part + r * 2 * D;
        for (i64 d = 0; d < D; d++)
            merge_stats(mean[d], m2[d], count_a, chunk[d], chunk[D + d], count_b);
    }
    for (i64 d = 0; d < D; d++) var[d] = m2[d] / (double)N;
}

// out = gamma * (x - mean) * rstd + beta, per column.
template <class T>
void batchnorm_normalize(T* out, const T* x, const T* gamma, const T* beta, const double* mean,
                         const double* rstd, i64 N, i64 D) {
    std::vector<T> coef(3 * D);  // m, scale, shift
    T *m = coef.data(), *scale = m + D, *shift = m + 2 * D;
    for (i64 d = 0; d < D; d++) {
        const Affine<T> f = affine_for<T>(mean[d], rstd[d], gamma[d], beta[d]);
        m[d] = f.m, scale[d] = f.scale, shift[d] = f.shift;
    }
    const Tiles t = column_tiles<T>(N, D);
#pragma omp parallel for collapse(2) num_threads(threads()) schedule(static) if (t.parallel)
    for (i64 r = 0; r < t.chunks; r++)
        for (i64 b = 0; b < t.blocks; b++) {
            const i64 d0 = t.d0(b), w = t.d1(b) - d0;
            // Rows in pairs, the last with itself when the count is odd.
            for (i64 n = t.n0(r); n < t.n1(r); n += 2) {
                const i64 at = n * D + d0, bt = std::min(n + 1, t.n1(r) - 1) * D + d0;
                affine_cols(out + at, out + bt, x + at, x + bt, m + d0, scale + d0, shift + d0, w);
            }
        }
}

template <class T>
void batchnorm_backward_impl(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x,
                             const T* gamma, const double* mean, const double* rstd, bool train,
                             i64 N, i64 D) {
    std::vector<T> coef(4 * D);  // m, then a, b, c of dx_map
    T *m = coef.data(), *a = m + D, *b = m + 2 * D, *c = m + 3 * D;
    for (i64 d = 0; d < D; d++) m[d] = T(mean[d]);

    const Tiles t = column_tiles<T>(N, D);
    // Per chunk two partial rows: sum of dout, then sum of dout * (x - m).
    std::vector<double> part_v(t.chunks * 2 * D, 0.0);
    double* part = part_v.data();
#pragma omp parallel for collapse(2) num_threads(threads()) schedule(static) if (t.parallel)
    for (i64 r = 0; r < t.chunks; r++)
        for (i64 bl = 0; bl < t.blocks; bl++) {
            const i64 d0 = t.d0(bl), w = t.d1(bl) - d0;
            double* sg = part + r * 2 * D + d0;
            T acc[2 * kBlockBytes / sizeof(T)];
            i64 n = t.n0(r);
            for (; n + kBlockRows <= t.n1(r); n += kBlockRows)
                block_grad_sums<T, kBlockRows>(sg, sg + D, acc, dout + n * D + d0,
                                               x + n * D + d0, D, m + d0, w);
            for (; n < t.n1(r); n++)
                block_grad_sums<T, 1>(sg, sg + D, acc, dout + n * D + d0, x + n * D + d0, D,
                                      m + d0, w);
        }
    std::vector<double> sums(2 * D);  // of dout, then of dout * (x - m)
    add_chunks(sums.data(), part, t.chunks, 2 * D);

    for (i64 d = 0; d < D; d++) {
        const DxMap<T> f = dx_map<T>(mean[d], rstd[d], gamma[d] * rstd[d], sums[d], sums[D + d],
                                     (double)N, train);
        a[d] = f.a, b[d] = f.b, c[d] = f.c;
        dbeta[d] = T(sums[d]);
        dgamma[d] = T(f.sum_gxhat);
    }
#pragma omp parallel for collapse(2) num_threads(threads()) schedule(static) if (t.parallel)
    for (i64 r = 0; r < t.chunks; r++)
        for (i64 bl = 0; bl < t.blocks; bl++) {
            const i64 d0 = t.d0(bl), w = t.d1(bl) - d0;
            for (i64 n = t.n0(r); n < t.n1(r); n += 2) {  // in pairs, as above
                const i64 at = n * D + d0, bt = std::min(n + 1, t.n1(r) - 1) * D + d0;
                dx_cols(dx + at, dx + bt, dout + at, dout + bt, x + at, x + bt, m + d0, a + d0,
                        b + d0, c + d0, w);
            }
        }
    // float64, train mode: dx's columns sum to zero in exact arithmetic, but
    // the terms of a * dout + b * (x - m) + c cancel, and their rounding left
    // column sums ~10x those of the staged reference, whose last step takes
    // the mean of its own rounded terms away. A bias ahead of batchnorm gets
    // that sum as its gradient (zero in truth), and CS231n's gradient check
    // reads it, so take each column's mean away here too.
    if (std::is_same<T, double>::value && train) {
        constexpr i64 kCols = 512;
        const i64 blocks = (D + kCols - 1) / kCols;
#pragma omp parallel for num_threads(threads()) schedule(static) if (t.parallel)
        for (i64 bl = 0; bl < blocks; bl++) {
            const i64 d0 = bl * kCols, w = std::min(D, d0 + kCols) - d0;
            double col_mean[kCols] = {};
            for (i64 n = 0; n < N; n++)
                for (i64 j = 0; j < w; j++) col_mean[j] += (double)dx[n * D + d0 + j];
            for (i64 j = 0; j < w; j++) col_mean[j] /= (double)N;
            for (i64 n = 0; n < N; n++)
                for (i64 j = 0; j < w; j++) dx[n * D + d0 + j] -= T(col_mean[j]);
        }
    }
}

// ---- layernorm, x[N,D], statistics per row ----

// out = ((x - m) * r + off) * gamma + beta along two rows (a and b, which
// may be the same row): gamma and beta, which with the rows overflow L1,
// are read from L2 once for both.
template <class T>
NNC_CLONES void layernorm_rows(T* out_a, T* out_b, const T* xa, const T* xb, const T* gamma,
                               const T* beta, T ma, T ra, T offa, T mb, T rb, T offb, i64 n) {
#pragma omp simd
    for (i64 i = 0; i < n; i++) {
        out_a[i] = ((xa[i] - ma) * ra + offa) * gamma[i] + beta[i];
        out_b[i] = ((xb[i] - mb) * rb + offb) * gamma[i] + beta[i];
    }
}

// A row's backward map: dx = r * dout * gamma + b * (x - m) + c (dx_map
// with g = dout * gamma) and xhat = (x - m) * r + off.
template <class T>
struct RowMap {
    T m, r, off, b, c;
};

// A row's map from its sums of g = dout * gamma and g * (x - m).
template <class T>
RowMap<T> row_map(const T* dout, const T* x, const T* gamma, double mean, double rstd, i64 D) {
    double sg, sgt;
    scaled_grad_sums(&sg, &sgt, dout, gamma, x, T(mean), D);
    const DxMap<T> f = dx_map<T>(mean, rstd, rstd, sg, sgt, (double)D, true);
    return {f.m, T(rstd), T(((double)f.m - mean) * rstd), f.b, f.c};
}

// dx along a row; adds dout to acc_b and dout * xhat to acc_g (the row's
// share of dbeta and dgamma).
template <class T>
NNC_CLONES void layernorm_dx_row(T* dx, T* acc_b, T* acc_g, const T* dout, const T* x,
                                 const T* gamma, RowMap<T> k, i64 n) {
#pragma omp simd
    for (i64 i = 0; i < n; i++) {
        const T t = x[i] - k.m;
        dx[i] = dout[i] * gamma[i] * k.r + (t * k.b + k.c);
        acc_b[i] += dout[i];
        acc_g[i] += dout[i] * (t * k.r + k.off);
    }
}

// The same for two rows a and b: gamma and the accumulators, which with
// the rows overflow L1, are read from L2 once for both.
template <class T>
NNC_CLONES void layernorm_dx_rows(T* dx_a, T* dx_b, T* acc_b, T* acc_g, const T* dout_a,
                                  const T* dout_b, const T* xa, const T* xb, const T* gamma,
                                  RowMap<T> ka, RowMap<T> kb, i64 n) {
#pragma omp simd
    for (i64 i = 0; i < n; i++) {
        const T ta = xa[i] - ka.m, tb = xb[i] - kb.m;
        dx_a[i] = dout_a[i] * gamma[i] * ka.r + (ta * ka.b + ka.c);
        dx_b[i] = dout_b[i] * gamma[i] * kb.r + (tb * kb.b + kb.c);
        acc_b[i] += dout_a[i] + dout_b[i];
        acc_g[i] += dout_a[i] * (ta * ka.r + ka.off) + dout_b[i] * (tb * kb.r + kb.off);
    }
}

// total += acc; acc = 0.
template <class T>
NNC_CLONES void flush_run(double* total, T* acc, i64 n) {
#pragma omp simd
    for (i64 i = 0; i < n; i++) {
        total[i] += acc[i];
        acc[i] = T(0);
    }
}

template <class T>
void layernorm_forward_impl(T* out, double* mean, double* rstd, const T* x, const T* gamma,
                            const T* beta, double eps, i64 N, i64 D) {
    // Rows in pairs (the last alone, as a pair with itself when N is odd).
#pragma omp parallel for num_threads(threads()) schedule(static) if (N * D > kParallelMin)
    for (i64 pair = 0; pair < (N + 1) / 2; pair++) {
        const i64 a = 2 * pair, b = std::min(N - 1, a + 1);
        T m[2], r[2], off[2];
        for (i64 k = 0; k < 2; k++) {
            const i64 n = k == 0 ? a : b;
            double mu, m2;
            stats_of(&mu, &m2, x + n * D, D);
            const double rs = 1.0 / std::sqrt(m2 / (double)D + eps);
            m[k] = T(mu), r[k] = T(rs), off[k] = T(((double)m[k] - mu) * rs);
            mean[n] = mu;
            rstd[n] = rs;
        }
        layernorm_rows(out + a * D, out + b * D, x + a * D, x + b * D, gamma, beta, m[0], r[0],
                       off[0], m[1], r[1], off[1], D);
    }
}

template <class T>
void layernorm_backward_impl(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x,
                             const T* gamma, const double* mean, const double* rstd, i64 N,
                             i64 D) {
    // dx row by row: with g = dout * gamma,
    // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), means over the row.
    // The same pass sums dbeta and dgamma down the columns: each row chunk
    // into its own partial rows, in runs of kRun rows in T, combined
    // afterwards in a fixed order.
    const bool parallel = N * D > kParallelMin;
    const i64 chunks = parallel ? std::min<i64>(N, threads()) : 1;
    std::vector<double> part_v(chunks * 2 * D, 0.0);
    double* part = part_v.data();
#pragma omp parallel for num_threads(threads()) schedule(static) if (parallel)
    for (i64 ch = 0; ch < chunks; ch++) {
        const i64 n0 = ch * N / chunks, n1 = (ch + 1) * N / chunks;
        std::vector<T> acc(2 * D, T(0));  // this run's dbeta, dgamma
        double* total = part + ch * 2 * D;
        // Rows in pairs, an odd last one alone; dbeta and dgamma flushed
        // every kRun rows.
        for (i64 n = n0; n < n1; n += 2) {
            const RowMap<T> ka = row_map(dout + n * D, x + n * D, gamma, mean[n], rstd[n], D);
            if (n + 1 < n1) {
                const i64 b = n + 1;
                const RowMap<T> kb = row_map(dout + b * D, x + b * D, gamma, mean[b], rstd[b], D);
                layernorm_dx_rows(dx + n * D, dx + b * D, acc.data(), acc.data() + D, dout + n * D,
                                  dout + b * D, x + n * D, x + b * D, gamma, ka, kb, D);
            } else {
                layernorm_dx_row(dx + n * D, acc.data(), acc.data() + D, dout + n * D, x + n * D,
                                 gamma, ka, D);
            }
            if ((n - n0 + 2) % kRun == 0 || n + 2 >= n1) {
                flush_run(total, acc.data(), D);
                flush_run(total + D, acc.data() + D, D);
            }
        }
    }
    std::vector<double> sums(2 * D);
    add_chunks(sums.data(), part, chunks, 2 * D);
    for (i64 d = 0; d < D; d++) {
        dbeta[d] = T(sums[d]);
        dgamma[d] = T(sums[D + d]);
    }
}

// ---- NCHW layers: x[N,C,S], contiguous planes of S pixels ----

// Per channel mean and biased variance over (N, S): the statistics of each
// plane, merged over the batch.
template <class T>
void spatial_stats(double* mean, double* var, const T* x, i64 N, i64 C, i64 S) {
    const i64 P = N * C;
    std::vector<double> plane_mean(P), plane_m2(P);
#pragma omp parallel for num_threads(threads()) schedule(static) if (P * S > kParallelMin)
    for (i64 p = 0; p < P; p++) stats_of(&plane_mean[p], &plane_m2[p], x + p * S, S);
    for (i64 c = 0; c < C; c++) {
        double m = plane_mean[c], m2 = plane_m2[c];
        for (i64 n = 1; n < N; n++)
            merge_stats(m, m2, (double)n * (double)S, plane_mean[n * C + c], plane_m2[n * C + c],
                        (double)S);
        mean[c] = m;
        var[c] = m2 / ((double)N * (double)S);
    }
}

template <class T>
void spatial_normalize(T* out, const T* x, const T* gamma, const T* beta, const double* mean,
                       const double* rstd, i64 N, i64 C, i64 S) {
    std::vector<Affine<T>> f(C);
    for (i64 c = 0; c < C; c++) f[c] = affine_for<T>(mean[c], rstd[c], gamma[c], beta[c]);
    const i64 P = N * C;
#pragma omp parallel for num_threads(threads()) schedule(static) if (P * S > kParallelMin)
    for (i64 p = 0; p < P; p++) {
        const Affine<T>& a = f[p % C];
        affine_of(out + p * S, x + p * S, a.m, a.scale, a.shift, S);
    }
}

template <class T>
void update_running(T* running_mean, T* running_var, const double* mean, const double* var,
                    double momentum, i64 D) {
    for (i64 d = 0; d < D; d++) {
        running_mean[d] = T(momentum * running_mean[d] + (1.0 - momentum) * mean[d]);
        running_var[d] = T(momentum * running_var[d] + (1.0 - momentum) * var[d]);
    }
}

template <class T>
void running_to_stats(double* mean, double* rstd, const T* running_mean, const T* running_var,
                      double eps, i64 D) {
    for (i64 d = 0; d < D; d++) {
        mean[d] = running_mean[d];
        rstd[d] = 1.0 / std::sqrt((double)running_var[d] + eps);
    }
}

}  // namespace

template <class T>
void batchnorm_forward_train(T* out, double* mean, double* rstd, T* running_mean, T* running_var,
                             const T* x, const T* gamma, const T* beta, double eps,
                             double momentum, i64 N, i64 D) {
    std::vector<double> var(D);
    batchnorm_stats(mean, var.data(), x, N, D);
    for (i64 d = 0; d < D; d++) rstd[d] = 1.0 / std::sqrt(var[d] + eps);
    update_running(running_mean, running_var, mean, var.data(), momentum, D);
    batchnorm_normalize(out, x, gamma, beta, mean, rstd, N, D);
}

template <class T>
void batchnorm_forward_test(T* out, double* mean, double* rstd, const T* x, const T* gamma,
                            const T* beta, const T* running_mean, const T* running_var,
                            double eps, i64 N, i64 D) {
    running_to_stats(mean, rstd, running_mean, running_var, eps, D);
    batchnorm_normalize(out, x, gamma, beta, mean, rstd, N, D);
}

template <class T>
void batchnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                        const double* mean, const double* rstd, bool train, i64 N, i64 D) {
    batchnorm_backward_impl(dx, dgamma, dbeta, dout, x, gamma, mean, rstd, train, N, D);
}

template <class T>
void layernorm_forward(T* out, double* mean, double* rstd, const T* x, const T* gamma,
                       const T* beta, double eps, i64 N, i64 D) {
    layernorm_forward_impl(out, mean, rstd, x, gamma, beta, eps, N, D);
}

template <class T>
void layernorm_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                        const double* mean, const double* rstd, i64 N, i64 D) {
    layernorm_backward_impl(dx, dgamma, dbeta, dout, x, gamma, mean, rstd, N, D);
}

template <class T>
void spatial_batchnorm_forward_train(T* out, double* mean, double* rstd, T* running_mean,
                                     T* running_var, const T* x, const T* gamma, const T* beta,
                                     double eps, double momentum, i64 N, i64 C, i64 S) {
    std::vector<double> var(C);
    spatial_stats(mean, var.data(), x, N, C, S);
    for (i64 c = 0; c < C; c++) rstd[c] = 1.0 / std::sqrt(var[c] + eps);
    update_running(running_mean, running_var, mean, var.data(), momentum, C);
    spatial_normalize(out, x, gamma, beta, mean, rstd, N, C, S);
}

template <class T>
void spatial_batchnorm_forward_test(T* out, double* mean, double* rstd, const T* x,
                                    const T* gamma, const T* beta, const T* running_mean,
                                    const T* running_var, double eps, i64 N, i64 C, i64 S) {
    running_to_stats(mean, rstd, running_mean, running_var, eps, C);
    spatial_normalize(out, x, gamma, beta, mean, rstd, N, C, S);
}

template <class T>
void spatial_batchnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x,
                                const T* gamma, const double* mean, const double* rstd,
                                bool train, i64 N, i64 C, i64 S) {
    const i64 P = N * C;
    // Per plane: sum of dout and of dout * (x - m), m = T(mean) of its channel.
    std::vector<double> sum_g(P), sum_gt(P);
#pragma omp parallel for num_threads(threads()) schedule(static) if (P * S > kParallelMin)
    for (i64 p = 0; p < P; p++)
        grad_sums(&sum_g[p], &sum_gt[p], dout + p * S, x + p * S, T(mean[p % C]), S);

    std::vector<DxMap<T>> f(C);
    const double count = (double)N * (double)S;
    for (i64 c = 0; c < C; c++) {
        double sg = 0.0, sgt = 0.0;
        for (i64 n = 0; n < N; n++) {
            sg += sum_g[n * C + c];
            sgt += sum_gt[n * C + c];
        }
        f[c] = dx_map<T>(mean[c], rstd[c], gamma[c] * rstd[c], sg, sgt, count, train);
        dbeta[c] = T(sg);
        dgamma[c] = T(f[c].sum_gxhat);
    }
#pragma omp parallel for num_threads(threads()) schedule(static) if (P * S > kParallelMin)
    for (i64 p = 0; p < P; p++) {
        const DxMap<T>& g = f[p % C];
        dx_of(dx + p * S, dout + p * S, x + p * S, g.m, g.a, g.b, g.c, S);
    }
}

template <class T>
void groupnorm_forward(T* out, double* mean, double* rstd, const T* x, const T* gamma,
                       const T* beta, double eps, i64 N, i64 C, i64 S, i64 G) {
    // The K channels of a group are adjacent in NCHW, so each (sample, group)
    // is one contiguous run of M = K * S elements.
    const i64 K = C / G, M = K * S;
#pragma omp parallel for num_threads(threads()) schedule(static) if (N * C * S > kParallelMin)
    for (i64 q = 0; q < N * G; q++) {
        const T* xq = x + q * M;
        double mu, m2;
        stats_of(&mu, &m2, xq, M);
        const double r = 1.0 / std::sqrt(m2 / (double)M + eps);
        mean[q] = mu;
        rstd[q] = r;
        for (i64 k = 0; k < K; k++) {
            const i64 c = (q % G) * K + k;
            const Affine<T> f = affine_for<T>(mu, r, gamma[c], beta[c]);
            affine_of(out + q * M + k * S, xq + k * S, f.m, f.scale, f.shift, S);
        }
    }
}

template <class T>
void groupnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                        const double* mean, const double* rstd, i64 N, i64 C, i64 S, i64 G) {
    const i64 K = C / G, M = K * S, P = N * C;
    // Plane p = n * C + c belongs to group p / K = n * G + c / K. Per plane:
    // sum of dout and of dout * (x - m), m = T(mean) of its group.
    std::vector<double> sum_g(P), sum_gt(P);
#pragma omp parallel for num_threads(threads()) schedule(static) if (P * S > kParallelMin)
    for (i64 p = 0; p < P; p++)
        grad_sums(&sum_g[p], &sum_gt[p], dout + p * S, x + p * S, T(mean[p / K]), S);
    // dgamma needs the plane sums of dout * xhat, xhat = (x - m) * rstd + off.
    std::vector<double> sum_gxhat(P);
    for (i64 p = 0; p < P; p++) {
        const double mu = mean[p / K], r = rstd[p / K];
        sum_gxhat[p] = r * sum_gt[p] + ((double)T(mu) - mu) * r * sum_g[p];
    }
    for (i64 c = 0; c < C; c++) {
        double b = 0.0, g = 0.0;
        for (i64 n = 0; n < N; n++) {
            b += sum_g[n * C + c];
            g += sum_gxhat[n * C + c];
        }
        dbeta[c] = T(b);
        dgamma[c] = T(g);
    }
    // With g = dout * gamma: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),
    // means over the group; gamma is constant on a plane, so the group sums
    // come from the plane sums.
#pragma omp parallel for num_threads(threads()) schedule(static) if (P * S > kParallelMin)
    for (i64 q = 0; q < N * G; q++) {
        const i64 p0 = q * K;  // first plane of the group
        const i64 c0 = (q % G) * K;
        double sg = 0.0, sgt = 0.0;
        for (i64 k = 0; k < K; k++) {
            sg += gamma[c0 + k] * sum_g[p0 + k];
            sgt += gamma[c0 + k] * sum_gt[p0 + k];
        }
        // The group's map for g; a plane's dout weight is rstd * gamma.
        const DxMap<T> f = dx_map<T>(mean[q], rstd[q], rstd[q], sg, sgt, (double)M, true);
        for (i64 k = 0; k < K; k++) {
            const i64 p = p0 + k;
            dx_of(dx + p * S, dout + p * S, x + p * S, f.m, T(rstd[q] * gamma[c0 + k]), f.b, f.c,
                  S);
        }
    }
}

#define NNC_INSTANTIATE(T)                                                                      \
    template void batchnorm_forward_train<T>(T*, double*, double*, T*, T*, const T*, const T*,  \
                                             const T*, double, double, i64, i64);              \
    template void batchnorm_forward_test<T>(T*, double*, double*, const T*, const T*,          \
                                            const T*, const T*, const T*, double, i64, i64);   \
    template void batchnorm_backward<T>(T*, T*, T*, const T*, const T*, const T*,              \
                                        const double*, const double*, bool, i64, i64);         \
    template void layernorm_forward<T>(T*, double*, double*, const T*, const T*, const T*,     \
                                       double, i64, i64);                                      \
    template void layernorm_backward<T>(T*, T*, T*, const T*, const T*, const T*,              \
                                        const double*, const double*, i64, i64);               \
    template void spatial_batchnorm_forward_train<T>(T*, double*, double*, T*, T*, const T*,   \
                                                     const T*, const T*, double, double, i64,  \
                                                     i64, i64);                                \
    template void spatial_batchnorm_forward_test<T>(T*, double*, double*, const T*, const T*,  \
                                                    const T*, const T*, const T*, double, i64, \
                                                    i64, i64);                                 \
    template void spatial_batchnorm_backward<T>(T*, T*, T*, const T*, const T*, const T*,      \
                                                const double*, const double*, bool, i64, i64,  \
                                                i64);                                          \
    template void groupnorm_forward<T>(T*, double*, double*, const T*, const T*, const T*,     \
                                       double, i64, i64, i64, i64);                            \
    template void groupnorm_backward<T>(T*, T*, T*, const T*, const T*, const T*,              \
                                        const double*, const double*, i64, i64, i64, i64);
NNC_INSTANTIATE(float)
NNC_INSTANTIATE(double)

}  // namespace nnc
