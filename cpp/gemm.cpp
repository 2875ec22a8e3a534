// nnc's own GEMM kernel, for CPUs with AVX-512 whose OpenBLAS runs older
// kernels (blas.cpp decides when it runs; benches/README.md, "nnc's own GEMM
// kernel", has the measurements).
//
// The BLIS scheme in three loops around a register tile:
//   for each block of KC of the depth:          (B's KC x NC block packed, in L3)
//     for each block of MC rows of C:           (A's MC x KC block packed, in L2)
//       for each NR-wide panel of B, each MR-tall panel of A:
//         C[MR, NR] (+)= Apanel[MR, KC] Bpanel[KC, NR]   (B's panel in L1/L2)
// The packs lay each panel out in the order the tile reads it (A by column
// of MR values, B by row of NR), zero-padded to whole panels, so the tile
// runs the same code on every panel and transposed operands cost nothing
// after packing. The tile keeps MR x NR accumulators in registers: on
// AVX-512, 14 x 2 zmm of float32 (14 x 32) or of float64 (14 x 16), which
// leaves registers for B's two vectors and A's broadcast (the AVX2 and
// baseline clones compile the same tile, which spills there: automatic
// never runs them, the tests and valgrind do). The last columns
// of C take a tile of one vector where that covers them (100 columns: 3
// whole tiles and one of 16 float32, not 4 whole ones). A call with few
// rows of C reads the whole panels of a row-major B where they lie.
//
// Every element of C is the same sum in the same order whatever block of C
// a call computes (the depth is summed in KC chunks, each from zero, each
// added to C once), so a GEMM split over threads by rows or columns gives
// the same bits as on one thread.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "blas.h"

