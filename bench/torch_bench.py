#!/usr/bin/python3
"""torch_bench.py - the benchmark's PyTorch column.

Usage: bench/torch_bench.py OUT

Reads the inputs that build/bench/bench wrote (OUT/inputs/manifest.tsv and
raw float64 files), so PyTorch sees the very same numbers, and times each
case as PyTorch users write it: float64 tensors, autograd, one thread,
forward and backward with every .grad zeroed in place first (as
optimizer.zero_grad(set_to_none=False) does). Each timed sample is the mean
over a batch of back-to-back steps; the result is the median over the
samples, in the thread's CPU time and in wall time, the same rules as
bench.c. The value and gradients of one step from
zero are checked against the hand-written baseline's, written alongside.

Writes OUT/torch.tsv. Needs Debian's /usr/bin/python3, which has torch.
"""
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

TARGET = float(os.environ.get("BENCH_TARGET", "0.25"))  # seconds per case


def read_manifest(indir):
    """case id -> dict(label, kind, ref, dims, inputs=[(name, rows, cols, wrt, file, reffile)])."""
    cases = {}
    with open(os.path.join(indir, "manifest.tsv")) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if fields[0] == "case":
                _, cid, label, kind, ref = fields[:5]
                dims = dict(d.split("=") for d in fields[5:])
                cases[cid] = dict(label=label, kind=kind, ref=float(ref),
                                  dims={k: int(v) for k, v in dims.items()}, inputs=[])
            elif fields[0] == "input":
                _, cid, name, rows, cols, wrt, fname = fields[:7]
                reffile = fields[7] if len(fields) > 7 else None
                cases[cid]["inputs"].append((name, int(rows), int(cols), wrt == "1", fname, reffile))
    return cases


def load(indir, fname, rows, cols):
    a = np.fromfile(os.path.join(indir, fname), dtype="<f8")
    return torch.from_numpy(a.reshape(rows, cols).copy())


# The losses as a PyTorch user writes them; vectors are n x 1 columns, as in
# matdiff, so that every gradient compares element by element.
def seed_loss(t, dims):
    return (t["X"].mm(t["W"]) + t["b"]).pow(2).sum()  # the notebook's own line


def logistic_loss(t, dims):
    z = t["X"].mm(t["w"]) + t["b"]
    return (F.softplus(z) - t["y"] * z).sum() / dims["n"]


def mlp_loss(t, dims):
    H = torch.tanh(t["X"].mm(t["W1"]) + t["b1"].t())
    Z = H.mm(t["W2"]) + t["b2"].t()
    return (torch.logsumexp(Z, 1).sum() - (t["Y"] * Z).sum()) / dims["n"]


LOSSES = {"seed": seed_loss, "logistic": logistic_loss, "mlp": mlp_loss}


def run_case(indir, case):
    t, params, refs = {}, [], []
    for name, rows, cols, wrt, fname, reffile in case["inputs"]:
        x = load(indir, fname, rows, cols)
        if wrt:
            x.requires_grad_(True)
            params.append(x)
            refs.append(load(indir, reffile, rows, cols))
        t[name] = x
    loss, dims = LOSSES[case["kind"]], case["dims"]

    def step():
        for p in params:
            if p.grad is not None:
                p.grad.zero_()
        y = loss(t, dims)
        y.backward()
        return y

    # One step from zero, against the baseline: max|a - b| / max|b|.
    y = step().item()
    err = abs(y - case["ref"]) / abs(case["ref"])
    for p, r in zip(params, refs):
        err = max(err, (p.grad - r).abs().max().item() / r.abs().max().item())

    step()  # warm
    batch = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(batch):
            step()
        per = (time.perf_counter() - t0) / batch
        if per * batch >= 2e-3 or batch >= 1 << 24:
            break
        batch *= 4
    samples = 7 if per >= 20e-3 else 21
    batch = max(1, int(TARGET / (samples * per)))
    wall, cpu = [], []
    for _ in range(samples):
        w0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(batch):
            step()
        cpu.append((time.thread_time() - c0) / batch)
        wall.append((time.perf_counter() - w0) / batch)
    return statistics.median(cpu), statistics.median(wall), samples, batch, err


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "build/bench"
    indir = os.path.join(out, "inputs")
    torch.set_num_threads(1)
    torch.set_grad_enabled(True)
    cases = read_manifest(indir)
    bad = False
    with open(os.path.join(out, "torch.tsv"), "w") as f:
        f.write("meta\ttorch\t%s\n" % torch.__version__)
        f.write("meta\ttorch_threads\t%d\n" % torch.get_num_threads())
        f.write("meta\tnumpy\t%s\n" % np.__version__)
        f.write("meta\tloadavg_torch\t%.2f %.2f %.2f\n" % os.getloadavg())
        for cid, case in cases.items():
            cpu, wall, samples, batch, err = run_case(indir, case)
            f.write("time\t%s\ttorch\t%.9g\t%.9g\t%d\t%d\t%.3g\n" % (cid, cpu, wall, samples, batch, err))
            print("  %-30s torch %.3g µs CPU, %.3g µs wall" % (case["label"], 1e6 * cpu, 1e6 * wall))
            if err > 1e-8:
                print("torch_bench: %s: PyTorch differs from the baseline by %.3g" % (case["label"], err),
                      file=sys.stderr)
                bad = True
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
