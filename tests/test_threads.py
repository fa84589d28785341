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


@pytest.mark.parametrize("work", [0, 100, 20_000])
def test_a_call_returns_once_every_part_is_written(work):
    # The calling thread returns without waiting for a worker that has not
    # started (it finds no part left) but waits for one holding a part: on
    # every call of a run, every item is written exactly once by the time it
    # returns, from items cheaper than a thread's start to ones far dearer.
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two threads")
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(2)
        for _ in range(200 if work < 20_000 else 20):
            seen = np.zeros(64, np.int64)
            threads.run_ranges(_slow_items, 64, seen, work, min_items=1)
            np.testing.assert_array_equal(seen, 1)
    finally:
        numba.set_num_threads(before)
