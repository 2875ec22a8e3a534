"""Issue 14: nnc's modules stand in for CS231n's. ``import *`` from each gives
at least the names the original gives (its functions and classes, the names
it star-imports, and the modules it imports at top level), and every public
function takes the original's parameters in the original's order with the
original's defaults (nnc may add keyword-only parameters after them).

The tables are written from the published assignment-2 code (2019-2023)."""
import importlib
import inspect

import numpy as np
import pytest

LAYERS = ["affine_forward", "affine_backward", "relu_forward", "relu_backward",
          "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
          "layernorm_forward", "layernorm_backward", "dropout_forward", "dropout_backward",
          "conv_forward_naive", "conv_backward_naive", "max_pool_forward_naive",
          "max_pool_backward_naive", "spatial_batchnorm_forward", "spatial_batchnorm_backward",
          "spatial_groupnorm_forward", "spatial_groupnorm_backward", "svm_loss", "softmax_loss",
          "np"]
FAST_LAYERS = ["conv_forward_im2col", "conv_backward_im2col", "conv_forward_strides",
               "conv_backward_strides", "conv_forward_fast", "conv_backward_fast",
               "max_pool_forward_fast", "max_pool_backward_fast", "max_pool_forward_reshape",
               "max_pool_backward_reshape", "max_pool_forward_im2col", "max_pool_backward_im2col",
               # star-imported from cs231n.im2col and cs231n.im2col_cython:
               "get_im2col_indices", "im2col_indices", "col2im_indices", "im2col_cython",
               "col2im_cython", "col2im_6d_cython", "np"]
LAYER_UTILS = ["affine_relu_forward", "affine_relu_backward", "conv_relu_forward",
               "conv_relu_backward", "conv_bn_relu_forward", "conv_bn_relu_backward",
               "conv_relu_pool_forward", "conv_relu_pool_backward"] + LAYERS + FAST_LAYERS

ORIGINAL_EXPORTS = {
    "nnc.layers": LAYERS,
    "nnc.fast_layers": FAST_LAYERS,
    "nnc.layer_utils": LAYER_UTILS,
    "nnc.classifiers.fc_net": ["FullyConnectedNet", "TwoLayerNet"] + LAYER_UTILS,
    "nnc.classifiers.cnn": ["ThreeLayerConvNet"] + LAYER_UTILS,
    "nnc.solver": ["Solver", "optim", "np", "os", "pickle"],
    "nnc.optim": ["sgd", "sgd_momentum", "rmsprop", "adam", "np"],
    "nnc.gradient_check": ["eval_numerical_gradient", "eval_numerical_gradient_array",
                           "eval_numerical_gradient_blobs", "eval_numerical_gradient_net",
                           "grad_check_sparse", "randrange", "np"],
    "nnc.data_utils": ["load_pickle", "load_CIFAR_batch", "load_CIFAR10", "get_CIFAR10_data",
                       "load_tiny_imagenet", "load_models", "load_imagenet_val", "np", "os",
                       "pickle", "platform"],
    "nnc.vis_utils": ["visualize_grid", "vis_grid", "vis_nn", "sqrt", "ceil", "np"],
}


@pytest.mark.parametrize("module", ORIGINAL_EXPORTS)
def test_star_import_exports_the_originals_names(module):
    namespace = {}
    exec(f"from {module} import *", namespace)
    missing = [n for n in ORIGINAL_EXPORTS[module] if n not in namespace]
    assert not missing, f"from {module} import * lacks {missing}"
    mod = importlib.import_module(module)
    assert sorted(set(mod.__all__)) == sorted(mod.__all__), "duplicates in __all__"
    assert all(hasattr(mod, n) for n in mod.__all__)


