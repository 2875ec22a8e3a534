// Embedding lookup and its gradient, for the M = N*T tokens of idx (N, T)
// into W (V, D).
//
// The backward pass is a scatter-add, dW[v] = sum of dout[m] over the tokens
// m with idx[m] == v. Every row of dW is summed in token order, by exactly
// one thread, starting from +0.0: the result is bit-identical to the numpy
// reference (np.add.at, which adds in token order too) and the same for any
// thread count; no atomics. Two ways to get there:
// - serial: zero dW, then add the token rows in order (small problems, where
//   a parallel region costs more than the work);
// - by row: a counting sort lists the tokens of each row (in token order),
//   then threads take rows and write each one once, its sum or zeros. dW is
//   written exactly once and never read, which matters at (50000, 256): a
//   zero fill followed by read-modify-write adds would move dW three times.
// Measured (best of 15-3000 runs, float32, on the project's 2-core machine
// while other sessions loaded it): (200, 3) -> (250, 32) serial 3.2 us,
// by row 5.8 (1 thread) / 8.1 us (2), rows split between threads with each
// scanning all tokens 7.6 us, blocks of rows 8.4 / 10.9 us: serial it is.
// (4096, 32) -> (50000, 256): every variant 22-35 ms, within the noise of a
// shared memory bus; by row is kept because it moves the least memory
// (about 240 MB against 450 MB for zero-then-add) and its dynamic row
// chunks balance skewed (Zipf) word counts, where a fixed split of the rows
// between threads would leave the frequent words to one thread.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "bind.h"

namespace nnc {
namespace {

// Below this many copied or added values a parallel region costs more than it saves.
constexpr i64 kParallelMin = 1 << 16;

// out[m, :] = W[idx[m], :]
template <class T>
void embedding_forward(T* out, const T* W, const i64* idx, i64 M, i64 D) {
#pragma omp parallel for num_threads(threads()) schedule(static) if (M * D > kParallelMin)
    for (i64 m = 0; m < M; m++) std::memcpy(out + m * D, W + idx[m] * D, sizeof(T) * (size_t)D);
}

template <class T>
NNC_CLONES void add_row(T* __restrict r, const T* __restrict g, i64 D) {
    for (i64 d = 0; d < D; d++) r[d] += g[d];
}

template <class T>
void embedding_backward_serial(T* dW, const T* dout, const i64* idx, i64 M, i64 V, i64 D) {
    std::memset(dW, 0, sizeof(T) * (size_t)(V * D));
    for (i64 m = 0; m < M; m++) add_row(dW + idx[m] * D, dout + m * D, D);
}

// start[v] .. start[v + 1] index order[], which holds row v's tokens in
// token order (a stable counting sort of the tokens by row).
void tokens_by_row(i64* start, i64* order, const i64* idx, i64 M, i64 V) {
    std::memset(start, 0, sizeof(i64) * (size_t)(V + 1));
    for (i64 m = 0; m < M; m++) start[idx[m] + 1]++;
    for (i64 v = 0; v < V; v++) start[v + 1] += start[v];
    std::vector<i64> next(start, start + V);
    for (i64 m = 0; m < M; m++) order[next[idx[m]]++] = m;
}

template <class T>
void embedding_backward_by_row(T* dW, const T* dout, const i64* start, const i64* order, i64 V,
                               i64 D) {
    // Dynamic chunks of rows: the token counts of rows can be very uneven
    // (word frequencies), and a row's sum does not depend on who computes it.
#pragma omp parallel for num_threads(threads()) schedule(dynamic, 64)
    for (i64 v = 0; v < V; v++) {
        T* r = dW + v * D;
        std::memset(r, 0, sizeof(T) * (size_t)D);
        for (i64 k = start[v]; k < start[v + 1]; k++) add_row(r, dout + order[k] * D, D);
    }
}

// dW[v, :] = sum over m with idx[m] == v of dout[m, :], each row in token order
template <class T>
void embedding_backward(T* dW, const T* dout, const i64* idx, i64 M, i64 V, i64 D) {
    if (M * D <= kParallelMin || threads() == 1) {
        embedding_backward_serial(dW, dout, idx, M, V, D);
        return;
    }
    std::vector<i64> start((size_t)V + 1), order((size_t)M);
    tokens_by_row(start.data(), order.data(), idx, M, V);
    embedding_backward_by_row(dW, dout, start.data(), order.data(), V, D);
}

// idx: int64 (N, T) with every value in [0, V), since each one indexes a
// row of W or dW (IndexError, as NumPy's fancy indexing raises).
void check_indices(const In& idx, i64 V) {
    check_dtype<std::int64_t>(idx, "idx");
    check_ndim(idx, "idx", 2);
    const i64* p = ptr<i64>(idx);
    const i64 M = (i64)idx.size();
    for (i64 m = 0; m < M; m++)
        if (p[m] < 0 || p[m] >= V)
            throw nb::index_error(("idx holds " + std::to_string(p[m]) + " (flat position " +
                                   std::to_string(m) + "), out of range for V = " +
                                   std::to_string(V) + " rows")
                                      .c_str());
}

}  // namespace

void bind_embedding(nb::module_& m) {
    m.def("embedding_forward", [](In idx, In W) {
        const DType dt = float_dtype({{"W", W.dtype()}});
        check_ndim(W, "W", 2);
        const i64 V = (i64)W.shape(0), D = (i64)W.shape(1);
        check_indices(idx, V);
        const i64 N = idx.shape(0), Tn = idx.shape(1);
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto out = new_array<T>({N, Tn, D});
            {
                nb::gil_scoped_release nogil;
                embedding_forward<T>(out.data(), ptr<T>(W), ptr<i64>(idx), N * Tn, D);
            }
            return nb::object(nb::cast(out));
        });
    }, nb::arg("idx"), nb::arg("W"),
       "out[n, t, :] = W[idx[n, t], :] for int64 idx (N, T) in [0, V) and W (V, D)");

    m.def("embedding_backward", [](In dout, In idx, i64 V) {
        const DType dt = float_dtype({{"dout", dout.dtype()}});
        check_ndim(dout, "dout", 3);
        if (V < 0) fail_value("V must be >= 0, got " + std::to_string(V));
        check_indices(idx, V);
        const i64 N = idx.shape(0), Tn = idx.shape(1), D = dout.shape(2);
        check_shape(dout, "dout", {N, Tn, D});
        return dispatch(dt, [&](auto t) {
            using T = decltype(t);
            auto dW = new_array<T>({V, D});
            {
                nb::gil_scoped_release nogil;
                embedding_backward<T>(dW.data(), ptr<T>(dout), ptr<i64>(idx), N * Tn, V, D);
            }
            return nb::object(nb::cast(dW));
        });
    }, nb::arg("dout"), nb::arg("idx"), nb::arg("V"),
       "dW (V, D): the scatter-add of dout (N, T, D) into the rows idx (N, T), each row summed "
       "in token order (deterministic, the same for any thread count)");
}

}  // namespace nnc
