"""CS231n layers: ``*_forward(...) -> (out, cache)`` and
``*_backward(dout, cache) -> grads``.

Every function here dispatches at call time to the active backend
(``nnc.set_backend``), so a swap reaches names imported before it. The
``*_naive`` functions are the teaching loops and always run in NumPy.
"""
from . import _checks as ck
from .backends import backward as _backward
from .backends import call as _call
from .backends import forward as _forward


def affine_forward(x, w, b):
    """Affine (fully connected) layer.

    Inputs:
    - x: (N, d_1, ..., d_k); each example is flattened to D = d_1 * ... * d_k
    - w: (D, M)
    - b: (M,)

    Returns (out, cache): out of shape (N, M), out = x.reshape(N, D) @ w + b.
    """
    ck.array(x, "x", min_ndim=1)
    ck.array(w, "w", ndim=2)
    ck.array(b, "b", ndim=1)
    D = 1
    for d in x.shape[1:]:
        D *= d
    if w.shape[0] != D:
        raise ValueError(f"affine_forward: x of shape {x.shape} flattens to D={D} features "
                         f"but w has shape {w.shape}")
    if b.shape[0] != w.shape[1]:
        raise ValueError(f"affine_forward: b has shape {b.shape} but w has shape {w.shape}")
    return _forward("affine_forward", x, w, b)


def affine_backward(dout, cache):
    """Backward pass of ``affine_forward``.

    Inputs:
    - dout: upstream gradient, (N, M)
    - cache: from affine_forward

    Returns (dx, dw, db): dx (N, d_1, ..., d_k), dw (D, M), db (M,).
    """
    ck.array(dout, "dout", ndim=2)
    return _backward("affine_backward", dout, cache)


# --- activations, dropout, losses ---

def relu_forward(x):
    """Rectified linear unit.

    Input:
    - x: floating-point array of any shape

    Returns (out, cache): out = max(0, x), same shape and dtype as x.
    """
    ck.floating(x, "x")
    return _forward("relu_forward", x)


def relu_backward(dout, cache):
    """Backward pass of ``relu_forward``.

    Inputs:
    - dout: upstream gradient, same shape as x
    - cache: from relu_forward

    Returns dx: dout where x > 0, else 0.
    """
    ck.floating(dout, "dout")
    return _backward("relu_backward", dout, cache)


def tanh_forward(x):
    """Hyperbolic tangent.

    Input:
    - x: floating-point array of any shape

    Returns (out, cache): out = tanh(x), same shape and dtype as x.
    """
    ck.floating(x, "x")
    return _forward("tanh_forward", x)


def tanh_backward(dout, cache):
    """Backward pass of ``tanh_forward``: dx = dout * (1 - out**2).

    Inputs:
    - dout: upstream gradient, same shape as x
    - cache: from tanh_forward

    Returns dx, same shape as x.
    """
    ck.floating(dout, "dout")
    return _backward("tanh_backward", dout, cache)


def sigmoid_forward(x):
    """Logistic sigmoid, numerically stable: no overflow warning for any x.

    Input:
    - x: floating-point array of any shape

    Returns (out, cache): out = 1 / (1 + exp(-x)), same shape and dtype as x.
    """
    ck.floating(x, "x")
    return _forward("sigmoid_forward", x)


def sigmoid_backward(dout, cache):
    """Backward pass of ``sigmoid_forward``: dx = dout * out * (1 - out).

    Inputs:
    - dout: upstream gradient, same shape as x
    - cache: from sigmoid_forward

    Returns dx, same shape as x.
    """
    ck.floating(dout, "dout")
    return _backward("sigmoid_backward", dout, cache)


def dropout_forward(x, dropout_param):
    """Inverted dropout.

    Inputs:
    - x: floating-point array of shape (N, ...), N > 0
    - dropout_param: dict with
      - 'p': probability of KEEPING each value, in (0, 1]
      - 'mode': 'train' or 'test'
      - 'seed' (optional): if present, np.random.seed(seed) is called first
        (also in test mode), which makes the mask reproducible

    Train mode draws mask = (np.random.rand(*x.shape) < p) / p (cast to
    x.dtype) from NumPy's global generator and returns out = x * mask. Both
    backends draw the same mask and leave np.random in the same state, so the
    same seed gives the same results on either backend. Test mode returns x
    itself (not a copy), as CS231n does.

    Returns (out, cache): out has x's shape and dtype.
    """
    ck.dropout_param(dropout_param)
    ck.floating(x, "x", min_ndim=1)
    ck.batch(x)
    return _forward("dropout_forward", x, dropout_param)


def dropout_backward(dout, cache):
    """Backward pass of ``dropout_forward``.

    Inputs:
    - dout: upstream gradient, same shape as x
    - cache: from dropout_forward

    Returns dx: dout * mask in train mode; dout itself in test mode.
    """
    ck.floating(dout, "dout")
    return _backward("dropout_backward", dout, cache)


def svm_loss(x, y):
    """Multiclass SVM (hinge) loss with margin 1, averaged over the batch.

    Inputs:
    - x: scores, floating point (N, C), N > 0
    - y: integer labels (N,), 0 <= y[i] < C

    Returns (loss, dx): loss a Python float, dx (N, C) in x's dtype.
    """
    ck.floating(x, "x", ndim=2)
    ck.batch(x)
    y = ck.labels(y, x.shape[0], x.shape[1])
    return _call("svm_loss", x, y)


def softmax_loss(x, y):
    """Softmax cross-entropy loss, averaged over the batch, computed by
    log-sum-exp (any finite logits, however large, give a finite loss).

    Inputs:
    - x: logits, floating point (N, C), N > 0
    - y: integer labels (N,), 0 <= y[i] < C

    Returns (loss, dx): loss a Python float, dx (N, C) in x's dtype.
    """
    ck.floating(x, "x", ndim=2)
    ck.batch(x)
    y = ck.labels(y, x.shape[0], x.shape[1])
    return _call("softmax_loss", x, y)


def mse_loss(x, y):
    """Mean squared error for regression, halved and averaged over the batch
    (the CS231n-style homework convention):
    loss = 0.5 * sum((x - y)**2) / N, dx = (x - y) / N.

    Inputs:
    - x: predictions, floating point (N, ...), N > 0
    - y: targets, same shape as x

    Returns (loss, dx): loss a Python float, dx of x's shape and dtype.
    """
    ck.floating(x, "x", min_ndim=1)
    ck.batch(x)
    ck.array(y, "y")
    ck.same_shape(x, y, "x", "y")
    return _call("mse_loss", x, y)
