// What conv.cpp's fused conv + max pool (conv_pool_forward) needs from
// pool.cpp: the NCHW pooling kernels and their binding checks.
#pragma once
#include <cstdint>

#include "bind.h"

namespace nnc {

// Max pooling over NC planes of H x W, window ph x pw moved by stride; out and
// argmax (NC, Hout, Wout), argmax the flat index ih*W + iw in its plane of
// each window's first maximum (np.argmax's order; a NaN wins).
template <class T>
void max_pool_forward(T* out, int32_t* argmax, const T* x, i64 NC, i64 H, i64 W, i64 ph, i64 pw,
                      i64 stride);

// dx (NC, H, W) = 0, then dx[plane, argmax[o]] += dout[o].
template <class T>
void max_pool_backward(T* dx, const T* dout, const int32_t* argmax, i64 NC, i64 H, i64 W,
                       i64 Hout, i64 Wout);

// 2x2 stride-2 pooling of Hout * 2 rows of one plane, x (2 * Hout, W), into
// out and argmax (Hout, Wout), single-threaded; the argmax values start at
// index0 (the flat index of x[0] in the whole plane).
template <class T>
void pool_rows_2x2(T* out, int32_t* argmax, const T* x, i64 W, i64 Hout, i64 Wout,
                   int32_t index0);

// ValueError unless a ph x pw window with this stride fits an H x W plane
// that int32 argmax values can index.
void check_pool_window(i64 H, i64 W, i64 ph, i64 pw, i64 stride);

// ValueError unless argmax is int32 of dout's shape (N, C, Hout, Wout) with
// every value in [0, H*W): a stray index would write outside dx.
void check_argmax(const In& dout, const In& argmax, i64 H, i64 W);

}  // namespace nnc
