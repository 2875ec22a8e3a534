// exp and expm1 written with plain arithmetic and bit casts only, so loops
// that call them under `#pragma omp simd` compile to SIMD code (glibc's
// vector exp is only used under -ffast-math, which nnc does not use).
//
// Method (as in fdlibm): x = n*ln2 + r with |r| <= ln2/2, where n*ln2 is
// subtracted in two parts so r is exact to working precision; then
// expm1(r) = r + r^2 * (1/2! + r/3! + ... ) by its Taylor series, truncated
// where the next term is below 0.1 ulp (r^13/13! for double, r^8/8! for
// float); finally exp(x) = 2^n * (1 + expm1(r)). Results are within a few ulp
// of the correctly rounded value over the whole range, subnormal results,
// overflow to inf, underflow to 0 and NaN propagation included.
//
// The functions are static inline so they inline into each NNC_CLONES
// caller and vectorize for that clone's ISA.
#pragma once
#include <cstdint>
#include <cstring>

namespace nnc {
namespace vm {

template <class T>
struct Bits;
template <>
struct Bits<double> {
    using U = std::uint64_t;
    static constexpr int mant = 52, bias = 1023;
    static constexpr double shifter = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer
    static constexpr double ln2_hi = 6.93147180369123816490e-01;  // trailing zero bits: n*ln2_hi is exact
    static constexpr double ln2_lo = 1.90821492927058770002e-10;
    static constexpr double lo = -746.0, hi = 710.0;  // exp is 0 / inf beyond
};
template <>
struct Bits<float> {
    using U = std::uint32_t;
    static constexpr int mant = 23, bias = 127;
    static constexpr float shifter = 12582912.0f;  // 1.5 * 2^23
    static constexpr float ln2_hi = 0.693359375f;
    static constexpr float ln2_lo = -2.12194440e-4f;
    static constexpr float lo = -104.0f, hi = 89.0f;
};

// 2^n for integer n in [-(bias-1), bias].
template <class T>
static inline __attribute__((always_inline)) T pow2i(std::int32_t n) {
    using U = typename Bits<T>::U;
    U u = (U)(std::uint32_t)(n + Bits<T>::bias) << Bits<T>::mant;
    T r;
    std::memcpy(&r, &u, sizeof r);
    return r;
}

// expm1(r) for |r| <= ln2/2 (Taylor series, see above).
static inline __attribute__((always_inline)) double expm1_reduced(double r) {
    double p = 1.0 / 6227020800.0;  // 1/13!
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    return r + (r * r) * p;
}
static inline __attribute__((always_inline)) float expm1_reduced(float r) {
    float p = 1.0f / 40320.0f;  // 1/8!
    p = p * r + 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    return r + (r * r) * p;
}

// x = n*ln2 + r. Adding 1.5 * 2^mant rounds x*log2(e) to the integer n and
// leaves n in the low bits of the sum, so n is read from the bits instead of
// by a float-to-int conversion (which could trap on NaN, and then GCC will
// not vectorize the loop). A NaN x gives a meaningless n and r = NaN.
template <class T>
static inline __attribute__((always_inline)) T reduce(T x, std::int32_t& n) {
    using B = Bits<T>;
    using U = typename Bits<T>::U;
    const T t = x * T(1.4426950408889634) + B::shifter;
    U tb, sb;
    T shifter = B::shifter;
    std::memcpy(&tb, &t, sizeof tb);
    std::memcpy(&sb, &shifter, sizeof sb);
    n = (std::int32_t)((std::uint32_t)tb - (std::uint32_t)sb);
    const T nf = t - B::shifter;
    return (x - nf * B::ln2_hi) - nf * B::ln2_lo;
}

// exp(x) for every x (NaN in, NaN out).
template <class T>
static inline __attribute__((always_inline)) T exp(T x) {
    using B = Bits<T>;
    x = x < B::lo ? B::lo : x;  // written so that NaN stays NaN
    x = x > B::hi ? B::hi : x;
    std::int32_t n;
    T r = reduce(x, n);
    // 2^n in two factors: n spans the subnormal and overflow ends, where a
    // single 2^n is not representable.
    std::int32_t n1 = n >> 1;
    return ((T(1) + expm1_reduced(r)) * pow2i<T>(n1)) * pow2i<T>(n - n1);
}

// expm1(x) for |x| <= 40 (or NaN): (2^n - 1) + 2^n * expm1(r) has no
// cancellation, so small results keep their relative accuracy.
template <class T>
static inline __attribute__((always_inline)) T expm1_bounded(T x) {
    std::int32_t n;
    T r = reduce(x, n);
    T s = pow2i<T>(n);
    return (s - T(1)) + s * expm1_reduced(r);
}

}  // namespace vm
}  // namespace nnc
