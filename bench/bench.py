#!/usr/bin/python3
"""bench.py - `make bench`: every implementation of every case, timed in one
process and in the same rounds, written to bench/results.md.

Usage (the Makefile's bench target runs it so):
  bench.py --build BUILD --out bench/results.md --cc CC --cflags FLAGS --libs LIBS

The implementations (bench/README.md says why this is fair):
  AOT      `matdiff compile`'s C, built as a user builds it (cc -O2), in a
           shared object with a generated call; timed by harness.c's loop
  JIT      md_compile once, then md_grad (md_eval), timed by the same loop
  hand     bench/hand.c, CBLAS by hand; the same loop
  PyTorch  float64 tensors and autograd, a Python loop, gradients zeroed
           in place each step as an optimiser does
  NumPy    the same LAPACK (OpenBLAS) called as NumPy users call it

Each case runs its implementations in interleaved rounds, one batch of
calls each per round, in a rotating order; a sample is a batch's mean, and
a figure the median of the samples, in thread CPU time (wall time too).
"""
import argparse
import ctypes
import datetime
import math
import os
import statistics
import subprocess
import sys
import time
import zlib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
import matdiff  # noqa: E402  (the package in python/, on build/pic/libmatdiff.so)

TARGET = float(os.environ.get("BENCH_TARGET", "0.5"))  # seconds of calls per case and impl
ROUNDS = 7
P = ctypes.c_void_p


# ---- building ----------------------------------------------------------------

class Builder:
    """Compiles the AOT cases into shared objects in OUT, with a call for
    harness.c's loop: mdb_value and mdb_grad take one array of pointers,
    a = [sizes, inputs..., out, gradients (wrt order)..., workspace]."""

    def __init__(self, args):
        self.args = args
        self.out = os.path.join(args.build, "bench")
        self.matdiff = os.path.join(args.build, "matdiff")

    def aot(self, expr, name, flt=False, second=False):
        c = os.path.join(self.out, "aot_%s.c" % name)
        subprocess.run([self.matdiff, "compile", expr, "--name", name, "-o", c]
                       + (["--float"] if flt else []), check=True)
        f = matdiff.load(expr)
        thunk = os.path.join(self.out, "aot_%s_call.c" % name)
        with open(thunk, "w") as fh:
            fh.write(self.call_source(f, name, os.path.basename(c), "float" if flt else "double"))
            if second:
                fh.write(self.second_source(f, name))
        so = os.path.join(self.out, "aot_%s.so" % name)
        cmd = "%s -std=c99 -O2 -g -fPIC -shared -Iruntime %s -o %s %s -L%s -lmatdiff_rt %s " \
              "-Wl,-rpath,%s" % (self.args.cc, self.args.cflags, so, thunk,
                                 os.path.join(self.args.build, "pic"), self.args.libs,
                                 os.path.abspath(os.path.join(self.args.build, "pic")))
        subprocess.run(cmd, shell=True, check=True, cwd=ROOT)
        return Aot(ctypes.CDLL(os.path.abspath(so)), f, flt)

    @staticmethod
    def call_source(f, name, cfile, real):
        nd, ni = len(f.dims), len(f.inputs)
        dims = ["d[%d]" % j for j in range(nd)]
        ins = ["(const %s *)a[%d]" % (real, 1 + i) for i in range(ni)]
        grads = ["(%s *)a[%d]" % (real, 2 + ni + j) for j in range(len(f.wrt))]
        ws = "a[%d]" % (2 + ni + len(f.wrt))
        out = "((%s *)a[%d])" % (real, 1 + ni)
        scalar = tuple(f.output_shape) == (1, 1)
        lines = ['/* Written by bench/bench.py: the calls harness.c times. */',
                 '#include "%s"' % cfile,
                 'long mdb_ws(const long *d);',
                 'double mdb_value(void **a);',
                 'double mdb_grad(void **a);',
                 'long mdb_ws(const long *d) {',
                 '  (void)d;',
                 '  return %s_workspace_size(%s);' % (name, ", ".join(dims)),
                 '}',
                 'double mdb_value(void **a) {',
                 '  const long *d = a[0];',
                 '  (void)d;']
        if scalar:
            lines += ['  return %s[0] = %s_ws(%s);' % (out, name, ", ".join(dims + ins + [ws])),
                      '}',
                      'double mdb_grad(void **a) {',
                      '  const long *d = a[0];',
                      '  (void)d;',
                      '  return %s[0] = %s_grad_ws(%s);'
                      % (out, name, ", ".join(dims + ins + grads + [ws]))]
        else:
            lines += ['  return %s_ws(%s);' % (name, ", ".join(dims + ins + [out, ws])),
                      '}',
                      'double mdb_grad(void **a) {',
                      '  (void)a;',
                      '  return 0;']
        return "\n".join(lines + ['}', ''])

    @staticmethod
    def second_source(f, name):
        """The calls of P_hessian_ws, a = [sizes, inputs..., H, workspace],
        and of P_hvp_ws, a = [sizes, inputs..., directions (wrt)...,
        products (wrt)..., workspace]; each returns its result's first
        element."""
        nd, ni, nw = len(f.dims), len(f.inputs), len(f.wrt)
        dims = ", ".join(["d[%d]" % j for j in range(nd)])
        ins = ["(const double *)a[%d]" % (1 + i) for i in range(ni)]
        dirs = ["(const double *)a[%d]" % (1 + ni + j) for j in range(nw)]
        hvs = ["(double *)a[%d]" % (1 + ni + nw + j) for j in range(nw)]
        return "\n".join([
            'long mdb_hessian_ws(const long *d);',
            'double mdb_hessian(void **a);',
            'long mdb_hvp_ws(const long *d);',
            'double mdb_hvp(void **a);',
            'long mdb_hessian_ws(const long *d) {',
            '  (void)d;',
            '  return %s_hessian_workspace_size(%s);' % (name, dims),
            '}',
            'double mdb_hessian(void **a) {',
            '  const long *d = a[0];',
            '  (void)d;',
            '  double *H = a[%d];' % (1 + ni),
            '  %s_hessian_ws(%s);' % (name, ", ".join([dims] + ins + ["H", "a[%d]" % (2 + ni)])),
            '  return H[0];',
            '}',
            'long mdb_hvp_ws(const long *d) {',
            '  (void)d;',
            '  return %s_hvp_workspace_size(%s);' % (name, dims),
            '}',
            'double mdb_hvp(void **a) {',
            '  const long *d = a[0];',
            '  (void)d;',
            '  %s_hvp_ws(%s);' % (name, ", ".join([dims] + ins + dirs + hvs
                                                   + ["a[%d]" % (1 + ni + 2 * nw)])),
            '  return ((double *)a[%d])[0];' % (1 + ni + nw),
            '}', ''])


