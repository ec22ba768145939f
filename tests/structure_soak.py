#!/usr/bin/python3
"""structure_soak.py - random losses built from what chain.c and plan.c
rewrite (products of rectangular matrices and vectors, sums, transposes,
inverses, eye, diag, ones, outer products, traces, sums along an axis,
elementwise functions), every other one over four square matrices, each
through `matdiff check --order 2`: the JIT's
value, gradients, JVP, HVPs and Hessians against the tape, and finite
differences.

tests/gen.c draws from the whole language; this draws where the rewrites
for cost are, at several sizes, so that a rewrite that takes a sum, a
reduction or a structured matrix apart wrongly shows. A failure prints
its program, which `matdiff check FILE --order 2 --seed S` replays.

  tests/structure_soak.py MATDIFF [N] [SEED] [--cost]

With --cost it checks nothing and measures instead: `matdiff cost` of each
loss with every size 1000, printing those whose gradients cost over 4.5
times the value or whose Hessian-vector product over 12 times (an O(n^3)
step where the value has none, most often), and how many.

Exits 1 if any program fails. A disagreement that only finite differences
see, where the tape agrees with the symbolic derivatives to 1e-9, is
counted apart and is not a failure: the tape is exact, differences are
not (a small gradient beside a large value).
"""
import os
import random
import re
import subprocess
import sys
import tempfile

DIMS = ["n", "m", "k"]
VEC = {"n": "x", "m": "y", "k": "z"}
MAT = {("n", "m"): "A", ("m", "k"): "B", ("k", "n"): "C", ("n", "n"): "S", ("m", "n"): "E"}
HEADER = ("A : matrix(n, m)\nB : matrix(m, k)\nC : matrix(k, n)\nS : matrix(n, n)\n"
          "E : matrix(m, n)\nx : vector(n)\ny : vector(m)\nz : vector(k)\na : scalar\n")
# Every other program is square: four n x n matrices, so that sums of
# matrices (and of them with eye, 1 and outer products) are common.
SQUARE = ("A : matrix(n, n)\nB : matrix(n, n)\nC : matrix(n, n)\nD : matrix(n, n)\n"
          "x : vector(n)\ny : vector(n)\nz : vector(n)\na : scalar\n")


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.square = False

    def dims(self):
        return ["n"] if self.square else DIMS

    def leaf(self, r, c):
        if self.square:
            t = self.r.randrange(10)
            if t < 7:
                return self.r.choice(["A", "B", "C", "D", "A'", "B'"])
            return self.r.choice(["eye(n)", "diag(x)", "(y)*(x)'"])
        if (r, c) in MAT:
            return MAT[(r, c)]
        if (c, r) in MAT:
            return MAT[(c, r)] + "'"
        if r == c:
            return self.r.choice(["eye(%s)" % r, "diag(%s)" % VEC[r]])
        return "(%s)*(%s)'" % (VEC[r], VEC[c])

    def mat(self, r, c, d):
        if d <= 0:
            return self.leaf(r, c)
        t = self.r.randrange(14)
        if t < 4:
            mid = self.r.choice(self.dims())
            return "(%s)*(%s)" % (self.mat(r, mid, d - 1), self.mat(mid, c, d - 1))
        if t < 6:
            return "(%s %s %s)" % (self.mat(r, c, d - 1), self.r.choice("+-"), self.mat(r, c, d - 1))
        if t == 6:
            return "(%s)'" % self.mat(c, r, d - 1)
        if t == 7:
            return "(%s)*(%s)'" % (self.vec(r, d - 1), self.vec(c, d - 1))
        if t == 8 and r == c:
            return "inv(%s + 3*%s*eye(%s))" % (self.mat(r, c, d - 1), r, r)
        if t == 9:
            return "%s*(%s)" % (self.r.choice(["2", "a", "-0.5"]), self.mat(r, c, d - 1))
        if t == 10:
            if self.r.random() < 0.3:
                return "ones(%s, %s)" % (r, c)
            return "(%s).*(%s)" % (self.mat(r, c, d - 1), self.mat(r, c, d - 1))
        if t == 11:
            f = self.r.choice(["tanh(%s)", "sigmoid(%s)", "exp(-(%s).^2)"])
            return f % self.mat(r, c, d - 1)
        if t == 12 and r == c:
            return "(%s + %s)" % (self.mat(r, c, d - 1), self.r.choice(["eye(%s)" % r, "1"]))
        if t == 13:
            return "(%s).*(%s)" % (self.vec(r, d - 1), self.mat(r, c, d - 1))
        return self.leaf(r, c)

    def vec(self, r, d):
        if d <= 0:
            return self.r.choice("xyz") if self.square else VEC[r]
        t = self.r.randrange(6)
        c = self.r.choice(self.dims())
        if t < 3:
            return "(%s)*(%s)" % (self.mat(r, c, d - 1), self.vec(c, d - 1))
        if t == 3:
            return "(%s %s %s)" % (self.vec(r, d - 1), self.r.choice("+-"), self.vec(r, d - 1))
        if t == 4:
            return "sum(%s, 2)" % self.mat(r, c, d - 1)
        return "sum(%s, 1)'" % self.mat(c, r, d - 1)

    def scalar(self, d):
        t = self.r.randrange(8)
        r, c = self.r.choice(self.dims()), self.r.choice(self.dims())
        if t == 0:
            return "sum(%s)" % self.mat(r, c, d)
        if t == 1:
            return "tr(%s)" % self.mat(r, r, d)
        if t == 2:
            return "(%s)'*(%s)" % (self.vec(r, d), self.vec(r, d))
        if t == 3:
            return "||%s||_F^2" % self.mat(r, c, d)
        if t == 4:
            return "(%s)'*(%s)*(%s)" % (self.vec(r, d - 1), self.mat(r, c, d - 1), self.vec(c, d - 1))
        if t == 5:
            return "sum(diag(%s))" % self.mat(r, r, d)
        if t == 6:
            return "logdet((%s)'*(%s) + eye(%s))" % (self.mat(c, r, d - 1), self.mat(c, r, d - 1), r)
        return "sum(%s)" % self.vec(r, d)

    def program(self, square):
        self.square = square
        return (SQUARE if square else HEADER) + "f = %s + %s\n" % (
            self.scalar(self.r.randrange(1, 4)), self.scalar(self.r.randrange(1, 3)))


