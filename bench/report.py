#!/usr/bin/python3
"""report.py - bench/results.md from the benchmark's measurements.

Usage: bench/report.py OUT RESULTS_MD AOT_CC

Reads OUT/c.tsv (build/bench/bench) and OUT/torch.tsv (torch_bench.py),
writes RESULTS_MD, and OUT/seed.dat for bench/results.gp to plot. AOT_CC is
the command line the emitted C was compiled with, for the record.
"""
import math
import os
import subprocess
import sys

IMPLS = ("aot", "aot_alloc", "jit", "tape", "hand", "torch")
NAMES = {
    "aot": "AOT `P_grad_ws`",
    "aot_alloc": "AOT `P_grad`",
    "jit": "JIT `md_grad`",
    "tape": "tape",
    "hand": "hand CBLAS",
    "torch": "PyTorch",
}
CASES = ("seed10", "seed100", "seed1000", "logistic", "mlp")
LABELS = {
    "seed10": "seed 10×4×4",
    "seed100": "seed 100×100×100",
    "seed1000": "seed 1000×1000×1000",
    "logistic": "logistic n=10,000 d=100",
    "mlp": "MLP n=1000 d=100 h=100 k=10",
}
PHASES = ("front", "print", "emit", "tcc")


def read_tsv(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def fmt_time(s):
    """Seconds, printed in the unit that suits them, 3 significant digits."""
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "–"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if s >= scale:
            v = s / scale
            return ("%.3g %s" if v < 100 else "%.0f %s") % (v, unit)
    return "%.3g ns" % (s / 1e-9)


def fmt_ratio(r):
    return "–" if r is None else ("%.2f×" % r if r < 10 else "%.0f×" % r)


def ratio(a, b):
    return a / b if a is not None and b else None


def git_describe():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + (" with uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    out, results, aot_cc = sys.argv[1], sys.argv[2], sys.argv[3]
    rows = read_tsv(os.path.join(out, "c.tsv"))
    torch_path = os.path.join(out, "torch.tsv")
    rows += read_tsv(torch_path) if os.path.exists(torch_path) else []

    meta, cpu, wall, err, reps = {}, {}, {}, {}, {}
    compile_seed, compiles = None, []
    for r in rows:
        if r[0] == "meta":
            meta[r[1]] = r[2]
        elif r[0] == "time":
            key = (r[1], r[2])
            cpu[key], wall[key] = float(r[3]), float(r[4])
            reps[key] = "%s×%s" % (r[5], r[6])
            err[key] = float(r[7])
        elif r[0] == "compile_seed":
            compile_seed = dict(n=int(r[1]), nodes=int(r[2]), csize=int(r[3]), total=float(r[4]),
                                **{p: float(v) for p, v in zip(PHASES, r[5:9])})
        elif r[0] == "compile":
            compiles.append(parse_compile(r))

    L = []
    w = L.append
    w("# matdiff benchmark results\n")
    w("Written by `make bench` (bench/bench.c, bench/torch_bench.py, bench/report.py); run it "
      "again rather than editing this file.\n")

    w("## The machine\n")
    w("| | |\n| --- | --- |")
    w("| date | %s |" % meta.get("date", "?"))
    w("| CPU | %s, %s cores online |" % (meta.get("cpu", "?"), meta.get("cores", "?")))
    w("| OpenBLAS | `%s`; core `%s`; %s thread |" % (meta.get("openblas_config", "?"),
                                                     meta.get("openblas_corename", "?"),
                                                     meta.get("openblas_threads", "?")))
    w("| `OPENBLAS_CORETYPE` | `%s` |" % meta.get("OPENBLAS_CORETYPE", "?"))
    w("| `OPENBLAS_NUM_THREADS` | `%s` |" % meta.get("OPENBLAS_NUM_THREADS", "?"))
    w("| PyTorch | %s, %s thread (`torch.set_num_threads(1)`), numpy %s |" % (
        meta.get("torch", "not run"), meta.get("torch_threads", "?"), meta.get("numpy", "?")))
    w("| compilers | emitted C and hand.c: `%s`; harness: %s |" % (aot_cc, meta.get("harness_cc", "?")))
    w("| matdiff | %s, commit %s |" % (meta.get("matdiff", "?"), git_describe()))
    w("| load average (1, 5, 15 min) | C: %s at the start, %s at the end; PyTorch: %s at its start |" % (
        " ".join(meta.get("loadavg_start", "?").split()[:3]),
        " ".join(meta.get("loadavg_end", "?").split()[:3]), meta.get("loadavg_torch", "?")))
    w("")

    w("## Value and every gradient, one thread\n")
    w("Each call computes the value and all the gradients (seed: X, W, b; logistic: w, b; "
      "MLP: W1, b1, W2, b2). The inputs are the same numbers everywhere: bench.c draws them "
      "from a seeded splitmix64/Box-Muller generator and writes them to "
      "`build/bench/inputs/` as raw doubles, which torch_bench.py reads back.\n")
    w("- **AOT `P_grad_ws`**: `matdiff compile FILE --name P`, compiled with `%s`, called with a "
      "workspace of `P_workspace_size(...)` bytes allocated once. **AOT `P_grad`**: the same "
      "code through `P_grad`, which allocates and frees its workspace on every call." % aot_cc)
    w("- **JIT**: `md_compile` once, then `md_grad` (which keeps its workspace between calls).")
    w("- **tape**: per call, a new runtime tape, `record_on_tape` of the primal from the JIT "
      "function's DAG (inputs copied in as leaves), `mdrt_tape_backward`, the leaves' "
      "gradients added into the caller's buffers, `mdrt_tape_free`.")
    w("- **hand CBLAS**: bench/hand.c, dgemm/dgemv with scales in alpha and accumulation in "
      "beta, one fused loop between BLAS calls, a preallocated workspace.")
    w("- **PyTorch**: float64 tensors, autograd; each step zeroes every `.grad` in place "
      "(`.grad.zero_()`), then forward and `backward()`.")
    w("")
    w("The four C implementations ADD into gradient buffers that are never zeroed while timing "
      "(the `P_grad` contract); PyTorch zeroes its `.grad`s inside the timed step. A sample is "
      "the mean over a batch of back-to-back calls; the figure is the median over 21 samples "
      "(7 when a call takes 20 ms or more, batches of one), sized to about 0.25 s per "
      "implementation and case. The C implementations of a case are timed in interleaved "
      "rounds. Times are the calling thread's **CPU time**, because the machine is shared (see "
      "the load average above); wall-clock medians follow in a second table.\n")

    def time_table(t, title):
        w(title + "\n")
        w("| case | " + " | ".join(NAMES[i] for i in IMPLS) +
          " | AOT/hand | JIT/AOT | tape/AOT | PyTorch/AOT |")
        w("| --- |" + " ---: |" * (len(IMPLS) + 4))
        for c in CASES:
            a = t.get((c, "aot"))
            cells = [fmt_time(t.get((c, i))) for i in IMPLS]
            rs = [ratio(a, t.get((c, "hand"))), ratio(t.get((c, "jit")), a),
                  ratio(t.get((c, "tape")), a), ratio(t.get((c, "torch")), a)]
            w("| %s | %s | %s |" % (LABELS[c], " | ".join(cells), " | ".join(fmt_ratio(r) for r in rs)))
        w("")

    time_table(cpu, "### CPU time per call (median)")
    time_table(wall, "### Wall time per call (median)")
    w("Wall time counts the spells when the scheduler runs other processes. The C columns run "
      "in interleaved rounds, so their ratios share the machine's load; PyTorch runs afterwards "
      "in its own process, so when the load changed in between (see the load averages) its wall "
      "ratio says little. Use the CPU-time table.\n")

    w("### Agreement and repetitions\n")
    w("Largest difference from the hand-written baseline over the value and every gradient, "
      "max|a − b| / max|b|, one call from zeroed gradients; then samples × calls per sample.\n")
    w("| case | " + " | ".join(NAMES[i] for i in IMPLS) + " |")
    w("| --- |" + " ---: |" * len(IMPLS))
    for c in CASES:
        w("| %s | %s |" % (LABELS[c], " | ".join(
            ("%.1e, %s" % (err[(c, i)], reps[(c, i)])) if (c, i) in err else "–" for i in IMPLS)))
    w("")

    w("![time against size, seed loss](results.png)\n")

    w("## md_compile\n")
    if compile_seed:
        s = compile_seed
        w("The notebook's loss, `examples/seed.expr` (%d DAG nodes with its gradients, %d bytes "
          "of C): median of %d runs each, CPU time.\n" % (s["nodes"], s["csize"], s["n"]))
        w("| `md_compile` | parse … simplify | formulas | emit C | libtcc | without libtcc |")
        w("| ---: | ---: | ---: | ---: | ---: | ---: |")
        w("| %s | %s | %s | %s | %s | %s |\n" % (
            fmt_time(s["total"]), fmt_time(s["front"]), fmt_time(s["print"]), fmt_time(s["emit"]),
            fmt_time(s["tcc"]), fmt_time(s["front"] + s["print"] + s["emit"])))
    w("Generated programs (bench.c: `gen_wide`, `gen_chain`; `build/bench/bench --gen FAMILY K` "
      "prints one), sized by the number of nodes in the primal DAG. Every input is an n×n matrix "
      "used at most 32 times, with at most about 75 inputs: a gradient that sums more than 65 "
      "terms crashes the simplifier, and libtcc cannot compile the calls that some 125 inputs "
      "with gradients make (see bench.c).\n")
    w("- **wide**: independent terms of nesting depth 3 to 5, such as "
      "`sum(tanh(X3*W3 + C3*1.0017))`, eight to a statement, the statements summed;")
    w("- **deep**: a chain of layers, `h5 = tanh(h4*W1 + C1)`, `h6 = sigmoid(h5) .* C2`, …, "
      "each layer used once by the next;")
    w("- **residual**: `h5 = h4 + tanh(h4*W1 + C1)`, each layer used twice, as in a ResNet.\n")
    w("Each size runs in a child process with a time limit; the larger sizes of a family are "
      "skipped after one that fails. Phases are one run; `md_compile` is the median of up to "
      "21 runs (one when the phases took over 2 s). CPU time. The exponent is "
      "log(t/t_prev)/log(nodes/nodes_prev) for `md_compile` (or the phases' sum): 1 is linear.\n")
    w("| family | nodes | K | nodes with gradients | C bytes | `md_compile` | parse … simplify | "
      "formulas | emit C | libtcc | exponent | outcome |")
    w("| --- |" + " ---: |" * 10 + " --- |")
    prev = {}
    for c in compiles:
        t = c["total"] if c["total"] is not None else c["phase_sum"]
        e = None
        p = prev.get(c["family"])
        if t and p and c["nodes"] and p[0] and c["nodes"] != p[0]:
            e = math.log(t / p[1]) / math.log(c["nodes"] / p[0])
        if t:
            prev[c["family"]] = (c["nodes"], t)
        ph = c["phases"]
        w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            c["family"], c["nodes"] or c["target"], c["K"] or "–", c["all_nodes"] or "–",
            c["csize"] or "–", fmt_time(c["total"]),
            *(fmt_time(ph.get(p)) for p in PHASES), "%.2f" % e if e is not None else "–",
            c["fate"]))
    w("")

    goals(w, cpu, compile_seed, compiles)
    with open(results, "w") as f:
        f.write("\n".join(L) + "\n")
    with open(os.path.join(out, "seed.dat"), "w") as f:
        f.write("# n " + " ".join(IMPLS) + "   (CPU seconds per call, median)\n")
        for n, c in ((10, "seed10"), (100, "seed100"), (1000, "seed1000")):
            f.write("%d %s\n" % (n, " ".join("%.9g" % cpu[(c, i)] if (c, i) in cpu else "NaN"
                                            for i in IMPLS)))


