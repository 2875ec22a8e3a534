// Helpers for the nanobind boundary, shared by every family's bind_<family>():
// argument checks, output allocation, and the float/double dispatch.
//
// Policy: a binding checks only what keeps memory safe when nnc._nnc is
// called directly: dtypes, ndim and contiguity (TypeError for dtype and
// layout), and the sizes that index buffers, i.e. arrays read or written
// together agree in shape, sizes stay within what the kernels, OpenBLAS
// (32-bit) and int32 argmax can index, and index arrays (labels, argmax)
// lie in range (ValueError). Messages are short and generic. The public
// Python layer owns user-facing validation: hyper-parameter semantics (eps,
// momentum, p, learning rates, modes, conv and pool tiling) and friendly
// messages; tests of those go through it. Kernels trust their callers.
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "common.h"
#include "outputs.h"

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

[[noreturn]] inline void fail_value(const std::string& msg) { throw nb::value_error(msg.c_str()); }
[[noreturn]] inline void fail_type(const std::string& msg) { throw nb::type_error(msg.c_str()); }

inline std::string shape_str(const std::vector<i64>& s) {
    std::string r = "(";
    for (size_t i = 0; i < s.size(); i++)
        r += std::to_string(s[i]) + (i + 1 < s.size() ? ", " : s.size() == 1 ? "," : "");
    return r + ")";
}

template <class A>
std::vector<i64> shape_of(const A& a) {
    std::vector<i64> s(a.ndim());
    for (size_t i = 0; i < a.ndim(); i++) s[i] = (i64)a.shape(i);
    return s;
}

inline std::string dtype_name(nb::dlpack::dtype dt) {
    const char* kind = "?";
    switch ((nb::dlpack::dtype_code)dt.code) {
        case nb::dlpack::dtype_code::Int: kind = "int"; break;
        case nb::dlpack::dtype_code::UInt: kind = "uint"; break;
        case nb::dlpack::dtype_code::Float: kind = "float"; break;
        case nb::dlpack::dtype_code::Bool: return "bool";
        case nb::dlpack::dtype_code::Complex: kind = "complex"; break;
        default: break;
    }
    return std::string(kind) + std::to_string(dt.bits);
}

struct Named {
    const char* name;
    nb::dlpack::dtype dt;
};

// The one float dtype (float32 or float64) all the arrays share, else
// TypeError naming the first that is not a float or differs from the first:
// float_dtype({{"x", x.dtype()}, {"w", w.dtype()}}).
inline DType float_dtype(std::initializer_list<Named> arrays) {
    const Named* first = nullptr;
    DType d = DType::f32;
    for (const Named& a : arrays) {
        DType e;
        if (a.dt == nb::dtype<float>()) e = DType::f32;
        else if (a.dt == nb::dtype<double>()) e = DType::f64;
        else fail_type(std::string(a.name) + " must be float32 or float64, got " + dtype_name(a.dt));
        if (!first) first = &a, d = e;
        else if (e != d)
            fail_type(std::string(a.name) + " has dtype " + dtype_name(a.dt) + " but " +
                      first->name + " has dtype " + dtype_name(first->dt));
    }
    return d;
}

// a has exactly dtype E (int32 argmax, uint8 mask, float64 statistics, ...).
template <class E, class A>
void check_dtype(const A& a, const char* name) {
    if (a.dtype() != nb::dtype<E>())
        fail_type(std::string(name) + " must be " + dtype_name(nb::dtype<E>()) + ", got " +
                  dtype_name(a.dtype()));
}

template <class A>
void check_ndim(const A& a, const char* name, size_t ndim) {
    if (a.ndim() != ndim)
        fail_value(std::string(name) + " must be " + std::to_string(ndim) + "-D, got shape " +
                   shape_str(shape_of(a)));
}

// a has exactly the shape `want`.
template <class A>
void check_shape(const A& a, const char* name, const std::vector<i64>& want) {
    if (shape_of(a) != want)
        fail_value(std::string(name) + " has shape " + shape_str(shape_of(a)) + ", expected " +
                   shape_str(want));
}

