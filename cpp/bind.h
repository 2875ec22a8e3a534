// Helpers for the nanobind boundary: dtype checks, shape checks that raise
// TypeError/ValueError with the offending values, and output allocation.
// Bindings validate everything here; kernels trust their callers.
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common.h"

namespace nb = nanobind;

namespace nnc {

// Read-only input of any dtype: nanobind copies a non-contiguous array once
// into C order; the dtype is checked by us so that nothing is converted
// behind the user's back.
using In = nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu>;
// Arrays updated in place: the binding marks them .noconvert() so a wrong
// dtype or layout raises instead of silently updating a copy.
using InOut = nb::ndarray<nb::c_contig, nb::device::cpu>;
template <class T>
using Out = nb::ndarray<nb::numpy, T, nb::c_contig>;

enum class DType { f32, f64 };

template <class A>
inline std::string shape_of(const A& a) {
    std::string s = "(";
    for (size_t i = 0; i < a.ndim(); i++) {
        s += std::to_string(a.shape(i));
        if (a.ndim() == 1 || i + 1 < a.ndim()) s += i + 1 < a.ndim() ? ", " : ",";
    }
    return s + ")";
}

std::string dtype_name(nb::dlpack::dtype dt);

// float32/float64 or TypeError naming the argument.
template <class A>
DType float_dtype(const A& a, const char* name) {
    auto dt = a.dtype();
    if (dt == nb::dtype<float>()) return DType::f32;
    if (dt == nb::dtype<double>()) return DType::f64;
    throw nb::type_error((std::string(name) + " must be float32 or float64, got " +
                          dtype_name(dt)).c_str());
}

struct Named {
    const char* name;
    nb::dlpack::dtype dt;
};
// All arrays share one float dtype (float32 or float64), or TypeError naming
// the first one that differs: same_dtype({{"x", x.dtype()}, {"w", w.dtype()}}).
DType same_dtype(std::initializer_list<Named> arrays);

inline void fail_value(const std::string& msg) { throw nb::value_error(msg.c_str()); }
inline void fail_type(const std::string& msg) { throw nb::type_error(msg.c_str()); }

template <class A>
void check_ndim(const A& a, const char* name, size_t ndim) {
    if (a.ndim() != ndim)
        fail_value(std::string(name) + " must be " + std::to_string(ndim) + "-D, got shape " +
                   shape_of(a));
}

// OpenBLAS takes 32-bit dimensions.
inline void check_blas_dim(i64 v, const char* what) {
    if (v > INT_MAX)
        fail_value(std::string(what) + " = " + std::to_string(v) +
                   " exceeds OpenBLAS's 32-bit index limit");
}

// Memory for a new output array of `bytes` bytes, released with
// release_output(p, bytes) when the array dies (outputs.cpp). Outputs of
// 1 MB and more are kept in a small cache when they die and handed to the
// next output of the same size: glibc returns freed memory at the top of
// its heap to the OS once it exceeds a threshold (twice the largest block
// freed so far), so a forward and a backward pass that each allocate 16 MB
// otherwise fault in 8,000 fresh 4 KB pages on every call, which costs more
// than their kernels. Fresh blocks of 32 MB and more (which glibc always
// maps anew) are 2 MB aligned and advised as transparent huge pages.
void* alloc_output(size_t bytes);
void release_output(void* p, size_t bytes) noexcept;

template <class T>
Out<T> new_array(size_t ndim, const size_t* shape) {
    // A byte count that wrapped around would allocate a small block for the
    // kernel to write far past (mt19937_random_sample with n = 2**61 + 1 did):
    // refuse sizes no array can have, as NumPy does, with a ValueError.
    size_t n = 1, bytes = 0;
    bool wraps = false;
    for (size_t i = 0; i < ndim; i++) wraps |= __builtin_mul_overflow(n, shape[i], &n);
    wraps |= __builtin_mul_overflow(n, sizeof(T), &bytes);
    if (wraps || bytes > (size_t)PTRDIFF_MAX) {
        std::string s;
        for (size_t i = 0; i < ndim; i++) s += (i ? ", " : "") + std::to_string(shape[i]);
        fail_value("an output of shape (" + s + (ndim == 1 ? ",)" : ")") +
                   " is too large for any array");
    }
    struct Block {
        void* data;
        size_t bytes;
    };
    auto* block = new Block{nullptr, bytes};
    try {
        block->data = alloc_output(block->bytes);
    } catch (...) {
        delete block;
        throw;
    }
    nb::capsule owner(block, [](void* b) noexcept {
        auto* blk = static_cast<Block*>(b);
        release_output(blk->data, blk->bytes);
        delete blk;
    });
    return Out<T>(static_cast<T*>(block->data), ndim, shape, owner);
}

template <class T>
Out<T> new_array(std::initializer_list<size_t> shape) {
    return new_array<T>(shape.size(), shape.begin());
}

template <class T>
Out<T> new_array(const std::vector<size_t>& shape) {
    return new_array<T>(shape.size(), shape.data());
}

template <class A>
std::vector<size_t> shape_vec(const A& a) {
    std::vector<size_t> s(a.ndim());
    for (size_t i = 0; i < a.ndim(); i++) s[i] = a.shape(i);
    return s;
}

template <class A, class B>
bool same_shape(const A& a, const B& b) {
    return shape_vec(a) == shape_vec(b);
}

// A new output array of a's shape.
template <class T, class A>
Out<T> new_like(const A& a) {
    return new_array<T>(shape_vec(a));
}

template <class T, class A>
const T* ptr(const A& a) {
    return static_cast<const T*>(a.data());
}
template <class T>
T* mut(InOut& a) {
    return static_cast<T*>(a.data());
}

// Calls f(float{}) or f(double{}) for the dtype, so each binding is written
// once and instantiated for both.
template <class F>
auto dispatch(DType dt, F&& f) {
    if (dt == DType::f32) return f(float{});
    return f(double{});
}

// One registration function per op family, called from module.cpp.
void bind_affine(nb::module_& m);
void bind_activation(nb::module_& m);
void bind_conv(nb::module_& m);
void bind_pool(nb::module_& m);
void bind_norm(nb::module_& m);
void bind_dropout(nb::module_& m);
void bind_loss(nb::module_& m);
void bind_optim(nb::module_& m);
void bind_embedding(nb::module_& m);
void bind_bce(nb::module_& m);
void bind_activation_ext(nb::module_& m);  // gelu, leaky_relu
void bind_conv_nhwc(nb::module_& m);
void bind_pool_nhwc(nb::module_& m);
void bind_affine_weights(nb::module_& m);

}  // namespace nnc
