#pragma once
#include "common.h"

namespace nnc {

// out[N,M] = x[N,D] @ w[D,M] + b[M]
template <class T>
void affine_forward(T* out, const T* x, const T* w, const T* b, i64 N, i64 D, i64 M);

// dx[N,D] = dout @ w^T, dw[D,M] = x^T @ dout, db[M] = sum_n dout[n,:]
template <class T>
void affine_backward(T* dx, T* dw, T* db, const T* dout, const T* x, const T* w, i64 N, i64 D,
                     i64 M);

// db[M] = sum over rows of g[N,M]; shared by every op with a bias.
template <class T>
void sum_rows(T* db, const T* g, i64 N, i64 M);

}  // namespace nnc