// a and b (read or written together element by element) have one shape.
template <class A, class B>
void check_same_shape(const A& a, const char* name_a, const B& b, const char* name_b) {
    if (shape_of(a) != shape_of(b))
        fail_value(std::string(name_a) + " has shape " + shape_str(shape_of(a)) + " but " +
                   name_b + " has shape " + shape_str(shape_of(b)));
}

// An extent the kernels need non-empty (they divide by it or hand it to
// OpenBLAS as a leading dimension).
inline void check_nonempty(i64 n, const char* name, const char* what) {
    if (n == 0) fail_value(std::string(name) + " " + what);
}

// OpenBLAS takes 32-bit dimensions.
inline void check_blas_dim(i64 v, const char* what) {
    if (v > INT_MAX)
        fail_value(std::string(what) + " = " + std::to_string(v) +
                   " exceeds OpenBLAS's 32-bit index limit");
}

// The conv bindings' algo argument: 0 auto, 1 im2col, 2 winograd, 3 direct.
inline ConvAlgo conv_algo_arg(int algo) {
    if (algo < 0 || algo > 3)
        fail_value("algo must be 0 (auto), 1 (im2col), 2 (winograd) or 3 (direct), got " +
                   std::to_string(algo));
    return static_cast<ConvAlgo>(algo);
}

// (forward, dx, dw) of the conv_paths bindings: each "direct", "winograd" or
// "im2col", the direct kernel first.
inline nb::tuple conv_path_names(bool fwd_direct, bool fwd_wino, bool dx_direct, bool bwd_wino,
                                 bool dw_direct) {
    const auto name = [](bool direct, bool wino) {
        return direct ? "direct" : wino ? "winograd" : "im2col";
    };
    return nb::make_tuple(name(fwd_direct, fwd_wino), name(dx_direct, bwd_wino),
                          name(dw_direct, bwd_wino));
}

// A new output array (memory from alloc_output, given back when it dies).
// A byte count that wrapped around would allocate a small block for the
// kernel to write far past (mt19937_random_sample with n = 2**61 + 1 did):
// sizes no array can have are refused, as NumPy refuses them.
template <class T>
Out<T> new_array(const std::vector<size_t>& shape) {
    size_t n = 1, bytes = 0;
    bool wraps = false;
    for (size_t s : shape) wraps |= __builtin_mul_overflow(n, s, &n);
    wraps |= __builtin_mul_overflow(n, sizeof(T), &bytes);
    if (wraps || bytes > (size_t)PTRDIFF_MAX) {
        std::string s;
        for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
        fail_value("an output of shape (" + s + (shape.size() == 1 ? ",)" : ")") +
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
    return Out<T>(static_cast<T*>(block->data), shape.size(), shape.data(), owner);
}

template <class T>
Out<T> new_array(std::initializer_list<i64> shape) {
    std::vector<size_t> s;
    for (i64 v : shape) s.push_back((size_t)v);
    return new_array<T>(s);
}

// A new output array of a's shape.
template <class T, class A>
Out<T> new_like(const A& a) {
    std::vector<size_t> s(a.ndim());
    for (size_t i = 0; i < a.ndim(); i++) s[i] = a.shape(i);
    return new_array<T>(s);
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

// One registration function per op family, each at the end of its .cpp,
// called from module.cpp.
void bind_affine(nb::module_& m);
void bind_activation(nb::module_& m);
void bind_conv(nb::module_& m);
void bind_pool(nb::module_& m);
void bind_batchnorm(nb::module_& m);
void bind_layernorm(nb::module_& m);
void bind_groupnorm(nb::module_& m);
void bind_dropout(nb::module_& m);
void bind_loss(nb::module_& m);
void bind_optim(nb::module_& m);
void bind_conv_nhwc(nb::module_& m);
void bind_pool_nhwc(nb::module_& m);   // in pool.cpp
void bind_embedding(nb::module_& m);
void bind_roofline(nb::module_& m);   // microbenchmarks, not ops

}  // namespace nnc
