#include "norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace nnc {
namespace {

// Below this many elements a kernel runs on one thread: waking the team
// costs more than the loop.
constexpr i64 kParallelMin = 32768;
// Widest column block of the (N, D) tiles.
constexpr i64 kMaxBlock = 2048;
// A sub-chunk of rows this size stays in cache between two passes over it.
constexpr i64 kSubChunkBytes = 64 * 1024;

// Column reductions over a row-major (N, D) array (batchnorm's statistics and
// every dgamma/dbeta of an (N, D) layer) run on tiles: row chunk x column
// block. A tile is read row by row, so memory is walked in contiguous row
// segments whatever D is (a loop per column would stride by D); a block of at
// most kMaxBlock columns keeps its accumulators (16-32 KB) in cache while its
// row segments stay long enough for the hardware prefetchers; and splitting
// the rows as well gives tall, narrow arrays (D = 3, N = 65536) work for
// every thread. Each row chunk sums into its own partial rows, which are
// added afterwards in a fixed order. Elementwise passes reuse the tiles.
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

Tiles column_tiles(i64 N, i64 D) {
    Tiles t;
    t.N = N;
    t.D = D;
    t.parallel = N * D > kParallelMin;
    t.blocks = std::max<i64>(1, (D + kMaxBlock - 1) / kMaxBlock);
    t.cols = std::max<i64>(1, (D + t.blocks - 1) / t.blocks);
    // About four tiles per thread; rows are split only when the column
    // blocks alone are too few, so the partial rows stay small.
    const i64 nt = t.parallel ? threads() : 1;
    const i64 want = t.parallel ? std::min(std::max<i64>(N, 1), (4 * nt + t.blocks - 1) / t.blocks)
                                : 1;
    t.rows = std::max<i64>(1, (N + want - 1) / want);
    t.chunks = std::max<i64>(1, (N + t.rows - 1) / t.rows);
    return t;
}

// out[j] = sum over r of part[r * len + j]: the partial rows of every chunk.
void add_chunks(double* out, const double* part, i64 chunks, i64 len) {
    for (i64 j = 0; j < len; j++) out[j] = 0.0;
    for (i64 r = 0; r < chunks; r++)
        for (i64 j = 0; j < len; j++) out[j] += part[r * len + j];
}

// ---- batchnorm, x[N,D], statistics per column ----

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

// Per column mean and biased variance. Each tile is cut into sub-chunks of
// rows small enough to stay in cache: a sub-chunk gets an exact two-pass mean
// and centered sum of squares, merged into the tile's running statistics, so
// x is read from memory once (not once per pass).
template <class T>
NNC_CLONES void batchnorm_stats(double* mean, double* var, const T* x, i64 N, i64 D) {
    const Tiles t = column_tiles(N, D);
    // Per row chunk: mean, then m2, of each column.
    std::vector<double> part_v(t.chunks * 2 * D);
    double* part = part_v.data();
#pragma omp parallel for collapse(2) num_threads(threads()) schedule(static) if (t.parallel)
    for (i64 r = 0; r < t.chunks; r++)
        for (i64 b = 0; b < t.blocks; b++) {
            const i64 d0 = t.d0(b), d1 = t.d1(b), w = d1 - d0;
            double* tile_mean = part + r * 2 * D + d0;
            double* tile_m2 = tile_mean + D;
            double sub_mean[kMaxBlock], sub_m2[kMaxBlock];
            const i64 sub_rows = std::max<i64>(1, kSubChunkBytes / (i64)(w * sizeof(T) + 1));
            double count = 0.0;
            for (i64 s0 = t.n0(r); s0 < t.n1(r); s0 += sub_rows) {
                const i64 s1 = std::min(t.n1(r), s0 + sub_rows);
                for (i64 j = 0; j < w; j++) sub_mean[j] = sub_m2[j] = 0.0;
                for (i64 n = s0; n < s1; n++) {
                    const T* row = x + n * D + d0;
#pragma omp simd
                    for (i64 j = 0; j < w; j++) sub_mean[j] += row[j];
                }
                const double sub_count = (double)(s1 - s0);
#pragma omp simd
                for (i64 j = 0; j < w; j++) sub_mean[j] /= sub_count;
                for (i64 n = s0; n < s1; n++) {
                    const T* row = x + n * D + d0;
#pragma omp simd
                    for (i64 j = 0; j < w; j++) {
                        const double c = row[j] - sub_mean[j];
                        sub_m2[j] += c * c;
                    }
                }
                if (count == 0.0) {
                    for (i64 j = 0; j < w; j++) tile_mean[j] = sub_mean[j], tile_m2[j] = sub_m2[j];
                } else {
#pragma omp simd
                    for (i64 j = 0; j < w; j++)
                        merge_stats(tile_mean[j], tile_m2[j], count, sub_mean[j], sub_m2[j],
                                    sub_count);
                }
                count += sub_count;
            }
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
NNC_CLONES void batchnorm_normalize(T* out, const T* x, const T* gamma, const T* beta,
                                    const double* mean, const double* rstd, i64 N, i64 D) {
    std::vector<double> scale_v(D);
    double* scale = scale_v.data();
    for (i64 d = 0; d < D; d++) scale[d] = gamma[d] * rstd[d];
    const Tiles t = column_tiles(N, D);
#pragma omp parallel for collapse(2) num_threads(threads()) schedule(static) if (t.parallel)
    for (i64 r = 0; r < t.chunks; r++)
        for (i64 b = 0; b < t.blocks; b++) {
            const i64 d0 = t.d0(b), d1 = t.d1(b);
            for (i64 n = t.n0(r); n < t.n1(r); n++) {
                const T* row = x + n * D;
                T* o = out + n * D;
#pragma omp simd
                for (i64 d = d0; d < d1; d++) o[d] = T((row[d] - mean[d]) * scale[d] + beta[d]);
            }
        }
}

template <class T>
NNC_CLONES void batchnorm_backward_impl(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x,
                                        const T* gamma, const double* mean, const double* rstd,
                                        bool train, i64 N, i64 D) {
    const Tiles t = column_tiles(N, D);
    // Per chunk two partial rows: sum of dout, then sum of dout * xhat.
    std::vector<double> part_v(t.chunks * 2 * D, 0.0);
    double* part = part_v.data();
#pragma omp parallel for collapse(2) num_threads(threads()) schedule(static) if (t.parallel)
    for (i64 r = 0; r < t.chunks; r++)
        for (i64 b = 0; b < t.blocks; b++) {
            double* acc_b = part + r * 2 * D;
            double* acc_g = acc_b + D;
            const i64 d0 = t.d0(b), d1 = t.d1(b);
            for (i64 n = t.n0(r); n < t.n1(r); n++) {
                const T* g = dout + n * D;
                const T* row = x + n * D;
#pragma omp simd
                for (i64 d = d0; d < d1; d++) {
                    acc_b[d] += g[d];
                    acc_g[d] += g[d] * ((row[d] - mean[d]) * rstd[d]);
                }
            }
        }
    std::vector<double> sums(2 * D);  // dbeta, then dgamma, in double
    add_chunks(sums.data(), part, t.chunks, 2 * D);

    // dx = gamma * rstd * (dout - mean(dout) - xhat * mean(dout * xhat)); the
    // two means vanish in test mode, where mean and rstd are constants.
    std::vector<double> k_v(3 * D);
    double* k = k_v.data();          // gamma * rstd
    double* mean_g = k + D;          // mean over the batch of dout
    double* mean_gx = k + 2 * D;     // mean over the batch of dout * xhat
    for (i64 d = 0; d < D; d++) {
        dbeta[d] = T(sums[d]);
        dgamma[d] = T(sums[D + d]);
        k[d] = gamma[d] * rstd[d];
        mean_g[d] = train ? sums[d] / (double)N : 0.0;
        mean_gx[d] = train ? sums[D + d] / (double)N : 0.0;
    }
#pragma omp parallel for collapse(2) num_threads(threads()) schedule(static) if (t.parallel)
    for (i64 r = 0; r < t.chunks; r++)
        for (i64 b = 0; b < t.blocks; b++) {
            const i64 d0 = t.d0(b), d1 = t.d1(b);
            for (i64 n = t.n0(r); n < t.n1(r); n++) {
                const T* g = dout + n * D;
                const T* row = x + n * D;
                T* o = dx + n * D;
#pragma omp simd
                for (i64 d = d0; d < d1; d++) {
                    const double xhat = (row[d] - mean[d]) * rstd[d];
                    o[d] = T(k[d] * (g[d] - mean_g[d] - xhat * mean_gx[d]));
                }
            }
        }
}

// ---- layernorm, x[N,D], statistics per row ----

template <class T>
NNC_CLONES void layernorm_forward_impl(T* out, double* mean, double* rstd, const T* x,
                                       const T* gamma, const T* beta, double eps, i64 N, i64 D) {
#pragma omp parallel for num_threads(threads()) schedule(static) if (N * D > kParallelMin)
    for (i64 n = 0; n < N; n++) {
        const T* row = x + n * D;
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (i64 d = 0; d < D; d++) sum += row[d];
        const double m = sum / (double)D;
        double sq = 0.0;
#pragma omp simd reduction(+ : sq)
        for (i64 d = 0; d < D; d++) {
            const double c = row[d] - m;
            sq += c * c;
        }
        const double r = 1.0 / std::sqrt(sq / (double)D + eps);
        T* o = out + n * D;
#pragma omp simd
        for (i64 d = 0; d < D; d++) o[d] = T((row[d] - m) * r * gamma[d] + beta[d]);
        mean[n] = m;
        rstd[n] = r;
    }
}

template <class T>
NNC_CLONES void layernorm_backward_impl(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x,
                                        const T* gamma, const double* mean, const double* rstd,
                                        i64 N, i64 D) {
    // dx row by row: with g = dout * gamma,
    // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), means over the row.
#pragma omp parallel for num_threads(threads()) schedule(static) if (N * D > kParallelMin)
    for (i64 n = 0; n < N; n++) {
        const T* gout = dout + n * D;
        const T* row = x + n * D;
        const double m = mean[n], r = rstd[n];
        double sum_g = 0.0, sum_gx = 0.0;
#pragma omp simd reduction(+ : sum_g, sum_gx)
        for (i64 d = 0; d < D; d++) {
            const double g = (double)gout[d] * gamma[d];
            sum_g += g;
            sum_gx += g * ((row[d] - m) * r);
        }
        const double mean_g = sum_g / (double)D, mean_gx = sum_gx / (double)D;
        T* o = dx + n * D;
#pragma omp simd
        for (i64 d = 0; d < D; d++) {
            const double g = (double)gout[d] * gamma[d];
            const double xhat = (row[d] - m) * r;
            o[d] = T(r * (g - mean_g - xhat * mean_gx));
        }
    }

    // dbeta, dgamma: column sums, tiled as in batchnorm.
    const Tiles t = column_tiles(N, D);
    std::vector<double> part_v(t.chunks * 2 * D, 0.0);
    double* part = part_v.data();
#pragma omp parallel for collapse(2) num_threads(threads()) schedule(static) if (t.parallel)
    for (i64 r = 0; r < t.chunks; r++)
        for (i64 b = 0; b < t.blocks; b++) {
            double* acc_b = part + r * 2 * D;
            double* acc_g = acc_b + D;
            const i64 d0 = t.d0(b), d1 = t.d1(b);
            for (i64 n = t.n0(r); n < t.n1(r); n++) {
                const T* g = dout + n * D;
                const T* row = x + n * D;
                const double m = mean[n], rs = rstd[n];
#pragma omp simd
                for (i64 d = d0; d < d1; d++) {
                    acc_b[d] += g[d];
                    acc_g[d] += g[d] * ((row[d] - m) * rs);
                }
            }
        }
    std::vector<double> sums(2 * D);
    add_chunks(sums.data(), part, t.chunks, 2 * D);
    for (i64 d = 0; d < D; d++) {
        dbeta[d] = T(sums[d]);
        dgamma[d] = T(sums[D + d]);
    }
}

// ---- NCHW layers: x[N,C,S], contiguous planes of S pixels ----

template <class T>
NNC_CLONES double plane_sum(const T* x, i64 S) {
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (i64 s = 0; s < S; s++) sum += x[s];
    return sum;
}

template <class T>
NNC_CLONES double plane_centered_sq(const T* x, double m, i64 S) {
    double sq = 0.0;
#pragma omp simd reduction(+ : sq)
    for (i64 s = 0; s < S; s++) {
        const double c = x[s] - m;
        sq += c * c;
    }
    return sq;
}

// out = (x - m) * scale + shift over one plane.
template <class T>
NNC_CLONES void plane_normalize(T* out, const T* x, double m, double scale, double shift, i64 S) {
#pragma omp simd
    for (i64 s = 0; s < S; s++) out[s] = T((x[s] - m) * scale + shift);
}

// sum_g = sum of dout, sum_gx = sum of dout * xhat over one plane.
template <class T>
NNC_CLONES void plane_grad_sums(double* sum_g, double* sum_gx, const T* dout, const T* x,
                                double m, double r, i64 S) {
    double a = 0.0, b = 0.0;
#pragma omp simd reduction(+ : a, b)
    for (i64 s = 0; s < S; s++) {
        a += dout[s];
        b += dout[s] * ((x[s] - m) * r);
    }
    *sum_g = a;
    *sum_gx = b;
}

// dx = scale * (gamma * dout - mean_g - xhat * mean_gx) over one plane,
// xhat = (x - m) * r: batchnorm passes scale = gamma[c] * rstd and gamma = 1,
// groupnorm scale = rstd and the channel's gamma.
template <class T>
NNC_CLONES void plane_dx(T* dx, const T* dout, const T* x, double m, double r, double scale,
                         double gamma, double mean_g, double mean_gx, i64 S) {
#pragma omp simd
    for (i64 s = 0; s < S; s++) {
        const double xhat = (x[s] - m) * r;
        dx[s] = T(scale * (gamma * dout[s] - mean_g - xhat * mean_gx));
    }
}

// The per-plane helpers are called once per plane from the parallel loops
// below; a plane is long enough (S pixels) that the call costs nothing.

// Per channel mean and biased variance over (N, S): an exact two-pass mean
// and centered sum of squares per plane (a plane is read from memory once and
// then from cache), merged over the batch.
template <class T>
void spatial_stats(double* mean, double* var, const T* x, i64 N, i64 C, i64 S) {
    const i64 P = N * C;
    std::vector<double> plane_mean(P), plane_m2(P);
#pragma omp parallel for num_threads(threads()) schedule(static) if (P * S > kParallelMin)
    for (i64 p = 0; p < P; p++) {
        const T* xp = x + p * S;
        plane_mean[p] = plane_sum(xp, S) / (double)S;
        plane_m2[p] = plane_centered_sq(xp, plane_mean[p], S);
    }
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
    const i64 P = N * C;
#pragma omp parallel for num_threads(threads()) schedule(static) if (P * S > kParallelMin)
    for (i64 p = 0; p < P; p++) {
        const i64 c = p % C;
        plane_normalize(out + p * S, x + p * S, mean[c], gamma[c] * rstd[c], (double)beta[c], S);
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
    std::vector<double> sum_g(P), sum_gx(P);
#pragma omp parallel for num_threads(threads()) schedule(static) if (P * S > kParallelMin)
    for (i64 p = 0; p < P; p++)
        plane_grad_sums(&sum_g[p], &sum_gx[p], dout + p * S, x + p * S, mean[p % C],
                        rstd[p % C], S);

    // Per channel: dbeta, dgamma, and the two batch means of the train-mode dx.
    std::vector<double> mean_g(C), mean_gx(C);
    const double count = (double)N * (double)S;
    for (i64 c = 0; c < C; c++) {
        double b = 0.0, g = 0.0;
        for (i64 n = 0; n < N; n++) {
            b += sum_g[n * C + c];
            g += sum_gx[n * C + c];
        }
        dbeta[c] = T(b);
        dgamma[c] = T(g);
        mean_g[c] = train ? b / count : 0.0;
        mean_gx[c] = train ? g / count : 0.0;
    }
#pragma omp parallel for num_threads(threads()) schedule(static) if (P * S > kParallelMin)
    for (i64 p = 0; p < P; p++) {
        const i64 c = p % C;
        plane_dx(dx + p * S, dout + p * S, x + p * S, mean[c], rstd[c], gamma[c] * rstd[c], 1.0,
                 mean_g[c], mean_gx[c], S);
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
        const double m = plane_sum(xq, M) / (double)M;
        const double r = 1.0 / std::sqrt(plane_centered_sq(xq, m, M) / (double)M + eps);
        mean[q] = m;
        rstd[q] = r;
        for (i64 k = 0; k < K; k++) {
            const i64 c = (q % G) * K + k;
            plane_normalize(out + q * M + k * S, xq + k * S, m, gamma[c] * r, (double)beta[c], S);
        }
    }
}

template <class T>
void groupnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                        const double* mean, const double* rstd, i64 N, i64 C, i64 S, i64 G) {
    const i64 K = C / G, M = K * S, P = N * C;
    // Plane p = n * C + c belongs to group p / K = n * G + c / K.
    std::vector<double> sum_g(P), sum_gx(P);
#pragma omp parallel for num_threads(threads()) schedule(static) if (P * S > kParallelMin)
    for (i64 p = 0; p < P; p++)
        plane_grad_sums(&sum_g[p], &sum_gx[p], dout + p * S, x + p * S, mean[p / K],
                        rstd[p / K], S);
    for (i64 c = 0; c < C; c++) {
        double b = 0.0, g = 0.0;
        for (i64 n = 0; n < N; n++) {
            b += sum_g[n * C + c];
            g += sum_gx[n * C + c];
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
        double a = 0.0, b = 0.0;
        for (i64 k = 0; k < K; k++) {
            a += gamma[c0 + k] * sum_g[p0 + k];
            b += gamma[c0 + k] * sum_gx[p0 + k];
        }
        const double mean_g = a / (double)M, mean_gx = b / (double)M;
        for (i64 k = 0; k < K; k++) {
            const i64 p = p0 + k;
            plane_dx(dx + p * S, dout + p * S, x + p * S, mean[q], rstd[q], rstd[q],
                     (double)gamma[c0 + k], mean_g, mean_gx, S);
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
