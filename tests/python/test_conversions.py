"""test_conversions.py - arrays that are not C-contiguous float64 are
converted (a copy the caller never sees), and their gradients have the
shapes of the arrays given."""
import numpy as np

import matdiff
from conftest import SEED


def inputs():
    rng = np.random.default_rng(42)
    return dict(X=rng.standard_normal((6, 4)), W=rng.standard_normal((4, 3)),
                b=rng.standard_normal((6, 3)))


def test_float32_is_converted():
    f = matdiff.compile(SEED)
    a32 = {k: v.astype(np.float32) for k, v in inputs().items()}
    a64 = {k: v.astype(np.float64) for k, v in a32.items()}   # the same numbers
    y32, g32 = f.grad(**a32)
    y64, g64 = f.grad(**a64)
    assert y32 == y64
    for k in g64:
        assert g32[k].dtype == np.float64 and np.array_equal(g32[k], g64[k])


def test_non_contiguous_is_converted():
    f = matdiff.compile(SEED)
    a = inputs()
    strided = dict(X=np.asfortranarray(a["X"]),                  # column-major
                   W=np.repeat(a["W"], 2, axis=1)[:, ::2],       # every other column
                   b=a["b"].T.copy().T)                          # a transposed view
    assert not any(v.flags.c_contiguous for v in strided.values())
    y, g = f.grad(**a)
    ys, gs = f.grad(**strided)
    assert y == ys
    for k in g:
        assert np.array_equal(g[k], gs[k])


def test_integers_lists_and_numbers():
    f = matdiff.compile("A : matrix(2, 2)\nx : vector(2)\nc : scalar\ny = c*x'*A*x\n")
    y, g = f.grad(A=[[1, 2], [3, 4]], x=np.array([1, 2]), c=2)
    # y = c x'Ax = 2*27; dx = c (A + A')x = 2*[12, 21]; dA = c x x'; dc = x'Ax
    assert y == 54.0
    assert np.array_equal(g["x"], [24.0, 42.0]) and g["x"].shape == (2,)
    assert np.array_equal(g["A"], [[2.0, 4.0], [4.0, 8.0]])
    assert g["c"].shape == () and g["c"] == 27.0


def test_vector_shapes_column_row_and_scalar():
    f = matdiff.compile("v : vector(n)\nr : matrix(1, n)\ns : scalar\ny = s*r*v\n")
    v, r = np.arange(1.0, 4.0), np.array([2.0, 0.0, 1.0])
    for vv, rr, ss in [(v, r, 2.0), (v[:, None], r[None, :], np.array([[2.0]])),
                       (v, r[None, :], np.array([2.0]))]:
        y, g = f.grad(v=vv, r=rr, s=ss)
        assert y == 10.0
        assert g["v"].shape == np.shape(vv) and g["r"].shape == np.shape(rr)
        assert g["s"].shape == np.shape(ss)
        assert np.array_equal(g["v"].ravel(), 2 * r) and np.array_equal(g["r"].ravel(), 2 * v)
        assert g["s"].item() == 5.0


def test_inputs_are_not_modified():
    f = matdiff.compile(SEED)
    a = inputs()
    copies = {k: v.copy() for k, v in a.items()}
    f.grad(**a)
    f.vjp(2.0, **a)
    for k in a:
        assert np.array_equal(a[k], copies[k])
