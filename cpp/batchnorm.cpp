// Batch normalization: batchnorm over the N rows of x (N, D), and spatial
// batchnorm over the (N, H, W) of each channel of x (N, C, H, W). Statistics
// and helpers shared with layernorm and groupnorm are in norm_stats.h.
#include <type_traits>

#include "norm_stats.h"

namespace nnc {
namespace {

// ---- column blocks: per column sums over R rows ld apart (batchnorm) ----
//
// R = kBlockRows for whole blocks; the rows left over go one at a time with
// R = 1. Memory is read a few rows at a time into accumulators in L1: the
// hardware prefetchers follow a few streams, not one per row.

// Rows of a column block summed around one shift, and widest row segment of
// a column block, in bytes: rows up to 16 KB are taken whole, so tiles
// stream contiguous memory, and a block's per-column accumulators stay in
// L1/L2.
constexpr int kBlockRows = 16;
constexpr i64 kBlockBytes = 16384;

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

// train: mean/rstd were batch statistics (they depend on x);
// otherwise they were constants and the layer is an affine map of x.
template <class T>
void batchnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                        const double* mean, const double* rstd, bool train, i64 N, i64 D) {
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

// ---- spatial batchnorm, x[N,C,S] with S = H * W: statistics per channel ----

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

// x[N,D] normalized with batch statistics over N (biased variance);
// mean/rstd[D]; running_mean/var[D] updated in place:
// running = momentum * running + (1 - momentum) * batch statistic.
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

// x[N,D] normalized with the running statistics; mean/rstd[D] are those
// statistics, for the backward pass.
template <class T>
void batchnorm_forward_test(T* out, double* mean, double* rstd, const T* x, const T* gamma,
                            const T* beta, const T* running_mean, const T* running_var,
                            double eps, i64 N, i64 D) {
    running_to_stats(mean, rstd, running_mean, running_var, eps, D);
    batchnorm_normalize(out, x, gamma, beta, mean, rstd, N, D);
}

// x[N,C,S] normalized per channel over (N, S); mean/rstd/running stats [C].
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


// x as (N, C, S): (N, D, 1) for batchnorm, NCHW planes for spatial batchnorm.
NCS bn_dims(const In& x, bool spatial) {
    if (spatial) return nchw(x);
    check_ndim(x, "x", 2);
    check_nonempty((i64)x.shape(0), "x", "is an empty batch");
    return {(i64)x.shape(0), (i64)x.shape(1), 1};
}

// The four per-feature vectors of a batchnorm forward, n entries each.
template <class A>
void check_bn_vectors(const In& gamma, const In& beta, const A& running_mean,
                      const A& running_var, i64 n) {
    check_shape(gamma, "gamma", {n});
    check_shape(beta, "beta", {n});
    check_shape(running_mean, "running_mean", {n});
    check_shape(running_var, "running_var", {n});
}

Out<double> new_stats(i64 n) { return new_array<double>({n}); }

// The train and test forwards and the backward, for x (N, D) or, spatial,
// x (N, C, H, W).
void def_batchnorm(nb::module_& m, bool spatial) {
    const std::string name = spatial ? "spatial_batchnorm" : "batchnorm";
    const char* shape = spatial ? "out[N,C,H,W], mean[C], rstd[C]" : "out[N,D], mean[D], rstd[D]";

    m.def((name + "_forward_train").c_str(), [spatial](In x, In gamma, In beta,
                                                       InOut running_mean, InOut running_var,
                                                       double eps, double momentum) {
        const DType dt = float_dtype({{"x", x.dtype()}, {"gamma", gamma.dtype()},
                                      {"beta", beta.dtype()},
                                      {"running_mean", running_mean.dtype()},
                                      {"running_var", running_var.dtype()}});
        const NCS d = bn_dims(x, spatial);
        check_bn_vectors(gamma, beta, running_mean, running_var, d.C);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_like<T>(x);
            auto mean = new_stats(d.C), rstd = new_stats(d.C);
            {
                nb::gil_scoped_release nogil;
                if (spatial)
                    spatial_batchnorm_forward_train(
                        out.data(), mean.data(), rstd.data(), mut<T>(running_mean),
                        mut<T>(running_var), ptr<T>(x), ptr<T>(gamma), ptr<T>(beta), eps,
                        momentum, d.N, d.C, d.S);
                else
                    batchnorm_forward_train(out.data(), mean.data(), rstd.data(),
                                            mut<T>(running_mean), mut<T>(running_var), ptr<T>(x),
                                            ptr<T>(gamma), ptr<T>(beta), eps, momentum, d.N, d.C);
            }
            return nb::make_tuple(out, mean, rstd);
        });
    }, nb::arg("x"), nb::arg("gamma"), nb::arg("beta"), nb::arg("running_mean").noconvert(),
       nb::arg("running_var").noconvert(), nb::arg("eps"), nb::arg("momentum"),
       ("(" + std::string(shape) + ") normalized with batch statistics; updates the running "
        "statistics in place").c_str());

