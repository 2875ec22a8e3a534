// Shared by batchnorm.cpp, layernorm.cpp and groupnorm.cpp: the statistics
// and elementwise helpers of every normalization, and their binding checks.
//
// Forward passes return what the backward pass needs: the mean and the
// reciprocal standard deviation rstd = 1 / sqrt(var + eps) of every normalized
// group (feature, row, channel or (sample, group)), in double whatever T is.
// Statistics have double-precision quality for float32 too (see "precision"
// below). Elementwise passes work in T around T(mean). Backward passes use
// the closed-form gradient
//   dx = gamma * rstd * (dout - (dbeta + xhat * dgamma) / M)
// (M = elements per statistic), with dgamma/dbeta summed per channel.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "bind.h"

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

// out[j] = sum over r of part[r * len + j]: the partial rows of every chunk.
inline void add_chunks(double* out, const double* part, i64 chunks, i64 len) {
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
    const double scale = gamma * rstd, dropped = mean - (double)m;
    // An infinite rstd (eps = 0 and a zero variance) with nothing dropped
    // must leave beta, not 0 * inf = NaN, so that out is +-Inf away from the
    // mean (and NaN at it), as gamma * (x - mean) / sqrt(var + eps) + beta.
    return {m, T(scale), T(dropped == 0.0 ? beta : beta - dropped * scale)};
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
    // (the guards: an infinite rstd, eps = 0 and a zero variance, times a
    // zero must not make NaN where the reference's terms are 0)
    const double off = (double)m == mean ? 0.0 : ((double)m - mean) * rstd;
    const double sum_gxhat = rstd * sgt + off * sg;
    if (!train) return {m, T(w), T(0), T(0), sum_gxhat};  // constant statistics: dx = w * dout
    const double mean_g = sg / M, mean_gx = sum_gxhat / M;
    return {m, T(w), T(-w * mean_gx * rstd), T(-w * (mean_g + mean_gx * off)), sum_gxhat};
}


// ---- binding checks ----

// The float64 statistics (mean, rstd) a forward pass handed out, n of each,
// back for the backward pass.
inline void check_stats(const In& mean, const In& rstd, i64 n) {
    check_dtype<double>(mean, "mean");
    check_dtype<double>(rstd, "rstd");
    check_shape(mean, "mean", {n});
    check_shape(rstd, "rstd", {n});
}

// (N, C, S) of an NCHW array with N > 0 and S = H * W > 0.
struct NCS {
    i64 N, C, S;
};
inline NCS nchw(const In& x) {
    check_ndim(x, "x", 4);
    const NCS d{(i64)x.shape(0), (i64)x.shape(1), (i64)x.shape(2) * (i64)x.shape(3)};
    check_nonempty(d.N, "x", "is an empty batch");
    check_nonempty(d.S, "x", "has no pixels");
    return d;
}

}  // namespace
}  // namespace nnc
