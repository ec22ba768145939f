#!/usr/bin/python3
"""seed_notebook.py - the seed notebook (../shared/seed-notebook.md), redone
with matdiff in place of PyTorch's autograd.

    python3 examples/python/seed_notebook.py

In [1]-[2]: x, w, b = torch.randn(...) after torch.manual_seed(0), as the
notebook draws them (float32, then held as float64, the precision matdiff
computes in); y = ||xw + b||_F^2 and its gradients through a compiled
matdiff function, loss.backward() and .grad, against the same cells in pure
PyTorch autograd (float64) at 1e-12, and against what the notebook printed
(float32 arithmetic, 4 decimals) at 1e-5 relative.

Practice, In [3]-[5]: gradients accumulate in .grad until zeroed: 10/20/10
for (w*x + b)^2 at w=2, x=1, b=3; 11/22/11 after a backward of w*x + b
without zeroing; 1/2/1 after zeroing. Checked against the notebook's
numbers and against the same cells in pure PyTorch.

Prints each quantity and its error; exits 1 if any is out of tolerance.
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# In a source tree, its own package (python/); else the installed one.
if os.path.isdir(os.path.join(ROOT, "python", "matdiff")):
    sys.path.insert(0, os.path.join(ROOT, "python"))
import matdiff.torch  # noqa: E402

TOLERANCE = 1e-12           # matdiff against PyTorch, both float64
NOTEBOOK_TOLERANCE = 1e-5   # against the notebook: float32, printed to 4 decimals

SEED_SOURCE = """\
X : matrix(10, 4)
W : matrix(4, 4)
b : matrix(10, 4)
y = ||X*W + b||_F^2
"""
SQUARE_SOURCE = "w : scalar\nx : scalar\nb : scalar\ny = (w*x + b)^2\n"
LINEAR_SOURCE = "w : scalar\nx : scalar\nb : scalar\ny = w*x + b\n"

# What the notebook printed: y, and the gradients of In [2].
NOTEBOOK_Y = 162.5566
NOTEBOOK_GRADS = {
    "x": [[-5.5354, 2.2788, -7.2747, 4.9560], [7.0786, 7.9225, -3.9229, -20.8719],
          [3.7750, -13.6215, 1.8300, 5.0560], [-2.5051, 8.0172, 4.6761, 0.5287],
          [-3.8409, -13.8474, 4.4959, 19.6415], [-1.1472, -12.0802, -0.4455, 11.5021],
          [1.9607, -13.7048, 3.0314, 8.1723], [0.3539, -5.1480, 3.1660, 5.3047],
          [0.5524, 0.1245, -3.4478, -3.5855], [-8.1827, -3.6565, -3.3562, 16.4601]],
    "w": [[12.8560, 0.9793, -10.9075, -24.5453], [21.0108, 33.3000, -1.3519, -40.4582],
          [-14.7987, -2.2609, -8.6005, -12.0511], [-28.4880, -20.5779, 12.3552, 46.0581]],
    "b": [[3.1480, 1.6979, 3.1826, 6.4714], [6.0862, 1.4365, -4.2966, -7.2248],
          [-2.5635, -5.6951, -4.6232, 1.6427], [-2.2008, 4.5967, 1.9861, -2.0806],
          [-6.4545, -5.1746, 2.7957, 5.8385], [-2.3584, -4.5992, -0.6065, 5.5481],
          [-3.6774, -6.8541, -0.4983, 1.1807], [-2.9029, -1.0739, -2.0263, 1.2502],
          [2.5451, -2.2012, 2.7118, -1.0662], [-1.2450, 0.5925, 3.8684, 9.8011]],
}
# The Practice cells' printed (w.grad, x.grad, b.grad) after In [3], [4], [5].
NOTEBOOK_PRACTICE = [(10.0, 20.0, 10.0), (11.0, 22.0, 11.0), (1.0, 2.0, 1.0)]


def leaves():
    """In [1]'s x, w, b: drawn in float32 as the notebook does, held in float64."""
    torch.manual_seed(0)
    drawn = [torch.randn(10, 4), torch.randn(4, 4), torch.randn(10, 4)]
    return [t.double().requires_grad_(True) for t in drawn]


def cells_1_2(loss):
    """In [1] and In [2] with LOSS(x, w, b): (y, [x.grad, w.grad, b.grad])."""
    x, w, b = leaves()
    y = loss(x, w, b)
    y.backward()
    return y.item(), [x.grad, w.grad, b.grad]


def practice(square, linear):
    """In [3] to In [5]: (w.grad, x.grad, b.grad) after each cell."""
    x = torch.tensor([1.], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([2.], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([3.], dtype=torch.float64, requires_grad=True)
    seen = []
    square(w, x, b).backward()                       # In [3]
    seen.append((w.grad.item(), x.grad.item(), b.grad.item()))
    linear(w, x, b).backward()                       # In [4]: no zeroing
    seen.append((w.grad.item(), x.grad.item(), b.grad.item()))
    y = linear(w, x, b)                              # In [5]
    w.grad.zero_()
    x.grad.zero_()
    b.grad.zero_()
    y.backward()
    seen.append((w.grad.item(), x.grad.item(), b.grad.item()))
    return seen


def relative(a, b):
    """max|a - b| / max(1, max|b|), b the reference."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return ((a - b).abs().max() / max(1.0, b.abs().max().item())).item()


def compare():
    """Every comparison, as (what, error, tolerance)."""
    seed = matdiff.torch.function(SEED_SOURCE)
    square = matdiff.torch.function(SQUARE_SOURCE)
    linear = matdiff.torch.function(LINEAR_SOURCE)
    y_md, g_md = cells_1_2(seed)
    y_pt, g_pt = cells_1_2(lambda x, w, b: (x.mm(w) + b).pow(2).sum())
    rows = [("y, matdiff against PyTorch", relative(y_md, y_pt), TOLERANCE),
            ("y, matdiff against the notebook's %.4f" % NOTEBOOK_Y,
             abs(y_md - NOTEBOOK_Y) / NOTEBOOK_Y, NOTEBOOK_TOLERANCE)]
    for name, a, b in zip("xwb", g_md, g_pt):
        rows.append(("%s.grad, matdiff against PyTorch" % name, relative(a, b), TOLERANCE))
        rows.append(("%s.grad, matdiff against the notebook" % name,
                     relative(a, NOTEBOOK_GRADS[name]), NOTEBOOK_TOLERANCE))
    p_md = practice(square, linear)
    p_pt = practice(lambda w, x, b: (w * x + b).pow(2), lambda w, x, b: w * x + b)
    for cell, got, want, torch_got in zip((3, 4, 5), p_md, NOTEBOOK_PRACTICE, p_pt):
        shown = "/".join("%g" % v for v in got)
        rows.append(("In [%d]: w/x/b.grad = %s, against the notebook's" % (cell, shown),
                     relative(got, want), TOLERANCE))
        rows.append(("In [%d]: against PyTorch" % cell, relative(got, torch_got), TOLERANCE))
    return rows


def main():
    rows = compare()
    failed = 0
    for what, err, tol in rows:
        ok = err <= tol
        failed += not ok
        print("  %-4s %-58s %.1e (<= %.0e)" % ("ok" if ok else "FAIL", what, err, tol))
    print("%d passed, %d failed" % (len(rows) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
