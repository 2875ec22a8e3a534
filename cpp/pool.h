#pragma once
#include <cstdint>

#include "common.h"

namespace nnc {

// Max pooling over NC planes of H x W: out plane (Hout, Wout), window ph x pw
// moved by stride (windows may overlap). argmax[o] is the flat index ih*W + iw
// within its plane of the window's first maximum in row-major order (as
// np.argmax: the first NaN if there is one).
template <class T>
void max_pool_forward(T* out, int32_t* argmax, const T* x, i64 NC, i64 H, i64 W, i64 ph, i64 pw,
                      i64 stride);

// dx = 0, then dx[plane, argmax[o]] += dout[o] (sums where windows overlap).
template <class T>
void max_pool_backward(T* dx, const T* dout, const int32_t* argmax, i64 NC, i64 H, i64 W,
                       i64 Hout, i64 Wout);

}  // namespace nnc
