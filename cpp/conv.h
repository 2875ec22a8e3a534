#pragma once
#include "common.h"

namespace nnc {

// Geometry of one convolution: x (N, C, H, W) * w (F, C, HH, WW) -> out (N, F, Hout, Wout)
// with Hout = 1 + (H + 2*pad - HH) / stride, Wout likewise. Passed as one struct because
// eleven loose sizes in every signature invite swapped arguments.
struct ConvShape {
    i64 N, C, H, W;
    i64 F, HH, WW;
    i64 stride, pad;
    i64 Hout, Wout;
};

// out[n,f] = b[f] + sum_{c,kh,kw} w[f,c,kh,kw] * xpad[n,c,oh*stride+kh,ow*stride+kw]
// (cross-correlation, zero padding). Method: im2col + GEMM, a tile of output rows at a time,
// or Winograd F(2x2, 3x3) for 3x3 stride-1 kernels (winograd.h says when).
template <class T>
void conv_forward(T* out, const T* x, const T* w, const T* b, const ConvShape& s);

// dx (N,C,H,W), dw (F,C,HH,WW), db (F) of conv_forward; overwrites all three.
// dx and dw by Winograd when winograd_backward_applies(s).
template <class T>
void conv_backward(T* dx, T* dw, T* db, const T* dout, const T* x, const T* w,
                   const ConvShape& s);

}  // namespace nnc
