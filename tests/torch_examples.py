#!/usr/bin/python3
"""torch_examples.py - every example's loss and gradients against PyTorch.

Usage: tests/torch_examples.py MATDIFF_BINARY [EXAMPLE...]

EXAMPLE is a name such as `ridge` (or examples/ridge.expr); the default is
every examples/*.expr this script has a PyTorch version of. For each one it

  - draws inputs with a fixed numpy seed (per example, so a subset run sees
    the same numbers as a full one) at small sizes, a different size for each
    symbolic dimension, with data in the loss's domain (0/1 labels, one-hot
    rows, a positive penalty), and writes them as text with 17 significant
    digits, which read back to the same doubles;
  - runs `MATDIFF_BINARY eval examples/NAME.expr VAR=PATH ... --grad --out DIR`;
  - recomputes the loss with float64 PyTorch autograd from the text files,
    written the way one would in PyTorch (binary_cross_entropy_with_logits,
    cross_entropy, MultivariateNormal.log_prob, ...), not as a copy of the
    .expr formula;
  - compares the value and the gradient of every `wrt` variable of the .expr
    file (every input when there is no `wrt`) at 1e-9 relative error,
    max|a - b| / max(1, max|b|), b being PyTorch's;
  - then second order, along random directions dX (one per wrt variable):
    `eval ... dX=PATH --jvp --hvp --hessian --out DIR2`, against
    torch.autograd.functional.jvp, double backward (the HVP) and
    torch.autograd.functional.hessian, block by block (d2y_dx2, d2y_dxdb,
    each variable flattened row-major: matdiff's vec layout), at 1e-9.

It prints one line per quantity, a max-error line per example and last
`N passed, M failed`; it exits 1 on any failure, including matdiff failing,
matdiff writing a gradient that is not expected or the .expr declaring other
inputs than the PyTorch version uses. An examples/*.expr with no PyTorch
version is reported as skipped, not failed. An unknown EXAMPLE is a usage
error (exit 2).

Needs Debian's /usr/bin/python3, which has torch; the pyenv python3 on PATH
does not.
"""
import math
import os
import re
import sys
import tempfile
import zlib

import numpy as np
import torch
import torch.nn.functional as F

from util import ROOT, compare, find_binary, read_matrix, run_matdiff, write_matrix

EXAMPLES_DIR = os.path.join(ROOT, "examples")
TOLERANCE = 1e-9
SEED = 20240601


# ---- what a .expr file declares -------------------------------------------

DECL = re.compile(r"^([A-Za-z_]\w*)\s*:\s*(scalar|vector|matrix|symmetric|posdef)\s*(?:\((.*)\))?$")
WRT = re.compile(r"^wrt\s+(.*)$")
ASSIGN = re.compile(r"^([A-Za-z_]\w*)\s*=(?!=)")


def parse_expr(path):
    """(inputs, wrt, output): inputs as [(name, kind, [size, ...])] in
    declaration order, sizes as ints or symbolic names; wrt the variables
    differentiated (every input when the file has no `wrt`); output the name
    of the last assignment."""
    with open(path) as f:
        text = f.read()
    lines, pending = [], ""
    for line in text.split("\n"):
        line = line.split("#", 1)[0].rstrip()
        if line.endswith("..."):
            pending += line[:-3] + " "
            continue
        lines.append(pending + line)
        pending = ""
    lines.append(pending)
    inputs, wrt, output = [], None, None
    for line in lines:
        for stmt in line.split(";"):
            stmt = stmt.strip()
            m = DECL.match(stmt)
            if m:
                name, kind, args = m.group(1), m.group(2), m.group(3) or ""
                sizes = [s.strip() for s in args.split(",") if s.strip()]
                sizes = [int(s) if s.isdigit() else s for s in sizes]
                inputs.append((name, kind, sizes))
                continue
            m = WRT.match(stmt)
            if m:
                wrt = (wrt or []) + [v.strip() for v in m.group(1).split(",") if v.strip()]
                continue
            m = ASSIGN.match(stmt)
            if m:
                output = m.group(1)
    if wrt is None:
        wrt = [name for name, _, _ in inputs]
    return inputs, wrt, output


def matdiff_shape(kind, sizes, dims):
    """The 2-D shape matdiff reads and writes: a vector(n) is n x 1, a scalar 1 x 1."""
    bound = [s if isinstance(s, int) else dims[s] for s in sizes]
    if kind == "scalar":
        return (1, 1)
    if kind == "vector":
        return (bound[0], 1)
    if kind in ("symmetric", "posdef"):
        return (bound[0], bound[0])
    return (bound[0], bound[1])


