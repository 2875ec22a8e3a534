// Convolution as im2col + GEMM (as Caffe and CS231n's fast layers do it).
//
// The column matrix of one image has K = C*HH*WW rows, one per filter tap
// (c, kh, kw), and one column per output pixel; out_n (F, P) = w (F, K) @
// col (K, P). The columns are built one tile of output rows at a time, so a
// tile stays in L2 between im2col writing it and the GEMM reading it, and no
// buffer grows with the batch or the image. A row of ones under the tile and
// b appended to w make the forward GEMM add the bias too.
//
// Threads: with at least as many images as threads, each thread takes fixed
// work items (schedule(static)) with its own buffers and runs single-threaded
// GEMMs; dw is summed per thread and the partial sums are added in thread
// order, so results do not change from run to run. With fewer images than
// threads (N = 1), the threads share each tile: im2col and col2im split the
// channels, and OpenBLAS runs each GEMM on all threads.
//
// 3x3 kernels with stride 1 (most of a deep network) take the Winograd path
// of winograd.cpp instead, for the forward, dx and dw, with 2.25x fewer FLOPs.
// Forwards with few input channels (a first layer on RGB images, stride 1
// or 2) take the direct kernel below: with C*HH*WW small, the column matrix
// costs as much to build as the GEMM that reads it.
#include <algorithm>
#include <memory>
#include <type_traits>
#include <vector>

#include "bind.h"
#include "blas.h"
#include "pool.h"
#include "winograd.h"

