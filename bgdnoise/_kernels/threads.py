"""Run a plain nogil kernel over ranges of items in threads.

A ``parallel=True`` kernel pulls numba's parfor machinery into its compile
(seconds per kernel on first use) and starts a parallel region on every call,
which costs milliseconds when the cores are busy with other work. A plain
``@njit(nogil=True)`` kernel over a range ``[start, stop)`` of rows (or lines,
or cells) compiles in a fraction of that; Python threads run its ranges in
parallel because it releases the GIL. The number of threads follows
``numba.set_num_threads`` / ``NUMBA_NUM_THREADS``, read here, outside the
kernels.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numba

from .aot import resolve

_LOCK = threading.Lock()
_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    with _LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="bgdnoise")
        return _POOLS[workers]


def run_ranges(kernel, n_items: int, *args, min_items: int = 16) -> None:
    """Call ``kernel(start, stop, *args)`` on contiguous ranges covering ``n_items``.

    One range per thread (fewer when there are fewer than ``min_items``
    items per range); the calling thread runs the first range itself. The
    kernel must write disjoint parts of its outputs for disjoint ranges.
    ``kernel``'s ahead-of-time export runs where there is one (:mod:`.aot`).
    """
    kernel = resolve(kernel, (0, n_items, *args))
    threads = numba.get_num_threads()
    n_ranges = max(1, min(threads, n_items // max(1, min_items)))
    if n_ranges == 1:
        kernel(0, n_items, *args)
        return
    bounds = [n_items * k // n_ranges for k in range(n_ranges + 1)]
    pool = _pool(threads - 1)
    futures = [pool.submit(kernel, bounds[k], bounds[k + 1], *args) for k in range(1, n_ranges)]
    try:
        kernel(bounds[0], bounds[1], *args)
    finally:
        for future in futures:
            future.result()