def torch_shape(kind, shape):
    """How PyTorch code holds the same input: a 0-d scalar, a 1-D vector."""
    if kind == "scalar":
        return ()
    if kind == "vector":
        return (shape[0],)
    return shape


# ---- inputs in each loss's domain -------------------------------------------

def normal(rng, shape):
    return rng.standard_normal(shape)


def positive(rng, shape):
    """A penalty such as lambda: positive, with all 17 digits in use."""
    return rng.uniform(0.25, 2.0, size=shape)


def posdef(rng, shape):
    """A covariance: symmetric to the last bit, positive definite."""
    a = rng.standard_normal(shape)
    s = a @ a.T / shape[0] + np.eye(shape[0])
    return (s + s.T) / 2


def labels01(rng, shape):
    """Labels in {0, 1}, both present."""
    n = shape[0]
    return rng.permutation(np.arange(n) % 2).astype(np.float64).reshape(shape)


def one_hot(rng, shape):
    """One-hot rows, every class present when there are at least as many rows."""
    n, k = shape
    return np.eye(k)[rng.permutation(np.arange(n) % k)]


# ---- the losses, in PyTorch --------------------------------------------------
# Each takes a dict of float64 tensors (scalars 0-d, vectors 1-D, matrices
# 2-D) and returns the loss as a 0-d tensor.

def seed_loss(t):
    return torch.linalg.matrix_norm(t["X"] @ t["W"] + t["b"], ord="fro") ** 2


def least_squares_loss(t):
    return torch.linalg.vector_norm(t["A"] @ t["x"] - t["b"]) ** 2


def ridge_loss(t):
    return (F.mse_loss(t["X"] @ t["w"], t["y"], reduction="sum")
            + t["lambda"] * t["w"].square().sum())


def logistic_loss(t):
    return F.binary_cross_entropy_with_logits(t["X"] @ t["w"] + t["b"], t["y"])


def softmax_regression_loss(t):
    logits = t["X"] @ t["W"] + t["b"]
    return F.cross_entropy(logits, t["Y"].argmax(dim=1))


def mlp_loss(t):
    hidden = torch.tanh(F.linear(t["X"], t["W1"].T, t["b1"]))
    logits = F.linear(hidden, t["W2"].T, t["b2"])
    return F.cross_entropy(logits, t["Y"])        # probability (one-hot) targets


def gaussian_nll_loss(t):
    n, d = t["X"].shape
    dist = torch.distributions.MultivariateNormal(t["mu"], covariance_matrix=t["Sigma"])
    # The .expr leaves out the constant n*d/2*log(2*pi).
    return -dist.log_prob(t["X"]).sum() - n * d / 2 * math.log(2 * math.pi)


def factorisation_loss(t):
    U, V = t["U"], t["V"]
    return (F.mse_loss(U @ V.T, t["R"], reduction="sum")
            + t["lambda"] * (torch.linalg.matrix_norm(U) ** 2
                             + torch.linalg.matrix_norm(V) ** 2))


# name: (symbolic sizes, {input: generator}, loss). The inputs must be exactly
# those the .expr declares; the sizes differ from each other so a transposed
# or misbound dimension cannot go unnoticed.
EXAMPLES = {
    "seed": ({},
             {"X": normal, "W": normal, "b": normal},
             seed_loss),
    "least_squares": ({"m": 7, "n": 4},
                      {"A": normal, "x": normal, "b": normal},
                      least_squares_loss),
    "ridge": ({"n": 7, "d": 4},
              {"X": normal, "w": normal, "y": normal, "lambda": positive},
              ridge_loss),
    "logistic": ({"n": 9, "d": 4},
                 {"X": normal, "w": normal, "b": normal, "y": labels01},
                 logistic_loss),
    "softmax_regression": ({"n": 8, "d": 5, "k": 3},
                           {"X": normal, "W": normal, "b": normal, "Y": one_hot},
                           softmax_regression_loss),
    "mlp": ({"n": 8, "d": 5, "h": 6, "k": 3},
            {"X": normal, "W1": normal, "b1": normal, "W2": normal, "b2": normal,
             "Y": one_hot},
            mlp_loss),
    "gaussian_nll": ({"n": 7, "d": 4},
                     {"X": normal, "mu": normal, "Sigma": posdef},
                     gaussian_nll_loss),
    "factorisation": ({"m": 6, "n": 5, "k": 3},
                      {"R": normal, "U": normal, "V": normal, "lambda": positive},
                      factorisation_loss),
}


