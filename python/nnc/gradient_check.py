"""Numerical gradients by centered differences, as in CS231n's gradient_check.py.

Every function perturbs its input array IN PLACE, one entry at a time, and
puts the original value back afterwards (also when ``f`` raises), so the array
is bit-for-bit unchanged when the function returns. The input must therefore be
a writable float ndarray; use float64 for checks (with float32, ``x + h`` for
h=1e-5 loses most of the digits of the difference).
"""
from random import randrange

import numpy as np

__all__ = ["eval_numerical_gradient", "eval_numerical_gradient_array",
           "eval_numerical_gradient_blobs", "eval_numerical_gradient_net", "grad_check_sparse",
           "rel_error", "randrange", "np"]


def _writable_float_array(x, name):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray (it is perturbed in place), "
                        f"got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{name} must be a float array (it is perturbed by h), got dtype {x.dtype}")
    if not x.flags.writeable:
        raise ValueError(f"{name} must be writable (it is perturbed in place)")


def _centered(f, x, ix, h):
    """(f(x with x[ix] += h), f(x with x[ix] -= h)), x[ix] restored exactly."""
    oldval = x[ix]
    try:
        x[ix] = oldval + h
        fxph = f(x)
        if isinstance(fxph, np.ndarray):
            fxph = fxph.copy()  # f may hand back a buffer it reuses
        x[ix] = oldval - h
        fxmh = f(x)
        if isinstance(fxmh, np.ndarray):
            fxmh = fxmh.copy()
    finally:
        x[ix] = oldval
    return fxph, fxmh


def eval_numerical_gradient(f, x, verbose=True, h=1e-5):
    """Numerical gradient of a scalar function ``f`` at ``x``.

    Inputs:
    - f: function taking the array x (any shape) and returning a scalar
    - x: float array of any shape; perturbed in place and restored
    - verbose: print one ``index gradient`` line per entry, as CS231n does
    - h: step of the centered difference

    Returns grad, same shape as x: grad[i] = (f(x + h e_i) - f(x - h e_i)) / (2h).
    """
    _writable_float_array(x, "x")
    f(x)  # CS231n evaluates f once at x first; kept so seeded RNG streams line up
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    while not it.finished:
        ix = it.multi_index
        fxph, fxmh = _centered(f, x, ix, h)
        grad[ix] = (fxph - fxmh) / (2 * h)
        if verbose:
            print(ix, grad[ix])
        it.iternext()
    return grad


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """Numerical gradient of an array-valued ``f`` contracted with an upstream
    gradient: the gradient of sum(f(x) * df) with respect to x.

    Inputs:
    - f: function taking the array x and returning an array of df's shape
    - x: float array of any shape; perturbed in place and restored
    - df: upstream gradient, the shape of f(x)
    - h: step of the centered difference

    Returns grad, same shape as x.
    """
    _writable_float_array(x, "x")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    while not it.finished:
        ix = it.multi_index
        pos, neg = _centered(f, x, ix, h)
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
        it.iternext()
    return grad


def eval_numerical_gradient_blobs(f, inputs, output, h=1e-5):
    """CS231n's blob version, for functions that write into an output blob.

    A blob is any object with ``.vals`` (the values, an array) and ``.diffs``
    (a gradient array of the same shape).

    Inputs:
    - f: called as f(*inputs, output); reads the inputs' .vals and writes
      output.vals in place
    - inputs: tuple of input blobs; each input's .vals is perturbed in place
      and restored
    - output: output blob; output.diffs holds the upstream gradient
    - h: step of the centered difference

    Returns a list with one array per input blob, shaped like its .diffs: the
    numerical gradient of sum(output.vals * output.diffs) w.r.t. that input.
    """
    inputs = tuple(inputs)
    numeric_diffs = []
    for k, input_blob in enumerate(inputs):
        _writable_float_array(input_blob.vals, f"inputs[{k}].vals")
        diff = np.zeros_like(input_blob.diffs)
        it = np.nditer(input_blob.vals, flags=["multi_index"])
        def output_at(_vals):
            f(*(inputs + (output,)))
            return np.copy(output.vals)

        while not it.finished:
            idx = it.multi_index
            pos, neg = _centered(output_at, input_blob.vals, idx, h)
            diff[idx] = np.sum((pos - neg) * output.diffs) / (2.0 * h)
            it.iternext()
        numeric_diffs.append(diff)
    return numeric_diffs


def eval_numerical_gradient_net(net, inputs, output, h=1e-5):
    """``eval_numerical_gradient_blobs`` for an object whose ``forward()``
    reads the input blobs and writes the output blob (CS231n's helper)."""
    return eval_numerical_gradient_blobs(lambda *args: net.forward(), inputs, output, h=h)


def grad_check_sparse(f, x, analytic_grad, num_checks=10, h=1e-5):
    """Compare ``analytic_grad`` with the numerical gradient of scalar ``f`` at
    ``num_checks`` random entries of x (drawn with Python's ``random.randrange``
    as in CS231n), printing one line per entry::

        numerical: %f analytic: %f, relative error: %e

    Inputs:
    - f: function taking the array x and returning a scalar
    - x: float array of any shape; perturbed in place and restored
    - analytic_grad: array of x's shape
    - num_checks, h: number of entries checked; step of the centered difference

    Returns None (the lines are the result, as in CS231n).
    """
    _writable_float_array(x, "x")
    if np.shape(analytic_grad) != x.shape:
        raise ValueError(f"analytic_grad has shape {np.shape(analytic_grad)} but x has shape "
                         f"{x.shape}")
    for _ in range(num_checks):
        ix = tuple(randrange(m) for m in x.shape)
        fxph, fxmh = _centered(f, x, ix, h)
        grad_numerical = (fxph - fxmh) / (2 * h)
        grad_analytic = analytic_grad[ix]
        # The 1e-8 floor (as in rel_error) keeps 0/0 from printing nan.
        rel = abs(grad_numerical - grad_analytic) / max(1e-8, abs(grad_numerical)
                                                         + abs(grad_analytic))
        print("numerical: %f analytic: %f, relative error: %e"
              % (grad_numerical, grad_analytic, rel))


def rel_error(x, y):
    """The CS231n notebooks' relative error: max(|x - y| / max(1e-8, |x| + |y|))."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))
