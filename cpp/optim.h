// First-order update rules (CS231n optim.py), fused: one pass over memory
// that updates w and the rule's state arrays in place. Each element's
// arithmetic follows the reference's expression order in T, with the
// hyperparameters rounded to T as NumPy does with Python floats.
#pragma once
#include "common.h"

namespace nnc {

// w -= lr * dw
template <class T>
void sgd(T* w, const T* dw, double lr, i64 n);

// v = mu * v - lr * dw; w += v
template <class T>
void sgd_momentum(T* w, T* v, const T* dw, double lr, double mu, i64 n);

// v_old = v; v = mu * v - lr * dw; w += v + mu * (v - v_old)
template <class T>
void sgd_nesterov_momentum(T* w, T* v, const T* dw, double lr, double mu, i64 n);

// cache = decay * cache + (1 - decay) * dw^2; w -= lr * dw / (sqrt(cache) + eps)
template <class T>
void rmsprop(T* w, T* cache, const T* dw, double lr, double decay, double eps, i64 n);

// m = b1 m + (1 - b1) dw; v = b2 v + (1 - b2) dw^2;
// w -= lr * (m / bc1) / (sqrt(v / bc2) + eps), where bc1 = 1 - b1^t and
// bc2 = 1 - b2^t are the bias corrections for the (already incremented) step t.
template <class T>
void adam(T* w, T* m, T* v, const T* dw, double lr, double beta1, double beta2, double eps,
          double bc1, double bc2, i64 n);

}  // namespace nnc
