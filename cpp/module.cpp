// The nanobind module: build info, the thread and buffer-cache knobs, and one
// registration call per op family (the bind_<family>() at the end of each
// family's .cpp).
// No math lives here.
#include <nanobind/stl/string.h>

#include "bind.h"
#include "blas.h"

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
    m.def("set_gemm_kernel", [](const std::string& name) {
        if (name == "auto") set_gemm_kernel(GemmKernel::automatic);
        else if (name == "openblas") set_gemm_kernel(GemmKernel::openblas);
        else if (name == "nnc") set_gemm_kernel(GemmKernel::nnc);
        else fail_value("gemm kernel must be 'auto', 'openblas' or 'nnc', got '" + name + "'");
    }, nb::arg("name"),
       "Which GEMM kernel every op runs: 'auto' (the default), 'openblas' or 'nnc'");
    m.def("gemm_kernel", [] { return std::string(gemm_kernel_name()); },
          "The GEMM kernel ops run now: 'nnc' or 'openblas' (what 'auto' picks on this machine)");
    m.def("simd_isa", [] { return std::string(simd_isa()); });
    m.def("fma_splits_256bit", [] { return fma_splits_256bit(); },
          "Whether this CPU runs a 256-bit FMA as two 128-bit halves (Zen 1; the conv rules "
          "take it into account)");
    m.def("fma_splits_512bit", [] { return fma_splits_512bit(); },
          "Whether this CPU runs a 512-bit FMA on 256-bit units (Zen 4; the conv rules take "
          "it into account)");
    m.def("openmp_version", [] { return (int)_OPENMP; });
    m.def("set_buffer_cache", [](std::int64_t max_bytes) {
        if (max_bytes < 0) fail_value("max_bytes must be >= 0, got " + std::to_string(max_bytes));
        set_output_cache_limit((size_t)max_bytes);
    }, nb::arg("max_bytes"),
       "Most bytes of freed output buffers (of 1 MB and more) kept for reuse; 0 turns the "
       "cache off and frees what it holds");
    m.def("get_buffer_cache", [] {
        return nb::make_tuple((std::int64_t)output_cache_limit(), (std::int64_t)output_cache_held());
    }, "(limit, held): the output-buffer cache's limit and the bytes it holds, in bytes");
    m.attr("version") = NNC_VERSION;
    m.attr("compiler") = NNC_COMPILER;

    // One knob: OpenBLAS starts with the same count as OpenMP (OMP_NUM_THREADS or cores).
    set_threads(omp_get_max_threads());

    bind_affine(m);
    bind_activation(m);
    bind_conv(m);
    bind_pool(m);
    bind_batchnorm(m);
    bind_layernorm(m);
    bind_groupnorm(m);
    bind_dropout(m);
    bind_loss(m);
    bind_optim(m);
    bind_conv_nhwc(m);
    bind_pool_nhwc(m);
    bind_embedding(m);
    bind_roofline(m);
}