def parse_compile(r):
    """compile, family, target, fate, then the child's fields: size K nodes bytes,
    phases nodes csize front print emit tcc, md_compile n median."""
    c = dict(family=r[1], target=int(r[2]), fate=r[3], K=None, nodes=None, all_nodes=None,
             csize=None, total=None, phases={}, phase_sum=None)
    f = r[4:]
    i = 0
    while i < len(f):
        if f[i] == "size":
            c["K"], c["nodes"] = int(f[i + 1]), int(f[i + 2])
            i += 4
        elif f[i] == "phases":
            c["all_nodes"], c["csize"] = int(f[i + 1]), int(f[i + 2])
            c["phases"] = {p: float(v) for p, v in zip(PHASES, f[i + 3:i + 7])}
            c["phase_sum"] = sum(c["phases"].values())
            i += 7
        elif f[i] == "md_compile":
            c["total"] = float(f[i + 2])
            i += 3
        else:
            i += 1
    return c


def goals(w, cpu, compile_seed, compiles):
    """The targets of issue #5, each with what was measured."""
    def r(a, b):
        return ratio(cpu.get(a), cpu.get(b))

    def at(family, nodes):
        for c in compiles:
            if c["family"] == family and c["target"] == nodes:
                return c
        return None

    def linear(family):
        pts = [(c["nodes"], c["total"]) for c in compiles
               if c["family"] == family and c["target"] in (1000, 2000, 4000) and c["total"]]
        if len(pts) < 3:
            return None, "did not reach 4000 nodes"
        es = [math.log(b[1] / a[1]) / math.log(b[0] / a[0]) for a, b in zip(pts, pts[1:])]
        return all(e <= 1.25 for e in es), "exponents " + ", ".join("%.2f" % e for e in es)

    G = []
    x = r(("seed1000", "aot"), ("seed1000", "hand"))
    G.append(("AOT/hand ≤ 1.10× at 1000³", fmt_ratio(x), x is not None and x <= 1.10))
    x = r(("seed10", "aot"), ("seed10", "hand"))
    G.append(("AOT/hand ≤ 1.5× at 10×4×4", fmt_ratio(x), x is not None and x <= 1.5))
    x = r(("seed10", "torch"), ("seed10", "aot"))
    G.append(("PyTorch ≥ 100× slower than AOT at 10×4×4", fmt_ratio(x), x is not None and x >= 100))
    x = r(("seed100", "torch"), ("seed100", "aot"))
    G.append(("PyTorch slower than AOT at 100³", fmt_ratio(x), x is not None and x > 1))
    x = r(("seed1000", "torch"), ("seed1000", "aot"))
    G.append(("PyTorch slower than AOT at 1000³", fmt_ratio(x), x is not None and x > 1))
    x = r(("seed1000", "jit"), ("seed1000", "aot"))
    G.append(("JIT/AOT ≤ 1.15× at 1000³", fmt_ratio(x), x is not None and x <= 1.15))
    x = r(("seed10", "tape"), ("seed10", "aot"))
    G.append(("tape ≥ 5× slower than AOT at 10×4×4", fmt_ratio(x), x is not None and x >= 5))
    x = compile_seed["total"] if compile_seed else None
    G.append(("md_compile of the notebook's loss ≤ 2 ms", fmt_time(x), x is not None and x <= 2e-3))
    for fam in ("wide", "deep", "residual"):
        c = at(fam, 1000)
        t = c["total"] if c else None
        G.append(("md_compile of a 1,000-node %s expression ≤ 50 ms" % fam,
                  fmt_time(t) if t else (c["fate"] if c else "not reached"),
                  t is not None and t <= 50e-3))
        ok, how = linear(fam)
        G.append(("md_compile about linear in size, %s, 1000 → 2000 → 4000 nodes" % fam, how, ok))
    w("## Goals of issue #5\n")
    w("From the CPU-time table; \"about linear\" means each doubling multiplies the time by "
      "at most 2^1.25.\n")
    w("| goal | measured | holds |\n| --- | ---: | :---: |")
    for goal, measured, ok in G:
        w("| %s | %s | %s |" % (goal, measured, "yes" if ok else "**no**"))
    w("")


if __name__ == "__main__":
    main()