namespace nnc {
namespace {

// Bytes of one thread's column tile (see tile_rows).
constexpr i64 kTileBytes = 512 * 1024;

// Input rows (counted with padding) that nrows consecutive output rows read.
inline i64 rows_read(const ConvShape& s, i64 nrows) { return (nrows - 1) * s.stride + s.HH; }

// im2col and col2im go through a few input rows of one channel, padded and
// split by column phase: segment q of a row holds padded columns q, q +
// stride, q + 2*stride, ... A tap (kh, kw) then reads output row oh from one
// contiguous run, segment kw % stride from kw / stride on, so every copy in
// the inner loops is contiguous with no bounds checks, for any pad and stride
// (and x is never copied whole). Without pad and stride they use x and dx.
inline bool use_scratch(const ConvShape& s) { return s.pad > 0 || s.stride > 1; }
inline i64 phase_len(const ConvShape& s) { return (s.W + 2 * s.pad + s.stride - 1) / s.stride; }
inline i64 scratch_pitch(const ConvShape& s) {
    return use_scratch(s) ? s.stride * phase_len(s) : s.W;
}
inline i64 scratch_size(const ConvShape& s, i64 nrows) {
    return use_scratch(s) ? rows_read(s, nrows) * scratch_pitch(s) : 0;
}

// Segment j-range [j0, j1) of phase q whose padded column j*stride + q - pad lies in x.
inline void phase_cols(const ConvShape& s, i64 q, i64* j0, i64* j1) {
    const i64 L = phase_len(s), lo = s.pad - q, hi = s.W - 1 + s.pad - q;
    *j0 = std::min(L, lo > 0 ? (lo + s.stride - 1) / s.stride : 0);
    *j1 = std::max(*j0, hi < 0 ? 0 : std::min(L, hi / s.stride + 1));
}

// buf = rows [ihp0, ihp0 + n) (padded numbering) of channel plane xc (H, W)
// in the phase-split layout.
template <class T>
NNC_CLONES void split_rows(T* buf, const T* xc, const ConvShape& s, i64 ihp0, i64 n) {
    const i64 L = phase_len(s), pitch = scratch_pitch(s), st = s.stride;
    for (i64 q = 0; q < st; q++) {
        i64 j0, j1;
        phase_cols(s, q, &j0, &j1);
        const i64 m = j1 - j0;
        for (i64 i = 0; i < n; i++) {
            T* seg = buf + i * pitch + q * L;
            const i64 ih = ihp0 + i - s.pad;
            if (ih < 0 || ih >= s.H) {
                for (i64 j = 0; j < L; j++) seg[j] = T(0);
                continue;
            }
            const T* src = xc + ih * s.W + j0 * st + q - s.pad;  // x at column j0*st + q - pad
            for (i64 j = 0; j < j0; j++) seg[j] = T(0);
            for (i64 j = j1; j < L; j++) seg[j] = T(0);
            T* d = seg + j0;
            if (st == 1) {
#pragma omp simd
                for (i64 j = 0; j < m; j++) d[j] = src[j];
            } else if (st == 2) {
#pragma omp simd
                for (i64 j = 0; j < m; j++) d[j] = src[2 * j];
            } else {
                for (i64 j = 0; j < m; j++) d[j] = src[j * st];
            }
        }
    }
}

// The adjoint: dxc rows += the interior of buf's rows (phase-split, padded numbering).
template <class T>
NNC_CLONES void merge_rows(T* dxc, const T* buf, const ConvShape& s, i64 ihp0, i64 n) {
    const i64 L = phase_len(s), pitch = scratch_pitch(s), st = s.stride;
    for (i64 q = 0; q < st; q++) {
        i64 j0, j1;
        phase_cols(s, q, &j0, &j1);
        const i64 m = j1 - j0;
        for (i64 i = 0; i < n; i++) {
            const i64 ih = ihp0 + i - s.pad;
            if (ih < 0 || ih >= s.H) continue;
            const T* seg = buf + i * pitch + q * L + j0;
            T* dst = dxc + ih * s.W + j0 * st + q - s.pad;
            if (st == 1) {
#pragma omp simd
                for (i64 j = 0; j < m; j++) dst[j] += seg[j];
            } else {
                for (i64 j = 0; j < m; j++) dst[j * st] += seg[j];
            }
        }
    }
}

// Offset, in the row layout above, of the first column tap (kh, kw) reads.
inline i64 tap_offset(const ConvShape& s, i64 kh, i64 kw) {
    return kh * scratch_pitch(s) + (kw % s.stride) * phase_len(s) + kw / s.stride;
}

// Column tile of one image xn (C, H, W) for channels [c0, c1) and output
// rows [oh0, oh1): row r = (c*HH + kh)*WW + kw of col (row stride ldcol)
// holds, at column (oh - oh0)*Wout + ow, xpad[c, oh*stride + kh, ow*stride + kw].
template <class T>
NNC_CLONES void im2col(T* col, i64 ldcol, const T* xn, const ConvShape& s, i64 c0, i64 c1,
                       i64 oh0, i64 oh1, T* scratch) {
    const i64 nrows = oh1 - oh0, Wout = s.Wout, step = s.stride * scratch_pitch(s);
    for (i64 c = c0; c < c1; c++) {
        const T* xc = xn + c * s.H * s.W;
        const T* rows = xc + oh0 * s.W;  // padded row oh0*stride of channel c
        if (use_scratch(s)) {
            split_rows(scratch, xc, s, oh0 * s.stride, rows_read(s, nrows));
            rows = scratch;
        }
        for (i64 kh = 0; kh < s.HH; kh++) {
            for (i64 kw = 0; kw < s.WW; kw++) {
                T* dst = col + ((c * s.HH + kh) * s.WW + kw) * ldcol;
                const T* src = rows + tap_offset(s, kh, kw);
                for (i64 i = 0; i < nrows; i++) {
                    const T* sr = src + i * step;
                    T* dr = dst + i * Wout;
#pragma omp simd
                    for (i64 ow = 0; ow < Wout; ow++) dr[ow] = sr[ow];
                }
            }
        }
    }
}

// The adjoint of im2col for channels [c0, c1) and output rows [oh0, oh1):
// each tap's row is added back onto the input pixels it read. The caller
// zeroes dxn first. A channel's plane is written only by that channel's
// rows, so threads may split channels without locks.
template <class T>
NNC_CLONES void col2im(T* dxn, const T* dcol, i64 ldcol, const ConvShape& s, i64 c0, i64 c1,
                       i64 oh0, i64 oh1, T* scratch) {
    const i64 nrows = oh1 - oh0, Wout = s.Wout, step = s.stride * scratch_pitch(s);
    const i64 nread = rows_read(s, nrows);
    for (i64 c = c0; c < c1; c++) {
        T* dxc = dxn + c * s.H * s.W;
        T* acc = dxc + oh0 * s.W;  // padded row oh0*stride of channel c
        if (use_scratch(s)) {
            acc = scratch;
            for (i64 j = 0; j < nread * scratch_pitch(s); j++) acc[j] = T(0);
        }
        for (i64 kh = 0; kh < s.HH; kh++) {
            for (i64 kw = 0; kw < s.WW; kw++) {
                const T* src = dcol + ((c * s.HH + kh) * s.WW + kw) * ldcol;
                T* dst = acc + tap_offset(s, kh, kw);
                for (i64 i = 0; i < nrows; i++) {
                    T* dr = dst + i * step;
                    const T* sr = src + i * Wout;
#pragma omp simd
                    for (i64 ow = 0; ow < Wout; ow++) dr[ow] += sr[ow];
                }
            }
        }
        if (use_scratch(s)) merge_rows(dxc, acc, s, oh0 * s.stride, nread);
    }
}

template <class T>
NNC_CLONES void fill_value(T* a, i64 n, T v) {
#pragma omp simd
    for (i64 i = 0; i < n; i++) a[i] = v;
}

// db[f] = sum over images and pixels of dout, accumulated in double.
template <class T>
NNC_CLONES void bias_grad(T* db, const T* dout, i64 N, i64 F, i64 P) {
#pragma omp parallel for num_threads(threads()) schedule(static) if (N * F * P > 32768)
    for (i64 f = 0; f < F; f++) {
        double acc = 0.0;
        for (i64 n = 0; n < N; n++) {
            const T* g = dout + (n * F + f) * P;
#pragma omp simd reduction(+ : acc)
            for (i64 p = 0; p < P; p++) acc += (double)g[p];
        }
        db[f] = (T)acc;
    }
}

// Output rows per column tile: a tile (K+1 rows, tile_rows*Wout columns) of
// `threads` x 512 KB, so one thread's tile stays in its half of a 1 MB L2
// between im2col writing it and the GEMM reading it back.
template <class T>
i64 tile_rows(const ConvShape& s, int threads) {
    const i64 K = s.C * s.HH * s.WW + 1;
    const i64 budget = threads * kTileBytes / (i64)sizeof(T);
    return std::max<i64>(1, std::min<i64>(s.Hout, budget / (K * s.Wout)));
}

// w_ext (F, K+1) = [w | b]: with a row of ones under the column tile, the GEMM adds the bias.
template <class T>
std::unique_ptr<T[]> weights_with_bias(const T* w, const T* b, i64 F, i64 K) {
    std::unique_ptr<T[]> w_ext(new T[(size_t)(F * (K + 1))]);
    for (i64 f = 0; f < F; f++) {
        std::copy(w + f * K, w + (f + 1) * K, w_ext.get() + f * (K + 1));
        w_ext[f * (K + 1) + K] = b[f];
    }
    return w_ext;
}

// ---- direct convolution, stride 1 or 2 ----
//
// Each output row is computed in blocks of FB filters x OWB output columns
// held in registers: for every tap (c, kh, kw), one run of OWB input values
// (contiguous: see fill_window for stride 2) is multiplied by FB filter weights and
// added to the FB x OWB accumulators, FB*OWB multiply-adds for OWB loads and
// FB broadcasts. Each work item (a run of output rows) first copies the input
// rows it reads into a zero-padded window whose rows are long enough for the
// last block to read past Wout without bounds checks; the filters are
// repacked so the FB weights of a tap are adjacent.

// The register block conv_forward_direct takes for a shape on this CPU: 16
// accumulators of 512 bits (of 32 registers), as 8 filters x 2 vectors of
// output columns, 4 x 2 for up to 4 filters (a first layer's dx), or 16 x 1
// for rows of one vector (16 float32 or 8 float64 pixels) and more than 8
// filters; 8 of 256 bits (of 16) on AVX2, as 4 x 2.
enum class DirectBlock { f8_v2, f4_v2, f16_v1, avx2_f4_v2 };

template <class T>
DirectBlock direct_block(const ConvShape& s) {
    constexpr i64 V512 = 64 / sizeof(T);
    if (!__builtin_cpu_supports("avx512f")) return DirectBlock::avx2_f4_v2;
    if (s.F <= 4) return DirectBlock::f4_v2;
    if (s.Wout <= V512 && s.F > 8) return DirectBlock::f16_v1;
    return DirectBlock::f8_v2;
}

// Output columns of that block.
template <class T>
i64 direct_block_columns(const ConvShape& s) {
    switch (direct_block<T>(s)) {
        case DirectBlock::f16_v1: return 64 / sizeof(T);
        case DirectBlock::avx2_f4_v2: return 2 * 32 / sizeof(T);
        default: return 2 * 64 / sizeof(T);
    }
}

// With auto: few channels and a row wide enough to fill a block (conv1 on
// RGB images, where im2col's column matrix costs about as much as its
// GEMM); on AVX2 CPUs up to 16 channels (32 beside few filters) where the
// rows fill their blocks;
// and on AVX-512 CPUs any kernel of 9 taps or more whose rows fill
// their blocks (at most an eighth of the last one padding). Those ran at
// 80-90% of the FMA peak, 1.6-2.9x faster than im2col, and than Winograd up
// to C = 32 (rows of one vector: below); past that, Winograd's GEMMs win
// when OpenBLAS runs its AVX-512 kernels, and lose when it runs AVX2 ones
// (benches/README.md, "The direct kernel beyond few channels").
// Stride 2 (the forward only; dx and dw stay im2col's): with auto, few
// channels where the rows fill their blocks. On a Zen 3 EPYC (AVX2) that
// took seed002's (100,3,31,31)x(25,3,3,3) 0.6-0.8x im2col's time in float32
// and 0.6-0.95x in float64, a 7x7 stem on 225-pixel images 0.8-0.9x; rows
// of 17 (a block of 16 and 1) ran 1.5x slower, hence the rule of full blocks.
template <class T>
bool direct_applies(const ConvShape& s, ConvAlgo algo) {
    if (s.stride > 2 || algo == ConvAlgo::im2col || algo == ConvAlgo::winograd) return false;
    if (algo == ConvAlgo::direct) return true;
    if (s.HH * s.WW < 9) return false;
    const i64 cols = direct_block_columns<T>(s);
    const bool full = (s.Wout + cols - 1) / cols * cols * 7 <= s.Wout * 8;
    if (s.stride == 2) return s.C <= 4 && full;
    if (s.C <= 4 && s.Wout >= 16) return true;
    // AVX2 CPUs: the blocks of 4 filters x 2 vectors beat Winograd on
    // OpenBLAS's AVX2 GEMMs up to C = 16 (the course conv2 forward 0.63x its
    // time, (100,16,32,32)x16 0.56x in float32 and 0.80x in float64 on a
    // Zen 3 EPYC), and up to C = 32 with F <= 16 (its dx: 0.56-0.74x), or
    // F <= 32 in float32 (0.72-0.94x; 1.23x in float64); with F = 64 they
    // lost (1.8x).
    if (!__builtin_cpu_supports("avx512f"))
        return full && (s.C <= 16 || (s.C <= 32 && (s.F <= 16 ||
                                                    (s.F <= 32 && std::is_same<T, float>::value))));
    if (!full) return false;
    // Rows of one vector take blocks of 16 filters, which beat Winograd up to
    // C = 16, and up to C = 32 where F <= 16 too (Winograd's GEMMs are then F
    // rows thin: the course conv2's dx, C = 32 and F = 16, ran 0.71x its time).
    const bool one_vector = direct_block<T>(s) == DirectBlock::f16_v1;
    const i64 c_max = one_vector && s.F > 16 ? 16 : 32;
    return s.C <= c_max || !winograd_applies(s, algo) || !blas_runs_avx512();
}

// The shape whose direct forward is dx: dout (N, F, Hout, Wout) padded by
// HH-1-pad, with C and F swapped (conv_dx_direct).
ConvShape dx_as_forward(const ConvShape& s) {
    return ConvShape{s.N, s.F, s.Hout, s.Wout, s.C, s.HH, s.WW, 1, s.HH - 1 - s.pad, s.H, s.W};
}

// dx by the direct kernel: a square kernel with pad < its size (so the
// padding of dx_as_forward is one number, not negative), and the direct
// forward of that shape applies.
template <class T>
bool direct_dx_applies(const ConvShape& s, ConvAlgo algo) {
    if (s.stride != 1 || s.HH != s.WW || s.pad >= s.HH) return false;
    return direct_applies<T>(dx_as_forward(s), algo);
}

// dw by the direct kernel (conv_dw_direct, below), whatever path the forward
// and dx take: with auto, where direct_dw_pays (common.h) with C*F up to
// 2048, where it beat both im2col and Winograd; on AVX-512 CPUs up to 4096
// where the other dw is im2col's, or Winograd's on OpenBLAS's AVX2 kernels
// (benches/README.md, "The direct kernel beyond few channels").
bool direct_dw_applies(const ConvShape& s, ConvAlgo algo) {
    if (s.stride != 1 || algo == ConvAlgo::im2col || algo == ConvAlgo::winograd) return false;
    if (algo == ConvAlgo::direct) return true;
    const bool wide = __builtin_cpu_supports("avx512f") &&
                      !(winograd_backward_applies(s, algo) && blas_runs_avx512());
    return direct_dw_pays(s.C, s.F, s.HH * s.WW, wide ? 4096 : 2048);
}

// xw (C, R, Lp) = rows [oh0*stride, oh0*stride + R) (padded numbering) of
// image xn (C, H, W) with zero padding: the window of input rows that output
// rows from oh0 on read. With stride 2 each row of Lp values is split by
// column parity, padded columns 0, 2, 4, ... in its first half and 1, 3, ...
// in its second: tap kw of output column ow then reads half kw % 2 at ow +
// kw / 2, so a block's run of output columns reads a contiguous run again.
template <class T>
NNC_CLONES void fill_window(T* xw, const T* xn, const ConvShape& s, i64 Lp, i64 oh0, i64 R) {
    for (i64 c = 0; c < s.C; c++) {
        for (i64 r = 0; r < R; r++) {
            T* row = xw + (c * R + r) * Lp;
            const i64 ih = oh0 * s.stride + r - s.pad;
            if (ih < 0 || ih >= s.H) {
                std::fill(row, row + Lp, T(0));
                continue;
            }
            const T* src = xn + (c * s.H + ih) * s.W;
            if (s.stride == 1) {
                std::fill(row, row + s.pad, T(0));
                std::copy(src, src + s.W, row + s.pad);
                std::fill(row + s.pad + s.W, row + Lp, T(0));
                continue;
            }
            // Half q holds padded columns 2k + q, input columns 2k + q - pad.
            const i64 half = Lp / 2;
            T* even = row;
            T* odd = row + half;
            std::fill(row, row + Lp, T(0));
            const i64 e1 = std::min(half, (s.W + s.pad + 1) / 2);
            const i64 o1 = std::min(half, (s.W + s.pad) / 2);
#pragma omp simd
            for (i64 k = (s.pad + 1) / 2; k < e1; k++) even[k] = src[2 * k - s.pad];
#pragma omp simd
            for (i64 k = s.pad / 2; k < o1; k++) odd[k] = src[2 * k + 1 - s.pad];
        }
    }
}

// Output rows [oh0, oh1) of one image from its window xw (C, R, Lp)
// (fill_window at oh0), into out (F planes `plane` apart, row oh at (oh -
// row0) * Wout). KW > 0: the kernel is KW wide, and its row of taps is
// unrolled; S is the stride (1 or 2, the window's layout as fill_window's).
template <class T, int FB, int OWB, int KW, int S>
NNC_CLONES void direct_rows(T* out, i64 plane, i64 row0, const T* xw, i64 R, const T* wp,
                            const T* b, const ConvShape& s, i64 Lp, i64 oh0, i64 oh1) {
    const i64 taps = s.C * s.HH * s.WW, WW = KW > 0 ? KW : s.WW, half = Lp / S;
    for (i64 oh = oh0; oh < oh1; oh++) {
        for (i64 f0 = 0; f0 < s.F; f0 += FB) {
            const T* wb = wp + (f0 / FB) * taps * FB;
            const int nf = (int)std::min<i64>(FB, s.F - f0);
            for (i64 ow0 = 0; ow0 < s.Wout; ow0 += OWB) {
                // The loops over i have constant bounds: a loop to nf (or nw)
                // read acc back from the stack in 16-byte pieces of its 32-byte
                // stores, which missed store forwarding.
                T acc[FB][OWB];
#pragma GCC unroll 16
                for (int i = 0; i < FB; i++) {
                    const T bias = i < nf ? b[f0 + i] : T(0);
#pragma omp simd
                    for (int j = 0; j < OWB; j++) acc[i][j] = bias;
                }
                // One loop over the (c, kh) rows of taps, not two nested
                // ones: GCC then keeps acc in registers across all of them
                // instead of storing and reloading it around the inner loop.
                const T* wt = wb;
                const T* xr = xw + (oh - oh0) * S * Lp + ow0;
                i64 kh = 0;
                for (i64 row = 0; row < s.C * s.HH; row++) {
#pragma GCC unroll 8
                    for (i64 kw = 0; kw < WW; kw++, wt += FB) {
                        const T* xv = xr + (kw % S) * half + kw / S;
#pragma GCC unroll 16
                        for (int i = 0; i < FB; i++) {
                            const T wv = wt[i];
#pragma omp simd
                            for (int j = 0; j < OWB; j++) acc[i][j] += wv * xv[j];
                        }
                    }
                    xr += Lp;
                    if (++kh == s.HH) {  // the next channel's window rows
                        kh = 0;
                        xr += (R - s.HH) * Lp;
                    }
                }
                const int nw = (int)std::min<i64>(OWB, s.Wout - ow0);
#pragma GCC unroll 16
                for (int i = 0; i < FB; i++) {
                    if (i >= nf) break;
                    T* o = out + (f0 + i) * plane + (oh - row0) * s.Wout + ow0;
                    if (nw == OWB) {  // whole vectors, not a scalar loop
#pragma omp simd
                        for (int j = 0; j < OWB; j++) o[j] = acc[i][j];
                    } else {
                        T last[OWB];
#pragma omp simd
                        for (int j = 0; j < OWB; j++) last[j] = acc[i][j];
                        std::copy(last, last + nw, o);
                    }
                }
            }
        }
    }
}

// A 2x2 stride-2 max pool fused after the direct forward: out (N, F, Hout/2,
// Wout/2) and argmax as max_pool_forward's, the conv output never stored.
template <class T>
struct Pool2x2 {
    T* out;
    int32_t* argmax;
};

template <class T, int FB, int OWB>
void conv_forward_direct_blocked(T* out, const T* x, const T* w, const T* b, const ConvShape& s,
                                 const Pool2x2<T>* pool = nullptr) {
    // Window rows of Lp >= (Wout rounded up to OWB) + WW - 1 values (twice
    // that + (WW - 1) / 2 with stride 2), so the last block of a row reads
    // its zeros without bounds checks.
    const i64 Wb = (s.Wout + OWB - 1) / OWB * OWB;
    const i64 Lp = s.stride == 1 ? Wb + s.WW - 1 : 2 * (Wb + (s.WW - 1) / 2);
    const i64 taps = s.C * s.HH * s.WW, fblocks = (s.F + FB - 1) / FB;
    std::vector<T> wp((size_t)(fblocks * taps * FB), T(0));  // [fblock][c][kh][kw][FB]
    for (i64 f = 0; f < s.F; f++)
        for (i64 t = 0; t < taps; t++) wp[((f / FB) * taps + t) * FB + f % FB] = w[f * taps + t];
    const int nt = threads();
    // Work items: runs of output rows of one image, a few per thread, each
    // with its own window of input rows (in L1/L2 while its rows are
    // computed). Dynamic: a thread that starts late (a sleeping worker on a
    // shared machine) takes fewer items; each item's outputs are its own.
    // With a pool, the rows of an item are pairs: each item pools its own
    // rows, from a block of the thread's (F, rows, Wout) still in L2. Few
    // enough rows that the window fits kDirectWindowBytes, where one row
    // allows it.
    const i64 fit =
        (kDirectWindowBytes / (i64)sizeof(T) / (s.C * Lp) - s.HH) / s.stride + 1;
    i64 rows = std::max<i64>(1, std::min<i64>({s.Hout, s.N * s.Hout / (4 * nt), fit}));
    if (pool) rows += rows % 2;
    const i64 per_image = (s.Hout + rows - 1) / rows, R_max = (rows - 1) * s.stride + s.HH;
    const i64 window_size = s.C * R_max * Lp, block_size = pool ? s.F * rows * s.Wout : 0;
    const i64 P = s.Hout * s.Wout, Wo = s.Wout / 2, Po = (s.Hout / 2) * Wo;
    std::vector<T> work((size_t)(nt * (window_size + block_size)));
#pragma omp parallel num_threads(nt)
    {
        T* xw = work.data() + (size_t)omp_get_thread_num() * (window_size + block_size);
        T* block = xw + window_size;
#pragma omp for schedule(dynamic)
        for (i64 item = 0; item < s.N * per_image; item++) {
            const i64 n = item / per_image, oh0 = item % per_image * rows;
            const i64 oh1 = std::min(s.Hout, oh0 + rows), R = (oh1 - oh0 - 1) * s.stride + s.HH;
            fill_window(xw, x + n * s.C * s.H * s.W, s, Lp, oh0, R);
            T* o = pool ? block : out + n * s.F * P;
            const i64 plane = pool ? rows * s.Wout : P, row0 = pool ? oh0 : 0;
            const auto rows_of = [&](auto kw) {
                constexpr int KW = decltype(kw)::value;
                if (s.stride == 1)
                    direct_rows<T, FB, OWB, KW, 1>(o, plane, row0, xw, R, wp.data(), b, s, Lp,
                                                   oh0, oh1);
                else
                    direct_rows<T, FB, OWB, KW, 2>(o, plane, row0, xw, R, wp.data(), b, s, Lp,
                                                   oh0, oh1);
            };
            switch (s.WW) {  // the common widths with the tap row unrolled
                case 3: rows_of(std::integral_constant<int, 3>()); break;
                case 5: rows_of(std::integral_constant<int, 5>()); break;
                case 7: rows_of(std::integral_constant<int, 7>()); break;
                default: rows_of(std::integral_constant<int, 0>());
            }
            if (!pool) continue;
            for (i64 f = 0; f < s.F; f++) {
                const i64 at = (n * s.F + f) * Po + oh0 / 2 * Wo;
                pool_rows_2x2(pool->out + at, pool->argmax + at, block + f * plane, s.Wout,
                              (oh1 - oh0) / 2, Wo, (int32_t)(oh0 * s.Wout));
            }
        }
    }
}

// The block of direct_block: no lane is spent on filters or columns that do
// not exist where a better-shaped block fits.
template <class T>
void conv_forward_direct(T* out, const T* x, const T* w, const T* b, const ConvShape& s,
                         const Pool2x2<T>* pool = nullptr) {
    constexpr int V512 = 64 / sizeof(T), V256 = 32 / sizeof(T);
    switch (direct_block<T>(s)) {
        case DirectBlock::f4_v2:
            return conv_forward_direct_blocked<T, 4, 2 * V512>(out, x, w, b, s, pool);
        case DirectBlock::f16_v1:
            return conv_forward_direct_blocked<T, 16, V512>(out, x, w, b, s, pool);
        case DirectBlock::f8_v2:
            return conv_forward_direct_blocked<T, 8, 2 * V512>(out, x, w, b, s, pool);
        default:
            return conv_forward_direct_blocked<T, 4, 2 * V256>(out, x, w, b, s, pool);
    }
}

// dx[n,c,h,w] = sum_{f,kh,kw} dout[n,f,h+pad-kh,w+pad-kw] * w[f,c,kh,kw]: a
// stride-1 conv of dout padded by HH-1-pad with the filters flipped and
// their channels swapped, wt[c,f,kh,kw] = w[f,c,HH-1-kh,WW-1-kw].
template <class T>
void conv_dx_direct(T* dx, const T* dout, const T* w, const ConvShape& s) {
    const i64 kk = s.HH * s.WW;
    std::vector<T> wt((size_t)(s.C * s.F * kk)), zero((size_t)s.C, T(0));
    for (i64 f = 0; f < s.F; f++)
        for (i64 c = 0; c < s.C; c++)
            for (i64 k = 0; k < kk; k++) wt[(c * s.F + f) * kk + kk - 1 - k] = w[(f * s.C + c) * kk + k];
    conv_forward_direct(dx, dout, wt.data(), zero.data(), dx_as_forward(s));
}

// ---- direct dw, stride 1 ----
//
// dw[f, t] = sum_{n, oh, ow} dout[n, f, oh, ow] * xpad[n, c, oh + kh, ow + kw]
// for tap t = (c, kh, kw). im2col's dw GEMM is (F x P) . (P x taps) per
// image, and with few channels the column matrix it builds and OpenBLAS
// packs again costs more than the multiply. Here dout of one image is
// transposed to (P, Fp), so each pixel gives one vector run of filters;
// TB taps x FB filters of dw are an outer product held in registers over
// all P pixels, with each input value broadcast straight from the padded
// plane. No column matrix, and dw is loaded and stored once per image.

// dwT[t, f] += the taps [t0, t1) of one image; gT (P, Fp) its transposed
// dout, xp its padded planes (C, Hp, Lp), tap_off[t] tap t's offset in xp.
// A few output rows at a time, so their part of gT stays in L1 while every
// tap block reads it.
template <class T, int TB, int FB>
NNC_CLONES void direct_dw_image(T* dwT, const T* gT, const T* xp, const i64* tap_off,
                                const ConvShape& s, i64 Fp, i64 Lp, i64 t0, i64 t1) {
    const i64 rows = std::max<i64>(1, 16384 / (i64)sizeof(T) / (s.Wout * FB));
    for (i64 oh0 = 0; oh0 < s.Hout; oh0 += rows) {
        const i64 oh1 = std::min(s.Hout, oh0 + rows);
        for (i64 f0 = 0; f0 < Fp; f0 += FB) {
            for (i64 tb = t0; tb < t1; tb += TB) {
                // Offsets of the block's taps in xp; a short last block
                // repeats its first tap, and those sums are dropped.
                i64 off[TB];
                for (int k = 0; k < TB; k++) off[k] = tap_off[tb + k < t1 ? tb + k : tb];
                T acc[TB][FB];
#pragma GCC unroll 32
                for (int k = 0; k < TB; k++)
#pragma omp simd
                    for (int j = 0; j < FB; j++) acc[k][j] = T(0);
                for (i64 oh = oh0; oh < oh1; oh++) {
                    const T* xr = xp + oh * Lp;
                    const T* g = gT + oh * s.Wout * Fp + f0;
                    for (i64 ow = 0; ow < s.Wout; ow++, g += Fp) {
#pragma GCC unroll 32
                        for (int k = 0; k < TB; k++) {
                            const T xv = xr[off[k] + ow];
#pragma omp simd
                            for (int j = 0; j < FB; j++) acc[k][j] += xv * g[j];
                        }
                    }
                }
                // Constant bounds, as in direct_rows: a loop to nk kept a copy
                // of acc on the stack, zeroed by a memset at every block.
                const int nk = (int)std::min<i64>(TB, t1 - tb);
#pragma GCC unroll 32
                for (int k = 0; k < TB; k++) {
                    if (k >= nk) break;
#pragma omp simd
                    for (int j = 0; j < FB; j++) dwT[(tb + k) * Fp + f0 + j] += acc[k][j];
                }
            }
        }
    }
}

// gT (P, Fp) = the conv output's gradient of one image, transposed, from
// the gradient g (F, Po) of the 2x2 max pool after it and its argmax: zero
// but at each window's maximum (the pool's backward and the transpose in one).
// The windows of a pool_fuses pool do not overlap, so each maximum is stored,
// not added: no load of the zero before each store (5% of the dw in perf).
template <class T>
NNC_CLONES void unpool_transpose(T* gT, const T* g, const int32_t* am, i64 F, i64 Po, i64 P,
                                 i64 Fp) {
    fill_value(gT, P * Fp, T(0));
    for (i64 f = 0; f < F; f++)
        for (i64 o = 0; o < Po; o++) gT[am[f * Po + o] * Fp + f] = g[f * Po + o];
}

// gT (P, Fp) = dout_n (F, P) transposed, the columns past F zero. Pixel by
// pixel, so the stores are contiguous and the loads (one per filter row,
// all rows' lines in L1) vectorize as gathers.
template <class T>
NNC_CLONES void transpose_dout(T* gT, const T* g, i64 F, i64 P, i64 Fp) {
    for (i64 p = 0; p < P; p++) {
        T* d = gT + p * Fp;
#pragma omp simd
        for (i64 f = 0; f < F; f++) d[f] = g[f * P + p];
        for (i64 f = F; f < Fp; f++) d[f] = T(0);
    }
}

// argmax non-null: dout (N, F, Po) is the gradient of a 2x2 max pool after
// the conv, with its argmax (unpool_transpose).
template <class T, int TB, int FB>
void conv_dw_direct_blocked(T* dw, const T* dout, const T* x, const ConvShape& s,
                            const int32_t* argmax, i64 Po) {
    const i64 Hp = s.H + 2 * s.pad, Lp = s.W + 2 * s.pad, plane = s.C * Hp * Lp;
    const i64 taps = s.C * s.HH * s.WW, P = s.Hout * s.Wout, Fp = (s.F + FB - 1) / FB * FB;
    const i64 tblocks = (taps + TB - 1) / TB;
    const int nt = threads();
    // With at least as many images as threads, each thread sums its images
    // into its own dwT; else the threads split the tap blocks of every image.
    const bool by_image = s.N >= nt;
    const i64 per_thread = plane + P * Fp + taps * Fp;
    std::unique_ptr<T[]> work(new T[(size_t)(nt * per_thread)]);
    // Each tap's offset in the padded planes, computed once per call rather
    // than by three divisions per tap of every tap block of every image.
    std::vector<i64> tap_off((size_t)taps);
    for (i64 t = 0; t < taps; t++) {
        const i64 kk = s.HH * s.WW, c = t / kk, kh = t % kk / s.WW, kw = t % s.WW;
        tap_off[(size_t)t] = (c * Hp + kh) * Lp + kw;
    }
#pragma omp parallel num_threads(nt)
    {
        const int me = omp_get_thread_num();
        T* xp = work.get() + (size_t)me * per_thread;
        T* gT = xp + plane;
        T* dwT = gT + P * Fp;
        fill_value(xp, plane, T(0));
        fill_value(dwT, taps * Fp, T(0));
        const i64 t0 = by_image ? 0 : std::min(taps, me * ((tblocks + nt - 1) / nt) * TB);
        const i64 t1 = by_image ? taps : std::min(taps, t0 + ((tblocks + nt - 1) / nt) * TB);
        const i64 n0 = by_image ? s.N * me / nt : 0, n1 = by_image ? s.N * (me + 1) / nt : s.N;
        for (i64 n = n0; n < n1 && t0 < t1; n++) {
            for (i64 c = 0; c < s.C; c++)
                for (i64 h = 0; h < s.H; h++)
                    std::copy(x + ((n * s.C + c) * s.H + h) * s.W,
                              x + ((n * s.C + c) * s.H + h + 1) * s.W,
                              xp + (c * Hp + h + s.pad) * Lp + s.pad);
            if (argmax)
                unpool_transpose(gT, dout + n * s.F * Po, argmax + n * s.F * Po, s.F, Po, P, Fp);
            else
                transpose_dout(gT, dout + n * s.F * P, s.F, P, Fp);
            direct_dw_image<T, TB, FB>(dwT, gT, xp, tap_off.data(), s, Fp, Lp, t0, t1);
        }
#pragma omp barrier
        // dw[f, t] from the threads' dwT, in thread order (in double) when
        // they split the images: the same bits every run.
#pragma omp for schedule(static)
        for (i64 f = 0; f < s.F; f++) {
            for (i64 t = 0; t < taps; t++) {
                if (!by_image) {
                    const int owner = (int)(t / TB / ((tblocks + nt - 1) / nt));
                    dw[f * taps + t] = work[(size_t)owner * per_thread + plane + P * Fp + t * Fp + f];
                    continue;
                }
                double acc = 0.0;
                for (int u = 0; u < nt; u++)
                    acc += (double)work[(size_t)u * per_thread + plane + P * Fp + t * Fp + f];
                dw[f * taps + t] = (T)acc;
            }
        }
    }
}

// Blocks for the widest vectors the CPU has. AVX-512: 12 taps x 2 vectors of
// filters (24 of the 32 registers), or 21, 24 or 25 taps x 1 vector, the one
// that costs least: a tap block past the last tap costs as much as a full
// one, and conv1's 3 x 7 x 7 = 147 taps are 13 blocks of 12 (6% padding) but
// 7 of 21 (none), course conv1's 75 are 4 blocks of 24 (22%) but 3 of 25.
// A one-vector block loads a broadcast per FMA, a two-vector one per two:
// where 512-bit FMAs run at full width (measured on a Zen 5; Xeons with two
// FMA units are taken to be alike) the loads set the pace, and conv1's dw
// ran 0.85-0.98x the time in 12 x 2 despite the padding, so
// one-vector products count 7/6 there; on 256-bit units (Zen 4) the FMAs do,
// and 21 x 1 ran 0.90x (benches/README.md, items 15 and 27). AVX2: 12 of the
// 16 256-bit registers; filter blocks one vector wide when two would be
// mostly padding.
struct DwBlock {
    int taps, vectors;
};
inline DwBlock dw_block_avx512(i64 taps, i64 F, int V, bool fma_halves) {
    DwBlock best{12, 2};
    i64 best_cost = -1;
    for (DwBlock b : {DwBlock{12, 2}, DwBlock{24, 1}, DwBlock{21, 1}, DwBlock{25, 1}}) {
        const i64 fb = (i64)b.vectors * V;
        const i64 work = (taps + b.taps - 1) / b.taps * b.taps * ((F + fb - 1) / fb * fb);
        const i64 cost = b.vectors == 1 && !fma_halves ? work * 7 : work * 6;
        if (best_cost < 0 || cost < best_cost) best = b, best_cost = cost;  // ties: the earlier
    }
    return best;
}

template <class T>
void conv_dw_direct(T* dw, const T* dout, const T* x, const ConvShape& s,
                    const int32_t* argmax = nullptr, i64 Po = 0) {
    constexpr int V512 = 64 / sizeof(T), V256 = 32 / sizeof(T);
    const auto narrow = [&](int v) { return s.F <= v || (s.F + v - 1) / v % 2 == 1; };
    if (__builtin_cpu_supports("avx512f")) {
        const DwBlock b = dw_block_avx512(s.C * s.HH * s.WW, s.F, V512, fma_splits_512bit());
        if (b.vectors == 2) return conv_dw_direct_blocked<T, 12, 2 * V512>(dw, dout, x, s, argmax, Po);
        if (b.taps == 21) return conv_dw_direct_blocked<T, 21, V512>(dw, dout, x, s, argmax, Po);
        if (b.taps == 25) return conv_dw_direct_blocked<T, 25, V512>(dw, dout, x, s, argmax, Po);
        conv_dw_direct_blocked<T, 24, V512>(dw, dout, x, s, argmax, Po);
    } else {
        if (narrow(V256))
            conv_dw_direct_blocked<T, 12, V256>(dw, dout, x, s, argmax, Po);
        else
            conv_dw_direct_blocked<T, 6, 2 * V256>(dw, dout, x, s, argmax, Po);
    }
}

// out[n,f] = b[f] + sum_{c,kh,kw} w[f,c,kh,kw] * xpad[n,c,oh*stride+kh,ow*stride+kw]
// (cross-correlation, zero padding): the direct kernel (direct_applies says
// when), Winograd F(2x2, 3x3) for 3x3 stride-1 kernels (winograd_applies), or
// im2col + GEMM, a tile of output rows at a time.
template <class T>
void conv_forward(T* out, const T* x, const T* w, const T* b, const ConvShape& s, ConvAlgo algo) {
    if (direct_applies<T>(s, algo)) return conv_forward_direct(out, x, w, b, s);
    if (winograd_applies(s, algo)) return conv_forward_winograd(out, x, w, b, s);
    const i64 K = s.C * s.HH * s.WW, P = s.Hout * s.Wout, CHW = s.C * s.H * s.W, F = s.F;
    const int nt = threads();
    const std::unique_ptr<T[]> w_ext = weights_with_bias(w, b, F, K);
    if (s.N >= nt) {
        // Work items are (image, tile) pairs, each thread with its own tile.
        const i64 rows = tile_rows<T>(s, 1), ntiles = (s.Hout + rows - 1) / rows;
        const i64 col_size = (K + 1) * rows * s.Wout, per_thread = col_size + scratch_size(s, rows);
        std::unique_ptr<T[]> work(new T[(size_t)nt * per_thread]);
#pragma omp parallel num_threads(nt)
        {
            const int prev = blas_set_threads_local(1);
            T* col = work.get() + (size_t)omp_get_thread_num() * per_thread;
            T* scratch = col + col_size;
            i64 ones_len = 0;
#pragma omp for schedule(static)
            for (i64 item = 0; item < s.N * ntiles; item++) {
                const i64 n = item / ntiles, oh0 = item % ntiles * rows;
                const i64 oh1 = std::min(s.Hout, oh0 + rows), cols = (oh1 - oh0) * s.Wout;
                im2col(col, cols, x + n * CHW, s, 0, s.C, oh0, oh1, scratch);
                if (ones_len != cols) fill_value(col + K * cols, cols, T(1)), ones_len = cols;
                gemm<T>(false, false, F, cols, K + 1, T(1), w_ext.get(), K + 1, col, cols, T(0),
                        out + n * F * P + oh0 * s.Wout, P);
            }
            blas_set_threads_local(prev);
        }
        return;
    }
    // Fewer images than threads: one shared tile at a time, im2col split by
    // channel, and OpenBLAS threads the GEMM.
    const i64 rows = tile_rows<T>(s, nt), scratch_per_thread = scratch_size(s, rows);
    const i64 col_size = (K + 1) * rows * s.Wout;
    std::unique_ptr<T[]> work(new T[(size_t)(col_size + nt * scratch_per_thread)]);
    T* col = work.get();
    for (i64 n = 0; n < s.N; n++) {
        for (i64 oh0 = 0; oh0 < s.Hout; oh0 += rows) {
            const i64 oh1 = std::min(s.Hout, oh0 + rows), cols = (oh1 - oh0) * s.Wout;
#pragma omp parallel for num_threads(nt) schedule(static)
            for (i64 c = 0; c < s.C; c++)
                im2col(col, cols, x + n * CHW, s, c, c + 1, oh0, oh1,
                       col + col_size + (size_t)omp_get_thread_num() * scratch_per_thread);
            fill_value(col + K * cols, cols, T(1));
            gemm<T>(false, false, F, cols, K + 1, T(1), w_ext.get(), K + 1, col, cols, T(0),
                    out + n * F * P + oh0 * s.Wout, P);
        }
    }
}

// dx (N,C,H,W), dw (F,C,HH,WW), db (F) of conv_forward; overwrites all three.
// dx by the direct kernel when direct_dx_applies, by Winograd when
// winograd_backward_applies(s, algo), else im2col; dw by the direct kernel
// when direct_dw_applies, else Winograd or im2col. dx null:
// dw and db only, for a network's first layer, whose input gradient nothing
// uses; that skips the dcol GEMM and col2im, about half of the backward.
template <class T>
void conv_backward(T* dx, T* dw, T* db, const T* dout, const T* x, const T* w, const ConvShape& s,
                   ConvAlgo algo) {
    const i64 K = s.C * s.HH * s.WW, P = s.Hout * s.Wout, CHW = s.C * s.H * s.W, F = s.F;
    const int nt = threads();
    bias_grad(db, dout, s.N, F, P);
    // dw by the direct kernel: the loops below then only build dx.
    const bool dw_direct = direct_dw_applies(s, algo);
    if (dw_direct) conv_dw_direct(dw, dout, x, s);
    if (dx && direct_dx_applies<T>(s, algo)) {
        conv_dx_direct(dx, dout, w, s);
        dx = nullptr;  // done: the paths below build dw only
    }
    if (winograd_backward_applies(s, algo)) {
        if (dx) conv_dx_winograd(dx, dout, w, s);
        if (!dw_direct) conv_dw_winograd(dw, dout, x, s);
        return;
    }
    if (dw_direct && !dx) return;
    if (s.N >= nt) {
        // Work items are whole images (a thread owns its dx_n), tile by tile.
        const i64 rows = tile_rows<T>(s, 1);
        const i64 col_size = K * rows * s.Wout, dw_size = F * K;
        const i64 per_thread = col_size + dw_size + scratch_size(s, rows);
        std::unique_ptr<T[]> work(new T[(size_t)nt * per_thread]);
#pragma omp parallel num_threads(nt)
        {
            const int prev = blas_set_threads_local(1);
            T* col = work.get() + (size_t)omp_get_thread_num() * per_thread;
            T* dw_part = col + col_size;
            T* scratch = dw_part + dw_size;
            fill_value(dw_part, dw_size, T(0));
#pragma omp for schedule(static)
            for (i64 n = 0; n < s.N; n++) {
                T* dxn = dx ? dx + n * CHW : nullptr;
                if (dxn) fill_value(dxn, CHW, T(0));
                for (i64 oh0 = 0; oh0 < s.Hout; oh0 += rows) {
                    const i64 oh1 = std::min(s.Hout, oh0 + rows), cols = (oh1 - oh0) * s.Wout;
                    const T* g = dout + n * F * P + oh0 * s.Wout;
                    if (!dw_direct) {
                        im2col(col, cols, x + n * CHW, s, 0, s.C, oh0, oh1, scratch);
                        // dw += dout_tile @ col^T; then col is reused for dcol = w^T @ dout_tile
                        gemm<T>(false, true, F, K, cols, T(1), g, P, col, cols, T(1), dw_part, K);
                    }
                    if (!dxn) continue;
                    gemm<T>(true, false, K, cols, F, T(1), w, K, g, P, T(0), col, cols);
                    col2im(dxn, col, cols, s, 0, s.C, oh0, oh1, scratch);
                }
            }
            blas_set_threads_local(prev);
        }
        if (dw_direct) return;
        // Partial sums in thread order, in double: the same bits every run.
#pragma omp parallel for num_threads(nt) schedule(static) if (F * K > 32768)
        for (i64 i = 0; i < F * K; i++) {
            double acc = 0.0;
            for (int t = 0; t < nt; t++) acc += (double)work[(size_t)t * per_thread + col_size + i];
            dw[i] = (T)acc;
        }
        return;
    }
    // Fewer images than threads: one shared tile at a time; im2col and col2im
    // split by channel (a channel's dx plane has one writer), OpenBLAS threads
    // the GEMMs.
    const i64 rows = tile_rows<T>(s, nt), scratch_per_thread = scratch_size(s, rows);
    const i64 col_size = K * rows * s.Wout;
    std::unique_ptr<T[]> work(new T[(size_t)(col_size + nt * scratch_per_thread)]);
    T* col = work.get();
    if (!dw_direct) fill_value(dw, F * K, T(0));
    for (i64 n = 0; n < s.N; n++) {
        T* dxn = dx ? dx + n * CHW : nullptr;
        if (dxn) fill_value(dxn, CHW, T(0));
        for (i64 oh0 = 0; oh0 < s.Hout; oh0 += rows) {
            const i64 oh1 = std::min(s.Hout, oh0 + rows), cols = (oh1 - oh0) * s.Wout;
            const T* g = dout + n * F * P + oh0 * s.Wout;
            if (!dw_direct) {
#pragma omp parallel for num_threads(nt) schedule(static)
                for (i64 c = 0; c < s.C; c++)
                    im2col(col, cols, x + n * CHW, s, c, c + 1, oh0, oh1,
                           col + col_size + (size_t)omp_get_thread_num() * scratch_per_thread);
                gemm<T>(false, true, F, K, cols, T(1), g, P, col, cols, T(1), dw, K);
            }
            if (!dxn) continue;
            gemm<T>(true, false, K, cols, F, T(1), w, K, g, P, T(0), col, cols);
#pragma omp parallel for num_threads(nt) schedule(static)
            for (i64 c = 0; c < s.C; c++)
                col2im(dxn, col, cols, s, c, c + 1, oh0, oh1,
                       col + col_size + (size_t)omp_get_thread_num() * scratch_per_thread);
        }
    }
}

// Whether the pool after the conv is one the direct kernels fuse: 2x2 windows
// with stride 2 that tile the conv output.
bool pool_fuses(const ConvShape& s, i64 ph, i64 pw, i64 ps) {
    return ph == 2 && pw == 2 && ps == 2 && s.Hout % 2 == 0 && s.Wout % 2 == 0;
}

// out and argmax (N, F, Ho, Wo) = the ph x pw max pool (stride ps, argmax as
// max_pool_forward's) of conv_forward(x, w, b). A pool_fuses pool after the
// direct forward is fused into it, and the conv output is never stored;
// otherwise the conv output goes to a buffer that the pool reads.
template <class T>
void conv_pool_forward(T* out, int32_t* argmax, const T* x, const T* w, const T* b,
                       const ConvShape& s, i64 ph, i64 pw, i64 ps, ConvAlgo algo) {
    if (pool_fuses(s, ph, pw, ps) && direct_applies<T>(s, algo)) {
        const Pool2x2<T> pool{out, argmax};
        conv_forward_direct(static_cast<T*>(nullptr), x, w, b, s, &pool);
        return;
    }
    std::unique_ptr<T[]> conv_out(new T[(size_t)(s.N * s.F * s.Hout * s.Wout)]);
    conv_forward(conv_out.get(), x, w, b, s, algo);
    max_pool_forward(out, argmax, conv_out.get(), s.N * s.F, s.Hout, s.Wout, ph, pw, ps);
}

// dx, dw and db of conv_pool_forward from dout and argmax (N, F, Ho, Wo) of
// its pool; dx null: dw and db only. Without dx, where the dw is the direct
// kernel and pool_fuses, the pool's backward is that kernel's transpose of
// dout (unpool_transpose) and db sums dout itself; otherwise the pool's
// backward fills a buffer for conv_backward.
template <class T>
void conv_pool_backward(T* dx, T* dw, T* db, const T* dout, const int32_t* argmax, const T* x,
                        const T* w, const ConvShape& s, i64 ph, i64 pw, i64 ps, ConvAlgo algo) {
    const i64 Ho = 1 + (s.Hout - ph) / ps, Wo = 1 + (s.Wout - pw) / ps;
    if (!dx && pool_fuses(s, ph, pw, ps) && direct_dw_applies(s, algo)) {
        bias_grad(db, dout, s.N, s.F, Ho * Wo);
        conv_dw_direct(dw, dout, x, s, argmax, Ho * Wo);
        return;
    }
    std::unique_ptr<T[]> dconv(new T[(size_t)(s.N * s.F * s.Hout * s.Wout)]);
    max_pool_backward(dconv.get(), dout, argmax, s.N * s.F, s.Hout, s.Wout, Ho, Wo);
    conv_backward(dx, dw, db, dconv.get(), x, w, s, algo);
}

std::string str(i64 v) { return std::to_string(v); }

// The geometry of x (N, C, H, W) and w (F, C, HH, WW), or ValueError when
// the sizes could not index the buffers.
ConvShape conv_shape(const In& x, const In& w, i64 stride, i64 pad) {
    check_ndim(x, "x", 4);
    check_ndim(w, "w", 4);
    if (stride < 1) fail_value("stride must be >= 1, got " + str(stride));
    if (pad < 0) fail_value("pad must be >= 0, got " + str(pad));
    if (pad > (1 << 30)) fail_value("pad is unreasonably large, got " + str(pad));
    ConvShape s{};
    s.N = x.shape(0), s.C = x.shape(1), s.H = x.shape(2), s.W = x.shape(3);
    s.F = w.shape(0), s.HH = w.shape(2), s.WW = w.shape(3);
    s.stride = stride, s.pad = pad;
    check_nonempty(s.N, "x", "is an empty batch");
    for (size_t i = 0; i < 4; i++)
        if (x.shape(i) == 0 || w.shape(i) == 0)
            fail_value("x and w must have no zero-size dimension");
    check_shape(w, "w", {s.F, s.C, s.HH, s.WW});
    // Hout, Wout >= 1, rounded down when the filter does not tile the input
    // (the public layer refuses that): the kernels never read past the pad.
    if (s.HH > s.H + 2 * pad || s.WW > s.W + 2 * pad)
        fail_value("the filter does not fit in the padded input");
    s.Hout = 1 + (s.H + 2 * pad - s.HH) / stride;
    s.Wout = 1 + (s.W + 2 * pad - s.WW) / stride;
    // A stride past the last window start gives one output row and column
    // whatever its value, but the kernels' scratch grows with it: it is cut
    // to last + 1 (at least 2, so that the path choice stays the same).
    const i64 last = std::max(s.H + 2 * pad - s.HH, s.W + 2 * pad - s.WW);
    if (stride > 1) s.stride = std::min(stride, std::max<i64>(2, last + 1));
    // GEMM dims: F, K + 1 = C*HH*WW + 1 and up to Hout*Wout columns per call,
    // which is also the row stride of out and dout.
    check_blas_dim(s.F, "F");
    check_blas_dim(s.C * s.HH * s.WW + 1, "C*HH*WW + 1");
    check_blas_dim(s.Hout * s.Wout, "Hout*Wout");
    if ((double)s.N * (double)s.F * (double)(s.Hout * s.Wout) > 1e17)
        fail_value("the output (" + str(s.N) + ", " + str(s.F) + ", " + str(s.Hout) + ", " +
                   str(s.Wout) + ") is too large to allocate");
    return s;
}

}  // namespace

void bind_conv(nb::module_& m) {
    m.def("conv_forward", [](In x, In w, In b, i64 stride, i64 pad, int algo) {
        const DType dt = float_dtype({{"x", x.dtype()}, {"w", w.dtype()}, {"b", b.dtype()}});
        const ConvShape s = conv_shape(x, w, stride, pad);
        const ConvAlgo a = conv_algo_arg(algo);
        check_shape(b, "b", {s.F});
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_array<T>({s.N, s.F, s.Hout, s.Wout});
            {
                nb::gil_scoped_release nogil;
                conv_forward(out.data(), ptr<T>(x), ptr<T>(w), ptr<T>(b), s, a);
            }
            return nb::object(nb::cast(out));
        });
    }, nb::arg("x"), nb::arg("w"), nb::arg("b"), nb::arg("stride"), nb::arg("pad"),
       nb::arg("algo") = 0,
       "out (N, F, Hout, Wout) = conv(x (N, C, H, W), w (F, C, HH, WW)) + b (F): "
       "cross-correlation with zero padding; algo: 0 auto, 1 im2col, 2 winograd, 3 direct");

    // (dx, dw, db), and for a network's first layer (dw, db) without dx
    for (const bool with_dx : {true, false}) {
        const char* name = with_dx ? "conv_backward" : "conv_backward_weights";
        m.def(name, [with_dx](In dout, In x, In w, i64 stride, i64 pad, int algo) {
            const DType dt =
                float_dtype({{"dout", dout.dtype()}, {"x", x.dtype()}, {"w", w.dtype()}});
            const ConvShape s = conv_shape(x, w, stride, pad);
            const ConvAlgo a = conv_algo_arg(algo);
            check_shape(dout, "dout", {s.N, s.F, s.Hout, s.Wout});
            return dispatch(dt, [&](auto t) {
                using T = decltype(t);
                auto dw = new_array<T>({s.F, s.C, s.HH, s.WW});
                auto db = new_array<T>({s.F});
                if (!with_dx) {
                    {
                        nb::gil_scoped_release nogil;
                        conv_backward(static_cast<T*>(nullptr), dw.data(), db.data(),
                                      ptr<T>(dout), ptr<T>(x), ptr<T>(w), s, a);
                    }
                    return nb::make_tuple(dw, db);
                }
                auto dx = new_array<T>({s.N, s.C, s.H, s.W});
                {
                    nb::gil_scoped_release nogil;
                    conv_backward(dx.data(), dw.data(), db.data(), ptr<T>(dout), ptr<T>(x),
                                  ptr<T>(w), s, a);
                }
                return nb::make_tuple(dx, dw, db);
            });
        }, nb::arg("dout"), nb::arg("x"), nb::arg("w"), nb::arg("stride"), nb::arg("pad"),
           nb::arg("algo") = 0,
           with_dx ? "(dx, dw, db) of conv_forward with the same algo"
                   : "(dw, db) of conv_forward with the same algo, without dx");
    }

    // conv then max pool, for a network's first layer: the forward, and the
    // backward without dx
    m.def("conv_pool_forward", [](In x, In w, In b, i64 stride, i64 pad, i64 pool_height,
                                  i64 pool_width, i64 pool_stride, int algo) {
        const DType dt = float_dtype({{"x", x.dtype()}, {"w", w.dtype()}, {"b", b.dtype()}});
        const ConvShape s = conv_shape(x, w, stride, pad);
        const ConvAlgo a = conv_algo_arg(algo);
        check_shape(b, "b", {s.F});
        check_pool_window(s.Hout, s.Wout, pool_height, pool_width, pool_stride);
        const i64 Ho = 1 + (s.Hout - pool_height) / pool_stride;
        const i64 Wo = 1 + (s.Wout - pool_width) / pool_stride;
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_array<T>({s.N, s.F, Ho, Wo});
            auto argmax = new_array<int32_t>({s.N, s.F, Ho, Wo});
            {
                nb::gil_scoped_release nogil;
                conv_pool_forward(out.data(), argmax.data(), ptr<T>(x), ptr<T>(w), ptr<T>(b), s,
                                  pool_height, pool_width, pool_stride, a);
            }
            return nb::make_tuple(out, argmax);
        });
    }, nb::arg("x"), nb::arg("w"), nb::arg("b"), nb::arg("stride"), nb::arg("pad"),
       nb::arg("pool_height"), nb::arg("pool_width"), nb::arg("pool_stride"), nb::arg("algo") = 0,
       "(out (N, F, Ho, Wo), argmax int32 (N, F, Ho, Wo)) = max_pool_forward(conv_forward(x, w, "
       "b, stride, pad, algo), pool_height, pool_width, pool_stride)");

    for (const bool with_dx : {true, false}) {
        const char* name = with_dx ? "conv_pool_backward" : "conv_pool_backward_weights";
        m.def(name, [with_dx](In dout, In argmax, In x, In w, i64 stride, i64 pad,
                              i64 pool_height, i64 pool_width, i64 pool_stride, int algo) {
            const DType dt =
                float_dtype({{"dout", dout.dtype()}, {"x", x.dtype()}, {"w", w.dtype()}});
            const ConvShape s = conv_shape(x, w, stride, pad);
            const ConvAlgo a = conv_algo_arg(algo);
            check_pool_window(s.Hout, s.Wout, pool_height, pool_width, pool_stride);
            const i64 Ho = 1 + (s.Hout - pool_height) / pool_stride;
            const i64 Wo = 1 + (s.Wout - pool_width) / pool_stride;
            check_shape(dout, "dout", {s.N, s.F, Ho, Wo});
            check_argmax(dout, argmax, s.Hout, s.Wout);
            return dispatch(dt, [&](auto t) {
                using T = decltype(t);
                auto dw = new_array<T>({s.F, s.C, s.HH, s.WW});
                auto db = new_array<T>({s.F});
                const auto run = [&](T* dx) {
                    nb::gil_scoped_release nogil;
                    conv_pool_backward(dx, dw.data(), db.data(), ptr<T>(dout),
                                       ptr<int32_t>(argmax), ptr<T>(x), ptr<T>(w), s,
                                       pool_height, pool_width, pool_stride, a);
                };
                if (!with_dx) {
                    run(nullptr);
                    return nb::make_tuple(dw, db);
                }
                auto dx = new_array<T>({s.N, s.C, s.H, s.W});
                run(dx.data());
                return nb::make_tuple(dx, dw, db);
            });
        }, nb::arg("dout"), nb::arg("argmax"), nb::arg("x"), nb::arg("w"), nb::arg("stride"),
           nb::arg("pad"), nb::arg("pool_height"), nb::arg("pool_width"), nb::arg("pool_stride"),
           nb::arg("algo") = 0,
           with_dx ? "(dx, dw, db) of conv_pool_forward from the pool's dout and argmax "
                     "(N, F, Ho, Wo)"
                   : "(dw, db) of conv_pool_forward from the pool's dout and argmax "
                     "(N, F, Ho, Wo), without dx");
    }

    m.def("conv_paths", [](In x, In w, i64 stride, i64 pad, int algo) {
        const DType dt = float_dtype({{"x", x.dtype()}, {"w", w.dtype()}});
        const ConvShape s = conv_shape(x, w, stride, pad);
        const ConvAlgo a = conv_algo_arg(algo);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            return conv_path_names(direct_applies<T>(s, a), winograd_applies(s, a),
                                   direct_dx_applies<T>(s, a), winograd_backward_applies(s, a),
                                   direct_dw_applies(s, a));
        });
    }, nb::arg("x"), nb::arg("w"), nb::arg("stride"), nb::arg("pad"), nb::arg("algo") = 0,
       "(forward, dx, dw): the path, 'winograd', 'direct' or 'im2col', that conv_forward "
       "and conv_backward take for these shapes, dtype and algo (0 auto, 1 im2col, "
       "2 winograd, 3 direct)");
}

}  // namespace nnc
