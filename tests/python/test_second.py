"""test_second.py - second order from Python: f.jvp, f.hvp, f.hessian and
f.jacobian against PyTorch's autograd of the same function written in
PyTorch (jvp, double backward, functional.hessian and jacobian), and the
errors. Skipped when torch cannot be imported."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed "
                            "(apt-get install python3-torch); the torch tests are skipped")

import matdiff  # noqa: E402

LOGISTIC = ("X : matrix(n, d)\nw : vector(d)\nb : scalar\ny : vector(n)\nwrt w, b\n"
            "loss = sum(softplus(X*w + b) - y.*(X*w + b))/n\n")
TOL = 1e-9


def logistic_torch(X, y):
    def loss(w, b):
        z = X @ w + b
        return (torch.nn.functional.softplus(z) - y * z).sum() / X.shape[0]
    return loss


def rel(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(b)))


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    return dict(X=rng.standard_normal((9, 4)), w=rng.standard_normal(4), b=0.25,
                y=(rng.uniform(size=9) > 0.5).astype(float), v=rng.standard_normal(4), vb=0.5)


def test_hessian_hvp_jvp_against_torch(data):
    f = matdiff.compile(LOGISTIC)
    d = data
    X, y = torch.tensor(d["X"]), torch.tensor(d["y"])
    w, b = torch.tensor(d["w"]), torch.tensor(d["b"], dtype=torch.float64)
    v, vb = torch.tensor(d["v"]), torch.tensor(d["vb"], dtype=torch.float64)
    loss = logistic_torch(X, y)
    args = dict(X=d["X"], w=d["w"], b=d["b"], y=d["y"])
    H = f.hessian(**args)
    Ht = torch.autograd.functional.hessian(loss, (w, b))
    want = np.block([[Ht[0][0].numpy(), Ht[0][1].numpy()[:, None]],
                     [Ht[1][0].numpy()[None, :], np.array([[Ht[1][1].item()]])]])
    assert H.shape == (5, 5)
    assert rel(H, want) <= TOL
    hv = f.hvp({"w": d["v"], "b": d["vb"]}, **args)
    ws, bs = w.clone().requires_grad_(), b.clone().requires_grad_()
    gw, gb = torch.autograd.grad(loss(ws, bs), (ws, bs), create_graph=True)
    hw, hb = torch.autograd.grad((gw * v).sum() + gb * vb, (ws, bs))
    assert rel(hv["w"], hw.numpy()) <= TOL and rel(hv["b"], hb.numpy()) <= TOL
    _, jv = torch.autograd.functional.jvp(loss, (w, b), (v, vb))
    assert abs(f.jvp({"w": d["v"], "b": d["vb"]}, **args) - jv.item()) <= TOL
    # A direction left out moves nothing.
    assert rel(f.hvp({"w": d["v"]}, **args)["w"], H[:4, :4] @ d["v"]) <= TOL


def test_jacobian_against_torch():
    f = matdiff.compile("A : matrix(m, n)\nx : vector(n)\nF = tanh(A*x)\n")
    rng = np.random.default_rng(3)
    A, x = rng.standard_normal((3, 4)), rng.standard_normal(4)
    J = f.jacobian(A=A, x=x)
    JA, Jx = torch.autograd.functional.jacobian(lambda A, x: torch.tanh(A @ x),
                                                (torch.tensor(A), torch.tensor(x)))
    assert J.shape == (3, 12 + 4)
    assert rel(J, np.hstack([JA.numpy().reshape(3, 12), Jx.numpy()])) <= TOL


def test_errors(data):
    f = matdiff.compile(LOGISTIC)
    args = dict(X=data["X"], w=data["w"], b=data["b"], y=data["y"])
    with pytest.raises(TypeError, match="dirs: 'X' is not an input with a gradient"):
        f.hvp({"X": data["X"]}, **args)
    with pytest.raises(matdiff.ShapeError, match="the direction of 'w' must have its shape"):
        f.jvp({"w": np.ones(3)}, **args)
    with pytest.raises(matdiff.EvalError, match="Jacobian of a scalar output is its gradient"):
        f.jacobian(**args)
    g = matdiff.compile("A : matrix(n, n)\nY = A*A\n")
    with pytest.raises(matdiff.EvalError, match="needs a scalar output"):
        g.hessian(A=np.eye(2))
