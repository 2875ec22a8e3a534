// Group normalization: the C channels of x (N, C, H, W) in G groups of C/G;
// each (sample, group) is normalized over its (C/G) * H * W values, then
// scaled and shifted per channel.
#include "norm_stats.h"

namespace nnc {
namespace {

// x[N,C,S] (S = H * W) normalized per (sample, group); mean/rstd[N,G].
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


// G divides the C channels into groups: the kernels index the statistics by
// group and the channels by group * (C / G).
void check_groups(i64 G, i64 C) {
    if (G <= 0 || C == 0 || C % G != 0)
        fail_value("G = " + std::to_string(G) + " must be positive and divide C = " +
                   std::to_string(C));
}

}  // namespace

void bind_groupnorm(nb::module_& m) {
    m.def("groupnorm_forward", [](In x, In gamma, In beta, i64 G, double eps) {
        const DType dt = float_dtype({{"x", x.dtype()}, {"gamma", gamma.dtype()},
                                      {"beta", beta.dtype()}});
        const NCS d = nchw(x);
        check_groups(G, d.C);
        check_shape(gamma, "gamma", {d.C});
        check_shape(beta, "beta", {d.C});
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_like<T>(x);
            auto mean = new_array<double>({d.N * G}), rstd = new_array<double>({d.N * G});
            {
                nb::gil_scoped_release nogil;
                groupnorm_forward(out.data(), mean.data(), rstd.data(), ptr<T>(x), ptr<T>(gamma),
                                  ptr<T>(beta), eps, d.N, d.C, d.S, G);
            }
            return nb::make_tuple(out, mean, rstd);
        });
    }, nb::arg("x"), nb::arg("gamma"), nb::arg("beta"), nb::arg("G"), nb::arg("eps"),
       "(out[N,C,H,W], mean[N*G], rstd[N*G]); gamma/beta of shape (C,)");

    m.def("groupnorm_backward", [](In dout, In x, In gamma, In mean, In rstd, i64 G) {
        const DType dt = float_dtype({{"dout", dout.dtype()}, {"x", x.dtype()},
                                      {"gamma", gamma.dtype()}});
        const NCS d = nchw(x);
        check_same_shape(dout, "dout", x, "x");
        check_groups(G, d.C);
        check_shape(gamma, "gamma", {d.C});
        check_stats(mean, rstd, d.N * G);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_like<T>(x);
            auto dgamma = new_array<T>({d.C}), dbeta = new_array<T>({d.C});
            {
                nb::gil_scoped_release nogil;
                groupnorm_backward(dx.data(), dgamma.data(), dbeta.data(), ptr<T>(dout),
                                   ptr<T>(x), ptr<T>(gamma), ptr<double>(mean),
                                   ptr<double>(rstd), d.N, d.C, d.S, G);
            }
            return nb::make_tuple(dx, dgamma, dbeta);
        });
    }, nb::arg("dout"), nb::arg("x"), nb::arg("gamma"), nb::arg("mean"), nb::arg("rstd"),
       nb::arg("G"), "(dx[N,C,H,W], dgamma[C], dbeta[C])");
}

}  // namespace nnc
