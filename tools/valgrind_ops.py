"""The workload tools/valgrind.sh runs under memcheck: every native op once
per dtype (the op registry of nnc.bench.suite on a shape with tails, plus the
ops it does not cover and both conv paths), each checked against the NumPy
reference, then one Solver epoch on tiny data. Prints one line per op.

    python tools/valgrind_ops.py    # also runs without valgrind, in seconds
"""
import sys
import warnings

import numpy as np

import nnc
from nnc.bench.suite import OPS, run_op

TOL = {np.float32: 1e-4, np.float64: 1e-9}


def check(name, dtype, make, run):
    """run(make()) on cpp and on numpy; the outputs agree."""
    outs = {}
    for backend in ("cpp", "numpy"):
        with nnc.use_backend(backend):
            outs[backend] = run(make())
    for a, b in zip(outs["cpp"], outs["numpy"]):
        np.testing.assert_allclose(a, b, rtol=TOL[dtype], atol=TOL[dtype], err_msg=name)
    print(f"ok {name} {np.dtype(dtype).name}", flush=True)


def registry_ops(dtype):
    for name, op in OPS.items():
        if op.is_step and name.endswith("_step"):
            continue   # whole training steps: the Solver epoch below covers them
        shape = op.test_shapes[min(1, len(op.test_shapes) - 1)]
        if name == "conv":   # a 3x3 stride-1 case through im2col, Winograd and the direct kernel
            from nnc import _nnc, _settings

            for algo, paths in (("im2col", ("im2col",) * 3),
                                ("winograd", ("winograd",) * 3),
                                ("direct", ("direct",) * 3)):
                with nnc.conv_algorithm(algo):
                    inp = op.make(shape, dtype, 0)
                    cp = inp["conv_param"]
                    assert _nnc.conv_paths(inp["x"], inp["w"], cp["stride"], cp["pad"],
                                           _settings._conv_algo_code()) == paths, algo
                    check("conv " + algo, dtype, lambda: op.make(shape, dtype, 0),
                          lambda inp: run_op(op, inp))
            continue
        check(name, dtype, lambda: op.make(shape, dtype, 0), lambda inp: run_op(op, inp))


def other_ops(dtype):
    """Native ops the registry has no entry for."""
    from nnc import layers, optim

    rng = np.random.default_rng(1)

    def arr(*shape):
        return rng.standard_normal(shape).astype(dtype)

    x, dout = arr(5, 7), arr(5, 7)
    y = np.arange(5) % 7
    for act in ("tanh", "sigmoid"):
        fwd, bwd = getattr(layers, act + "_forward"), getattr(layers, act + "_backward")

        def run(inp, fwd=fwd, bwd=bwd):
            out, cache = fwd(inp[0])
            return out, bwd(inp[1], cache)
        check(act, dtype, lambda: (x.copy(), dout.copy()), run)
    check("svm_loss", dtype, lambda: x.copy(), lambda a: layers.svm_loss(a, y))
    check("mse_loss", dtype, lambda: x.copy(), lambda a: layers.mse_loss(a, dout))
    for rule in ("sgd", "sgd_nesterov_momentum", "rmsprop"):
        w, dw = arr(11), arr(11)
        check(rule, dtype, lambda: (w.copy(), dw.copy()),
              lambda a, rule=rule: (getattr(optim, rule)(a[0], a[1], {})[0],))

    def bn_test(inp):
        param = {"mode": "train"}
        layers.batchnorm_forward(inp, np.ones(7, dtype), np.zeros(7, dtype), param)
        param["mode"] = "test"
        return layers.batchnorm_forward(inp, np.ones(7, dtype), np.zeros(7, dtype), param)[:1]
    check("batchnorm test mode", dtype, lambda: x.copy(), bn_test)

    # the direct kernels of a first layer (C <= 4): dw without dx, NCHW and NHWC
    from nnc import fast_layers as fl
    cp = {"stride": 1, "pad": 2}
    xc, wc, bc, gc = arr(3, 3, 9, 19), arr(5, 3, 5, 5), arr(5), arr(3, 5, 9, 19)

    def nchw_weights(inp):
        out, cache = fl.conv_forward_fast(*inp, cp)
        return (out,) + tuple(fl.conv_backward_weights(gc, cache))
    check("conv direct dw", dtype, lambda: (xc.copy(), wc.copy(), bc.copy()), nchw_weights)
    xh, wh, bh, gh = arr(3, 9, 19, 3), arr(5, 5, 3, 17), arr(17), arr(3, 9, 19, 17)

    def nhwc_weights(inp):
        out, cache = fl.conv_nhwc_forward(*inp, cp)
        return (out,) + tuple(fl.conv_nhwc_backward_weights(gh, cache))
    check("conv_nhwc direct forward and dw", dtype, lambda: (xh.copy(), wh.copy(), bh.copy()),
          nhwc_weights)

    # auto's mixed backward beyond a first layer: Winograd's dx, the direct dw
    from nnc import _nnc
    c1 = {"stride": 1, "pad": 1}
    xm, wm, bm, gm = arr(2, 16, 10, 10), arr(16, 16, 3, 3), arr(16), arr(2, 16, 10, 10)
    assert _nnc.conv_paths(xm, wm, 1, 1) == ("winograd", "winograd", "direct")
    # NHWC: rows of 6, too short for its direct forward beyond few channels
    xq, wq, gq = arr(4, 6, 6, 16), wm.transpose(2, 3, 1, 0).copy(), arr(4, 6, 6, 16)
    assert _nnc.conv_nhwc_paths(xq, wq, 1, 1) == ("winograd", "winograd", "direct")

    def mixed(inp):
        out, cache = fl.conv_forward_fast(*inp, c1)
        return (out,) + tuple(fl.conv_backward_fast(gm, cache))
    check("conv winograd dx, direct dw", dtype, lambda: (xm.copy(), wm.copy(), bm.copy()), mixed)

    def mixed_nhwc(inp):
        out, cache = fl.conv_nhwc_forward(*inp, c1)
        return (out,) + tuple(fl.conv_nhwc_backward(gq, cache))
    check("conv_nhwc winograd dx, direct dw", dtype, lambda: (xq.copy(), wq.copy(), bm.copy()),
          mixed_nhwc)

    # the direct forward and dx beyond few channels (C at run time in NHWC), forced
    xd, wd, bd = arr(2, 6, 5, 30), arr(9, 6, 3, 3), arr(9)
    xe, we = xd.transpose(0, 2, 3, 1).copy(), wd.transpose(2, 3, 1, 0).copy()
    for algo in ("direct", "auto"):
        with nnc.conv_algorithm(algo):
            def direct_nchw(inp):
                out, cache = fl.conv_forward_fast(*inp, c1)
                return (out,) + tuple(fl.conv_backward_fast(np.ones_like(out), cache))

            def direct_nhwc(inp):
                out, cache = fl.conv_nhwc_forward(*inp, c1)
                return (out,) + tuple(fl.conv_nhwc_backward(np.ones_like(out), cache))
            check(f"conv direct dx ({algo})", dtype, lambda: (xd.copy(), wd.copy(), bd.copy()),
                  direct_nchw)
            check(f"conv_nhwc direct dx ({algo})", dtype,
                  lambda: (xe.copy(), we.copy(), bd.copy()), direct_nhwc)


