#!/usr/bin/python3
"""torch_seed.py - the seed notebook as an acceptance test.

Usage: tests/torch_seed.py MATDIFF_BINARY

Runs `MATDIFF_BINARY eval examples/seed.expr X=... W=... b=... --grad --out DIR`
on the notebook's inputs (examples/seed/*.txt), recomputes y = ||XW + b||_F^2
and its gradients with float64 PyTorch autograd from the same text files, and
compares each quantity at 1e-9 relative error, max|a - b| / max(1, max|b|).
It also checks y against the notebook: the inputs are its printed 4-decimal
values, so y is 162.5512, not the 162.5566 of the full-precision tensors.

Needs Debian's /usr/bin/python3, which has torch; the pyenv python3 on PATH
does not.
"""
import os
import sys
import tempfile

import torch

from util import ROOT, compare, find_binary, read_matrix, run_matdiff

TOLERANCE = 1e-9
NOTEBOOK_Y = 162.5566       # printed by the notebook, full-precision inputs
ROUNDED_Y = 162.5512        # the same loss of the 4-decimal inputs
ROUNDED_Y_TOLERANCE = 5e-5

INPUTS = ("X", "W", "b")
OUTPUTS = (("y", "y.txt"), ("dy/dX", "dy_dX.txt"), ("dy/dW", "dy_dW.txt"),
           ("dy/db", "dy_db.txt"))


def torch_reference():
    """y and its gradients by float64 autograd, from the same text inputs."""
    leaves = {n: torch.tensor(read_matrix(os.path.join(ROOT, "examples/seed/%s.txt" % n)),
                              dtype=torch.float64, requires_grad=True) for n in INPUTS}
    y = (leaves["X"].mm(leaves["W"]) + leaves["b"]).pow(2).sum()
    y.backward()
    return {"y": y.detach().numpy().reshape(1, 1),
            "dy/dX": leaves["X"].grad.numpy(),
            "dy/dW": leaves["W"].grad.numpy(),
            "dy/db": leaves["b"].grad.numpy()}


def check_notebook(path):
    """matdiff's y against the value the notebook's printed inputs give."""
    try:
        y = float(read_matrix(path).reshape(-1)[0])
    except (OSError, ValueError) as e:
        print("FAIL y vs notebook: cannot read matdiff's y: %s" % e)
        return False
    ok = abs(y - ROUNDED_Y) < ROUNDED_Y_TOLERANCE
    print("%s y vs notebook: y = %.10g, |y - %.4f| = %.2g (tolerance %g); y - %.4f = %.4f "
          "(relative %.2g), the notebook's inputs being unrounded"
          % ("ok  " if ok else "FAIL", y, ROUNDED_Y, abs(y - ROUNDED_Y), ROUNDED_Y_TOLERANCE,
             NOTEBOOK_Y, y - NOTEBOOK_Y, abs(y - NOTEBOOK_Y) / NOTEBOOK_Y))
    return ok


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: %s MATDIFF_BINARY\n" % argv[0])
        return 2
    binary = find_binary(argv[1])
    want = torch_reference()
    with tempfile.TemporaryDirectory(prefix="torch_seed.") as outdir:
        failure = run_matdiff(binary, ["eval", "examples/seed.expr"]
                              + ["%s=examples/seed/%s.txt" % (n, n) for n in INPUTS]
                              + ["--grad", "--out", outdir])
        if failure:
            print("FAIL matdiff: " + failure.rstrip())
        results = [compare(name, os.path.join(outdir, file), want[name], TOLERANCE, 6)[0]
                   for name, file in OUTPUTS]
        results.append(check_notebook(os.path.join(outdir, "y.txt")))
    passed = sum(results)
    failed = len(results) - passed + (1 if failure else 0)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