namespace nnc {
namespace {

template <class T>
struct Tile;
template <>
struct Tile<float> {
    static constexpr int MR = 14, NR = 32;
    static constexpr i64 KC = 1024;
};
template <>
struct Tile<double> {
    static constexpr int MR = 14, NR = 16;
    static constexpr i64 KC = 512;
};
// Rows of C per packed block of A (MC x KC: 458 KB, within a 1 MB L2) and
// columns per packed block of B (KC x NC: 4 MB). A deep KC adds each tile
// to C fewer times: on the Zen 5, C's updates went from 5% of a 2048^3
// product's time at KC 384 to under 1% at 1024, 2-3% faster in all
// (benches/README.md, "nnc's own GEMM kernel").
constexpr i64 kMC = 112, kNC = 1024;
// Up to this many tiles of rows, whole panels of a row-major B are not packed.
constexpr i64 kDirectBTiles = 8;

// Transposing packs move L x L blocks (L = one 64-byte vector: 16 float32
// or 8 float64) through registers: L loads, a transpose in log2(L) rounds of
// two-source shuffles, L stores. Element by element, packing the thin
// operands of the seeds' affine layers (x of (50, 8192), w of (8192, 100))
// cost as much as their multiply.
template <class T>
struct Block {
    static constexpr int L = 64 / (int)sizeof(T);
    typedef T vec __attribute__((vector_size(64)));
    typedef std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t> lane;
    typedef lane mask __attribute__((vector_size(64)));
};

// Round S of the transpose pairs rows i and i + S (i without bit S) and
// swaps their S x S sub-blocks: lane c of the new row i is lane c of row i
// (bit S of c clear) or lane c - S of row i + S (set); lane c of the new row
// i + S is lane c + S of row i or lane c of row i + S. The lane indices of a
// two-source shuffle: 0..L-1 the first row, L..2L-1 the second.
template <class T, int S, bool Second>
constexpr typename Block<T>::lane shuffle_lane(int c) {
    constexpr int L = Block<T>::L;
    return Second ? ((c & S) ? L + c : c + S) : ((c & S) ? L + c - S : c);
}
template <class T, int S, bool Second, int... C>
inline typename Block<T>::mask shuffle_mask(std::integer_sequence<int, C...>) {
    return typename Block<T>::mask{shuffle_lane<T, S, Second>(C)...};
}
template <class T, int S>
__attribute__((always_inline)) inline void transpose_round(typename Block<T>::vec* r) {
    constexpr int L = Block<T>::L;
    const auto first = shuffle_mask<T, S, false>(std::make_integer_sequence<int, L>());
    const auto second = shuffle_mask<T, S, true>(std::make_integer_sequence<int, L>());
#pragma GCC unroll 16
    for (int i = 0; i < L; i++) {
        if (i & S) continue;
        const auto a = r[i], b = r[i + S];
        r[i] = __builtin_shuffle(a, b, first);
        r[i + S] = __builtin_shuffle(a, b, second);
    }
}

// r[0..L) = the rows of an L x L block, transposed in place.
template <class T>
__attribute__((always_inline)) inline void transpose_block(typename Block<T>::vec* r) {
    if constexpr (Block<T>::L == 16) transpose_round<T, 8>(r);
    transpose_round<T, 4>(r);
    transpose_round<T, 2>(r);
    transpose_round<T, 1>(r);
}

// dst[kk * ld + i] = src[i * lds + kk] for i < rows (zero for rows..L) and
// kk < L: count of each transposed row stored (count <= L, a constant).
template <class T, int Count>
__attribute__((always_inline)) inline void transpose_to(T* dst, i64 ld, const T* src, i64 lds,
                                                        int rows) {
    constexpr int L = Block<T>::L;
    typename Block<T>::vec r[L];
#pragma GCC unroll 16
    for (int i = 0; i < L; i++) {
        if (i < rows)
            std::memcpy(&r[i], src + i * lds, sizeof(r[i]));
        else
            r[i] = typename Block<T>::vec{};
    }
    transpose_block<T>(r);
#pragma GCC unroll 16
    for (int kk = 0; kk < L; kk++) std::memcpy(dst + kk * ld, &r[kk], Count * sizeof(T));
}

// The packs of A and B are the same two panel layouts: a panel is W values
// per depth step, p[k * W + j] for k < kc, the values of j past n zero.

// p[k * W + j] = src[k * ld + j]: the panel's values are contiguous in src
// (A transposed, B as it is).
template <class T, int W>
__attribute__((always_inline)) inline void copy_panel(T* p, const T* src, i64 ld, int n, i64 kc) {
    for (i64 k = 0; k < kc; k++) {
        const T* s = src + k * ld;
        T* q = p + k * W;
        if (n == W) {  // a fixed-size copy: A's 14 values in three moves, not 14
            std::memcpy(q, s, W * sizeof(T));
        } else {  // masked loads: none past the last column, which may end B's memory
#pragma omp simd
            for (int j = 0; j < W; j++) q[j] = j < n ? s[j] : T(0);
        }
    }
}

// Blocks of L columns of the panel from L depth steps: G, G + L, ... < W.
template <class T, int W, int G = 0>
__attribute__((always_inline)) inline void transpose_groups(T* p, const T* src, i64 ld, int n) {
    constexpr int L = Block<T>::L;
    if constexpr (G < W) {
        transpose_to<T, std::min(L, W - G)>(p + G, W, src + G * ld, ld, n - G);
        transpose_groups<T, W, G + L>(p, src, ld, n);
    }
}

// p[k * W + j] = src[j * ld + k]: a transpose (A as it is, B transposed),
// in register blocks of L depth steps, then the last steps one by one.
template <class T, int W>
__attribute__((always_inline)) inline void transpose_panel(T* p, const T* src, i64 ld, int n,
                                                           i64 kc) {
    constexpr int L = Block<T>::L;
    i64 k = 0;
    for (; k + L <= kc; k += L) transpose_groups<T, W>(p + k * W, src + k, ld, n);
    for (int j = 0; j < n; j++)
        for (i64 kk = k; kk < kc; kk++) p[kk * W + j] = src[j * ld + kk];
    for (int j = n; j < W; j++)
        for (i64 kk = k; kk < kc; kk++) p[kk * W + j] = T(0);
}

// Ap[panel][k][MR] = op(A)[m0 + panel * MR + i, k0 + k], zero past mc.
template <class T>
NNC_CLONES void pack_a(T* Ap, const T* A, i64 lda, bool ta, i64 m0, i64 mc, i64 k0, i64 kc) {
    constexpr int MR = Tile<T>::MR;
    for (i64 i0 = 0; i0 < mc; i0 += MR) {
        const int mr = (int)std::min<i64>(MR, mc - i0);
        if (ta)
            copy_panel<T, MR>(Ap + i0 * kc, A + k0 * lda + m0 + i0, lda, mr, kc);
        else
            transpose_panel<T, MR>(Ap + i0 * kc, A + (m0 + i0) * lda + k0, lda, mr, kc);
    }
}

// Bp[panel][k][width] = op(B)[k0 + k, n0 + j0 + j], zero past nc: panels
// NR wide, the last one NR / 2 wide when that covers what is left (the
// one-vector tile reads it), each at Bp + j0 * kc.
template <class T>
NNC_CLONES void pack_b(T* Bp, const T* B, i64 ldb, bool tb, i64 k0, i64 kc, i64 n0, i64 nc) {
    constexpr int NR = Tile<T>::NR;
    for (i64 j0 = 0; j0 < nc; j0 += NR) {
        const int nr = (int)std::min<i64>(NR, nc - j0);
        T* p = Bp + j0 * kc;
        const T* b = tb ? B + (n0 + j0) * ldb + k0 : B + k0 * ldb + n0 + j0;
        if (nr > NR / 2 && tb)
            transpose_panel<T, NR>(p, b, ldb, nr, kc);
        else if (nr > NR / 2)
            copy_panel<T, NR>(p, b, ldb, nr, kc);
        else if (tb)
            transpose_panel<T, NR / 2>(p, b, ldb, nr, kc);
        else
            copy_panel<T, NR / 2>(p, b, ldb, nr, kc);
    }
}

// C[mr, nr] = (or +=) Apanel Bpanel over kc: the register tile, MR x NR
// (the panel of B is NR wide, NR / 2 for the last columns of C; its rows
// ldb apart: the panel's width when packed, B's row pitch when read where
// it lies).
template <class T, int NR>
NNC_CLONES void tile(T* C, i64 ldc, const T* __restrict a, const T* __restrict b, i64 ldb, i64 kc,
                     int mr, int nr, bool accumulate) {
    constexpr int MR = Tile<T>::MR;
    // C's rows are far apart (a row of a large C is a page or more), so the
    // hardware prefetcher does not fetch them; asked for now, they arrive
    // while the depth loop runs instead of stalling the update after it.
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < NR; j += Block<T>::L) __builtin_prefetch(C + i * ldc + j, 1);
    T acc[MR][NR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
#pragma omp simd
        for (int j = 0; j < NR; j++) acc[i][j] = T(0);
    for (i64 k = 0; k < kc; k++, a += MR, b += ldb) {
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
            for (int j = 0; j < nr; j++)
                C[i * ldc + j] = accumulate ? C[i * ldc + j] + acc[i][j] : acc[i][j];
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
    // A packed panel of B pays for its copy by being read by every tile of
    // rows; with few of them (the affine forward of a batch of 50 on 2
    // threads: 2 tiles a thread, all of w copied by each thread), reading a
    // row-major B where it lies costs less. Measured on (50, 8192) x (8192,
    // 100), 2 threads: 217 -> 262 GFLOP/s, and 8 tiles' rows the best bound.
    const bool direct_b = !tb && (m1 - m0 + Tl::MR - 1) / Tl::MR <= kDirectBTiles;
    for (i64 jc = n0; jc < n1; jc += kNC) {
        const i64 nc = std::min<i64>(kNC, n1 - jc);
        for (i64 pc = 0; pc < K; pc += Tl::KC) {
            const i64 kc = std::min<i64>(Tl::KC, K - pc);
            const bool acc = accumulate || pc > 0;
            // Whole panels of a row-major B read straight from B (its
            // rows NR apart become ldb apart); the rest is packed.
            const i64 direct = direct_b ? nc / Tl::NR * Tl::NR : 0;
            if (direct < nc) pack_b(Bp, B, ldb, tb, pc, kc, jc + direct, nc - direct);
            for (i64 ic = m0; ic < m1; ic += kMC) {
                const i64 mc = std::min<i64>(kMC, m1 - ic);
                pack_a(Ap, A, lda, ta, ic, mc, pc, kc);
                for (i64 jr = 0; jr < nc; jr += Tl::NR) {
                    const int nr = (int)std::min<i64>(Tl::NR, nc - jr);
                    for (i64 ir = 0; ir < mc; ir += Tl::MR) {
                        T* c = C + (ic + ir) * ldc + jc + jr;
                        const int mr = (int)std::min<i64>(Tl::MR, mc - ir);
                        const T* a = Ap + ir * kc;
                        if (jr < direct)
                            tile<T, Tl::NR>(c, ldc, a, B + pc * ldb + jc + jr, ldb, kc, mr, nr,
                                            acc);
                        else if (nr <= Tl::NR / 2)  // the last columns: half a whole tile's work
                            tile<T, Tl::NR / 2>(c, ldc, a, Bp + (jr - direct) * kc, Tl::NR / 2,
                                                kc, mr, nr, acc);
                        else
                            tile<T, Tl::NR>(c, ldc, a, Bp + (jr - direct) * kc, Tl::NR, kc, mr,
                                            nr, acc);
                    }
                }
            }
        }
    }
}

// A GEMM split over nt threads by rows of C packs all of B in every thread,
// by columns all of A; and whole tiles split unevenly. Whichever costs
// less by a count of the work, per thread: the tiles' (a unit is one row
// of a whole tile for one depth step, two FMAs; a one-vector tile's row is
// half a unit) plus the values its packs move (a transposing pack 4 values
// a unit, a copying one 16). For the seeds'
// (50, 8192) x (8192, 100), rows: 2 + 2 tiles of 14 rows and half the
// transpose of x each, where columns gave 2 + 1.5 tiles and all of x.
template <class T>
bool packed_gemm_split_rows(bool ta, bool tb, i64 M, i64 N, i64 K, int nt) {
    using Tl = Tile<T>;
    const double pack_a = ta ? 1.0 / 16 : 1.0 / 4, pack_b = tb ? 1.0 / 4 : 1.0 / 16;
    const auto panels = [](i64 n) {  // tile widths of n columns, in whole tiles
        const i64 whole = n / Tl::NR, rest = n % Tl::NR;
        return (double)whole + (rest == 0 ? 0.0 : rest <= Tl::NR / 2 ? 0.5 : 1.0);
    };
    const i64 row_tiles = (M + Tl::MR - 1) / Tl::MR, col_tiles = (N + Tl::NR - 1) / Tl::NR;
    const i64 rows = (row_tiles + nt - 1) / nt * Tl::MR;  // the busiest thread's share
    const i64 cols = (col_tiles + nt - 1) / nt * Tl::NR;
    const double by_rows = (double)((rows + Tl::MR - 1) / Tl::MR) * panels(N) * Tl::MR * K +
                           pack_a * (double)std::min(rows, M) * K + pack_b * (double)N * K;
    const double by_cols = (double)row_tiles * panels(std::min(cols, N)) * Tl::MR * K +
                           pack_a * (double)M * K + pack_b * (double)std::min(cols, N) * K;
    return by_rows <= by_cols;
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
template bool packed_gemm_split_rows<float>(bool, bool, i64, i64, i64, int);
template bool packed_gemm_split_rows<double>(bool, bool, i64, i64, i64, int);
template i64 packed_gemm_rows<float>();
template i64 packed_gemm_rows<double>();
template i64 packed_gemm_cols<float>();
template i64 packed_gemm_cols<double>();

}  // namespace nnc
