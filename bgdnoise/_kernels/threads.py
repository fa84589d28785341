"""Run a plain nogil kernel over the items of a plane in threads.

A ``parallel=True`` kernel pulls numba's parfor machinery into its compile
(seconds per kernel on first use) and starts a parallel region on every call,
which costs milliseconds when the cores are busy with other work. A plain
``@njit(nogil=True)`` kernel compiles in a fraction of that; Python threads run
it side by side because it releases the GIL. The number of threads follows
``numba.set_num_threads`` / ``NUMBA_NUM_THREADS``, read here, outside the
kernels.

The items (rows, lines, cells) are cut into a few parts per thread and every
thread, the calling one included, claims the next part until none is left
(:func:`claim`, an atomic counter). On a shared machine one thread often
runs slower than the other (its core is busy with another process): with one
fixed half each, the faster thread then waited for the slower one, and two
threads were no faster than one. Every part is computed the same way whoever
claims it, so the results do not depend on the threads.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .aot import resolve

_LOCK = threading.Lock()
_POOLS: dict[int, ThreadPoolExecutor] = {}
# Parts per thread: small enough that the faster thread can take over much of
# a slower one's share, large enough that claiming costs nothing.
PARTS_PER_THREAD = 8


def _pool(workers: int) -> ThreadPoolExecutor:
    with _LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="bgdnoise")
        return _POOLS[workers]


@intrinsic
def _fetch_add(typingctx, counter):
    """``counter[0] += 1`` atomically; the value before (a 1D int64 array, not empty)."""
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None  # (no other type: the add writes 8 bytes at the array's start)
    if counter.ndim != 1 or not counter.mutable:
        return None
    signature = types.int64(counter)

    def codegen(context, builder, sig, args):
        array = context.make_array(sig.args[0])(context, builder, args[0])
        zero = context.get_constant(types.intp, 0)
        pointer = cgutils.get_item_pointer(context, builder, sig.args[0], array, [zero])
        one = context.get_constant(types.int64, 1)
        return builder.atomic_rmw("add", pointer, one, "monotonic")

    return signature, codegen


if numba.config.DISABLE_JIT:  # (coverage runs the kernels as Python: a lock instead)
    _CLAIM_LOCK = threading.Lock()

    def claim(claims):
        """The next part ``(start, stop)`` of ``claims``; ``start >= stop``: none left."""
        parts, counter = claims
        with _CLAIM_LOCK:
            part = int(counter[0])
            counter[0] += 1
        if part >= parts.shape[0] - 1:
            return 0, 0
        return parts[part], parts[part + 1]

else:

    @njit(cache=True, nogil=True)
    def claim(claims):
        """The next part ``(start, stop)`` of ``claims``; ``start >= stop``: none left.

        ``claims = (parts, counter)``: the parts' bounds (int64, ``n_parts + 1``)
        and the number of parts claimed so far (int64 array of one), shared by
        the threads.
        """
        parts, counter = claims
        part = _fetch_add(counter)
        start, stop = np.int64(0), np.int64(0)
        if part < parts.shape[0] - 1:
            start, stop = parts[part], parts[part + 1]
        return start, stop


def run_ranges(kernel, n_items: int, *args, min_items: int = 16) -> None:
    """Call ``kernel(claims, *args)`` on every thread until the ``n_items`` are done.

    ``claims`` cuts ``[0, n_items)`` into contiguous parts of at least
    ``min_items`` items (a few per thread); the kernel takes them with
    :func:`claim`, a part at a time, and must write disjoint parts of its
    outputs for disjoint parts. The calling thread works too.
    ``kernel``'s ahead-of-time export runs where there is one (:mod:`.aot`).
    """
    threads = numba.get_num_threads()
    n_parts = 1 if threads == 1 else PARTS_PER_THREAD * threads
    n_parts = max(1, min(n_parts, n_items // max(1, min_items)))
    bounds = np.array([n_items * k // n_parts for k in range(n_parts + 1)], np.int64)
    claims = (bounds, np.zeros(1, np.int64))
    kernel = resolve(kernel, (claims, *args))
    workers = min(threads, n_parts) - 1
    if workers == 0:
        kernel(claims, *args)
        return
    pool = _pool(threads - 1)
    futures = [pool.submit(kernel, claims, *args) for _ in range(workers)]
    try:
        kernel(claims, *args)
    finally:
        for future in futures:
            future.result()