class Aot:
    def __init__(self, lib, f, flt):
        self.lib, self.f, self.flt = lib, f, flt
        self.lib.mdb_ws.restype = ctypes.c_long
        self.lib.mdb_ws.argtypes = [P]


# ---- calling ----------------------------------------------------------------

def ptr(a):
    return a.ctypes.data if a is not None else None


class Impl:
    """One implementation of a case: run(reps) -> (cpu, wall) seconds for
    REPS calls; result() -> [value, gradient...] as float64 arrays."""
    name = ""

    def run(self, reps):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError


class CImpl(Impl):
    """A call timed by harness.c: FN (a C function pointer) on the array A."""

    def __init__(self, name, harness, fn, args, out, grads):
        self.name, self.h, self.fn = name, harness, fn
        self.args = (P * len(args))(*args)
        self.out, self.grads = out, grads

    def run(self, reps):
        wall = ctypes.c_double()
        cpu = self.h.mdb_time(self.fn, self.args, reps, ctypes.byref(wall))
        return cpu, wall.value

    def result(self):
        for g in self.grads:
            g[...] = 0
        self.run(1)
        return [np.array(self.out, dtype=np.float64)] + [np.array(g, dtype=np.float64)
                                                         for g in self.grads]


class AddImpl(CImpl):
    """A call that adds its results into OUTS (a Hessian, HVPs): zeroed
    before the one call result() makes."""

    def __init__(self, name, harness, fn, args, outs):
        CImpl.__init__(self, name, harness, fn, args, None, outs)

    def result(self):
        for g in self.grads:
            g[...] = 0
        self.run(1)
        return [np.array(g, dtype=np.float64) for g in self.grads]


class PyImpl(Impl):
    """A Python step (PyTorch, NumPy) in a Python loop."""

    def __init__(self, name, step, result):
        self.name, self.step, self._result = name, step, result

    def run(self, reps):
        w0, t0 = time.perf_counter(), time.thread_time()
        for _ in range(reps):
            self.step()
        return time.thread_time() - t0, time.perf_counter() - w0

    def result(self):
        return self._result()


