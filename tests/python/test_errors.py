"""test_errors.py - what a caller gets wrong, and what the package says."""
import os

import numpy as np
import pytest

import matdiff
from conftest import ROOT, SEED


def test_compile_error_has_line_col_and_the_diagnostic():
    with pytest.raises(matdiff.CompileError) as e:
        matdiff.compile("X : matrix(n, k)\nW : matrix(k, m)\ny = ||X*W*X||_F^2\n")
    assert (e.value.line, e.value.col) == (3, 10)
    assert e.value.reason == "cannot multiply (n×m) by (n×k): inner sizes m and n differ"
    assert str(e.value) == ("<input>:3:10: error: " + e.value.reason + "\n"
                            "y = ||X*W*X||_F^2\n"
                            "         ^")
    assert isinstance(e.value, matdiff.Error)


def test_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "bad.expr"
    path.write_text("x : scalar\ny = (x +\n")
    with pytest.raises(matdiff.CompileError) as e:
        matdiff.load(str(path))
    assert str(e.value).startswith("%s:2:9: error: unexpected end of line" % path)
    assert (e.value.line, e.value.col) == (2, 9)


def test_nul_in_source():
    with pytest.raises(ValueError, match="NUL"):
        matdiff.compile("x : scalar\0\ny = x\n")


@pytest.mark.parametrize("arrays, message", [
    # a fixed size
    (dict(A=np.zeros((2, 3)), x=np.zeros(3)),
     r"input 'A' is declared \(3, m\), given shape \(2, 3\)$"),
    # a symbolic size bound twice, differently
    (dict(A=np.zeros((3, 4)), x=np.zeros(5)),
     r"input 'x' is declared \(m, 1\), given shape \(5,\): m = 4 from input 'A'"),
    # a size that is not positive
    (dict(A=np.zeros((3, 0)), x=np.zeros(0)),
     r"input 'A' is declared \(3, m\), given shape \(3, 0\): sizes must be positive"),
    # too many dimensions
    (dict(A=np.zeros((3, 4, 1)), x=np.zeros(4)),
     r"input 'A' is declared \(3, m\), given an array of shape \(3, 4, 1\)$"),
    # a 1-D array for a matrix
    (dict(A=np.zeros(12), x=np.zeros(4)),
     r"input 'A' is declared \(3, m\), given an array of shape \(12,\): a 1-D array fits "
     r"only a vector \(n, 1\) or a row \(1, n\)"),
])
def test_shape_errors(arrays, message):
    f = matdiff.compile("A : matrix(3, m)\nx : vector(m)\ny = sum(A*x)\n")
    with pytest.raises(matdiff.ShapeError, match=message):
        f(**arrays)
    with pytest.raises(ValueError):        # a ShapeError is a ValueError
        f.grad(**arrays)


def test_arguments_checked_as_python_calls_are():
    f = matdiff.compile(SEED)
    X, W, b = np.ones((2, 2)), np.ones((2, 2)), np.ones((2, 2))
    with pytest.raises(TypeError, match="missing inputs: W, b"):
        f(X=X)
    with pytest.raises(TypeError, match="y has no input 'Q'; its inputs are X, W, b"):
        f(X=X, W=W, b=b, Q=b)
    with pytest.raises(TypeError, match="input 'X' given twice"):
        f(X, X=X, W=W, b=b)
    with pytest.raises(TypeError, match="y takes 3 inputs, 4 given"):
        f(X, W, b, b)
    with pytest.raises(TypeError, match="input 'X': expected real numbers"):
        f(X=X.astype(complex), W=W, b=b)
    with pytest.raises(TypeError, match="input 'X': expected real numbers"):
        f(X=np.array([["a"]]), W=W, b=b)


def test_seed_and_gradient_buffer_errors():
    f = matdiff.compile("A : matrix(n, k)\nx : vector(k)\nwrt x\nr = A*x\n")
    A, x = np.ones((3, 2)), np.ones(2)
    with pytest.raises(matdiff.ShapeError, match=r"the seed must have the output r's shape "
                       r"\(n, 1\) = \(3, 1\), not \(2,\)"):
        f.vjp(np.ones(2), A=A, x=x)
    with pytest.raises(TypeError, match="grads: 'A' is not an input with a gradient; those are x"):
        f.grad(A=A, x=x, grads={"A": np.zeros((3, 2))})
    with pytest.raises(TypeError, match=r"grads\['x'\]: .* writeable, C-contiguous float64"):
        f.grad(A=A, x=x, grads={"x": np.zeros(2, dtype=np.float32)})
    with pytest.raises(TypeError, match=r"grads\['x'\]"):
        f.grad(A=A, x=x, grads={"x": np.zeros((2, 2))[:, 0]})
    with pytest.raises(matdiff.ShapeError, match=r"grads\['x'\] must have the shape of input "
                       r"'x', \(k, 1\) = \(2, 1\), not \(3,\)"):
        f.grad(A=A, x=x, grads={"x": np.zeros(3)})


def test_singular_matrix_at_run_time():
    f = matdiff.compile("A : matrix(n, n)\ny = tr(inv(A))\n")
    with pytest.raises(matdiff.EvalError, match="inv: the matrix is singular"):
        f(A=np.zeros((3, 3)))
    with pytest.raises(matdiff.EvalError, match="inv: the matrix is singular"):
        f.grad(A=np.ones((2, 2)))
    assert f(A=2 * np.eye(3)) == pytest.approx(1.5, rel=1e-15)   # still usable


def test_load_missing_file():
    with pytest.raises(FileNotFoundError):
        matdiff.load(os.path.join(ROOT, "examples", "no_such.expr"))
