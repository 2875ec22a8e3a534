"""nnc.gradient_check: centered differences on functions with known gradients,
and the input left bit-for-bit unchanged."""
import random
import re

import numpy as np
import pytest

from nnc.gradient_check import (eval_numerical_gradient, eval_numerical_gradient_array,
                                eval_numerical_gradient_blobs, eval_numerical_gradient_net,
                                grad_check_sparse, rel_error)


def _x(shape=(3, 4), seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 1, 2), (1,)])
def test_sum_of_squares_gives_2x_and_restores_x(shape):
    x = _x(shape)
    before = x.copy()
    grad = eval_numerical_gradient(lambda v: np.sum(v ** 2), x, verbose=False)
    assert grad.shape == x.shape and grad.dtype == x.dtype
    # sum(x^2) is quadratic: the centered difference is exact up to rounding.
    np.testing.assert_allclose(grad, 2 * x, rtol=1e-8, atol=1e-9)
    assert np.array_equal(x, before) and x.tobytes() == before.tobytes()


def test_cubic_and_step_size():
    x = _x((6,), seed=1)
    grad = eval_numerical_gradient(lambda v: np.sum(v ** 3), x, verbose=False, h=1e-4)
    # centered difference of v^3: 3v^2 + h^2 exactly
    np.testing.assert_allclose(grad, 3 * x ** 2 + 1e-8, rtol=1e-7, atol=1e-8)


def test_non_contiguous_view_is_perturbed_in_place_and_restored():
    base = _x((4, 6), seed=2)
    before = base.copy()
    view = base[:, ::2]
    grad = eval_numerical_gradient(lambda v: np.sum(np.sin(v)), view, verbose=False)
    np.testing.assert_allclose(grad, np.cos(view), rtol=1e-8)
    assert np.array_equal(base, before)


def test_verbose_prints_index_and_gradient(capsys):
    x = np.array([[1.0, -2.0]])
    eval_numerical_gradient(lambda v: np.sum(v ** 2), x, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("(0, 0) 2.0") and lines[1].startswith("(0, 1) -4.0")


def test_verbose_false_is_silent(capsys):
    eval_numerical_gradient(lambda v: np.sum(v), _x(), verbose=False)
    assert capsys.readouterr().out == ""


def test_x_restored_when_f_raises():
    x = _x((3,))
    before = x.copy()
    calls = []

    def f(v):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return np.sum(v)

    with pytest.raises(RuntimeError):
        eval_numerical_gradient(f, x, verbose=False)
    assert np.array_equal(x, before)


def test_array_version_matches_jacobian_contraction():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5))
    A = rng.standard_normal((5, 4))
    df = rng.standard_normal((3, 4))
    before = x.copy()
    grad = eval_numerical_gradient_array(lambda v: v @ A, x, df)
    np.testing.assert_allclose(grad, df @ A.T, rtol=1e-8, atol=1e-10)
    assert np.array_equal(x, before)


def test_array_version_copies_reused_output_buffers():
    x = _x((4,), seed=4)
    buf = np.empty(4)

    def f(v):  # returns the same buffer every time, like an in-place kernel would
        np.multiply(v, v, out=buf)
        return buf

    grad = eval_numerical_gradient_array(f, x, np.ones(4))
    np.testing.assert_allclose(grad, 2 * x, rtol=1e-8)


class Blob:
    def __init__(self, vals, diffs=None):
        self.vals = vals
        self.diffs = diffs if diffs is not None else np.zeros_like(vals)


def test_blobs_version():
    rng = np.random.default_rng(5)
    a, b = Blob(rng.standard_normal((2, 3))), Blob(rng.standard_normal((2, 3)))
    out = Blob(np.zeros((2, 3)), rng.standard_normal((2, 3)))
    a_before, b_before = a.vals.copy(), b.vals.copy()

    def f(x, y, o):  # o = x * y + x
        o.vals[...] = x.vals * y.vals + x.vals

    da, db = eval_numerical_gradient_blobs(f, (a, b), out)
    np.testing.assert_allclose(da, out.diffs * (b.vals + 1), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(db, out.diffs * a.vals, rtol=1e-8, atol=1e-10)
    assert np.array_equal(a.vals, a_before) and np.array_equal(b.vals, b_before)

    class Net:
        def forward(self):
            f(a, b, out)

    da2, db2 = eval_numerical_gradient_net(Net(), (a, b), out)
    np.testing.assert_array_equal(da2, da)
    np.testing.assert_array_equal(db2, db)


def test_grad_check_sparse_prints_cs231n_lines(capsys):
    x = _x((4, 5), seed=6)
    before = x.copy()
    random.seed(0)
    grad_check_sparse(lambda v: np.sum(v ** 2), x, 2 * x, num_checks=7)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 7
    pat = re.compile(r"^numerical: (-?\d+\.\d{6}) analytic: (-?\d+\.\d{6}), "
                     r"relative error: (\d\.\d{6}e[+-]\d\d)$")
    for line in lines:
        m = pat.match(line)
        assert m, line
        assert abs(float(m.group(1)) - float(m.group(2))) < 2e-6
        assert float(m.group(3)) < 1e-7
    assert np.array_equal(x, before)


def test_grad_check_sparse_flags_a_wrong_gradient(capsys):
    x = np.ones((3, 3))
    grad_check_sparse(lambda v: np.sum(v ** 2), x, np.zeros((3, 3)), num_checks=3)
    for line in capsys.readouterr().out.splitlines():
        assert line.endswith("relative error: 1.000000e+00")


def test_grad_check_sparse_zero_gradient_is_not_nan(capsys):
    x = np.zeros((2, 2))
    grad_check_sparse(lambda v: 0.0, x, np.zeros((2, 2)), num_checks=2)
    assert "nan" not in capsys.readouterr().out


def test_rel_error():
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert rel_error(1.0, 3.0) == 0.5
    assert rel_error(np.array([0.0]), np.array([0.0])) == 0.0
    # floor of 1e-8 on the denominator
    assert rel_error(np.array([0.0]), np.array([1e-12])) == pytest.approx(1e-4)
    assert rel_error(np.array([1.0, -1.0]), np.array([1.0, 1.0])) == 1.0


@pytest.mark.parametrize("fn", ["full", "array", "sparse"])
def test_bad_x(fn):
    f = {"full": lambda x: eval_numerical_gradient(np.sum, x, verbose=False),
         "array": lambda x: eval_numerical_gradient_array(lambda v: v, x, np.ones(3)),
         "sparse": lambda x: grad_check_sparse(np.sum, x, np.ones(3))}[fn]
    with pytest.raises(TypeError, match="numpy.ndarray"):
        f([1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match="float array.*int64"):
        f(np.arange(3))
    ro = np.ones(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        f(ro)


def test_grad_check_sparse_shape_mismatch():
    with pytest.raises(ValueError, match=r"analytic_grad has shape \(2,\) but x has shape \(3,\)"):
        grad_check_sparse(np.sum, np.ones(3), np.ones(2))
