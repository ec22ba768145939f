"""plot.py - the goals of bench/results.md as one picture, bench/results.svg.

Each goal is a bar: how far the measured figure is from its goal, as a
factor on a log scale, with the goal at 1. A goal "≤ g" measured at r is
r/g; a goal "≥ g" (or "> g") is g/r. So a bar short of the line is a goal
that holds, and its length says by how much; a bar past it, in red, is a
miss. bench.py calls plot() with the same rows it writes as tables.
"""

import os
import re


def number(text):
    """The first number in TEXT ("1.2×", "≥ 100", "1.12 (to 9,000 nodes only)"), or None."""
    m = re.search(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", text.replace(",", ""))
    return float(m.group()) if m else None


def score(want, got):
    """Measured over goal, oriented so that at most 1 holds; None when unreadable."""
    g, r = number(want), number(got)
    if g is None or r is None or g <= 0 or r <= 0:
        return None
    return r / g if want.lstrip().startswith("≤") else g / r


def plot(tables, path, commit):
    """TABLES: [(title, [(what, want, got, ok), ...])]. Writes PATH, an SVG."""
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text as text: small, diffable
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = [(title, what, want, got, ok, score(want, got))
            for title, table in tables for what, want, got, ok in table]
    rows = [r for r in rows if r[5] is not None]
    if not rows:
        return False
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(rows) + 1.2))
    ys = list(range(len(rows)))[::-1]
    for y, (title, what, want, got, ok, s) in zip(ys, rows):
        ax.barh(y, s - 1, color="#3a7d44" if ok else "#c0392b", height=0.7, left=1)
        ax.text(1.02, y, got, va="center", fontsize=7, transform=ax.get_yaxis_transform())
    ax.set_yticks(ys)
    ax.set_yticklabels(["%s: %s (goal %s)" % (t, w.replace("`", "").replace("\\|", "|"), g)
                        for t, w, g, _, _, _ in rows], fontsize=7)
    ax.set_xscale("log")
    lo = min(0.5, min(r[5] for r in rows) / 1.5)
    hi = max(2.0, max(r[5] for r in rows) * 1.5)
    ax.set_xlim(lo, hi)
    ticks = [t for t in (0.01, 0.03, 0.1, 0.3, 0.5, 1, 2, 3, 10, 30, 100) if lo <= t <= hi]
    ax.set_xticks(ticks)
    ax.set_xticklabels(["%g" % t for t in ticks])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.axvline(1, color="black", linewidth=1)
    ax.set_xlabel("measured / goal (below 1: the goal holds; log scale)", fontsize=8)
    ax.set_title("matdiff's goals, make bench at %s" % commit, fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    # No date in the file: the same results give the same bytes.
    fig.savefig(path, format=os.path.splitext(path)[1][1:] or "svg", metadata={"Date": None} if path.endswith(".svg") else None)
    plt.close(fig)
    return True
