// Max pooling: one (n, c) plane per loop iteration, so threads never share
// an output or, in the backward pass, a dx plane. No GEMM.
#include "pool.h"

#include <algorithm>

namespace nnc {
namespace {

// The 2x2 stride-2 case (most CNNs) gets its own loop: fixed trip counts let
// the compiler keep the whole window in registers.
template <class T>
NNC_CLONES void pool_plane_2x2(T* out, int32_t* am, const T* x, i64 W, i64 Hout, i64 Wout) {
    for (i64 oh = 0; oh < Hout; oh++) {
        const T* r0 = x + 2 * oh * W;
        const T* r1 = r0 + W;
        const int32_t base = (int32_t)(2 * oh * W);
        for (i64 ow = 0; ow < Wout; ow++) {
            const T a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
            // first maximum in the order a, b, c, d; a NaN wins as in np.argmax
            T best = a;
            int32_t k = 0;
            if (b > best || (b != b && best == best)) best = b, k = 1;
            if (c > best || (c != c && best == best)) best = c, k = 2;
            if (d > best || (d != d && best == best)) best = d, k = 3;
            out[oh * Wout + ow] = best;
            am[oh * Wout + ow] = base + (int32_t)(2 * ow) + (k >> 1) * (int32_t)W + (k & 1);
        }
    }
}

template <class T>
NNC_CLONES void pool_plane(T* out, int32_t* am, const T* x, i64 H, i64 W, i64 ph, i64 pw,
                           i64 stride, i64 Hout, i64 Wout) {
    (void)H;
    for (i64 oh = 0; oh < Hout; oh++) {
        for (i64 ow = 0; ow < Wout; ow++) {
            const i64 h0 = oh * stride, w0 = ow * stride;
            T best = x[h0 * W + w0];
            i64 at = h0 * W + w0;
            for (i64 i = h0; i < h0 + ph; i++) {
                for (i64 j = w0; j < w0 + pw; j++) {
                    const T v = x[i * W + j];
                    if (v > best || (v != v && best == best)) best = v, at = i * W + j;
                }
            }
            out[oh * Wout + ow] = best;
            am[oh * Wout + ow] = (int32_t)at;
        }
    }
}

}  // namespace

template <class T>
void max_pool_forward(T* out, int32_t* argmax, const T* x, i64 NC, i64 H, i64 W, i64 ph, i64 pw,
                      i64 stride) {
    const i64 Hout = 1 + (H - ph) / stride, Wout = 1 + (W - pw) / stride;
    const i64 HW = H * W, P = Hout * Wout;
    const bool is_2x2 = ph == 2 && pw == 2 && stride == 2;
#pragma omp parallel for num_threads(threads()) schedule(static) if (NC * HW > 32768)
    for (i64 p = 0; p < NC; p++) {
        if (is_2x2)
            pool_plane_2x2(out + p * P, argmax + p * P, x + p * HW, W, Hout, Wout);
        else
            pool_plane(out + p * P, argmax + p * P, x + p * HW, H, W, ph, pw, stride, Hout, Wout);
    }
}

template <class T>
void max_pool_backward(T* dx, const T* dout, const int32_t* argmax, i64 NC, i64 H, i64 W,
                       i64 Hout, i64 Wout) {
    const i64 HW = H * W, P = Hout * Wout;
#pragma omp parallel for num_threads(threads()) schedule(static) if (NC * HW > 32768)
    for (i64 p = 0; p < NC; p++) {
        T* d = dx + p * HW;
        const T* g = dout + p * P;
        const int32_t* am = argmax + p * P;
        std::fill(d, d + HW, T(0));
        for (i64 o = 0; o < P; o++) d[am[o]] += g[o];
    }
}

#define NNC_INSTANTIATE(T)                                                                 \
    template void max_pool_forward<T>(T*, int32_t*, const T*, i64, i64, i64, i64, i64, i64); \
    template void max_pool_backward<T>(T*, const T*, const int32_t*, i64, i64, i64, i64, i64);
NNC_INSTANTIATE(float)
NNC_INSTANTIATE(double)

}  // namespace nnc
