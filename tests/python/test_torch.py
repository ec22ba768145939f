"""test_torch.py - matdiff.torch: gradcheck on every example, the errors,
the seed notebook replayed and the MLP trained against pure PyTorch.
Skipped, with the reason, when torch cannot be imported."""
import glob
import importlib.util
import os
import re

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed "
                            "(apt-get install python3-torch); the torch tests are skipped")

import matdiff  # noqa: E402
import matdiff.torch  # noqa: E402
from conftest import ROOT, SEED  # noqa: E402

EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "*.expr")))


def example_script(name):
    """examples/python/NAME.py as a module, its main() not run."""
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(ROOT, "examples", "python", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_inputs(fn, seed):
    """float64 inputs for FN, a different size for each symbolic size; the
    wrt inputs require grad."""
    g = torch.Generator().manual_seed(seed)
    sizes = {d: 2 + i for i, d in enumerate(fn.function.dims)}
    out = []
    for x in fn.inputs:
        shape = [sizes.get(d, d) for d in x.shape]
        out.append(torch.randn(*shape, generator=g, dtype=torch.float64)
                   .requires_grad_(x.wrt))
    return tuple(out)


# A declaration of a symmetric(n) or posdef(n) input.
SYMMETRIC = re.compile(r"^\s*(\w+)\s*:\s*(symmetric|posdef)\s*\(", re.M)


def symmetric_from(a, kind):
    """A symmetric matrix made from the free matrix A, to the last bit:
    (A + A')/2, or for posdef (M + M')/2 with M = A*A'/n + I."""
    if kind == "posdef":
        a = a @ a.T / a.shape[0] + torch.eye(a.shape[0], dtype=a.dtype)
    return (a + a.T) / 2


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_gradcheck_every_example(path):
    fn = matdiff.torch.load(path)
    # A symmetric input takes symmetric data, and its gradient is the
    # symmetric one, (G + G')/2: gradcheck moves each element of a free
    # matrix A that the input is made from, and through (A + A')/2 the
    # chain rule gives exactly the derivative with respect to A.
    with open(path) as f:
        kinds = dict(SYMMETRIC.findall(f.read()))

    def made(*args):
        return fn(*[symmetric_from(a, kinds[x]) if x in kinds else a
                    for x, a in zip(fn.inputs, args)])
    assert torch.autograd.gradcheck(made, random_inputs(fn, 14))


@pytest.mark.parametrize("src,torch_fn", [
    ("x : vector(n)\ny = ||x||\n", lambda x: torch.linalg.vector_norm(x)),
    ("A : matrix(n, m)\ny = ||A||_F\n", lambda A: torch.linalg.matrix_norm(A)),
    ("x : vector(n)\ny = norm2(x)\n", lambda x: torch.linalg.vector_norm(x)),
], ids=["vector", "frobenius", "norm2"])
def test_norm_at_zero_as_pytorch(src, torch_fn):
    """The norm at 0: PyTorch takes the subgradient 0, and so does matdiff
    (docs/LANGUAGE.md), with no NaN."""
    fn = matdiff.torch.function(src)
    sizes = {d: 2 + i for i, d in enumerate(fn.function.dims)}
    shape = [sizes.get(d, d) for d in fn.inputs[0].shape]
    ours = torch.zeros(*shape, dtype=torch.float64, requires_grad=True)
    theirs = torch.zeros(*shape, dtype=torch.float64, requires_grad=True)
    fn(ours).backward()
    torch_fn(theirs if shape[1] != 1 else theirs.reshape(-1)).backward()
    assert not torch.isnan(ours.grad).any()
    assert torch.equal(ours.grad, theirs.grad)
    assert torch.equal(ours.grad, torch.zeros_like(ours))


def test_gradcheck_matrix_output():
    """A non-scalar output: backward is the VJP with autograd's seed."""
    fn = matdiff.torch.function("X : matrix(n, k)\nW : matrix(k, m)\nS = softmax(X*W, 2)\n")
    inputs = random_inputs(fn, 15)
    assert torch.autograd.gradcheck(fn, inputs)
    S = fn(*inputs)
    assert S.shape == (2, 4)
    assert torch.allclose(S, torch.softmax(inputs[0] @ inputs[1], dim=1), rtol=0, atol=1e-15)


def test_matches_autograd_and_accumulates():
    fn = matdiff.torch.function(SEED)
    X, W, b = random_inputs(fn, 16)
    ref = [t.detach().clone().requires_grad_(True) for t in (X, W, b)]
    for _ in range(2):                                 # .grad accumulates over both
        y = fn(X=X, W=W, b=b)
        y.backward()
        y_ref = (ref[0] @ ref[1] + ref[2]).pow(2).sum()
        y_ref.backward()
        assert y.shape == () and y.dtype == torch.float64
        assert abs(y.item() - y_ref.item()) <= 1e-12 * y_ref.item()
    for t, r in zip((X, W, b), ref):
        assert torch.allclose(t.grad, r.grad, rtol=1e-12, atol=1e-12)


def test_only_the_gradients_asked_for():
    fn = matdiff.torch.function(SEED)
    X, W, b = [t.detach() for t in random_inputs(fn, 17)]
    W.requires_grad_(True)
    fn(X, W, b).backward()
    assert X.grad is None and b.grad is None
    assert torch.allclose(W.grad, 2 * X.T @ (X @ W + b), rtol=1e-12, atol=1e-12)


def test_vectors_keep_their_shapes():
    fn = matdiff.torch.load(os.path.join(ROOT, "examples", "logistic.expr"))
    X = torch.randn(5, 3, dtype=torch.float64)
    w = torch.randn(3, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    fn(X, w, b, y).backward()
    assert w.grad.shape == (3,) and b.grad.shape == ()
    w2, b2 = w.detach().clone().requires_grad_(True), b.detach().clone().requires_grad_(True)
    torch.nn.functional.binary_cross_entropy_with_logits(X @ w2 + b2, y).backward()
    assert torch.allclose(w.grad, w2.grad, rtol=1e-12, atol=1e-14)
    assert torch.allclose(b.grad, b2.grad, rtol=1e-12, atol=1e-14)


def test_errors():
    fn = matdiff.torch.function(SEED)
    X, W, b = [t.detach() for t in random_inputs(fn, 18)]
    with pytest.raises(TypeError, match=r"input 'X' is torch.float32: matdiff computes in "
                       r"float64; pass X.double\(\)"):
        fn(X.float(), W, b)
    with pytest.raises(TypeError, match=r"input 'W' is on meta: matdiff computes on the CPU; "
                       r"pass W.cpu\(\)"):
        fn(X, W.to("meta"), b)
    with pytest.raises(TypeError, match="input 'b': expected a torch.Tensor, not ndarray"):
        fn(X, W, b.numpy())
    with pytest.raises(matdiff.ShapeError, match="input 'b' is declared"):
        fn(X, W, b[:-1])
    ls = matdiff.torch.load(os.path.join(ROOT, "examples", "least_squares.expr"))
    A, x, y = torch.randn(4, 2), torch.randn(2), torch.randn(4)
    with pytest.raises(TypeError, match=r"input 'A' requires grad, but f is differentiated "
                       r"only with respect to x \(its wrt line\)"):
        ls(A.double().requires_grad_(True), x.double(), y.double())


def test_double_backward_through_the_hvp():
    """create_graph=True gives gradients that differentiate again through
    md_hvp: torch.autograd.functional.hessian of the seed loss through
    matdiff.torch is PyTorch's own of the same loss, gradgradcheck holds on
    every example, and a third derivative is a clear error."""
    fn = matdiff.torch.function(SEED)
    X, W, b = random_inputs(fn, 19)
    (gX,) = torch.autograd.grad(fn(X, W, b), X, create_graph=True)
    assert torch.allclose(gX, 2 * (X @ W + b) @ W.T, rtol=1e-12, atol=1e-12)
    Xd, bd = X.detach(), b.detach()
    got = torch.autograd.functional.hessian(lambda w: fn(Xd, w, bd), W.detach())
    want = torch.autograd.functional.hessian(
        lambda w: torch.linalg.matrix_norm(Xd @ w + bd) ** 2, W.detach())
    assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)
    (gW,) = torch.autograd.grad(fn(X, W, b), W, create_graph=True)
    (hW,) = torch.autograd.grad(gW.sum(), W, create_graph=True)
    with pytest.raises(RuntimeError, match="no third derivatives"):
        torch.autograd.grad(hW.sum(), W)


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_gradgradcheck_every_example(path):
    fn = matdiff.torch.load(path)
    tensors = random_inputs(fn, 23)
    wrt = [i for i, x in enumerate(fn.inputs) if x.wrt]
    # A symmetric input is made from a free matrix, as in gradcheck above:
    # the HVP's directions for it are then symmetric too.
    with open(path) as f:
        kinds = dict(SYMMETRIC.findall(f.read()))

    def loss(*ws):
        t = list(x.detach() for x in tensors)
        for i, w in zip(wrt, ws):
            t[i] = w
        return fn(*[symmetric_from(a, kinds[x]) if x in kinds else a for x, a in zip(fn.inputs, t)])

    ws = tuple(tensors[i].detach().clone().requires_grad_(True) for i in wrt)
    assert torch.autograd.gradgradcheck(loss, ws)


def test_seed_notebook_replayed():
    rows = example_script("seed_notebook").compare()
    assert len(rows) == 14
    for what, err, tol in rows:
        assert err <= tol, what


def test_training_matches_pytorch_step_by_step():
    train = example_script("train_mlp")
    ref, run, loss_err, weight_err = train.compare()
    assert len(ref[0]) == len(run[0]) == train.STEPS == 100
    assert loss_err <= 1e-9 and weight_err <= 1e-9
    assert run[0][-1] < 0.5 * run[0][0]                # it trained