# ---- one example --------------------------------------------------------------

class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def add(self, ok):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok


def fail(tally, example, message):
    print("FAIL %s: %s" % (example, message.rstrip()))
    tally.add(False)


def run_example(binary, example, tally):
    dims, generators, loss_fn = EXAMPLES[example]
    expr = "examples/%s.expr" % example
    inputs, wrt, output = parse_expr(os.path.join(ROOT, expr))
    declared = [name for name, _, _ in inputs]
    if sorted(declared) != sorted(generators):
        fail(tally, example, "%s declares inputs %s, the PyTorch version uses %s; "
             "update tests/torch_examples.py" % (expr, ", ".join(declared),
                                                 ", ".join(generators)))
        return
    if output is None:
        fail(tally, example, "%s has no assignment" % expr)
        return
    unbound = sorted({s for _, _, sizes in inputs for s in sizes
                      if not isinstance(s, int) and s not in dims})
    if unbound:
        fail(tally, example, "no size for %s in tests/torch_examples.py" % ", ".join(unbound))
        return

    rng = np.random.default_rng([SEED, zlib.crc32(example.encode())])
    with tempfile.TemporaryDirectory(prefix="torch_examples.%s." % example) as tmp:
        indir, outdir = os.path.join(tmp, "in"), os.path.join(tmp, "out")
        os.mkdir(indir)
        os.mkdir(outdir)

        # Write the inputs, then read them back: matdiff and PyTorch see the
        # same doubles.
        shapes, kinds, leaves, args = {}, {}, {}, []
        for name, kind, sizes in inputs:
            shape = matdiff_shape(kind, sizes, dims)
            path = os.path.join(indir, name + ".txt")
            write_matrix(path, generators[name](rng, shape))
            data = read_matrix(path)
            if data.shape != shape:
                data = data.reshape(shape)
            shapes[name], kinds[name] = shape, kind
            leaves[name] = torch.tensor(data.reshape(torch_shape(kind, shape)),
                                        dtype=torch.float64, requires_grad=name in wrt)
            args.append("%s=%s" % (name, path))

        value = loss_fn(leaves)
        value.backward()
        want = {output: value.detach().numpy().reshape(1, 1)}
        files = {output: output + ".txt"}
        order = [output]
        for var in wrt:
            q = "d%s/d%s" % (output, var)
            grad = leaves[var].grad
            want[q] = (np.zeros(shapes[var]) if grad is None
                       else grad.numpy().reshape(shapes[var]))
            if kinds[var] in ("symmetric", "posdef"):
                # PyTorch's gradient treats every element as free; matdiff's
                # is the one among symmetric matrices, its projection
                # (G + G')/2 (docs/LANGUAGE.md).
                want[q] = (want[q] + want[q].T) / 2
            files[q] = "d%s_d%s.txt" % (output, var)
            order.append(q)

        failure = run_matdiff(binary, ["eval", expr] + args + ["--grad", "--out", outdir])
        if failure:
            fail(tally, example, failure)
            return

        worst = 0.0
        for q in order:
            ok, err = compare("%s %s" % (example, q), os.path.join(outdir, files[q]), want[q],
                              TOLERANCE, 30)
            tally.add(ok)
            worst = max(worst, err) if err is not None else float("inf")
        extra = sorted(set(os.listdir(outdir)) - set(files.values()))
        if extra:
            fail(tally, example, "matdiff wrote files no wrt variable explains: %s"
                 % ", ".join(extra))
        worst = max(worst, run_second(binary, example, expr, args, leaves, wrt, shapes, kinds,
                                      output, rng, tmp, tally))
        print("     %-30s max relative error %.3g" % (example + ":", worst))


def symmetric_projection(shape, kind):
    """The projection onto symmetric matrices, (V + V')/2, as a matrix on
    row-major vec(V); the identity for an input that is not symmetric."""
    n = int(np.prod(shape))
    p = np.eye(n)
    if kind in ("symmetric", "posdef"):
        k = np.arange(n).reshape(shape).T.reshape(n)
        p = (p + p[k]) / 2
    return p


