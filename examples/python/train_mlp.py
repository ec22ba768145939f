#!/usr/bin/python3
"""train_mlp.py - examples/mlp.expr trained with torch.optim.SGD, twice: once
with the loss written in PyTorch and its autograd, once with the compiled
matdiff function in its place. Everything else is the same ordinary loop:
zero_grad, loss.backward(), step.

    python3 examples/python/train_mlp.py [STEPS]

Same data, same initial weights, float64 on the CPU. The two losses must
agree at every step to 1e-9, and the final weights too; the script prints
the losses now and then, and the time per step of each (median over the
steps). Exits 1 on a disagreement.
"""
import os
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# In a source tree, its own package (python/); else the installed one.
if os.path.isdir(os.path.join(ROOT, "python", "matdiff")):
    sys.path.insert(0, os.path.join(ROOT, "python"))
import matdiff.torch  # noqa: E402

TOLERANCE = 1e-9
STEPS = 100
LEARNING_RATE = 0.5
N, D, H, K = 256, 20, 32, 4      # samples, features, hidden units, classes


def problem():
    """Four Gaussian blobs in D dimensions, labels one-hot; initial weights."""
    g = torch.Generator().manual_seed(14)
    labels = torch.arange(N) % K
    centres = 2 * torch.randn(K, D, generator=g, dtype=torch.float64)
    X = centres[labels] + torch.randn(N, D, generator=g, dtype=torch.float64)
    Y = F.one_hot(labels, K).double()
    weights = [torch.randn(D, H, generator=g, dtype=torch.float64) / D ** 0.5,
               torch.zeros(H, dtype=torch.float64),
               torch.randn(H, K, generator=g, dtype=torch.float64) / H ** 0.5,
               torch.zeros(K, dtype=torch.float64)]
    return X, Y, weights


def pytorch_loss(X, W1, b1, W2, b2, Y):
    """mlp.expr as one writes it in PyTorch."""
    logits = torch.tanh(X @ W1 + b1) @ W2 + b2
    return F.cross_entropy(logits, Y.argmax(dim=1))


def train(loss_fn, steps):
    """(losses, final weights, seconds per step) of STEPS steps of SGD."""
    X, Y, weights = problem()
    params = [w.clone().requires_grad_(True) for w in weights]
    opt = torch.optim.SGD(params, lr=LEARNING_RATE)
    losses, times = [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(X, *params, Y)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
    times.sort()
    return losses, [p.detach() for p in params], times[len(times) // 2]


def compare(steps=STEPS):
    """Both runs: (pytorch run, matdiff run, largest loss difference,
    largest final-weight difference)."""
    mlp = matdiff.torch.load(os.path.join(ROOT, "examples", "mlp.expr"))
    ref = train(pytorch_loss, steps)
    run = train(mlp, steps)
    loss_err = max(abs(a - b) for a, b in zip(run[0], ref[0]))
    weight_err = max((a - b).abs().max().item() for a, b in zip(run[1], ref[1]))
    return ref, run, loss_err, weight_err


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else STEPS
    ref, run, loss_err, weight_err = compare(steps)
    print("examples/mlp.expr, n=%d d=%d h=%d k=%d, SGD lr=%g, %d steps, float64"
          % (N, D, H, K, LEARNING_RATE, steps))
    print("  step  PyTorch autograd        matdiff")
    for i in sorted({0, 1, 9, 49, steps - 1} & set(range(steps))):
        print("  %4d  %.15f  %.15f" % (i + 1, ref[0][i], run[0][i]))
    print("  largest loss difference %.1e, final weights %.1e (tolerance %.0e)"
          % (loss_err, weight_err, TOLERANCE))
    print("  time per step (median): PyTorch autograd %.1f us, matdiff %.1f us"
          % (ref[2] * 1e6, run[2] * 1e6))
    ok = loss_err <= TOLERANCE and weight_err <= TOLERANCE and run[0][-1] < run[0][0]
    print("ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
