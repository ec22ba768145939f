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
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-9
NOTEBOOK_Y = 162.5566       # printed by the notebook, full-precision inputs
ROUNDED_Y = 162.5512        # the same loss of the 4-decimal inputs
ROUNDED_Y_TOLERANCE = 5e-5

INPUTS = ("X", "W", "b")
OUTPUTS = (("y", "y.txt"), ("dy/dX", "dy_dX.txt"), ("dy/dW", "dy_dW.txt"),
           ("dy/db", "dy_db.txt"))


def read_matrix(path):
    """Read matdiff's text format: rows per line, numbers split by whitespace
    and/or commas, '#' comments, blank lines ignored."""
    rows = []
    with open(path) as f:
        for line in f:
            fields = [t for t in re.split(r"[\s,]+", line.split("#", 1)[0]) if t]
            if fields:
                rows.append([float(t) for t in fields])
    if not rows or any(len(r) != len(rows[0]) for r in rows):
        raise ValueError("%s: empty or ragged matrix" % path)
    return np.array(rows, dtype=np.float64)


def find_binary(arg):
    """An absolute path to the binary, so it can run from the repository root."""
    if os.sep in arg:
        return os.path.abspath(arg)
    return shutil.which(arg) or os.path.abspath(arg)


def run_matdiff(binary, outdir):
    """Run matdiff; return None, or a message saying how it failed."""
    cmd = [binary, "eval", "examples/seed.expr"]
    cmd += ["%s=examples/seed/%s.txt" % (n, n) for n in INPUTS]
    cmd += ["--grad", "--out", outdir]
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "cannot run %s: %s" % (" ".join(cmd), e)
    if p.returncode != 0:
        return "%s exited with %d\n%s%s" % (" ".join(cmd), p.returncode, p.stdout, p.stderr)
    return None


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


def compare(name, path, want):
    """One result line for quantity NAME; True when it passes."""
    try:
        got = read_matrix(path)
    except (OSError, ValueError) as e:
        print("FAIL %-6s cannot read matdiff's result: %s" % (name, e))
        return False
    if got.shape != want.shape:
        print("FAIL %-6s shape %dx%d, expected %dx%d" % ((name,) + got.shape + want.shape))
        return False
    err = np.max(np.abs(got - want)) / max(1.0, np.max(np.abs(want)))
    ok = bool(err <= TOLERANCE)
    print("%s %-6s %dx%d  relative error %.3g (tolerance %g)"
          % ("ok  " if ok else "FAIL", name, want.shape[0], want.shape[1], err, TOLERANCE))
    return ok


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
        failure = run_matdiff(binary, outdir)
        if failure:
            print("FAIL matdiff: " + failure.rstrip())
        results = [compare(name, os.path.join(outdir, file), want[name])
                   for name, file in OUTPUTS]
        results.append(check_notebook(os.path.join(outdir, "y.txt")))
    passed = sum(results)
    failed = len(results) - passed + (1 if failure else 0)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
