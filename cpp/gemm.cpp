// nnc's own GEMM kernel, for CPUs with AVX-512 whose OpenBLAS runs older
// kernels (blas.cpp decides when it runs; benches/README.md, "nnc's own GEMM
// kernel", has the measurements).
//
// The BLIS scheme in three loops around a register tile:
//   for each block of KC of the depth:          (B's KC x NC block packed, in L3)
//     for each block of MC rows of C:           (A's MC x KC block packed, in L2)
//       for each NR-wide panel of B, each MR-tall panel of A:
//         C[MR, NR] (+)= Apanel[MR, KC] Bpanel[KC, NR]   (B's panel stays in L1)
// The packs lay each panel out in the order the tile reads it (A by column
// of MR values, B by row of NR), zero-padded to whole panels, so the tile
// runs the same code on every panel and transposed operands cost nothing
// after packing. The tile keeps MR x NR accumulators in registers: on
// AVX-512, 14 x 2 zmm of float32 (14 x 32) or of float64 (14 x 16), which
// leaves registers for B's two vectors and A's broadcast. The last columns
// of C take a tile of one vector where that covers them (100 columns: 3
// whole tiles and one of 16 float32, not 4 whole ones).
//
// Every element of C is the same sum in the same order whatever block of C
// a call computes (the depth is summed in KC chunks, each from zero, each
// added to C once), so a GEMM split over threads by rows or columns gives
// the same bits as on one thread.
#include <algorithm>
#include <vector>

#include "blas.h"

namespace nnc {
namespace {

template <class T>
struct Tile;
template <>
struct Tile<float> {
    static constexpr int MR = 14, NR = 32;
    static constexpr i64 KC = 384;
};
template <>
struct Tile<double> {
    static constexpr int MR = 14, NR = 16;
    static constexpr i64 KC = 256;
};
// Rows of C per packed block of A (MC x KC: 172 KB float32, 229 KB float64,
// within a 1 MB L2) and columns per packed block of B.
constexpr i64 kMC = 112, kNC = 2048;

// Ap[panel][k][MR] = op(A)[m0 + panel * MR + i, k0 + k], zero past mc.
template <class T>
NNC_CLONES void pack_a(T* Ap, const T* A, i64 lda, bool ta, i64 m0, i64 mc, i64 k0, i64 kc) {
    constexpr int MR = Tile<T>::MR;
    for (i64 i0 = 0; i0 < mc; i0 += MR) {
        const int mr = (int)std::min<i64>(MR, mc - i0);
        T* p = Ap + i0 * kc;
        if (ta) {  // op(A) rows are A's columns: MR contiguous values per k
            for (i64 k = 0; k < kc; k++) {
                const T* a = A + (k0 + k) * lda + m0 + i0;
                for (int i = 0; i < mr; i++) p[k * MR + i] = a[i];
                for (int i = mr; i < MR; i++) p[k * MR + i] = T(0);
            }
        } else {
            for (int i = 0; i < mr; i++) {
                const T* a = A + (m0 + i0 + i) * lda + k0;
                for (i64 k = 0; k < kc; k++) p[k * MR + i] = a[k];
            }
            for (int i = mr; i < MR; i++)
                for (i64 k = 0; k < kc; k++) p[k * MR + i] = T(0);
        }
    }
}

// Bp[panel][k][width] = op(B)[k0 + k, n0 + j0 + j], zero past nc: panels
// NR wide, the last one NR / 2 wide when that covers what is left (see
// panel_width), each at Bp + j0 * kc.
template <class T>
NNC_CLONES void pack_b(T* Bp, const T* B, i64 ldb, bool tb, i64 k0, i64 kc, i64 n0, i64 nc) {
    constexpr int NR = Tile<T>::NR;
    for (i64 j0 = 0; j0 < nc; j0 += NR) {
        const int nr = (int)std::min<i64>(NR, nc - j0), width = nr <= NR / 2 ? NR / 2 : NR;
        T* p = Bp + j0 * kc;
        if (tb) {  // op(B) columns are B's rows
            for (int j = 0; j < nr; j++) {
                const T* b = B + (n0 + j0 + j) * ldb + k0;
                for (i64 k = 0; k < kc; k++) p[k * width + j] = b[k];
            }
            for (int j = nr; j < width; j++)
                for (i64 k = 0; k < kc; k++) p[k * width + j] = T(0);
        } else {
            for (i64 k = 0; k < kc; k++) {
                const T* b = B + (k0 + k) * ldb + n0 + j0;
                T* q = p + k * width;
                if (nr == NR) {
#pragma omp simd
                    for (int j = 0; j < NR; j++) q[j] = b[j];
                } else {
                    for (int j = 0; j < nr; j++) q[j] = b[j];
                    for (int j = nr; j < width; j++) q[j] = T(0);
                }
            }
        }
    }
}

// C[mr, nr] = (or +=) Apanel Bpanel over kc: the register tile, MR x NR
// (the panel of B is NR wide, NR / 2 for the last columns of C).
template <class T, int NR>
NNC_CLONES void tile(T* C, i64 ldc, const T* __restrict a, const T* __restrict b, i64 kc, int mr,
                     int nr, bool accumulate) {
    constexpr int MR = Tile<T>::MR;
    T acc[MR][NR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
#pragma omp simd
        for (int j = 0; j < NR; j++) acc[i][j] = T(0);
    for (i64 k = 0; k < kc; k++, a += MR, b += NR) {
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            const T av = a[i];
#pragma omp simd
            for (int j = 0; j < NR; j++) acc[i][j] += av * b[j];
        }
    }
    if (mr == MR && nr == NR) {
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            T* c = C + i * ldc;
            if (accumulate) {
#pragma omp simd
                for (int j = 0; j < NR; j++) c[j] += acc[i][j];
            } else {
#pragma omp simd
                for (int j = 0; j < NR; j++) c[j] = acc[i][j];
            }
        }
    } else {
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < nr; j++) C[i * ldc + j] = accumulate ? C[i * ldc + j] + acc[i][j] : acc[i][j];
    }
}

}  // namespace

