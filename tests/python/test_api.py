"""test_api.py - matdiff.compile/load, the description of a function, and
its values and gradients against NumPy formulas derived by hand and against
central finite differences."""
import os
import re

import numpy as np
import pytest

import matdiff
from conftest import ROOT, SEED


def normal(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def seed_inputs(n=5, k=3, m=2):
    return dict(X=normal(n, k, seed=1), W=normal(k, m, seed=2), b=normal(n, m, seed=3))


def seed_by_hand(X, W, b):
    """y = ||XW + b||_F^2: dX = 2(XW + b)W', dW = 2X'(XW + b), db = 2(XW + b)."""
    R = X @ W + b
    return (R * R).sum(), {"X": 2 * R @ W.T, "W": 2 * X.T @ R, "b": 2 * R}


def finite_differences(f, arrays, name, h=1e-6):
    """Central differences of the scalar f(**arrays) in every element of NAME."""
    base = {k: np.array(v, dtype=np.float64) for k, v in arrays.items()}
    x = base[name]
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        step = h * max(1.0, abs(old))
        x[idx] = old + step
        up = f(**base)
        x[idx] = old - step
        down = f(**base)
        x[idx] = old
        g[idx] = (up - down) / (2 * step)
    return g


def close(a, b, tol=1e-12):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.abs(a - b).max() <= tol * max(1.0, np.abs(b).max()), np.abs(a - b).max()


def test_description():
    f = matdiff.compile(SEED)
    assert f.inputs == ("X", "W", "b")
    assert [x.shape for x in f.inputs] == [("n", "k"), ("k", "m"), ("n", "m")]
    assert f.dims == ("n", "k", "m")
    assert [d.index for d in f.inputs[1].shape] == [1, 2]
    assert f.wrt == ("X", "W", "b") and all(x.wrt for x in f.inputs)
    assert f.output == "y" and f.output_shape == (1, 1)
    assert repr(f) == "<matdiff.Function y(X: (n, k), W: (k, m), b: (n, m)) -> (1, 1)>"


def test_fixed_sizes_and_wrt():
    f = matdiff.compile("A : matrix(3, m)\nx : vector(m)\nc : scalar\nwrt x\nr = c*A*x\n")
    assert [x.shape for x in f.inputs] == [(3, "m"), ("m", 1), (1, 1)]
    assert f.wrt == ("x",) and [x.wrt for x in f.inputs] == [False, True, False]
    assert f.output_shape == (3, 1)
    assert f.formulas == {"x": "c*A'*G"}


def test_symmetric_and_posdef_inputs():
    # The gradient with respect to a symmetric input is the symmetric one,
    # (G + G')/2: for x'*S*x, by hand, (x*x' + x*x')/2 = x*x'.
    f = matdiff.compile("S : symmetric(n)\nP : posdef(n)\nx : vector(n)\ny = x'*S*x + logdet(P)\n")
    assert [(x.symmetric, x.posdef) for x in f.inputs] == [(True, False), (True, True), (False, False)]
    assert "symmetric=True" in repr(f.inputs[0]) and "posdef=True" in repr(f.inputs[1])
    S = np.array([[2.0, 1.0], [1.0, 3.0]])
    P = np.array([[4.0, 1.0], [1.0, 2.0]])
    x = np.array([1.0, -2.0])
    y, g = f.grad(S=S, P=P, x=x)
    assert abs(y - (x @ S @ x + np.log(np.linalg.det(P)))) < 1e-12
    assert np.allclose(g["S"], np.outer(x, x), rtol=0, atol=1e-12)
    assert np.allclose(g["P"], np.linalg.inv(P), rtol=0, atol=1e-12)
    with pytest.raises(matdiff.EvalError, match="'S' is declared symmetric but is not symmetric"):
        f(S=np.array([[2.0, 1.0], [0.0, 3.0]]), P=P, x=x)


def test_formulas_and_c_source():
    f = matdiff.load(os.path.join(ROOT, "examples", "seed.expr"))
    assert f.formulas == {"X": "2*(X*W + b)*W'", "W": "2*X'*(X*W + b)", "b": "2*(X*W + b)"}
    f.formulas["X"] = "changed"          # a copy: the function's own is kept
    assert f.formulas["X"] == "2*(X*W + b)*W'"
    assert f.filename.endswith("seed.expr")
    assert "mdrt_gemm" in f.c_source and re.search(r"\bmd_fn_grad\b", f.c_source)


def test_value_and_gradients_by_hand():
    f = matdiff.compile(SEED)
    arrays = seed_inputs()
    want_y, want_g = seed_by_hand(**arrays)
    y = f(**arrays)
    assert isinstance(y, float)
    close(y, want_y)
    y2, g = f.grad(**arrays)
    close(y2, want_y)
    assert sorted(g) == ["W", "X", "b"]
    for name in g:
        close(g[name], want_g[name])


def test_positional_arguments():
    f = matdiff.compile(SEED)
    a = seed_inputs()
    assert f(a["X"], a["W"], a["b"]) == f(**a) == f(a["X"], b=a["b"], W=a["W"])


def test_symbolic_sizes_rebind_between_calls():
    f = matdiff.compile(SEED)
    for n, k, m in [(5, 3, 2), (1, 1, 1), (7, 2, 4), (5, 3, 2)]:
        arrays = seed_inputs(n, k, m)
        y, g = f.grad(**arrays)
        want_y, want_g = seed_by_hand(**arrays)
        close(y, want_y)
        for name in g:
            assert g[name].shape == arrays[name].shape
            close(g[name], want_g[name])


def test_examples_against_finite_differences():
    """logistic.expr: a scalar and vectors given as 1-D arrays, and wrt."""
    f = matdiff.load(os.path.join(ROOT, "examples", "logistic.expr"))
    n, d = 7, 3
    arrays = dict(X=normal(n, d, seed=4), w=normal(d, seed=5), b=0.3,
                  y=(np.arange(n) % 2).astype(float))
    y, g = f.grad(**arrays)
    assert sorted(g) == ["b", "w"]
    assert g["w"].shape == (d,) and g["b"].shape == ()
    z = arrays["X"] @ arrays["w"] + arrays["b"]
    close(y, np.mean(np.logaddexp(0, z) - arrays["y"] * z))
    for name in g:
        close(g[name], finite_differences(f, arrays, name), tol=1e-7)


def test_matrix_output_value_grad_and_vjp():
    """C = A*B: the value; vjp(G) is (G*B', A'*G); grad is vjp(ones)."""
    f = matdiff.compile("A : matrix(n, k)\nB : matrix(k, m)\nC = A*B\n")
    A, B, G = normal(4, 3, seed=6), normal(3, 2, seed=7), normal(4, 2, seed=8)
    C = f(A=A, B=B)
    assert isinstance(C, np.ndarray) and C.shape == (4, 2)
    close(C, A @ B)
    y, g = f.vjp(G, A=A, B=B)
    close(y, A @ B)
    close(g["A"], G @ B.T)
    close(g["B"], A.T @ G)
    _, g1 = f.grad(A=A, B=B)
    close(g1["A"], np.ones((4, 2)) @ B.T)
    close(g1["B"], A.T @ np.ones((4, 2)))


def test_vector_output_as_1d_seed():
    f = matdiff.compile("A : matrix(n, k)\nx : vector(k)\nr = A*x\n")
    A, x, s = normal(4, 3, seed=9), normal(3, seed=10), normal(4, seed=11)
    r = f(A=A, x=x)
    assert r.shape == (4, 1)
    close(r[:, 0], A @ x)
    _, g = f.vjp(s, A=A, x=x)
    close(g["x"], A.T @ s)
    close(g["A"], np.outer(s, x))


def test_scalar_vjp_scales_the_gradient():
    f = matdiff.compile(SEED)
    arrays = seed_inputs()
    _, g = f.grad(**arrays)
    y, g3 = f.vjp(-3.0, **arrays)
    close(y, seed_by_hand(**arrays)[0])
    for name in g:
        close(g3[name], -3 * g[name])


def test_version_matches_the_header():
    with open(os.path.join(ROOT, "compiler", "matdiff.h")) as h:
        version = re.search(r'#define MATDIFF_VERSION "(.*)"', h.read()).group(1)
    assert matdiff.__version__ == version


def test_library_from_the_source_tree():
    assert matdiff.__libsource__ == "build"
    assert matdiff.__libpath__ == os.path.join(ROOT, "build", "pic", "libmatdiff.so")
