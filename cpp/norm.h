// Normalization layers: batchnorm (N, D), layernorm (N, D), spatial batchnorm
// and groupnorm (N, C, H, W with S = H * W pixels per channel plane).
//
// Forward passes return what the backward pass needs: the mean and the
// reciprocal standard deviation rstd = 1 / sqrt(var + eps) of every normalized
// group (feature, row, channel or (sample, group)), in double whatever T is.
// Statistics have double-precision quality for float32 too: values are
// summed in short runs in T around the running mean (exact for large
// offsets, and stable for drifting data) and combined in double by Chan's
// pairwise update; norm.cpp explains why. Elementwise passes work in T
// around T(mean). Backward passes use the closed-form gradient
//   dx = gamma * rstd * (dout - (dbeta + xhat * dgamma) / M)
// (M = elements per statistic), with dgamma/dbeta summed per channel.
#pragma once
#include "common.h"

namespace nnc {

// x[N,D] normalized with batch statistics over N (biased variance);
// mean/rstd[D]; running_mean/var[D] updated in place:
// running = momentum * running + (1 - momentum) * batch statistic.
template <class T>
void batchnorm_forward_train(T* out, double* mean, double* rstd, T* running_mean, T* running_var,
                             const T* x, const T* gamma, const T* beta, double eps,
                             double momentum, i64 N, i64 D);

// x[N,D] normalized with the running statistics; mean/rstd[D] are those
// statistics, for the backward pass.
template <class T>
void batchnorm_forward_test(T* out, double* mean, double* rstd, const T* x, const T* gamma,
                            const T* beta, const T* running_mean, const T* running_var,
                            double eps, i64 N, i64 D);

// train: mean/rstd were batch statistics (they depend on x);
// otherwise they were constants and the layer is an affine map of x.
template <class T>
void batchnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                        const double* mean, const double* rstd, bool train, i64 N, i64 D);

// x[N,D] normalized per row; mean/rstd[N].
template <class T>
void layernorm_forward(T* out, double* mean, double* rstd, const T* x, const T* gamma,
                       const T* beta, double eps, i64 N, i64 D);

template <class T>
void layernorm_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                        const double* mean, const double* rstd, i64 N, i64 D);

// x[N,C,S] normalized per channel over (N, S); mean/rstd/running stats [C].
template <class T>
void spatial_batchnorm_forward_train(T* out, double* mean, double* rstd, T* running_mean,
                                     T* running_var, const T* x, const T* gamma, const T* beta,
                                     double eps, double momentum, i64 N, i64 C, i64 S);

template <class T>
void spatial_batchnorm_forward_test(T* out, double* mean, double* rstd, const T* x,
                                    const T* gamma, const T* beta, const T* running_mean,
                                    const T* running_var, double eps, i64 N, i64 C, i64 S);

template <class T>
void spatial_batchnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x,
                                const T* gamma, const double* mean, const double* rstd,
                                bool train, i64 N, i64 C, i64 S);

// x[N,C,S] with the C channels in G groups of C/G; each (sample, group) is
// normalized over its (C/G) * S elements, then scaled per channel.
// mean/rstd[N,G].
template <class T>
void groupnorm_forward(T* out, double* mean, double* rstd, const T* x, const T* gamma,
                       const T* beta, double eps, i64 N, i64 C, i64 S, i64 G);

template <class T>
void groupnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dout, const T* x, const T* gamma,
                        const double* mean, const double* rstd, i64 N, i64 C, i64 S, i64 G);

}  // namespace nnc