class Case:
    """Inputs by name (float64 arrays, vectors as n x 1) and sizes."""

    def __init__(self, group, label, expr, dims, inputs, wrt):
        self.group, self.label, self.expr = group, label, expr
        self.dims, self.inputs, self.wrt = dims, inputs, wrt
        self.impls, self.times, self.agree = [], {}, {}
        self.ref = None  # the implementation the others are checked against

    def input_list(self, f, dtype=np.float64):
        return [np.ascontiguousarray(self.inputs[str(x)], dtype=dtype) for x in f.inputs]


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = Builder(args)
        so = os.path.join(args.build, "bench", "libharness.so")
        self.h = ctypes.CDLL(os.path.abspath(so))
        self.h.mdb_time.restype = ctypes.c_double
        self.h.mdb_time.argtypes = [P, P, ctypes.c_long, ctypes.POINTER(ctypes.c_double)]
        self.keep = []  # buffers the C side points into

    def fn(self, lib, name):
        return ctypes.cast(getattr(lib, name), P).value

    def dims_of(self, f, case):
        return np.array([case.dims[d] for d in f.dims] or [0], dtype=np.int64)

    # AOT: [sizes, inputs..., out, gradients..., workspace]
    def aot(self, case, label, aot, grad=True):
        f = aot.f
        dtype = np.float32 if aot.flt else np.float64
        dims = self.dims_of(f, case)
        ins = case.input_list(f, dtype)
        out = np.zeros(f_out_size(f, case), dtype=dtype)
        grads = [np.zeros_like(case.inputs[str(x)], dtype=dtype) for x in f.wrt] if grad else []
        ws = np.zeros(max(1, aot.lib.mdb_ws(dims.ctypes.data)), dtype=np.uint8)
        args = [ptr(dims)] + [ptr(a) for a in ins] + [ptr(out)] + \
               [ptr(g) for g in grads] + [None] * (0 if grad else len(f.wrt)) + [ptr(ws)]
        self.keep += [aot, dims, ins, out, grads, ws]
        fn = self.fn(aot.lib, "mdb_grad" if grad else "mdb_value")
        case.impls.append(CImpl(label, self.h, fn, args, out, grads))

    # JIT: [md_function, sizes, inputs (array), out, gradients (array)]
    def jit(self, case, label, f, grad=True):
        dims = self.dims_of(f, case)
        ins = case.input_list(f)
        inarr = (P * len(ins))(*[ptr(a) for a in ins])
        out = np.zeros(f_out_size(f, case))
        grads = [np.zeros_like(case.inputs[str(x)]) if x.wrt and grad else None
                 for x in f.inputs]
        garr = (P * len(grads))(*[ptr(g) for g in grads])
        self.keep += [f, dims, ins, inarr, out, grads, garr]  # f: its handle is freed with it
        args = [f._handle, ptr(dims), ctypes.addressof(inarr), ptr(out), ctypes.addressof(garr)]
        fn = self.fn(self.h, "mdb_jit_grad" if grad else "mdb_jit_eval")
        case.impls.append(CImpl(label, self.h, fn, args, out, [g for g in grads if g is not None]))

    # hand.c: [sizes, inputs..., out, gradients..., workspace]
    def hand(self, case, which, order, dims, grads, ws_doubles):
        d = np.array(dims, dtype=np.int64)
        ins = [np.ascontiguousarray(case.inputs[k]) for k in order]
        out = np.zeros(1)
        gs = [np.zeros_like(case.inputs[k]) for k in grads]
        ws = np.zeros(max(1, ws_doubles))
        self.keep += [d, ins, out, gs, ws]
        args = [ptr(d)] + [ptr(a) for a in ins] + [ptr(out)] + [ptr(g) for g in gs] + [ptr(ws)]
        case.impls.append(CImpl("hand CBLAS", self.h, self.fn(self.h, "mdb_hand_" + which), args,
                                out, gs))


    # The second order, P_hessian_ws and P_hvp_ws (AOT), md_hessian and
    # md_hvp (JIT), hand.c's closed forms: the Hessian wrt the one wrt
    # input, N x N, or the HVP along case.inputs["v"], added into zeros.
    def second(self, case, label, f, which, aot=None):
        dims = self.dims_of(f, case)
        ins = case.input_list(f)
        wrt = str(f.wrt[0])
        N = case.inputs[wrt].size
        res = np.zeros((N, N)) if which == "hessian" else np.zeros_like(case.inputs[wrt])
        self.keep += [f, dims, ins, res]
        if aot is not None:
            ws = np.zeros(max(1, getattr(aot.lib, "mdb_%s_ws" % which)(dims.ctypes.data)),
                          dtype=np.uint8)
            dirs = [] if which == "hessian" else [case.inputs["v"]]
            outs = [] if which == "hessian" else [res]
            args = [ptr(dims)] + [ptr(a) for a in ins] + [ptr(a) for a in dirs] + \
                   ([ptr(res)] if which == "hessian" else [ptr(a) for a in outs]) + [ptr(ws)]
            self.keep.append(ws)
            fn = self.fn(aot.lib, "mdb_" + which)
        else:
            inarr = (P * len(ins))(*[ptr(a) for a in ins])
            args = [f._handle, ptr(dims), ctypes.addressof(inarr), ptr(res)]
            if which == "hvp":
                dirs = (P * len(ins))(*[ptr(case.inputs["v"]) if str(x) == wrt else None
                                        for x in f.inputs])
                hvs = (P * len(ins))(*[ptr(res) if str(x) == wrt else None for x in f.inputs])
                self.keep += [dirs, hvs]
                args[3:] = [ctypes.addressof(dirs), ctypes.addressof(hvs), ptr(res)]
            self.keep.append(inarr)
            fn = self.fn(self.h, "mdb_jit_" + which)
        case.impls.append(AddImpl(label, self.h, fn, args, [res]))

    # hand.c's second order: [sizes, inputs..., (direction), result, workspace]
    def hand_second(self, case, which, order, dims, shape, ws_bytes):
        d = np.array(dims, dtype=np.int64)
        ins = [np.ascontiguousarray(case.inputs[k]) for k in order]
        res = np.zeros(shape)
        ws = np.zeros(max(1, ws_bytes // 8 + 1))
        self.keep += [d, ins, res, ws]
        args = [ptr(d)] + [ptr(a) for a in ins] + [ptr(res), ptr(ws)]
        case.impls.append(AddImpl("hand CBLAS", self.h, self.fn(self.h, "mdb_hand_" + which),
                                  args, [res]))


def f_out_size(f, case):
    r, c = f.output_shape
    r = case.dims[r] if isinstance(r, str) else r
    c = case.dims[c] if isinstance(c, str) else c
    return r * c


def rel_diff(got, want):
    d = max((float(np.max(np.abs(np.asarray(g, np.float64).reshape(-1) -
                                 np.asarray(w, np.float64).reshape(-1)))) if np.size(w) else 0.0)
            for g, w in zip(got, want))
    scale = max(float(np.max(np.abs(w))) if np.size(w) else 0.0 for w in want)
    return d / scale if scale else d


# ---- timing ----------------------------------------------------------------

def time_case(case):
    """Interleaved rounds: one batch of every implementation per round."""
    per = {}
    for im in case.impls:  # a first call each to warm, then a second for a size of its batches
        cpu, wall = im.run(1)  # (the JIT compiles its second order in its first md_hvp)
        if cpu < 1:
            cpu, wall = im.run(1)
        per[im.name] = max(cpu, 1e-7)
    slowest = max(per.values())
    rounds = ROUNDS if slowest < TARGET / ROUNDS else max(3, int(TARGET * 2 / slowest))
    rounds = min(rounds, ROUNDS)
    reps = {k: max(1, int(TARGET / rounds / v)) for k, v in per.items()}
    samples = {im.name: ([], []) for im in case.impls}
    for r in range(rounds):
        order = case.impls[r % len(case.impls):] + case.impls[:r % len(case.impls)]
        for im in order:
            cpu, wall = im.run(reps[im.name])
            samples[im.name][0].append(cpu / reps[im.name])
            samples[im.name][1].append(wall / reps[im.name])
    for im in case.impls:
        c, w = samples[im.name]
        case.times[im.name] = (statistics.median(c), statistics.median(w), rounds, reps[im.name])
    if case.ref is not None:
        want = case.ref.result()
        for im in case.impls:
            if im is not case.ref:
                case.agree[im.name] = rel_diff(im.result(), want)


# ---- the cases ---------------------------------------------------------------

def rng(label):
    """The same numbers on every run: a generator seeded by the case's name."""
    return np.random.default_rng(zlib.crc32(label.encode()))


def torch_impl(case, loss, names):
    import torch
    t = {k: torch.from_numpy(v.copy()) for k, v in case.inputs.items()}
    for k in names:
        t[k].requires_grad_(True)
    params = [t[k] for k in names]

    def step():
        for p in params:
            if p.grad is not None:
                p.grad.zero_()
        y = loss(t, case.dims)
        y.backward()
        return y

    def result():
        for p in params:
            p.grad = None
        y = step()
        return [np.array([y.item()])] + [p.grad.numpy().copy() for p in params]
    return PyImpl("PyTorch", step, result)


def seed_loss(t, d):
    return ((t["X"] @ t["W"] + t["b"]) ** 2).sum()


def logistic_loss(t, d):
    import torch.nn.functional as F
    z = t["X"] @ t["w"] + t["b"]
    return (F.softplus(z) - t["y"] * z).sum() / d["n"]


def mlp_loss(t, d):
    H = (t["X"] @ t["W1"] + t["b1"].T).tanh()
    Z = H @ t["W2"] + t["b2"].T
    return (Z.logsumexp(1).sum() - (t["Y"] * Z).sum()) / d["n"]


def seed_cases(b, aots):
    cases = []
    for n, k, m in ((10, 4, 4), (100, 100, 100), (1000, 1000, 1000)):
        g = rng("seed%d" % n)
        c = Case("seed", "seed %d×%d×%d" % (n, k, m), "bench/seed_sym.expr",
                 dict(n=n, k=k, m=m), dict(X=g.standard_normal((n, k)),
                                           W=g.standard_normal((k, m)),
                                           b=g.standard_normal((n, m))), ["X", "W", "b"])
        b.aot(c, "AOT", aots["seed_sym"])
        b.jit(c, "JIT", aots["seed_sym"].f)
        b.hand(c, "seed", ["X", "W", "b"], [n, k, m], ["X", "W", "b"], n * m)
        c.ref = c.impls[-1]
        c.impls.append(torch_impl(c, seed_loss, ["X", "W", "b"]))
        cases.append(c)
    return cases


def logistic_case(b, aots):
    n, d = 10000, 100
    g = rng("logistic")
    c = Case("logistic", "logistic %d×%d" % (n, d), "examples/logistic.expr", dict(n=n, d=d),
             dict(X=g.standard_normal((n, d)), w=g.standard_normal((d, 1)) / math.sqrt(d),
                  b=np.array([[0.1]]), y=(g.random((n, 1)) < 0.5).astype(np.float64)),
             ["w", "b"])
    b.aot(c, "AOT", aots["logistic"])
    b.aot(c, "AOT --float", aots["logistic_f"])
    b.jit(c, "JIT", aots["logistic"].f)
    b.hand(c, "logistic", ["X", "w", "b", "y"], [n, d], ["w", "b"], n)
    c.ref = c.impls[-1]
    c.impls.append(torch_impl(c, logistic_loss, ["w", "b"]))
    return [c]


def mlp_cases(b, aots):
    cases = []
    for n, d, h, k in ((1000, 100, 100, 10), (256, 784, 256, 10)):
        g = rng("mlp%d" % n)
        Y = np.zeros((n, k))
        Y[np.arange(n), g.integers(0, k, n)] = 1
        c = Case("mlp", "MLP %d/%d/%d/%d" % (n, d, h, k), "examples/mlp.expr",
                 dict(n=n, d=d, h=h, k=k),
                 dict(X=g.standard_normal((n, d)), W1=g.standard_normal((d, h)) / math.sqrt(d),
                      b1=0.1 * g.standard_normal((h, 1)),
                      W2=g.standard_normal((h, k)) / math.sqrt(h),
                      b2=0.1 * g.standard_normal((k, 1)), Y=Y), ["W1", "b1", "W2", "b2"])
        b.aot(c, "AOT", aots["mlp"])
        b.jit(c, "JIT", aots["mlp"].f)
        b.hand(c, "mlp", ["X", "W1", "b1", "W2", "b2", "Y"], [n, d, h, k],
               ["W1", "b1", "W2", "b2"], 2 * n * h + n * k)
        c.ref = c.impls[-1]
        c.impls.append(torch_impl(c, mlp_loss, ["W1", "b1", "W2", "b2"]))
        cases.append(c)
    return cases


# ---- second order (issue #12) -----------------------------------------------

def factor_loss(t, d):
    return ((t["R"] - t["U"] @ t["V"].T) ** 2).sum() + \
        t["lambda"][0, 0] * ((t["U"] ** 2).sum() + (t["V"] ** 2).sum())


# PyTorch's ways to a full Hessian: the functional API as documented, its
# vectorized variant, and functorch's jacrev(jacrev).
TORCH_HESSIANS = ("PyTorch hessian", "PyTorch vectorize", "PyTorch jacrev²")


def torch_hessian_impls(case, loss, wrt):
    import torch
    t = {k: torch.from_numpy(v.copy()) for k, v in case.inputs.items()}
    x0, N = t[wrt], case.inputs[wrt].size

    def f(x):
        return loss(dict(t, **{wrt: x}), case.dims)
    try:
        from torch.func import jacrev
    except ImportError:  # PyTorch < 2.0 (Debian's 1.13): functorch's
        from functorch import jacrev
    jj = jacrev(jacrev(f))
    steps = {"PyTorch hessian": lambda: torch.autograd.functional.hessian(f, x0),
             "PyTorch vectorize":
             lambda: torch.autograd.functional.hessian(f, x0, vectorize=True),
             "PyTorch jacrev²": lambda: jj(x0)}
    for name in TORCH_HESSIANS:
        case.impls.append(PyImpl(name, steps[name], lambda s=steps[name]:
                                 [s().detach().numpy().reshape(N, N).copy()]))


def torch_hvp_impl(case, loss, wrt):
    """Double backward: the gradient with its graph, then its product with v
    differentiated, as PyTorch users write an HVP."""
    import torch
    t = {k: torch.from_numpy(v.copy()) for k, v in case.inputs.items()}
    x = t[wrt].requires_grad_(True)
    v = t["v"]

    def step():
        g, = torch.autograd.grad(loss(t, case.dims), x, create_graph=True)
        hv, = torch.autograd.grad(g, x, grad_outputs=v)
        return hv
    return PyImpl("PyTorch", step, lambda: [step().numpy().copy()])


def second_expr(b, src, wrt, name):
    """SRC (an example) with its wrt line replaced by WRT, in build/bench."""
    text = "".join("wrt %s\n" % wrt if line.startswith("wrt ") else line
                   for line in open(src))
    path = os.path.join(b.build.out, name + ".expr")
    with open(path, "w") as fh:
        fh.write(text)
    return path


def logistic_inputs(label, n, d):
    g = rng(label)
    return dict(X=g.standard_normal((n, d)), w=g.standard_normal((d, 1)) / math.sqrt(d),
                b=np.array([[0.1]]), y=(g.random((n, 1)) < 0.5).astype(np.float64),
                v=g.standard_normal((d, 1)))


def hessian_cases(b):
    path = second_expr(b, "examples/logistic.expr", "w", "logistic_w")
    aot = b.build.aot(path, "logistic_w", second=True)
    cases = []
    for n, d in ((1000, 100), (10000, 1000)):
        label = "logistic Hessian %d×%d" % (n, d)
        c = Case("hessian", label, path, dict(n=n, d=d), logistic_inputs(label, n, d), ["w"])
        b.second(c, "AOT", aot.f, "hessian", aot)
        b.second(c, "JIT", aot.f, "hessian")
        b.hand_second(c, "logistic_hessian", ["X", "w", "b", "y"], [n, d], (d, d),
                      (n + n * d + d * d) * 8)
        c.ref = c.impls[-1]
        torch_hessian_impls(c, logistic_loss, "w")
        cases.append(c)
    path = second_expr(b, "examples/factorisation.expr", "U", "factorisation_u")
    aot = b.build.aot(path, "factorisation_u", second=True)
    m, n, k = 100, 100, 10
    label = "factorisation Hessian wrt U %d/%d/%d" % (m, n, k)
    g = rng(label)
    c = Case("hessian", label, path, dict(m=m, n=n, k=k),
             {"R": g.standard_normal((m, n)), "U": g.standard_normal((m, k)),
              "V": g.standard_normal((n, k)), "lambda": np.array([[0.1]])}, ["U"])
    b.second(c, "AOT", aot.f, "hessian", aot)
    b.second(c, "JIT", aot.f, "hessian")
    b.hand_second(c, "factor_hessian", ["R", "U", "V", "lambda"], [m, n, k], (m * k, m * k),
                  k * k * 8)
    c.ref = c.impls[-1]
    torch_hessian_impls(c, factor_loss, "U")
    cases.append(c)
    return cases


def hvp_cases(b):
    path = second_expr(b, "examples/logistic.expr", "w", "logistic_w")
    aot = b.build.aot(path, "logistic_w", second=True)
    cases = []
    for n, d in ((100, 10), (1000, 100), (10000, 1000)):
        label = "logistic HVP %d×%d" % (n, d)
        c = Case("hvp", label, path, dict(n=n, d=d), logistic_inputs(label, n, d), ["w"])
        b.second(c, "AOT", aot.f, "hvp", aot)
        b.second(c, "JIT", aot.f, "hvp")
        b.hand_second(c, "logistic_hvp", ["X", "w", "b", "y", "v"], [n, d], (d, 1), 2 * n * 8)
        c.ref = c.impls[-1]
        c.impls.append(torch_hvp_impl(c, logistic_loss, "w"))
        cases.append(c)
    return cases


# The six probes of issue #13, as written and as rewritten by hand.
PROBES = [
    ("sum(A*B*x)", "sum(A*(B*x))",
     "A : matrix(n, n)\nB : matrix(n, n)\nx : vector(n)\ny = %s\n"),
    ("x'*(A'*A)*x", "||A*x||^2", "A : matrix(n, n)\nx : vector(n)\nwrt x\ny = %s\n"),
    ("||diag(v)*A||_F^2", "||v.*A||_F^2", "A : matrix(n, n)\nv : vector(n)\ny = %s\n"),
    ("||A*diag(v)||_F^2", "||A.*v'||_F^2", "A : matrix(n, n)\nv : vector(n)\ny = %s\n"),
    ("sum(A*B)", "sum(A,1)*sum(B,2)", "A : matrix(n, n)\nB : matrix(n, n)\ny = %s\n"),
    ("||eye(n)*A||_F^2", "||A||_F^2", "A : matrix(n, n)\ny = %s\n"),
]
PROBE_N = 2000


def probe_cases(b):
    cases = []
    for i, (orig, hand, decl) in enumerate(PROBES):
        g = rng("probe%d" % i)
        n = PROBE_N
        inputs = {}
        for line in decl.splitlines():
            if " : " in line:
                name, kind = line.split(" : ")
                inputs[name] = g.standard_normal((n, n) if kind.startswith("matrix") else (n, 1)) \
                    / math.sqrt(n)
        for which, text in (("as written", orig), ("by hand", hand)):
            path = os.path.join(b.build.out, "probe%d_%s.expr" % (i, which.split()[-1]))
            with open(path, "w") as fh:
                fh.write(decl % text)
            aot = b.build.aot(path, "probe%d_%s" % (i, which.split()[-1]))
            if which == "as written":
                c = Case("probe", "`%s`" % orig, path, dict(n=n), inputs,
                         [str(x) for x in aot.f.wrt])
                c.hand_text = hand
            b.aot(c, "AOT " + which, aot)
            b.jit(c, "JIT " + which, aot.f)
        c.ref = c.impls[2]  # AOT by hand
        cases.append(c)
    return cases


# A chain of products whose best grouping depends on its sizes, at
# symbolic sizes: the emitted code chooses the grouping at run time. The
# reference is the hand regrouping at the case's literal sizes, which is
# chosen at compile time.
CHAIN = "A : matrix(%s, %s)\nB : matrix(%s, %s)\nC : matrix(%s, %s)\ny = %s\n"
CHAIN_SIZES = [(1000, 100, 1000, 100, "||A*(B*C)||_F^2"),
               (100, 1000, 100, 1000, "||(A*B)*C||_F^2")]


def chain_cases(b):
    path = os.path.join(b.build.out, "chain_sym.expr")
    with open(path, "w") as fh:
        fh.write(CHAIN % ("n", "k", "k", "m", "m", "p", "||A*B*C||_F^2"))
    sym = b.build.aot(path, "chain_sym")
    cases = []
    for n, k, m, p, hand in CHAIN_SIZES:
        name = "chain_%d_%d_%d_%d" % (n, k, m, p)
        g = rng(name)
        inputs = dict(A=g.standard_normal((n, k)) / math.sqrt(k),
                      B=g.standard_normal((k, m)) / math.sqrt(m),
                      C=g.standard_normal((m, p)) / math.sqrt(p))
        hpath = os.path.join(b.build.out, name + ".expr")
        with open(hpath, "w") as fh:
            fh.write(CHAIN % (n, k, k, m, m, p, hand))
        h = b.build.aot(hpath, name)
        c = Case("chain", "`||A*B*C||_F^2` at %d×%d×%d×%d" % (n, k, m, p), path,
                 dict(n=n, k=k, m=m, p=p), inputs, ["A", "B", "C"])
        c.hand_text = hand
        b.aot(c, "AOT", sym)
        b.jit(c, "JIT", sym.f)
        b.aot(c, "AOT by hand", h)
        b.jit(c, "JIT by hand", h.f)
        c.ref = c.impls[2]  # AOT by hand
        cases.append(c)
    return cases


def linalg_cases(b):
    n = 1000
    g = rng("linalg")
    A = g.standard_normal((n, n)) / math.sqrt(n) + 2 * np.eye(n)
    cases = []
    for key, text, grad, numpy_step in (
            ("logdet", "y = logdet(A)", False, lambda A: np.linalg.slogdet(A)),
            ("inv", "Y = inv(A)", False, lambda A: np.linalg.inv(A)),
            ("logdet, gradient", "y = logdet(A)", True,
             lambda A: (np.linalg.slogdet(A), np.linalg.inv(A).T))):
        path = os.path.join(b.build.out, "linalg_%s.expr" % key.split(",")[0])
        with open(path, "w") as fh:
            fh.write("A : matrix(n, n)\n%s\n" % text)
        aot = b.build.aot(path, "linalg_" + key.split(",")[0])
        c = Case("linalg", "`%s` n=%d%s" % (text.split(" = ")[1], n, ", gradient" if grad else ""),
                 path, dict(n=n), dict(A=A), ["A"])
        b.aot(c, "AOT", aot, grad)
        b.jit(c, "JIT", aot.f, grad)

        def result(step=numpy_step, key=key):
            r = step(A)
            if key == "logdet":
                return [np.array([r[1]])]
            if key == "inv":
                return [r]
            return [np.array([r[0][1]]), r[1]]
        c.impls.append(PyImpl("NumPy", lambda step=numpy_step: step(A), result))
        c.ref = c.impls[-1]
        cases.append(c)
    return cases


# ---- md_compile ---------------------------------------------------------------

FAMILIES = [("layers", 3), ("horner", 3), ("parallel", 300)]
NODE_TARGETS = [1000, 2000, 5000, 10000, 20000]
COMPILE_LIMIT = 30  # seconds per probe
COMPILE_RUNS = 3    # processes per size, the fastest kept


def compile_families(build):
    probe = os.path.join(build, "bench", "compile_probe")
    rows = []
    for fam, per in FAMILIES:
        stop = False
        for target in NODE_TARGETS:
            K = max(1, target // per)
            if stop:
                rows.append((fam, target, K, None, None, None, "skipped"))
                continue
            try:
                # The fastest of COMPILE_RUNS processes: one run's time moves by
                # 30% on a shared machine, enough to bend the exponent.
                best = None
                for _ in range(COMPILE_RUNS):
                    r = subprocess.run([probe, fam, str(K)], capture_output=True, text=True,
                                       timeout=COMPILE_LIMIT)
                    nodes, t, mb, outcome = r.stdout.strip().split("\t", 3)
                    run = (fam, target, K, int(nodes), float(t), float(mb), outcome)
                    if outcome != "ok":
                        best = run
                        break
                    if best is None or run[4] < best[4]:
                        best = run
                rows.append(best)
                stop = best[6] != "ok"
            except subprocess.TimeoutExpired:
                rows.append((fam, target, K, None, None, None, "over %d s" % COMPILE_LIMIT))
                stop = True
            print("  %-8s K=%-5d %s" % (fam, K, rows[-1][3:]), flush=True)
    return rows


def exponent(rows, fam):
    """Least-squares slope of log(time) on log(nodes), sizes that compiled."""
    pts = [(math.log(r[3]), math.log(r[4])) for r in rows
           if r[0] == fam and r[6] == "ok" and r[4] > 0]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else None


def seed_compile_latency(build):
    """md_compile of the notebook's loss, the median of 51 in one process."""
    probe = os.path.join(build, "bench", "compile_probe")
    r = subprocess.run([probe, "file", "examples/seed.expr", "51"], capture_output=True,
                       text=True, check=True)
    return float(r.stdout.split("\t")[1])


# ---- the report ---------------------------------------------------------------

def fmt_t(s):
    if s is None:
        return "–"
    for unit, k in (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if s >= k or unit == "ns":
            v = s / k
            return ("%.3g %s" % (v, unit)) if v < 1000 else ("%.0f %s" % (v, unit))


def cell(text):
    """TEXT in a Markdown table's cell: a | would end the cell, even in code."""
    return text.replace("|", "\\|")


def fmt_x(r):
    return "–" if r is None else ("%.3g×" % r)


def git(*args):
    try:
        return subprocess.run(["git"] + list(args), capture_output=True, text=True,
                              cwd=ROOT, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    blas = ""
    try:
        ob = ctypes.CDLL("libopenblas.so.0")
        ob.openblas_get_config.restype = ctypes.c_char_p
        ob.openblas_get_corename.restype = ctypes.c_char_p
        blas = "`%s`, core %s" % (ob.openblas_get_config().decode(),
                                ob.openblas_get_corename().decode())
    except (OSError, AttributeError):
        pass
    return cpu, os.cpu_count(), blas


def t_of(case, name):
    return case.times[name][0] if name in case.times else None


def ratio(a, b):
    return a / b if a and b else None


def second_goals(cases):
    """Issue #12's goals: (what, goal, measured, holds) rows."""
    goals = []

    def goal(what, want, r, ok):
        goals.append((what, want, fmt_x(r), r is not None and ok(r)))

    for c in cases:
        if c.group not in ("hessian", "hvp"):
            continue
        hand = t_of(c, "hand CBLAS")
        limit = 1.25 if c.group == "hessian" else 1.3
        for impl in ("AOT", "JIT") if c.label.startswith("logistic") else ():
            goal("%s: %s vs hand-written" % (c.label, impl), "≤ %g×" % limit,
                 ratio(t_of(c, impl), hand), lambda r: r <= limit)
        aot = t_of(c, "AOT")
        if c.group == "hessian":
            fastest = min([t for t in (t_of(c, n) for n in TORCH_HESSIANS[1:]) if t] or [0])
            if c.label.startswith("logistic"):
                if c.dims["n"] == 1000:
                    goal("%s: `functional.hessian`/AOT" % c.label, "≥ 30",
                         ratio(t_of(c, "PyTorch hessian"), aot), lambda r: r >= 30)
                goal("%s: PyTorch's fastest/AOT" % c.label, "≥ 5", ratio(fastest, aot),
                     lambda r: r >= 5)
            else:
                fastest = min([t for t in (t_of(c, n) for n in TORCH_HESSIANS) if t] or [0])
                goal("%s: PyTorch's fastest/AOT" % c.label, "> 1", ratio(fastest, aot),
                     lambda r: r > 1)
        else:
            want = 20 if c.dims["n"] == 100 else 1
            goal("%s: PyTorch/AOT" % c.label, "≥ 20" if want > 1 else "> 1",
                 ratio(t_of(c, "PyTorch"), aot), lambda r, w=want: r >= w if w > 1 else r > 1)
    return goals


def write_report(path, cases, rows, seed_ms, started, load0, cc):
    load1 = os.getloadavg()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    cpu, ncpu, blas = machine()
    import torch
    by = {c.label: c for c in cases}
    lines = []
    w = lines.append
    w("# matdiff benchmark results")
    w("")
    w("Written by `make bench` (bench/bench.py; bench/README.md says how it times). Do not "
      "edit: run it again. The README's table is copied from here by `make readme-bench`.")
    w("")
    w("| | |")
    w("| --- | --- |")
    w("| commit | %s%s |" % (commit, " **with uncommitted changes**" if dirty else ", clean tree"))
    w("| date | %s |" % started.strftime("%Y-%m-%d %H:%M UTC"))
    w("| CPU | %s, %d cores online |" % (cpu, ncpu))
    w("| BLAS | %s; 1 thread |" % blas)
    w("| PyTorch, NumPy | %s (1 thread), %s |" % (torch.__version__, np.__version__))
    w("| compilers | emitted C and hand.c: `%s -O2`; libtcc for the JIT |" % cc)
    w("| load average | %.2f %.2f %.2f at the start, %.2f %.2f %.2f at the end |"
      % (tuple(load0) + tuple(load1)))
    w("")

    goals = []

    def goal(what, want, got, ok):
        goals.append((what, want, got, ok))

    for c in cases:
        if c.group == "probe":
            r = ratio(t_of(c, "AOT as written"), t_of(c, "AOT by hand"))
            goal("%s vs `%s`, AOT" % (c.label, c.hand_text), "≤ 1.3×", fmt_x(r),
                 r is not None and r <= 1.3)
    for c in cases:
        if c.group == "chain":
            r = ratio(t_of(c, "AOT"), t_of(c, "AOT by hand"))
            goal("%s, symbolic sizes, vs `%s` at literal sizes, AOT" % (c.label, c.hand_text),
                 "≤ 1.3×", fmt_x(r), r is not None and r <= 1.3)
    for c in cases:
        if c.group == "linalg":
            r = ratio(t_of(c, "AOT"), t_of(c, "NumPy"))
            goal("%s, AOT vs NumPy" % c.label, "≤ 1.3×", fmt_x(r), r is not None and r <= 1.3)
    for c in cases:
        if c.group == "mlp":
            r = ratio(t_of(c, "PyTorch"), t_of(c, "AOT"))
            goal("%s: PyTorch/AOT" % c.label, "≥ 1.3", fmt_x(r), r is not None and r >= 1.3)
            r = ratio(t_of(c, "PyTorch"), t_of(c, "JIT"))
            goal("%s: PyTorch/JIT" % c.label, "≥ 1.1", fmt_x(r), r is not None and r >= 1.1)
    for c in cases:
        if c.group == "logistic":
            r = ratio(t_of(c, "AOT"), t_of(c, "hand CBLAS"))
            goal("%s: AOT vs hand-written" % c.label, "≤ 1.1×", fmt_x(r),
                 r is not None and r <= 1.1)
            r = ratio(t_of(c, "AOT --float"), t_of(c, "AOT"))
            goal("%s: `--float` vs double, AOT" % c.label, "≤ 0.7×", fmt_x(r),
                 r is not None and r <= 0.7)
    c = by.get("seed 10×4×4")
    if c:
        r = ratio(t_of(c, "PyTorch"), t_of(c, "AOT"))
        goal("seed 10×4×4: PyTorch/AOT", "≥ 100", fmt_x(r), r is not None and r >= 100)
    for fam, _ in FAMILIES if rows else ():
        e = exponent(rows, fam)
        reached = max([r[3] for r in rows if r[0] == fam and r[6] == "ok"] or [0])
        full = reached >= 0.9 * NODE_TARGETS[-1]
        got = ("%.2f" % e if e is not None else "–") + \
            ("" if full else " (to %d nodes only)" % reached if reached else " (none compiled)")
        goal("`md_compile` time exponent, %s, 1,000 → 20,000 nodes" % fam, "≤ 1.15", got,
             e is not None and e <= 1.15 and full)

    goals12 = second_goals(cases)
    w("<!-- readme:begin -->")
    for issue, table in (("#13", goals), ("#12", goals12)):
        if not table:
            continue
        w("### Goals of issue %s" % issue)
        w("")
        w("| what | goal | measured | holds |")
        w("| --- | --- | ---: | :---: |")
        for what, want, got, ok in table:
            w("| %s | %s | %s | %s |" % (cell(what), want, got, "yes" if ok else "**no**"))
        w("")
    w("### Time per call, thread CPU time, median")
    w("")
    w("Value and every gradient, unless the case says value.")
    w("")
    groups = [("seed", "the notebook's loss, `bench/seed_sym.expr`"),
              ("logistic", "`examples/logistic.expr`"), ("mlp", "`examples/mlp.expr`"),
              ("linalg", "n = 1000, `A` well conditioned"),
              ("probe", "n = %d, the hand rewrite compiled by matdiff too" % PROBE_N),
              ("chain", "`n`, `k`, `m`, `p` symbolic; by hand: regrouped, at literal sizes"),
              ("hessian", "the full Hessian wrt one input, added into zeros"),
              ("hvp", "the Hessian of the logistic loss wrt w times v")]
    for g, note in groups:
        cs = [c for c in cases if c.group == g]
        if not cs:
            continue
        names = []
        for c in cs:
            for im in c.impls:
                if im.name not in names:
                    names.append(im.name)
        w("%s (%s):" % ({"seed": "Seed", "logistic": "Logistic regression", "mlp": "MLP",
                         "linalg": "Linear algebra", "probe": "The six probes",
                         "chain": "Chains grouped at run time",
                         "hessian": "Hessians", "hvp": "Hessian-vector products"}[g], note))
        w("")
        w("| case | " + " | ".join(names) + " |")
        w("| --- |" + " ---: |" * len(names))
        for c in cs:
            w("| %s | " % cell(c.label) + " | ".join(fmt_t(t_of(c, n)) for n in names) + " |")
        w("")
    w("<!-- readme:end -->")
    w("")
    svg = os.path.splitext(path)[0] + ".svg"
    try:
        import plot
        drawn = plot.plot([("#13", goals), ("#12", goals12)], svg, commit)
    except ImportError as e:  # make bench-deps installs python3-matplotlib
        print("no plot: %s" % e)
        drawn = False
    if drawn:
        w("![Each goal, measured over goal on a log scale: a bar short of 1 holds](%s)"
          % os.path.basename(svg))
        w("")
    w("### Wall time per call, median")
    w("")
    w("| case | implementation | CPU | wall | rounds × calls | largest difference from %s |"
      % "the reference")
    w("| --- | --- | ---: | ---: | ---: | ---: |")
    for c in cases:
        for im in c.impls:
            cpu_t, wall_t, rounds, reps = c.times[im.name]
            agree = "reference" if im is c.ref else "%.1e" % c.agree.get(im.name, float("nan"))
            w("| %s | %s | %s | %s | %d × %d | %s |" % (cell(c.label), im.name, fmt_t(cpu_t),
                                                        fmt_t(wall_t), rounds, reps, agree))
    w("")
    w("The difference is max|a − b| / max|b| over the value and every gradient, one call from "
      "zeroed gradients. References: the hand-written program (seed, logistic, MLP, "
      "Hessians, HVPs), NumPy (linear algebra), the hand rewrite through AOT (probes, chains).")
    w("")
    w("### md_compile")
    w("")
    w("`md_compile` of `examples/seed.expr`: %s (median of 51)." % fmt_t(seed_ms))
    w("")
    w("Generated programs (`build/bench/compile_probe FAMILY K --print` shows one): "
      "**layers**, K layers `h_i = tanh(W*h_(i-1) + b)`; **horner**, K Horner steps "
      "`p_i = p_(i-1)*x + c_i`; **parallel**, 100 layer chains of K layers. The fastest "
      "of %d processes per size, %d s at most; a family stops at its first failure."
      % (COMPILE_RUNS, COMPILE_LIMIT))
    w("")
    w("| family | K | primal nodes | `md_compile` | peak memory | outcome |")
    w("| --- | ---: | ---: | ---: | ---: | --- |")
    for fam, target, K, nodes, t, mb, outcome in rows:
        w("| %s | %d | %s | %s | %s | %s |" % (fam, K, nodes if nodes and nodes > 0 else "–",
                                              fmt_t(t) if outcome == "ok" else "–",
                                              "%.0f MB" % mb if mb is not None else "–",
                                              outcome))
    w("")
    with open(path, "w") as fh:
        fh.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results.md"))
    ap.add_argument("--cc", default="cc")
    ap.add_argument("--cflags", default="")
    ap.add_argument("--libs", default="-lopenblas")
    ap.add_argument("--only", default="", help="groups to run, comma-separated")
    args = ap.parse_args()
    os.chdir(ROOT)
    import torch
    torch.set_num_threads(1)
    started, load0 = datetime.datetime.utcnow(), os.getloadavg()
    b = Bench(args)
    aots = {"seed_sym": b.build.aot("bench/seed_sym.expr", "seed_sym"),
            "logistic": b.build.aot("examples/logistic.expr", "logistic"),
            "logistic_f": b.build.aot("examples/logistic.expr", "logistic_f", flt=True),
            "mlp": b.build.aot("examples/mlp.expr", "mlp")}
    only = set(filter(None, args.only.split(",")))
    cases = []
    for group, make in (("seed", lambda: seed_cases(b, aots)),
                        ("logistic", lambda: logistic_case(b, aots)),
                        ("mlp", lambda: mlp_cases(b, aots)),
                        ("linalg", lambda: linalg_cases(b)),
                        ("probe", lambda: probe_cases(b)),
                        ("chain", lambda: chain_cases(b)),
                        ("hessian", lambda: hessian_cases(b)),
                        ("hvp", lambda: hvp_cases(b))):
        if only and group not in only:
            continue
        for c in make():
            print("== %s" % c.label, flush=True)
            time_case(c)
            for im in c.impls:
                print("  %-16s %10s" % (im.name, fmt_t(c.times[im.name][0])), flush=True)
            cases.append(c)
    rows = []
    if not only or "compile" in only:
        print("== md_compile families", flush=True)
        rows = compile_families(args.build)
    seed_ms = seed_compile_latency(args.build)
    write_report(args.out, cases, rows, seed_ms, started, load0, args.cc)
    print("== wrote %s" % os.path.relpath(args.out, ROOT))


if __name__ == "__main__":
    main()
