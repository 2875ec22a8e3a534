// Layer normalization: each row of x (N, D) normalized over its D features,
// then scaled by gamma (D) and shifted by beta (D).
#include "norm_stats.h"

namespace nnc {
namespace {

// sg = sum of g, sgt = sum of g * (x - m) with g = dout * gamma: grad_sums
// (norm_stats.h) with gamma along the row.
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

// x[N,D] normalized per row; mean/rstd[N].
template <class T>
void layernorm_forward(T* out, double* mean, double* rstd, const T* x, const T* gamma,
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
void layernorm_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                        const double* mean, const double* rstd, i64 N, i64 D) {
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


}  // namespace

void bind_layernorm(nb::module_& m) {
    m.def("layernorm_forward", [](In x, In gamma, In beta, double eps) {
        const DType dt = float_dtype({{"x", x.dtype()}, {"gamma", gamma.dtype()},
                                      {"beta", beta.dtype()}});
        check_ndim(x, "x", 2);
        const i64 N = x.shape(0), D = x.shape(1);
        check_nonempty(N, "x", "is an empty batch");
        check_nonempty(D, "x", "has no features");
        check_shape(gamma, "gamma", {D});
        check_shape(beta, "beta", {D});
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_like<T>(x);
            auto mean = new_array<double>({N}), rstd = new_array<double>({N});
            {
                nb::gil_scoped_release nogil;
                layernorm_forward(out.data(), mean.data(), rstd.data(), ptr<T>(x), ptr<T>(gamma),
                                  ptr<T>(beta), eps, N, D);
            }
            return nb::make_tuple(out, mean, rstd);
        });
    }, nb::arg("x"), nb::arg("gamma"), nb::arg("beta"), nb::arg("eps"),
       "(out[N,D], mean[N], rstd[N]) normalized per row");

    m.def("layernorm_backward", [](In dout, In x, In gamma, In mean, In rstd) {
        const DType dt = float_dtype({{"dout", dout.dtype()}, {"x", x.dtype()},
                                      {"gamma", gamma.dtype()}});
        check_ndim(x, "x", 2);
        const i64 N = x.shape(0), D = x.shape(1);
        check_shape(dout, "dout", {N, D});
        check_shape(gamma, "gamma", {D});
        check_stats(mean, rstd, N);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_like<T>(x);
            auto dgamma = new_array<T>({D}), dbeta = new_array<T>({D});
            {
                nb::gil_scoped_release nogil;
                layernorm_backward(dx.data(), dgamma.data(), dbeta.data(), ptr<T>(dout),
                                   ptr<T>(x), ptr<T>(gamma), ptr<double>(mean),
                                   ptr<double>(rstd), N, D);
            }
            return nb::make_tuple(dx, dgamma, dbeta);
        });
    }, nb::arg("dout"), nb::arg("x"), nb::arg("gamma"), nb::arg("mean"), nb::arg("rstd"),
       "(dx[N,D], dgamma[D], dbeta[D])");
}

}  // namespace nnc