def run_each(matdiff, n, seed, verb):
    """N losses from SEED, each written to a file and given to `matdiff
    VERB(i) FILE ...`: yields (i, source, completed process)."""
    g = Gen(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "p.expr")
        for i in range(n):
            src = g.program(i % 2 == 1)
            with open(path, "w") as f:
                f.write(src)
            args = verb(i)
            r = subprocess.run([matdiff, args[0], path] + args[1:], capture_output=True,
                               text=True, timeout=120)
            yield i, src, r


def cost_scan(matdiff, n, seed):
    flagged = 0
    sizes = ["--dim", "n=1000", "--dim", "m=1000", "--dim", "k=1000"]
    for _, src, r in run_each(matdiff, n, seed, lambda i: ["cost"] + sizes):
        x = [float(t) for t in re.findall(r"\(([0-9.]+) times the value\)", r.stdout)]
        if len(x) >= 2 and (x[0] > 4.5 or x[1] > 12):
            flagged += 1
            print("gradients %.1fx, HVP %.1fx: %s" % (x[0], x[1], src.splitlines()[-1]))
    print("structure_soak --cost: %d losses from seed %d, %d flagged" % (n, seed, flagged))
    return 0


def check(matdiff, n, seed):
    failed = fd_only = 0
    verb = lambda i: ["check", "--order", "2", "--seed", str(i + 1)]
    for i, src, r in run_each(matdiff, n, seed, verb):
        if r.returncode == 0:
            continue
        out = r.stdout + r.stderr
        tapes = [float(t) for t in re.findall(r"tape ([0-9.e+-]+)", out)]
        if "error:" not in out and tapes and max(tapes) <= 1e-9:
            fd_only += 1
            continue
        failed += 1
        print("---- failed (matdiff check FILE --order 2 --seed %d):\n%s%s" % (i + 1, src, out))
    print("structure_soak: %d programs from seed %d, %d failed, %d where only finite "
          "differences disagreed" % (n, seed, failed, fd_only))
    return 1 if failed else 0


def main():
    args = [a for a in sys.argv[1:] if a != "--cost"]
    if not 1 <= len(args) <= 3 or not all(a.isdigit() for a in args[1:]):
        print("usage: tests/structure_soak.py MATDIFF [N] [SEED] [--cost]", file=sys.stderr)
        return 2
    matdiff = args[0]
    n = int(args[1]) if len(args) > 1 else 200
    seed = int(args[2]) if len(args) > 2 else 1
    return (cost_scan if "--cost" in sys.argv else check)(matdiff, n, seed)


if __name__ == "__main__":
    sys.exit(main())
