// What conv.cpp needs from winograd.cpp: the conv geometry and the Winograd
// F(2x2, 3x3) entry points for 3x3 kernels with stride 1.
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

// Whether Winograd is faster than im2col for C input and F output channels
// over `tiles` 2x2 output tiles (the size rule of ConvAlgo::automatic, for
// the NCHW and the NHWC convs alike).
bool winograd_size_pays(i64 C, i64 F, i64 tiles);

// Whether the forward takes the Winograd path: a 3x3 kernel with stride 1,
// and algo says so.
bool winograd_applies(const ConvShape& s, ConvAlgo algo);

// Whether the backward computes dx and dw with conv_dx_winograd and
// conv_dw_winograd: as winograd_applies, and pad <= 2 (dx is a 3x3 conv of
// dout with pad 2 - pad), which even ConvAlgo::winograd cannot lift.
bool winograd_backward_applies(const ConvShape& s, ConvAlgo algo);

// The conv forward for a 3x3 kernel with stride 1 (any pad, N, C, F, H, W);
// b may be null for no bias. Same result as the im2col path up to rounding.
template <class T>
void conv_forward_winograd(T* out, const T* x, const T* w, const T* b, const ConvShape& s);

// dx (N, C, H, W) for a 3x3 kernel with stride 1 and pad <= 2: the
// convolution of dout, padded by 2 - pad, with the filters rotated by 180
// degrees and C and F swapped. Overwrites dx.
template <class T>
void conv_dx_winograd(T* dx, const T* dout, const T* w, const ConvShape& s);

// dw (F, C, 3, 3) for a 3x3 kernel with stride 1 (any pad), from the same
// transforms. Overwrites dw.
template <class T>
void conv_dw_winograd(T* dw, const T* dout, const T* x, const ConvShape& s);

}  // namespace nnc
