#include "dropout.h"

#include <algorithm>

namespace nnc {
namespace {

constexpr int kMTShift = 397;
constexpr std::uint32_t kMatrixA = 0x9908b0dfU, kUpper = 0x80000000U, kLower = 0x7fffffffU;

// The standard MT19937 block regeneration, as in NumPy's mt19937_gen. The
// first loop's iterations are independent and the second one reads words
// 227 back, so both vectorize.
NNC_CLONES void mt_regenerate(std::uint32_t* mt) {
    int i = 0;
#pragma omp simd
    for (i = 0; i < kMTWords - kMTShift; i++) {
        std::uint32_t y = (mt[i] & kUpper) | (mt[i + 1] & kLower);
        mt[i] = mt[i + kMTShift] ^ (y >> 1) ^ ((0U - (y & 1U)) & kMatrixA);
    }
    for (i = kMTWords - kMTShift; i < kMTWords - 1; i++) {
        std::uint32_t y = (mt[i] & kUpper) | (mt[i + 1] & kLower);
        mt[i] = mt[i + kMTShift - kMTWords] ^ (y >> 1) ^ ((0U - (y & 1U)) & kMatrixA);
    }
    std::uint32_t y = (mt[kMTWords - 1] & kUpper) | (mt[0] & kLower);
    mt[kMTWords - 1] = mt[kMTShift - 1] ^ (y >> 1) ^ ((0U - (y & 1U)) & kMatrixA);
}

static inline __attribute__((always_inline)) std::uint32_t temper(std::uint32_t y) {
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= y >> 18;
    return y;
}

// NumPy's mt19937_next_double: 27 + 26 random bits. a * 2^26 + b < 2^53 is an
// exact integer in double, so this is exact whatever the compiler contracts.
static inline __attribute__((always_inline)) double to_double(std::uint32_t w0, std::uint32_t w1) {
    return ((double)(std::int32_t)(w0 >> 5) * 67108864.0 + (double)(std::int32_t)(w1 >> 6)) *
           (1.0 / 9007199254740992.0);
}

// Walks the word stream two words per draw. Runs of draws that lie inside
// the current 624-word block go to `body` (a vectorizable loop over
// words[2j], words[2j+1]); a draw whose two words straddle a regeneration
// (only when pos is odd) goes to `single`.
template <class Body, class Single>
static inline __attribute__((always_inline)) void mt_draws(std::uint32_t* key, int* pos, i64 n,
                                                           Body body, Single single) {
    int at = *pos;
    i64 i = 0;
    while (i < n) {
        if (at == kMTWords) {
            mt_regenerate(key);
            at = 0;
        }
        if (at == kMTWords - 1) {
            std::uint32_t w0 = temper(key[kMTWords - 1]);
            mt_regenerate(key);
            std::uint32_t w1 = temper(key[0]);
            at = 1;
            single(i, w0, w1);
            i++;
            continue;
        }
        const i64 k = std::min<i64>((kMTWords - at) / 2, n - i);
        body(i, key + at, k);
        at += (int)(2 * k);
        i += k;
    }
    *pos = at;
}

template <class T>
NNC_CLONES void dropout_forward_impl(T* out, std::uint8_t* keep, std::uint32_t* key, int* pos,
                                     const T* x, double p, i64 n) {
    const T scale = (T)(1.0 / p);  // the reference's mask value (True / p) cast to x.dtype
    mt_draws(
        key, pos, n,
        [&](i64 i0, const std::uint32_t* words, i64 k) __attribute__((always_inline)) {
            std::uint8_t* kp = keep + i0;
            T* o = out + i0;
            const T* xi = x + i0;
#pragma omp simd
            for (i64 j = 0; j < k; j++) {
                const bool kept = to_double(temper(words[2 * j]), temper(words[2 * j + 1])) < p;
                kp[j] = kept;
                o[j] = xi[j] * (kept ? scale : T(0));
            }
        },
        [&](i64 i, std::uint32_t w0, std::uint32_t w1) __attribute__((always_inline)) {
            const bool kept = to_double(w0, w1) < p;
            keep[i] = kept;
            out[i] = x[i] * (kept ? scale : T(0));
        });
}

NNC_CLONES void random_sample_impl(double* u, std::uint32_t* key, int* pos, i64 n) {
    mt_draws(
        key, pos, n,
        [&](i64 i0, const std::uint32_t* words, i64 k) __attribute__((always_inline)) {
            double* ui = u + i0;
#pragma omp simd
            for (i64 j = 0; j < k; j++) ui[j] = to_double(temper(words[2 * j]), temper(words[2 * j + 1]));
        },
        [&](i64 i, std::uint32_t w0, std::uint32_t w1) __attribute__((always_inline)) { u[i] = to_double(w0, w1); });
}

// Multiplying by 0 (not selecting 0) keeps the reference's dout * mask
// results bit for bit, signed zeros and NaN included.
template <class T>
NNC_CLONES void dropout_backward_impl(T* dx, const T* dout, const std::uint8_t* keep, double p,
                                      i64 n) {
    const T scale = (T)(1.0 / p);
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (n > (1 << 15))
    for (i64 i = 0; i < n; i++) dx[i] = dout[i] * (keep[i] ? scale : T(0));
}

}  // namespace

template <class T>
void dropout_forward_train(T* out, std::uint8_t* keep, std::uint32_t* key, int* pos, const T* x,
                           double p, i64 n) {
    dropout_forward_impl(out, keep, key, pos, x, p, n);
}

template <class T>
void dropout_backward(T* dx, const T* dout, const std::uint8_t* keep, double p, i64 n) {
    dropout_backward_impl(dx, dout, keep, p, n);
}

void mt19937_random_sample(double* u, std::uint32_t* key, int* pos, i64 n) {
    random_sample_impl(u, key, pos, n);
}

#define NNC_INSTANTIATE(T)                                                                    \
    template void dropout_forward_train<T>(T*, std::uint8_t*, std::uint32_t*, int*, const T*, \
                                           double, i64);                                      \
    template void dropout_backward<T>(T*, const T*, const std::uint8_t*, double, i64);
NNC_INSTANTIATE(float)
NNC_INSTANTIATE(double)

}  // namespace nnc