def nnc_gemm(dtype):
    """nnc's own GEMM kernel forced (auto runs it on AVX-512 CPUs only, and the
    CPU valgrind shows has none): the GEMM-bound ops again, on shapes past its
    register tiles and its blocks (depth past KC, rows past MC, columns past NC)."""
    from nnc import _nnc

    _nnc.set_gemm_kernel("nnc")
    try:
        op = OPS["affine"]
        for shape in ((29, 385, 65), (113, 257, 31), (5, 3, 2100)):
            check(f"affine {shape} nnc gemm", dtype, lambda: op.make(shape, dtype, 0),
                  lambda inp: run_op(op, inp))
        for name in ("conv", "conv_nhwc"):
            op = OPS[name]
            shape = op.test_shapes[min(1, len(op.test_shapes) - 1)]
            for algo in ("im2col", "winograd"):
                with nnc.conv_algorithm(algo):
                    check(f"{name} {algo} nnc gemm", dtype, lambda: op.make(shape, dtype, 0),
                          lambda inp: run_op(op, inp))
    finally:
        _nnc.set_gemm_kernel("auto")


def solver_epoch():
    from nnc.classifiers import FullyConnectedNet
    from nnc.solver import Solver

    rng = np.random.default_rng(2)
    data = dict(X_train=rng.standard_normal((20, 3, 4, 4)), y_train=rng.integers(0, 4, 20),
                X_val=rng.standard_normal((8, 3, 4, 4)), y_val=rng.integers(0, 4, 8))
    histories = {}
    for backend in ("cpp", "numpy"):
        with nnc.use_backend(backend):
            np.random.seed(0)
            model = FullyConnectedNet([10, 10], input_dim=48, num_classes=4, dropout_keep_ratio=0.8,
                                      normalization="batchnorm", dtype=np.float64)
            solver = Solver(model, data, update_rule="adam", batch_size=5, num_epochs=1,
                            verbose=False)
            solver.train()
            histories[backend] = solver.loss_history
    np.testing.assert_allclose(histories["cpp"], histories["numpy"], rtol=1e-8)
    print(f"ok Solver epoch ({len(histories['cpp'])} iterations)", flush=True)


def main():
    if "cpp" not in nnc.available_backends():
        sys.exit("valgrind_ops.py: the native extension is not built")
    warnings.simplefilter("error")
    for dtype in (np.float32, np.float64):
        registry_ops(dtype)
        other_ops(dtype)
        nnc_gemm(dtype)
    solver_epoch()
    print("valgrind_ops.py: all ops ran", flush=True)


if __name__ == "__main__":
    main()
