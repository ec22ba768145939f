"""test_threads.py - one compiled function called from 8 Python threads at
once gives what it gives called from one; and C runs without the GIL."""
import sys
import threading
import time

import numpy as np

import matdiff
from conftest import SEED

THREADS = 8
CALLS = 200


def problems():
    """One problem per thread, each at other sizes: calls that overlapped
    and shared a workspace would compute in a buffer another call resized
    under them."""
    rng = np.random.default_rng(8)
    out = []
    for t in range(THREADS):
        n, k, m = 100 + 30 * t, 20 + t, 10 + (t * 3) % 7
        out.append(dict(X=rng.standard_normal((n, k)), W=rng.standard_normal((k, m)),
                        b=rng.standard_normal((n, m))))
    return out


def test_one_function_from_eight_threads():
    f = matdiff.compile(SEED)
    work = problems()
    expected = [f.grad(**a) for a in work]            # one thread
    barrier = threading.Barrier(THREADS)
    wrong, crashed = [], []

    def run(t):
        try:
            barrier.wait()
            for i in range(CALLS):
                a = work[(t + i) % THREADS]            # every thread, every size
                y, g = f.grad(**a)
                want_y, want_g = expected[(t + i) % THREADS]
                if y != want_y or any(not np.array_equal(g[k], want_g[k]) for k in g):
                    wrong.append((t, i))
                if f(**a) != want_y:
                    wrong.append((t, i, "value"))
        except Exception as e:                          # reported below
            crashed.append(repr(e))

    threads = [threading.Thread(target=run, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not crashed, crashed
    assert not wrong, "%d of %d calls differ from one thread's" % (len(wrong), THREADS * CALLS)


def test_c_runs_without_the_gil():
    """While one thread is inside a long C call, another Python thread keeps
    counting. The switch interval is made long, so that a thread gives up
    the GIL only where it blocks: the counter where it sleeps, the caller in
    C. A call that held the GIL would leave the counter where it was."""
    f = matdiff.compile(SEED)
    rng = np.random.default_rng(1)
    big = dict(X=rng.standard_normal((600, 600)), W=rng.standard_normal((600, 600)),
               b=rng.standard_normal((600, 600)))
    f.grad(**big)                                      # sizes the workspace
    count, stop = [0], threading.Event()

    def counter():
        while not stop.is_set():
            count[0] += 1
            if count[0] % 100 == 0:
                time.sleep(0)                          # lets the caller back in

    interval = sys.getswitchinterval()
    sys.setswitchinterval(10.0)
    try:
        th = threading.Thread(target=counter)
        th.start()
        during = []
        for _ in range(3):
            before = count[0]
            f.grad(**big)
            during.append(count[0] - before)
        stop.set()
        th.join()
    finally:
        sys.setswitchinterval(interval)
    assert min(during) > 0, during
