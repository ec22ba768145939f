"""test_accumulation.py - grads= buffers are ADDED into, as the C API and
PyTorch's .grad do: the notebook's Practice cells, by hand."""
import numpy as np
import pytest

import matdiff


def test_practice_cells():
    square = matdiff.compile("w : scalar\nx : scalar\nb : scalar\ny = (w*x + b)^2\n")
    linear = matdiff.compile("w : scalar\nx : scalar\nb : scalar\ny = w*x + b\n")
    point = dict(w=2.0, x=1.0, b=3.0)
    grads = {k: np.zeros(()) for k in point}
    # In [3]: d(wx + b)^2 = 2(wx + b)(x, w, 1) = 10 * (1, 2, 1)
    y, g = square.grad(**point, grads=grads)
    assert y == 25.0 and all(g[k] is grads[k] for k in grads)
    assert [grads[k].item() for k in "wxb"] == [10.0, 20.0, 10.0]
    # In [4]: d(wx + b) = (x, w, 1) = (1, 2, 1), added
    linear.grad(**point, grads=grads)
    assert [grads[k].item() for k in "wxb"] == [11.0, 22.0, 11.0]
    # In [5]: zeroed first
    for v in grads.values():
        v[...] = 0
    linear.grad(**point, grads=grads)
    assert [grads[k].item() for k in "wxb"] == [1.0, 2.0, 1.0]


def test_buffers_add_and_missing_ones_are_fresh():
    f = matdiff.compile("A : matrix(n, k)\nx : vector(k)\ny = sum(A*x)\n")
    A, x = np.arange(6.0).reshape(3, 2), np.array([1.0, -1.0])
    dx = np.full(2, 100.0)
    _, g = f.grad(A=A, x=x, grads={"x": dx})
    _, g = f.grad(A=A, x=x, grads={"x": dx})
    # d sum(Ax)/dx = A' * ones = column sums (6, 9); added twice onto 100
    assert np.array_equal(dx, [112.0, 118.0]) and g["x"] is dx
    # dA = ones * x', in a fresh buffer each call
    assert np.array_equal(g["A"], np.tile(x, (3, 1)))


def test_vjp_adds_too():
    f = matdiff.compile("A : matrix(n, k)\nB : matrix(k, m)\nC = A*B\n")
    A, B, G = np.eye(2), np.arange(4.0).reshape(2, 2), np.ones((2, 2))
    dA = np.ones((2, 2))
    f.vjp(G, A=A, B=B, grads={"A": dA})
    assert np.array_equal(dA, 1 + G @ B.T)


@pytest.mark.parametrize("shape", [(3, 1), (3,)])
def test_buffer_in_either_shape(shape):
    f = matdiff.compile("x : vector(n)\ny = x'*x\n")
    buf = np.zeros(shape)
    f.grad(x=np.arange(3.0), grads={"x": buf})
    assert np.array_equal(buf.ravel(), [0.0, 2.0, 4.0])
