// Elementwise activations over n contiguous values (any shape, flattened).
// Forward caches: relu keeps x, tanh and sigmoid keep out (their derivatives
// are functions of the output).
#pragma once
#include "common.h"

namespace nnc {

// out = max(0, x); NaN and -0.0 pass through as in np.maximum(0, x)
template <class T>
void relu_forward(T* out, const T* x, i64 n);
// dx = dout where x > 0, else 0
template <class T>
void relu_backward(T* dx, const T* dout, const T* x, i64 n);

// out = tanh(x)
template <class T>
void tanh_forward(T* out, const T* x, i64 n);
// dx = dout * (1 - out^2)
template <class T>
void tanh_backward(T* dx, const T* dout, const T* out, i64 n);

// out = 1 / (1 + exp(-x)), evaluated through z = exp(-|x|) <= 1 so it never overflows
template <class T>
void sigmoid_forward(T* out, const T* x, i64 n);
// dx = dout * out * (1 - out)
template <class T>
void sigmoid_backward(T* dx, const T* dout, const T* out, i64 n);

}  // namespace nnc