    m.def((name + "_forward_test").c_str(), [spatial](In x, In gamma, In beta, In running_mean,
                                                      In running_var, double eps) {
        const DType dt = float_dtype({{"x", x.dtype()}, {"gamma", gamma.dtype()},
                                      {"beta", beta.dtype()},
                                      {"running_mean", running_mean.dtype()},
                                      {"running_var", running_var.dtype()}});
        const NCS d = bn_dims(x, spatial);
        check_bn_vectors(gamma, beta, running_mean, running_var, d.C);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_like<T>(x);
            auto mean = new_stats(d.C), rstd = new_stats(d.C);
            {
                nb::gil_scoped_release nogil;
                if (spatial)
                    spatial_batchnorm_forward_test(out.data(), mean.data(), rstd.data(), ptr<T>(x),
                                                   ptr<T>(gamma), ptr<T>(beta),
                                                   ptr<T>(running_mean), ptr<T>(running_var), eps,
                                                   d.N, d.C, d.S);
                else
                    batchnorm_forward_test(out.data(), mean.data(), rstd.data(), ptr<T>(x),
                                           ptr<T>(gamma), ptr<T>(beta), ptr<T>(running_mean),
                                           ptr<T>(running_var), eps, d.N, d.C);
            }
            return nb::make_tuple(out, mean, rstd);
        });
    }, nb::arg("x"), nb::arg("gamma"), nb::arg("beta"), nb::arg("running_mean"),
       nb::arg("running_var"), nb::arg("eps"),
       ("(" + std::string(shape) + ") normalized with the running statistics").c_str());

    m.def((name + "_backward").c_str(), [spatial](In dout, In x, In gamma, In mean, In rstd,
                                                  bool train) {
        const DType dt = float_dtype({{"dout", dout.dtype()}, {"x", x.dtype()},
                                      {"gamma", gamma.dtype()}});
        const NCS d = bn_dims(x, spatial);
        check_same_shape(dout, "dout", x, "x");
        check_shape(gamma, "gamma", {d.C});
        check_stats(mean, rstd, d.C);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_like<T>(x);
            auto dgamma = new_array<T>({d.C}), dbeta = new_array<T>({d.C});
            {
                nb::gil_scoped_release nogil;
                if (spatial)
                    spatial_batchnorm_backward(dx.data(), dgamma.data(), dbeta.data(),
                                               ptr<T>(dout), ptr<T>(x), ptr<T>(gamma),
                                               ptr<double>(mean), ptr<double>(rstd), train, d.N,
                                               d.C, d.S);
                else
                    batchnorm_backward(dx.data(), dgamma.data(), dbeta.data(), ptr<T>(dout),
                                       ptr<T>(x), ptr<T>(gamma), ptr<double>(mean),
                                       ptr<double>(rstd), train, d.N, d.C);
            }
            return nb::make_tuple(dx, dgamma, dbeta);
        });
    }, nb::arg("dout"), nb::arg("x"), nb::arg("gamma"), nb::arg("mean"), nb::arg("rstd"),
       nb::arg("train"),
       spatial ? "(dx[N,C,H,W], dgamma[C], dbeta[C]); train=False: mean/rstd were constants "
                 "(test mode)"
               : "(dx[N,D], dgamma[D], dbeta[D]); train=False: mean/rstd were constants "
                 "(test mode)");
}

}  // namespace

void bind_batchnorm(nb::module_& m) {
    def_batchnorm(m, false);
    def_batchnorm(m, true);
}

}  // namespace nnc
