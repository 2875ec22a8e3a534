// Inverted dropout whose mask comes from NumPy's legacy global generator:
// the same MT19937 stream `np.random.rand(*x.shape)` would draw, so the
// native mask is bit-identical to the reference's for the same np.random
// state, and the state is left where the reference leaves it.
#include <algorithm>
#include <cstdint>

#include "bind.h"

namespace nnc {
namespace {

constexpr int kMTWords = 624;  // MT19937 state size (np.random.get_state()[1])
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

// Draws u[i] as np.random.random_sample does (53-bit doubles, two 32-bit
// words each) from the MT19937 state (key, pos) and, in the same pass,
// keep[i] = u[i] < p, out[i] = x[i] * (keep[i] ? T(1/p) : 0). key and pos
// are advanced exactly as NumPy advances them. pos must be in [0, 624].
template <class T>
NNC_CLONES void dropout_forward_train(T* out, std::uint8_t* keep, std::uint32_t* key, int* pos,
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

// Fills u[0..n) with the doubles np.random.random_sample would return and
// advances (key, pos); for tests and benchmarks of the generator alone.
NNC_CLONES void mt19937_random_sample(double* u, std::uint32_t* key, int* pos, i64 n) {
    mt_draws(
        key, pos, n,
        [&](i64 i0, const std::uint32_t* words, i64 k) __attribute__((always_inline)) {
            double* ui = u + i0;
#pragma omp simd
            for (i64 j = 0; j < k; j++) ui[j] = to_double(temper(words[2 * j]), temper(words[2 * j + 1]));
        },
        [&](i64 i, std::uint32_t w0, std::uint32_t w1) __attribute__((always_inline)) { u[i] = to_double(w0, w1); });
}

// dx = dout * (keep ? T(1/p) : 0), the forward pass's mask. Multiplying by
// 0 (not selecting 0) keeps the reference's dout * mask results bit for bit,
// signed zeros and NaN included.
template <class T>
NNC_CLONES void dropout_backward(T* dx, const T* dout, const std::uint8_t* keep, double p, i64 n) {
    const T scale = (T)(1.0 / p);
#pragma omp parallel for simd num_threads(threads()) schedule(static) if (parallel: n > (1 << 15))
    for (i64 i = 0; i < n; i++) dx[i] = dout[i] * (keep[i] ? scale : T(0));
}

// The MT19937 key as np.random.get_state()[1] returns it: uint32[624], and
// pos in [0, 624], the next word to read.
void check_mt_state(const InOut& key, int pos) {
    check_dtype<std::uint32_t>(key, "key");
    check_shape(key, "key", {kMTWords});
    if (pos < 0 || pos > kMTWords) fail_value("pos must be in [0, 624], got " + std::to_string(pos));
}

}  // namespace

void bind_dropout(nb::module_& m) {
    // The GIL stays held: the caller reads np.random's state before and
    // writes it back after, and no other Python thread may draw from the
    // global generator in between (NumPy would serialize those draws).
    m.def("dropout_forward_train", [](In x, double p, InOut key, int pos) {
        const DType dt = float_dtype({{"x", x.dtype()}});
        check_mt_state(key, pos);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_like<T>(x);
            auto keep = new_like<std::uint8_t>(x);
            dropout_forward_train(out.data(), keep.data(), mut<std::uint32_t>(key), &pos,
                                  ptr<T>(x), p, (i64)x.size());
            return nb::make_tuple(out, keep, pos);
        });
    }, nb::arg("x"), nb::arg("p"), nb::arg("key").noconvert(), nb::arg("pos"),
       "(out, keep, pos): inverted dropout with the mask np.random.rand(*x.shape) < p would give "
       "for the MT19937 state (key, pos); key is advanced in place, the new pos is returned");

    m.def("dropout_backward", [](In dout, In keep, double p) {
        const DType dt = float_dtype({{"dout", dout.dtype()}});
        check_dtype<std::uint8_t>(keep, "keep");
        check_same_shape(dout, "dout", keep, "keep");
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dx = new_like<T>(dout);
            {
                nb::gil_scoped_release nogil;
                dropout_backward(dx.data(), ptr<T>(dout), ptr<std::uint8_t>(keep), p,
                                 (i64)dout.size());
            }
            return nb::object(nb::cast(dx));
        });
    }, nb::arg("dout"), nb::arg("keep"), nb::arg("p"), "dx = dout * keep / p");

    m.def("mt19937_random_sample", [](InOut key, int pos, std::int64_t n) {
        check_mt_state(key, pos);
        if (n < 0) fail_value("n must be >= 0, got " + std::to_string(n));
        auto u = new_array<double>({n});
        mt19937_random_sample(u.data(), mut<std::uint32_t>(key), &pos, n);
        return nb::make_tuple(u, pos);
    }, nb::arg("key").noconvert(), nb::arg("pos"), nb::arg("n"),
       "(u, pos): the n doubles np.random.random_sample(n) draws from MT19937 state (key, pos); "
       "key is advanced in place");
}

}  // namespace nnc
