"""CS231n layers: ``*_forward(...) -> (out, cache)`` and
``*_backward(dout, cache) -> grads``.

Every function here dispatches at call time to the active backend
(``nnc.set_backend``), so a swap reaches names imported before it. The
``*_naive`` functions are the teaching loops and always run in NumPy.
"""
from . import _checks as ck
from .backends import backward as _backward
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