template <class T>
void packed_gemm(bool ta, bool tb, i64 m0, i64 m1, i64 n0, i64 n1, i64 K, const T* A, i64 lda,
                 const T* B, i64 ldb, bool accumulate, T* C, i64 ldc) {
    using Tl = Tile<T>;
    if (m1 <= m0 || n1 <= n0) return;
    if (K == 0) {
        if (!accumulate)
            for (i64 i = m0; i < m1; i++) std::fill(C + i * ldc + n0, C + i * ldc + n1, T(0));
        return;
    }
    // Per thread, kept across calls: the packs are the same few sizes every step.
    thread_local std::vector<T> a_pack, b_pack;
    const i64 kc_max = std::min<i64>(Tl::KC, K);
    const i64 nc_max = std::min<i64>(kNC, (n1 - n0 + Tl::NR - 1) / Tl::NR * Tl::NR);
    const i64 mc_max = std::min<i64>(kMC, (m1 - m0 + Tl::MR - 1) / Tl::MR * Tl::MR);
    if ((i64)a_pack.size() < mc_max * kc_max) a_pack.resize((size_t)(mc_max * kc_max));
    if ((i64)b_pack.size() < nc_max * kc_max) b_pack.resize((size_t)(nc_max * kc_max));
    T* Ap = a_pack.data();
    T* Bp = b_pack.data();
    for (i64 jc = n0; jc < n1; jc += kNC) {
        const i64 nc = std::min<i64>(kNC, n1 - jc);
        for (i64 pc = 0; pc < K; pc += Tl::KC) {
            const i64 kc = std::min<i64>(Tl::KC, K - pc);
            const bool acc = accumulate || pc > 0;
            pack_b(Bp, B, ldb, tb, pc, kc, jc, nc);
            for (i64 ic = m0; ic < m1; ic += kMC) {
                const i64 mc = std::min<i64>(kMC, m1 - ic);
                pack_a(Ap, A, lda, ta, ic, mc, pc, kc);
                for (i64 jr = 0; jr < nc; jr += Tl::NR) {
                    const int nr = (int)std::min<i64>(Tl::NR, nc - jr);
                    for (i64 ir = 0; ir < mc; ir += Tl::MR) {
                        T* c = C + (ic + ir) * ldc + jc + jr;
                        const int mr = (int)std::min<i64>(Tl::MR, mc - ir);
                        if (nr <= Tl::NR / 2)  // the last columns: half the work of a whole tile
                            tile<T, Tl::NR / 2>(c, ldc, Ap + ir * kc, Bp + jr * kc, kc, mr, nr, acc);
                        else
                            tile<T, Tl::NR>(c, ldc, Ap + ir * kc, Bp + jr * kc, kc, mr, nr, acc);
                    }
                }
            }
        }
    }
}

template <class T>
i64 packed_gemm_rows() {
    return Tile<T>::MR;
}
template <class T>
i64 packed_gemm_cols() {
    return Tile<T>::NR;
}

template void packed_gemm<float>(bool, bool, i64, i64, i64, i64, i64, const float*, i64,
                                 const float*, i64, bool, float*, i64);
template void packed_gemm<double>(bool, bool, i64, i64, i64, i64, i64, const double*, i64,
                                  const double*, i64, bool, double*, i64);
template i64 packed_gemm_rows<float>();
template i64 packed_gemm_rows<double>();
template i64 packed_gemm_cols<float>();
template i64 packed_gemm_cols<double>();

}  // namespace nnc
