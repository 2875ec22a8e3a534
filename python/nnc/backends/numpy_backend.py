"""The NumPy reference backend: the ground truth the native backend is
tested against. Plain vectorized NumPy; caches are plain tuples."""
import numpy as np


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1) @ w + b
    return out, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    if dout.shape != (x.shape[0], w.shape[1]):
        raise ValueError(f"affine_backward: dout has shape {dout.shape}, "
                         f"expected {(x.shape[0], w.shape[1])}")
    dx = (dout @ w.T).reshape(x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db