def run_second(binary, example, expr, args, leaves, wrt, shapes, kinds, output, rng, tmp,
               tally):
    """The JVP, HVPs and Hessian blocks of EXAMPLE against PyTorch's; the
    worst error. A symmetric input takes symmetric directions, and its
    second derivatives are those among symmetric matrices: PyTorch's, which
    treat every element as free, projected, P*H*P, with P the projection
    (V + V')/2 on its side (the first-order gradient's convention)."""
    outdir = os.path.join(tmp, "second")
    os.mkdir(outdir)
    wrt = [v for v in wrt if v in leaves]
    dirs = {}
    for var in wrt:
        path = os.path.join(tmp, "in", "d%s.txt" % var)
        d = normal(rng, shapes[var])
        if kinds[var] in ("symmetric", "posdef"):
            d = (d + d.T) / 2
        write_matrix(path, d)
        dirs[var] = torch.tensor(read_matrix(path).reshape(leaves[var].shape), dtype=torch.float64)
        args = args + ["d%s=%s" % (var, path)]
    failure = run_matdiff(binary, ["eval", expr] + args + ["--jvp", "--hvp", "--hessian", "--out",
                                                           outdir])
    if failure:
        fail(tally, example, failure)
        return float("inf")
    loss_fn = EXAMPLES[example][2]
    fixed = {k: t.detach() for k, t in leaves.items()}

    def f(*xs):
        t = dict(fixed)
        t.update(zip(wrt, xs))
        return loss_fn(t)

    xs = tuple(fixed[v].clone() for v in wrt)
    vs = tuple(dirs[v] for v in wrt)
    want, files = {}, {}
    _, jvp = torch.autograd.functional.jvp(f, xs, vs)
    want["d" + output], files["d" + output] = jvp.numpy().reshape(1, 1), "jvp_%s.txt" % output
    # The HVP by double backward: the gradient's derivative along v.
    ys = tuple(x.clone().requires_grad_(True) for x in xs)
    grads = torch.autograd.grad(f(*ys), ys, create_graph=True)
    dot = sum((g * v).sum() for g, v in zip(grads, vs))
    hvs = torch.autograd.grad(dot, ys, allow_unused=True)
    hessian = torch.autograd.functional.hessian(f, xs)
    for i, var in enumerate(wrt):
        q = "d(d%s/d%s)" % (output, var)
        hv = hvs[i] if hvs[i] is not None else torch.zeros_like(xs[i])
        p = symmetric_projection(shapes[var], kinds[var])
        want[q] = (p @ hv.numpy().reshape(-1)).reshape(shapes[var])
        files[q] = "hvp_%s.txt" % var
        for j in range(i, len(wrt)):
            other = wrt[j]
            li, lj = int(np.prod(shapes[var])), int(np.prod(shapes[other]))
            block = (symmetric_projection(shapes[var], kinds[var])
                     @ hessian[i][j].numpy().reshape(li, lj)
                     @ symmetric_projection(shapes[other], kinds[other]))
            q = "d2%s/d%s%s" % (output, var, "2" if i == j else "d" + other)
            name = "d2%s_d%s%s.txt" % (output, var, "2" if i == j else "d" + other)
            want[q], files[q] = block, name
    worst = 0.0
    for q in want:
        ok, err = compare("%s %s" % (example, q), os.path.join(outdir, files[q]), want[q],
                          TOLERANCE, 30)
        tally.add(ok)
        worst = max(worst, err) if err is not None else float("inf")
    return worst


def example_name(arg):
    """`ridge`, `ridge.expr` or `examples/ridge.expr` -> `ridge`."""
    base = os.path.basename(arg)
    return base[:-5] if base.endswith(".expr") else base


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        sys.stderr.write("usage: %s MATDIFF_BINARY [EXAMPLE...]\n" % argv[0])
        return 2
    binary = find_binary(argv[1])
    present = sorted(f[:-5] for f in os.listdir(EXAMPLES_DIR) if f.endswith(".expr"))
    if len(argv) > 2:
        names = [example_name(a) for a in argv[2:]]
        unknown = [n for n in names if n not in EXAMPLES or n not in present]
        if unknown:
            for n in unknown:
                sys.stderr.write("%s: unknown example '%s' (known: %s)\n"
                                 % (argv[0], n, ", ".join(sorted(set(EXAMPLES) & set(present)))))
            return 2
    else:
        names = [n for n in present if n in EXAMPLES]
        for n in present:
            if n not in EXAMPLES:
                print("skipped %s: examples/%s.expr has no PyTorch version in "
                      "tests/torch_examples.py" % (n, n))
        for n in sorted(set(EXAMPLES) - set(present)):
            print("skipped %s: examples/%s.expr does not exist" % (n, n))

    torch.set_grad_enabled(True)
    tally = Tally()
    for n in names:
        run_example(binary, n, tally)
    print("%d passed, %d failed" % (tally.passed, tally.failed))
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
