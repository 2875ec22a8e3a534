// The nanobind module: build info, the thread knob, and one registration
// call per op family (bind_*.cpp). No math lives here.
#include <nanobind/stl/string.h>

#include "bind.h"
#include "blas.h"

namespace nnc {

std::string dtype_name(nb::dlpack::dtype dt) {
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

DType same_dtype(std::initializer_list<Named> arrays) {
    const Named* first = nullptr;
    DType d = DType::f32;
    for (const Named& a : arrays) {
        DType e;
        if (a.dt == nb::dtype<float>()) e = DType::f32;
        else if (a.dt == nb::dtype<double>()) e = DType::f64;
        else fail_type(std::string(a.name) + " must be float32 or float64, got " + dtype_name(a.dt));
        if (!first) {
            first = &a;
            d = e;
        } else if (e != d) {
            fail_type(std::string(a.name) + " has dtype " + dtype_name(a.dt) + " but " +
                      first->name + " has dtype " + dtype_name(first->dt) +
                      "; all arrays must share one dtype");
        }
    }
    return d;
}

}  // namespace nnc

NB_MODULE(_nnc, m) {
    using namespace nnc;
    m.doc() = "nnc native kernels (OpenMP + SIMD + OpenBLAS)";

    m.def("set_num_threads", [](int n) {
        if (n < 1) fail_value("num_threads must be >= 1, got " + std::to_string(n));
        set_threads(n);
    }, nb::arg("n"));
    m.def("get_num_threads", &threads);
    m.def("blas_config", [] { return std::string(blas_config()); });
    m.def("blas_corename", [] { return std::string(blas_corename()); });
    m.def("simd_isa", [] { return std::string(simd_isa()); });
    m.def("openmp_version", [] { return (int)_OPENMP; });
    m.attr("version") = NNC_VERSION;
    m.attr("compiler") = NNC_COMPILER;

    // One knob: OpenBLAS starts with the same count as OpenMP (OMP_NUM_THREADS or cores).
    set_threads(omp_get_max_threads());

    bind_affine(m);
    bind_activation(m);
    bind_conv(m);
    bind_pool(m);
    bind_norm(m);
    bind_dropout(m);
    bind_loss(m);
    bind_optim(m);
    bind_embedding(m);
    bind_bce(m);
    bind_activation_ext(m);
    bind_conv_nhwc(m);
    bind_pool_nhwc(m);
    bind_affine_weights(m);
}
