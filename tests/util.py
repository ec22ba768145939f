"""util.py - what the Python tests (torch_seed.py, torch_examples.py) share:
matdiff's text matrix format, the binary's path and how to run it, and the
one comparison, max|a - b| / max(1, max|b|) as the C library's md_rel_err,
with the result line it prints."""
import os
import re
import shutil
import subprocess

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def write_matrix(path, a):
    """A 2-D array, one row per line, 17 significant digits (exact doubles).
    A vector (n x 1) is one number per line, a scalar (1 x 1) one number."""
    with open(path, "w") as f:
        for row in a:
            f.write(" ".join("%.17g" % v for v in row) + "\n")


def find_binary(arg):
    """An absolute path to the binary, so it can run from the repository root."""
    if os.sep in arg:
        return os.path.abspath(arg)
    return shutil.which(arg) or os.path.abspath(arg)


def run_matdiff(binary, args):
    """Run BINARY ARGS from the repository root; None, or how it failed."""
    cmd = [binary] + args
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "cannot run %s: %s" % (" ".join(cmd), e)
    if p.returncode != 0:
        return "%s exited with %d\n%s%s" % (" ".join(cmd), p.returncode, p.stdout, p.stderr)
    return None


def rel_err(got, want):
    """max|got - want| / max(1, max|want|): relative where WANT is large,
    absolute where it is small. NaN when any difference is."""
    return float(np.max(np.abs(got - want)) / max(1.0, np.max(np.abs(want))))


def compare(label, path, want, tolerance, width):
    """matdiff's result in PATH against WANT: one line, LABEL padded to
    WIDTH; (passed, the error or None when there is none to give)."""
    try:
        got = read_matrix(path)
    except (OSError, ValueError) as e:
        print("FAIL %-*s cannot read matdiff's result: %s" % (width, label, e))
        return False, None
    if got.shape != want.shape:
        print("FAIL %-*s shape %dx%d, expected %dx%d" % ((width, label) + got.shape + want.shape))
        return False, None
    err = rel_err(got, want)
    ok = bool(err <= tolerance)     # a NaN fails
    print("%s %-*s %dx%d  relative error %.3g (tolerance %g)"
          % ("ok  " if ok else "FAIL", width, label, want.shape[0], want.shape[1], err, tolerance))
    return ok, err
