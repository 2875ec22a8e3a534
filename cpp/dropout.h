// Inverted dropout whose mask comes from NumPy's legacy global generator:
// the same MT19937 stream `np.random.rand(*x.shape)` would draw, so the
// native mask is bit-identical to the reference's for the same np.random
// state, and the state is left where the reference leaves it.
#pragma once
#include <cstdint>

#include "common.h"

namespace nnc {

constexpr int kMTWords = 624;  // MT19937 state size (np.random.get_state()[1])

// Draws u[i] as np.random.random_sample does (53-bit doubles, two 32-bit
// words each) from the MT19937 state (key, pos) and, in the same pass,
// keep[i] = u[i] < p, out[i] = x[i] * (keep[i] ? T(1/p) : 0). key and pos
// are advanced exactly as NumPy advances them. pos must be in [0, 624].
template <class T>
void dropout_forward_train(T* out, std::uint8_t* keep, std::uint32_t* key, int* pos, const T* x,
                           double p, i64 n);

// dx = dout * (keep ? T(1/p) : 0), the forward pass's mask
template <class T>
void dropout_backward(T* dx, const T* dout, const std::uint8_t* keep, double p, i64 n);

// Fills u[0..n) with the doubles np.random.random_sample would return and
// advances (key, pos); for tests and benchmarks of the generator alone.
void mt19937_random_sample(double* u, std::uint32_t* key, int* pos, i64 n);

}  // namespace nnc