def test_the_fc_net_star_import_is_what_the_notebooks_use():
    """FullyConnectedNets/BatchNormalization/Dropout get their layer functions
    through ``from cs231n.classifiers.fc_net import *``."""
    namespace = {}
    exec("from nnc.classifiers.fc_net import *", namespace)
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    out, _ = namespace["batchnorm_forward"](x, np.ones(4), np.zeros(4), {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-12)
    assert namespace["relu_forward"](x)[0].min() == 0
    assert namespace["layernorm_forward"](x, np.ones(4), np.zeros(4), {})[0].shape == (3, 4)
    assert isinstance(namespace["svm_loss"](x, np.array([0, 1, 2]))[0], float)


D = inspect.Parameter.empty
# (module, function) -> [(name, default)] of the original, in order.
ORIGINAL_SIGNATURES = {
    ("nnc.layers", "affine_forward"): [("x", D), ("w", D), ("b", D)],
    ("nnc.layers", "relu_forward"): [("x", D)],
    ("nnc.layers", "softmax_loss"): [("x", D), ("y", D)],
    ("nnc.layers", "svm_loss"): [("x", D), ("y", D)],
    ("nnc.layers", "batchnorm_forward"): [("x", D), ("gamma", D), ("beta", D), ("bn_param", D)],
    ("nnc.layers", "layernorm_forward"): [("x", D), ("gamma", D), ("beta", D), ("ln_param", D)],
    ("nnc.layers", "dropout_forward"): [("x", D), ("dropout_param", D)],
    ("nnc.layers", "conv_forward_naive"): [("x", D), ("w", D), ("b", D), ("conv_param", D)],
    ("nnc.layers", "max_pool_forward_naive"): [("x", D), ("pool_param", D)],
    ("nnc.layers", "spatial_batchnorm_forward"): [("x", D), ("gamma", D), ("beta", D),
                                                  ("bn_param", D)],
    ("nnc.layers", "spatial_groupnorm_forward"): [("x", D), ("gamma", D), ("beta", D), ("G", D),
                                                  ("gn_param", D)],
    ("nnc.fast_layers", "conv_forward_im2col"): [("x", D), ("w", D), ("b", D),
                                                 ("conv_param", D)],
    ("nnc.fast_layers", "conv_forward_strides"): [("x", D), ("w", D), ("b", D),
                                                  ("conv_param", D)],
    ("nnc.fast_layers", "max_pool_forward_fast"): [("x", D), ("pool_param", D)],
    ("nnc.fast_layers", "max_pool_forward_reshape"): [("x", D), ("pool_param", D)],
    ("nnc.fast_layers", "max_pool_forward_im2col"): [("x", D), ("pool_param", D)],
    ("nnc.fast_layers", "get_im2col_indices"): [("x_shape", D), ("field_height", D),
                                                ("field_width", D), ("padding", 1),
                                                ("stride", 1)],
    ("nnc.fast_layers", "im2col_indices"): [("x", D), ("field_height", D), ("field_width", D),
                                            ("padding", 1), ("stride", 1)],
    ("nnc.fast_layers", "col2im_indices"): [("cols", D), ("x_shape", D), ("field_height", 3),
                                            ("field_width", 3), ("padding", 1), ("stride", 1)],
    ("nnc.layer_utils", "affine_relu_forward"): [("x", D), ("w", D), ("b", D)],
    ("nnc.layer_utils", "conv_relu_forward"): [("x", D), ("w", D), ("b", D), ("conv_param", D)],
    ("nnc.layer_utils", "conv_bn_relu_forward"): [("x", D), ("w", D), ("b", D), ("gamma", D),
                                                  ("beta", D), ("conv_param", D),
                                                  ("bn_param", D)],
    ("nnc.layer_utils", "conv_relu_pool_forward"): [("x", D), ("w", D), ("b", D),
                                                    ("conv_param", D), ("pool_param", D)],
    ("nnc.optim", "sgd"): [("w", D), ("dw", D), ("config", None)],
    ("nnc.optim", "sgd_momentum"): [("w", D), ("dw", D), ("config", None)],
    ("nnc.optim", "rmsprop"): [("w", D), ("dw", D), ("config", None)],
    ("nnc.optim", "adam"): [("w", D), ("dw", D), ("config", None)],
    ("nnc.gradient_check", "eval_numerical_gradient"): [("f", D), ("x", D), ("verbose", True),
                                                        ("h", 1e-5)],
    ("nnc.gradient_check", "eval_numerical_gradient_array"): [("f", D), ("x", D), ("df", D),
                                                              ("h", 1e-5)],
    ("nnc.gradient_check", "eval_numerical_gradient_blobs"): [("f", D), ("inputs", D),
                                                              ("output", D), ("h", 1e-5)],
    ("nnc.gradient_check", "eval_numerical_gradient_net"): [("net", D), ("inputs", D),
                                                            ("output", D), ("h", 1e-5)],
    ("nnc.gradient_check", "grad_check_sparse"): [("f", D), ("x", D), ("analytic_grad", D),
                                                  ("num_checks", 10), ("h", 1e-5)],
    ("nnc.data_utils", "load_pickle"): [("f", D)],
    ("nnc.data_utils", "load_CIFAR_batch"): [("filename", D)],
    ("nnc.data_utils", "get_CIFAR10_data"): [("num_training", 49000), ("num_validation", 1000),
                                             ("num_test", 1000), ("subtract_mean", True)],
    ("nnc.data_utils", "load_tiny_imagenet"): [("path", D), ("dtype", np.float32),
                                               ("subtract_mean", True)],
    ("nnc.data_utils", "load_models"): [("models_dir", D)],
    ("nnc.data_utils", "load_imagenet_val"): [("num", None)],
    ("nnc.vis_utils", "visualize_grid"): [("Xs", D), ("ubound", 255.0), ("padding", 1)],
    ("nnc.vis_utils", "vis_grid"): [("Xs", D)],
    ("nnc.vis_utils", "vis_nn"): [("rows", D)],
    ("nnc.solver", "Solver"): [("model", D), ("data", D)],
    ("nnc.classifiers.fc_net", "FullyConnectedNet"): [
        ("hidden_dims", D), ("input_dim", 3 * 32 * 32), ("num_classes", 10),
        ("dropout_keep_ratio", 1), ("normalization", None), ("reg", 0.0),
        ("weight_scale", 1e-2), ("dtype", np.float32), ("seed", None)],
    ("nnc.classifiers.fc_net", "TwoLayerNet"): [
        ("input_dim", 3 * 32 * 32), ("hidden_dim", 100), ("num_classes", 10),
        ("weight_scale", 1e-3), ("reg", 0.0)],
    ("nnc.classifiers.cnn", "ThreeLayerConvNet"): [
        ("input_dim", (3, 32, 32)), ("num_filters", 32), ("filter_size", 7), ("hidden_dim", 100),
        ("num_classes", 10), ("weight_scale", 1e-3), ("reg", 0.0), ("dtype", np.float32)],
}
# The backwards all take (dout, cache).
for _mod, _names in (("nnc.layers", LAYERS), ("nnc.fast_layers", FAST_LAYERS),
                     ("nnc.layer_utils", LAYER_UTILS[:8])):
    for _name in _names:
        if "backward" in _name:
            ORIGINAL_SIGNATURES[(_mod, _name)] = [("dout", D), ("cache", D)]


@pytest.mark.parametrize("module,name", ORIGINAL_SIGNATURES,
                         ids=[f"{m}.{n}" for m, n in ORIGINAL_SIGNATURES])
def test_signature_matches_the_original(module, name):
    fn = getattr(importlib.import_module(module), name)
    params = list(inspect.signature(fn).parameters.values())
    if inspect.isclass(fn):
        assert params[0].name != "self"
    expected = ORIGINAL_SIGNATURES[(module, name)]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    got = [(p.name, p.default) for p in positional[:len(expected)]]
    assert got == expected
    # anything nnc adds comes after the original's parameters, never between them
    for extra in positional[len(expected):]:
        assert extra.default is not D, f"{name}: added parameter {extra.name} must be optional"


def test_solver_accepts_every_original_keyword(tmp_path):
    from nnc.classifiers import TwoLayerNet
    from nnc.solver import Solver

    rng = np.random.default_rng(0)
    data = {"X_train": rng.standard_normal((20, 6)), "y_train": rng.integers(0, 3, 20),
            "X_val": rng.standard_normal((5, 6)), "y_val": rng.integers(0, 3, 5)}
    model = TwoLayerNet(input_dim=6, hidden_dim=4, num_classes=3)
    solver = Solver(model, data, update_rule="sgd", optim_config={"learning_rate": 1e-2},
                    lr_decay=0.95, batch_size=10, num_epochs=1, num_train_samples=20,
                    num_val_samples=5, checkpoint_name=str(tmp_path / "ck"), print_every=1,
                    verbose=False)
    solver.train()
    assert len(solver.loss_history) == 2 and len(solver.val_acc_history) == 2
    assert (tmp_path / "ck_epoch_1.npz").exists()
