"""Parallel kernels: every part of the items is claimed by exactly one thread."""

import numba
import numpy as np
import pytest
from numba import njit

from bgdnoise._kernels import threads


@njit(nogil=True)
def _count_items(claims, seen):
    """Add 1 to ``seen[i]`` for every item claimed."""
    start, stop = threads.claim(claims)
    while start < stop:
        for i in range(start, stop):
            seen[i] += 1
        start, stop = threads.claim(claims)


@pytest.mark.parametrize("n_items", [1, 7, 16, 1000, 4097])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_every_item_is_claimed_once(n_items, n_threads):
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(min(n_threads, numba.config.NUMBA_NUM_THREADS))
        seen = np.zeros(n_items, np.int64)
        threads.run_ranges(_count_items, n_items, seen, min_items=1)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(seen, 1)


def test_claims_cut_the_items_into_parts_in_order():
    parts = np.array([0, 3, 7, 10], np.int64)
    claims = (parts, np.zeros(1, np.int64), np.zeros(1, np.int64))
    got = [tuple(int(v) for v in threads.claim(claims)) for _ in range(5)]
    assert got[:3] == [(0, 3), (3, 7), (7, 10)]
    assert all(start >= stop for start, stop in got[3:])  # none left
    assert claims[2][0] == 2  # each call past the last part counts an exit


@njit(nogil=True)
def _slow_items(claims, seen, work):
    """:func:`_count_items` with ``work`` iterations of arithmetic per item."""
    start, stop = threads.claim(claims)
    while start < stop:
        for i in range(start, stop):
            x = 0.0
            for k in range(work):
                x += np.sqrt(k + i)
            seen[i] += 1 + (x < 0)  # (x is never negative: keeps the loop)
        start, stop = threads.claim(claims)


@pytest.fixture
def two_threads():
    """numba's thread count set to 2 for the test (skipped where it cannot be)."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two threads")
    before = numba.get_num_threads()
    numba.set_num_threads(2)
    yield
    numba.set_num_threads(before)


@pytest.mark.parametrize("work", [0, 100, 20_000])
def test_a_call_returns_once_every_part_is_written(work, two_threads):
    # The calling thread returns without waiting for a worker that has not
    # started (it finds no part left) but waits for one holding a part: on
    # every call of a run, every item is written exactly once by the time it
    # returns, from items cheaper than a thread's start to ones far dearer.
    for _ in range(200 if work < 20_000 else 20):
        seen = np.zeros(64, np.int64)
        threads.run_ranges(_slow_items, 64, seen, work, min_items=1)
        np.testing.assert_array_equal(seen, 1)


_LATE_WORKER = """
import time
import numpy as np
import numba
from bgdnoise._kernels import threads
from tests.test_threads import _slow_items

numba.set_num_threads(3)
work = threads._Call.work

def late(self, index):
    # Worker 1 starts late: after the first thread has found no part left.
    if index == 1:
        while self._claims is not None and self._claims[2][0] < 1:
            time.sleep(0)
        time.sleep(5e-5)
    work(self, index)

threads._Call.work = late
bad = 0
for _ in range(30):
    seen = np.zeros(24, np.int64)
    threads.run_ranges(_slow_items, 24, seen, 300_000, min_items=1)
    bad += int((seen != 1).any())
    time.sleep(0.01)
print(bad)
"""


def test_a_worker_that_starts_late_does_not_end_the_wait(tmp_path):
    # Three threads: worker 0 holds the last part while worker 1 starts only
    # after the calling thread found no part left. The caller must wait for
    # worker 0 alone; were worker 1 let in and counted as an exit, the call
    # would return with worker 0's part unwritten (5-6 calls of 30-40 did).
    import os
    import subprocess
    import sys
    from pathlib import Path

    if numba.config.DISABLE_JIT:
        pytest.skip("the kernels' threads: compiled only")
    env = {**os.environ, "NUMBA_NUM_THREADS": "3"}
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", _LATE_WORKER], cwd=root, env=env, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0", result.stdout


def _python_kernel(fail_on_main: bool):
    """A stand-in kernel (Python) that raises on the calling thread or on a worker."""
    import threading
    import time

    def kernel(claims, seen):
        on_main = threading.current_thread() is threading.main_thread()
        if on_main == fail_on_main:
            raise ValueError("this thread's kernel failed")
        if on_main:
            time.sleep(0.05)  # the worker starts (and fails) before the caller is done
        start, stop = threads.claim(claims)
        while start < stop:
            seen[start:stop] += 1
            start, stop = threads.claim(claims)

    return kernel


@pytest.mark.parametrize("fail_on_main", [True, False])
def test_a_kernel_error_reaches_the_caller(fail_on_main, two_threads):
    # The caller's own error is raised once the started workers are done; a
    # worker's error is raised by the caller, which then waits on its future.
    seen = np.zeros(64, np.int64)
    with pytest.raises(ValueError, match="this thread's kernel failed"):
        threads.run_ranges(_python_kernel(fail_on_main), 64, seen, min_items=1)
    assert seen.max() <= 1  # no part written twice
