// Classification and regression losses: each returns the mean loss over the
// N rows and writes its gradient dx in the same pass over x.
#pragma once
#include <cstdint>

#include "common.h"

namespace nnc {

// Multiclass SVM (hinge) loss, margin 1: x[N,C] scores, y[N] labels in [0, C).
template <class T>
double svm_loss(T* dx, const T* x, const std::int64_t* y, i64 N, i64 C);

// Softmax cross-entropy by log-sum-exp: x[N,C] logits, y[N] labels in [0, C).
template <class T>
double softmax_loss(T* dx, const T* x, const std::int64_t* y, i64 N, i64 C);

// 0.5 * sum((x - y)^2) / N and dx = (x - y) / N; x, y [N,D].
template <class T>
double mse_loss(T* dx, const T* x, const T* y, i64 N, i64 D);

}  // namespace nnc
