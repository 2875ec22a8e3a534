#include <cmath>

#include "bind.h"
#include "norm.h"

namespace nnc {
namespace {

// a must be 1-D of length n; `what` says where n comes from.
template <class A>
void check_vector(const A& a, const char* op, const char* name, i64 n, const std::string& what) {
    if (a.ndim() != 1 || (i64)a.shape(0) != n)
        fail_value(std::string(op) + ": " + name + " has shape " + shape_of(a) + ", expected (" +
                   std::to_string(n) + ",) " + what);
}

void check_eps(const char* op, double eps) {
    if (!(eps >= 0.0) || !std::isfinite(eps))
        fail_value(std::string(op) + ": eps must be a finite number >= 0, got " +
                   std::to_string(eps));
}

void check_momentum(const char* op, double momentum) {
    if (!(momentum >= 0.0 && momentum <= 1.0))
        fail_value(std::string(op) + ": momentum must lie in [0, 1], got " +
                   std::to_string(momentum));
}

void check_nonempty(const char* op, const In& x) {
    if (x.shape(0) == 0) fail_value(std::string(op) + ": x is an empty batch (shape " +
                                    shape_of(x) + ")");
}

// The float64 statistics a forward pass handed out, back for the backward pass.
void check_stats(const char* op, const In& mean, const In& rstd, i64 n, const std::string& what) {
    if (mean.dtype() != nb::dtype<double>() || rstd.dtype() != nb::dtype<double>())
        fail_type(std::string(op) + ": mean and rstd must be float64 (as the forward pass "
                  "returns them), got " + dtype_name(mean.dtype()) + " and " +
                  dtype_name(rstd.dtype()));
    check_vector(mean, op, "mean", n, what);
    check_vector(rstd, op, "rstd", n, what);
}

void check_same_shape(const char* op, const In& dout, const In& x) {
    bool same = dout.ndim() == x.ndim();
    for (size_t i = 0; same && i < x.ndim(); i++) same = dout.shape(i) == x.shape(i);
    if (!same)
        fail_value(std::string(op) + ": dout has shape " + shape_of(dout) + " but x has shape " +
                   shape_of(x));
}

Out<double> new_stats(i64 n) { return new_array<double>({(size_t)n}); }

// (N, C, S) of an NCHW array, with S = H * W > 0.
struct NCS {
    i64 N, C, S;
};
NCS nchw(const char* op, const In& x) {
    check_ndim(x, "x", 4);
    check_nonempty(op, x);
    const NCS d{(i64)x.shape(0), (i64)x.shape(1), (i64)x.shape(2) * (i64)x.shape(3)};
    if (d.S == 0) fail_value(std::string(op) + ": x has no pixels (shape " + shape_of(x) + ")");
    return d;
}

}  // namespace

void bind_norm(nb::module_& m) {
    // ---- batchnorm, x (N, D) ----
    m.def("batchnorm_forward_train", [](In x, In gamma, In beta, InOut running_mean,
                                        InOut running_var, double eps, double momentum) {
        const char* op = "batchnorm_forward";
        DType dt = same_dtype({{"x", x.dtype()}, {"gamma", gamma.dtype()}, {"beta", beta.dtype()},
                               {"running_mean", running_mean.dtype()},
                               {"running_var", running_var.dtype()}});
        check_ndim(x, "x", 2);
        check_nonempty(op, x);
        const i64 N = x.shape(0), D = x.shape(1);
        const std::string why = "to match x of shape " + shape_of(x);
        check_vector(gamma, op, "gamma", D, why);
        check_vector(beta, op, "beta", D, why);
        check_vector(running_mean, op, "running_mean", D, why);
        check_vector(running_var, op, "running_var", D, why);
        check_eps(op, eps);
        check_momentum(op, momentum);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_like<T>(x);
            auto mean = new_stats(D), rstd = new_stats(D);
            {
                nb::gil_scoped_release nogil;
                batchnorm_forward_train<T>(out.data(), mean.data(), rstd.data(),
                                           mut<T>(running_mean), mut<T>(running_var), ptr<T>(x),
                                           ptr<T>(gamma), ptr<T>(beta), eps, momentum, N, D);
            }
            return nb::make_tuple(out, mean, rstd);
        });
    }, nb::arg("x"), nb::arg("gamma"), nb::arg("beta"), nb::arg("running_mean").noconvert(),
       nb::arg("running_var").noconvert(), nb::arg("eps"), nb::arg("momentum"),
       "(out[N,D], mean[D], rstd[D]) normalized with batch statistics; updates the running "
       "statistics in place");

    m.def("batchnorm_forward_test", [](In x, In gamma, In beta, In running_mean, In running_var,
                                       double eps) {
        const char* op = "batchnorm_forward";
        DType dt = same_dtype({{"x", x.dtype()}, {"gamma", gamma.dtype()}, {"beta", beta.dtype()},
                               {"running_mean", running_mean.dtype()},
                               {"running_var", running_var.dtype()}});
        check_ndim(x, "x", 2);
        check_nonempty(op, x);
        const i64 N = x.shape(0), D = x.shape(1);
        const std::string why = "to match x of shape " + shape_of(x);
        check_vector(gamma, op, "gamma", D, why);
        check_vector(beta, op, "beta", D, why);
        check_vector(running_mean, op, "running_mean", D, why);
        check_vector(running_var, op, "running_var", D, why);
        check_eps(op, eps);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_like<T>(x);
            auto mean = new_stats(D), rstd = new_stats(D);
            {
                nb::gil_scoped_release nogil;
                batchnorm_forward_test<T>(out.data(), mean.data(), rstd.data(), ptr<T>(x),
                                          ptr<T>(gamma), ptr<T>(beta), ptr<T>(running_mean),
                                          ptr<T>(running_var), eps, N, D);
            }
            return nb::make_tuple(out, mean, rstd);
        });
    }, nb::arg("x"), nb::arg("gamma"), nb::arg("beta"), nb::arg("running_mean"),
       nb::arg("running_var"), nb::arg("eps"),
       "(out[N,D], mean[D], rstd[D]) normalized with the running statistics");

    m.def("batchnorm_backward", [](In dout, In x, In gamma, In mean, In rstd, bool train) {
        const char* op = "batchnorm_backward";
        DType dt = same_dtype({{"dout", dout.dtype()}, {"x", x.dtype()},
                               {"gamma", gamma.dtype()}});
        check_ndim(x, "x", 2);
        check_same_shape(op, dout, x);
        const i64 N = x.shape(0), D = x.shape(1);
        const std::string why = "to match x of shape " + shape_of(x);
        check_vector(gamma, op, "gamma", D, why);
        check_stats(op, mean, rstd, D, why);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_like<T>(x);
            auto dgamma = new_array<T>({(size_t)D}), dbeta = new_array<T>({(size_t)D});
            {
                nb::gil_scoped_release nogil;
                batchnorm_backward<T>(dx.data(), dgamma.data(), dbeta.data(), ptr<T>(dout),
                                      ptr<T>(x), ptr<T>(gamma), ptr<double>(mean),
                                      ptr<double>(rstd), train, N, D);
            }
            return nb::make_tuple(dx, dgamma, dbeta);
        });
    }, nb::arg("dout"), nb::arg("x"), nb::arg("gamma"), nb::arg("mean"), nb::arg("rstd"),
       nb::arg("train"),
       "(dx[N,D], dgamma[D], dbeta[D]); train=False: mean/rstd were constants (test mode)");

    // ---- layernorm, x (N, D) ----
    m.def("layernorm_forward", [](In x, In gamma, In beta, double eps) {
        const char* op = "layernorm_forward";
        DType dt = same_dtype({{"x", x.dtype()}, {"gamma", gamma.dtype()},
                               {"beta", beta.dtype()}});
        check_ndim(x, "x", 2);
        check_nonempty(op, x);
        const i64 N = x.shape(0), D = x.shape(1);
        if (D == 0) fail_value(std::string(op) + ": x has no features (shape " + shape_of(x) + ")");
        const std::string why = "to match x of shape " + shape_of(x);
        check_vector(gamma, op, "gamma", D, why);
        check_vector(beta, op, "beta", D, why);
        check_eps(op, eps);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_like<T>(x);
            auto mean = new_stats(N), rstd = new_stats(N);
            {
                nb::gil_scoped_release nogil;
                layernorm_forward<T>(out.data(), mean.data(), rstd.data(), ptr<T>(x),
                                     ptr<T>(gamma), ptr<T>(beta), eps, N, D);
            }
            return nb::make_tuple(out, mean, rstd);
        });
    }, nb::arg("x"), nb::arg("gamma"), nb::arg("beta"), nb::arg("eps"),
       "(out[N,D], mean[N], rstd[N]) normalized per row");

    m.def("layernorm_backward", [](In dout, In x, In gamma, In mean, In rstd) {
        const char* op = "layernorm_backward";
        DType dt = same_dtype({{"dout", dout.dtype()}, {"x", x.dtype()},
                               {"gamma", gamma.dtype()}});
        check_ndim(x, "x", 2);
        check_same_shape(op, dout, x);
        const i64 N = x.shape(0), D = x.shape(1);
        const std::string why = "to match x of shape " + shape_of(x);
        check_vector(gamma, op, "gamma", D, why);
        check_stats(op, mean, rstd, N, why);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_like<T>(x);
            auto dgamma = new_array<T>({(size_t)D}), dbeta = new_array<T>({(size_t)D});
            {
                nb::gil_scoped_release nogil;
                layernorm_backward<T>(dx.data(), dgamma.data(), dbeta.data(), ptr<T>(dout),
                                      ptr<T>(x), ptr<T>(gamma), ptr<double>(mean),
                                      ptr<double>(rstd), N, D);
            }
            return nb::make_tuple(dx, dgamma, dbeta);
        });
    }, nb::arg("dout"), nb::arg("x"), nb::arg("gamma"), nb::arg("mean"), nb::arg("rstd"),
       "(dx[N,D], dgamma[D], dbeta[D])");

    // ---- spatial batchnorm, x (N, C, H, W) ----
    m.def("spatial_batchnorm_forward_train", [](In x, In gamma, In beta, InOut running_mean,
                                                InOut running_var, double eps, double momentum) {
        const char* op = "spatial_batchnorm_forward";
        DType dt = same_dtype({{"x", x.dtype()}, {"gamma", gamma.dtype()}, {"beta", beta.dtype()},
                               {"running_mean", running_mean.dtype()},
                               {"running_var", running_var.dtype()}});
        const NCS d = nchw(op, x);
        const std::string why = "(one per channel of x, shape " + shape_of(x) + ")";
        check_vector(gamma, op, "gamma", d.C, why);
        check_vector(beta, op, "beta", d.C, why);
        check_vector(running_mean, op, "running_mean", d.C, why);
        check_vector(running_var, op, "running_var", d.C, why);
        check_eps(op, eps);
        check_momentum(op, momentum);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_like<T>(x);
            auto mean = new_stats(d.C), rstd = new_stats(d.C);
            {
                nb::gil_scoped_release nogil;
                spatial_batchnorm_forward_train<T>(
                    out.data(), mean.data(), rstd.data(), mut<T>(running_mean),
                    mut<T>(running_var), ptr<T>(x), ptr<T>(gamma), ptr<T>(beta), eps, momentum,
                    d.N, d.C, d.S);
            }
            return nb::make_tuple(out, mean, rstd);
        });
    }, nb::arg("x"), nb::arg("gamma"), nb::arg("beta"), nb::arg("running_mean").noconvert(),
       nb::arg("running_var").noconvert(), nb::arg("eps"), nb::arg("momentum"),
       "(out[N,C,H,W], mean[C], rstd[C]) normalized per channel with batch statistics; "
       "updates the running statistics in place");

    m.def("spatial_batchnorm_forward_test", [](In x, In gamma, In beta, In running_mean,
                                               In running_var, double eps) {
        const char* op = "spatial_batchnorm_forward";
        DType dt = same_dtype({{"x", x.dtype()}, {"gamma", gamma.dtype()}, {"beta", beta.dtype()},
                               {"running_mean", running_mean.dtype()},
                               {"running_var", running_var.dtype()}});
        const NCS d = nchw(op, x);
        const std::string why = "(one per channel of x, shape " + shape_of(x) + ")";
        check_vector(gamma, op, "gamma", d.C, why);
        check_vector(beta, op, "beta", d.C, why);
        check_vector(running_mean, op, "running_mean", d.C, why);
        check_vector(running_var, op, "running_var", d.C, why);
        check_eps(op, eps);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_like<T>(x);
            auto mean = new_stats(d.C), rstd = new_stats(d.C);
            {
                nb::gil_scoped_release nogil;
                spatial_batchnorm_forward_test<T>(out.data(), mean.data(), rstd.data(), ptr<T>(x),
                                                  ptr<T>(gamma), ptr<T>(beta),
                                                  ptr<T>(running_mean), ptr<T>(running_var), eps,
                                                  d.N, d.C, d.S);
            }
            return nb::make_tuple(out, mean, rstd);
        });
    }, nb::arg("x"), nb::arg("gamma"), nb::arg("beta"), nb::arg("running_mean"),
       nb::arg("running_var"), nb::arg("eps"),
       "(out[N,C,H,W], mean[C], rstd[C]) normalized with the running statistics");

    m.def("spatial_batchnorm_backward", [](In dout, In x, In gamma, In mean, In rstd,
                                           bool train) {
        const char* op = "spatial_batchnorm_backward";
        DType dt = same_dtype({{"dout", dout.dtype()}, {"x", x.dtype()},
                               {"gamma", gamma.dtype()}});
        const NCS d = nchw(op, x);
        check_same_shape(op, dout, x);
        const std::string why = "(one per channel of x, shape " + shape_of(x) + ")";
        check_vector(gamma, op, "gamma", d.C, why);
        check_stats(op, mean, rstd, d.C, why);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_like<T>(x);
            auto dgamma = new_array<T>({(size_t)d.C}), dbeta = new_array<T>({(size_t)d.C});
            {
                nb::gil_scoped_release nogil;
                spatial_batchnorm_backward<T>(dx.data(), dgamma.data(), dbeta.data(),
                                              ptr<T>(dout), ptr<T>(x), ptr<T>(gamma),
                                              ptr<double>(mean), ptr<double>(rstd), train, d.N,
                                              d.C, d.S);
            }
            return nb::make_tuple(dx, dgamma, dbeta);
        });
    }, nb::arg("dout"), nb::arg("x"), nb::arg("gamma"), nb::arg("mean"), nb::arg("rstd"),
       nb::arg("train"),
       "(dx[N,C,H,W], dgamma[C], dbeta[C]); train=False: mean/rstd were constants (test mode)");

    // ---- groupnorm, x (N, C, H, W), G groups of C/G channels ----
    m.def("groupnorm_forward", [](In x, In gamma, In beta, i64 G, double eps) {
        const char* op = "spatial_groupnorm_forward";
        DType dt = same_dtype({{"x", x.dtype()}, {"gamma", gamma.dtype()},
                               {"beta", beta.dtype()}});
        const NCS d = nchw(op, x);
        if (G <= 0 || d.C % G != 0 || d.C == 0)
            fail_value(std::string(op) + ": G = " + std::to_string(G) +
                       " must be positive and divide the C = " + std::to_string(d.C) +
                       " channels of x (shape " + shape_of(x) + ")");
        const std::string why = "(one per channel of x, shape " + shape_of(x) + ")";
        check_vector(gamma, op, "gamma", d.C, why);
        check_vector(beta, op, "beta", d.C, why);
        check_eps(op, eps);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_like<T>(x);
            auto mean = new_stats(d.N * G), rstd = new_stats(d.N * G);
            {
                nb::gil_scoped_release nogil;
                groupnorm_forward<T>(out.data(), mean.data(), rstd.data(), ptr<T>(x),
                                     ptr<T>(gamma), ptr<T>(beta), eps, d.N, d.C, d.S, G);
            }
            return nb::make_tuple(out, mean, rstd);
        });
    }, nb::arg("x"), nb::arg("gamma"), nb::arg("beta"), nb::arg("G"), nb::arg("eps"),
       "(out[N,C,H,W], mean[N*G], rstd[N*G]); gamma/beta of shape (C,)");

    m.def("groupnorm_backward", [](In dout, In x, In gamma, In mean, In rstd, i64 G) {
        const char* op = "spatial_groupnorm_backward";
        DType dt = same_dtype({{"dout", dout.dtype()}, {"x", x.dtype()},
                               {"gamma", gamma.dtype()}});
        const NCS d = nchw(op, x);
        check_same_shape(op, dout, x);
        if (G <= 0 || d.C % G != 0 || d.C == 0)
            fail_value(std::string(op) + ": G = " + std::to_string(G) +
                       " must be positive and divide the C = " + std::to_string(d.C) +
                       " channels of x (shape " + shape_of(x) + ")");
        check_vector(gamma, op, "gamma", d.C,
                     "(one per channel of x, shape " + shape_of(x) + ")");
        check_stats(op, mean, rstd, d.N * G, "(N * G, one per sample and group)");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_like<T>(x);
            auto dgamma = new_array<T>({(size_t)d.C}), dbeta = new_array<T>({(size_t)d.C});
            {
                nb::gil_scoped_release nogil;
                groupnorm_backward<T>(dx.data(), dgamma.data(), dbeta.data(), ptr<T>(dout),
                                      ptr<T>(x), ptr<T>(gamma), ptr<double>(mean),
                                      ptr<double>(rstd), d.N, d.C, d.S, G);
            }
            return nb::make_tuple(dx, dgamma, dbeta);
        });
    }, nb::arg("dout"), nb::arg("x"), nb::arg("gamma"), nb::arg("mean"), nb::arg("rstd"),
       nb::arg("G"), "(dx[N,C,H,W], dgamma[C], dbeta[C])");
}

}  // namespace nnc
