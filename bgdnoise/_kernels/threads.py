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


def _counter_signature(counter, written: bool):
    """``int64(counter)`` for a 1D int64 array (writable if ``written``), else None.

    (No other type: the intrinsics read or write 8 bytes at the array's start.)
    """
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None
    if counter.ndim != 1 or (written and not counter.mutable):
        return None
    return types.int64(counter)


def _first_item(context, builder, sig, args):
    """Pointer to ``args[0][0]`` (an intrinsic's counter) in the generated code."""
    array = context.make_array(sig.args[0])(context, builder, args[0])
    zero = context.get_constant(types.intp, 0)
    return cgutils.get_item_pointer(context, builder, sig.args[0], array, [zero])


@intrinsic
def _add_one(typingctx, counter, ordering):
    """``counter[0] += 1`` atomically; the value before (a 1D int64 array, not empty).

    ``ordering`` (a string literal): LLVM's, ``"monotonic"`` for the claims'
    counter, ``"release"`` for the exits' (after every write of the thread).
    """
    if not isinstance(ordering, types.StringLiteral):
        return None
    order = ordering.literal_value

    def codegen(context, builder, sig, args):
        one = context.get_constant(types.int64, 1)
        return builder.atomic_rmw("add", _first_item(context, builder, sig, args), one, order)

    signature = _counter_signature(counter, written=True)
    return None if signature is None else (types.int64(counter, ordering), codegen)


@intrinsic
def _load_count(typingctx, counter):
    """``counter[0]`` read atomically, with every write made before it was counted (acquire)."""

    def codegen(context, builder, sig, args):
        return builder.load_atomic(_first_item(context, builder, sig, args), "acquire", 8)

    signature = _counter_signature(counter, written=False)
    return None if signature is None else (signature, codegen)


if numba.config.DISABLE_JIT:  # (coverage runs the kernels as Python: a lock instead)
    _CLAIM_LOCK = threading.Lock()

    def claim(claims):
        """The next part ``(start, stop)`` of ``claims``; ``start >= stop``: none left."""
        parts, counter, exits = claims
        with _CLAIM_LOCK:
            part = int(counter[0])
            counter[0] += 1
            if part >= parts.shape[0] - 1:
                exits[0] += 1
        if part >= parts.shape[0] - 1:
            return 0, 0
        return parts[part], parts[part + 1]

    def _wait_exits(exits, target, spins):
        return bool(exits[0] >= target)

else:

    @njit(cache=True, nogil=True)
    def claim(claims):
        """The next part ``(start, stop)`` of ``claims``; ``start >= stop``: none left.

        ``claims = (parts, counter, exits)``: the parts' bounds (int64,
        ``n_parts + 1``), the number of parts claimed so far and the number
        of threads that found none left (int64 arrays of one), shared by the
        threads. A thread finds none left once all its parts are written.
        """
        parts, counter, exits = claims
        part = _add_one(counter, "monotonic")
        start, stop = np.int64(0), np.int64(0)
        if part < parts.shape[0] - 1:
            start, stop = parts[part], parts[part + 1]
        else:
            _add_one(exits, "release")
        return start, stop

    @njit(cache=True, nogil=True)
    def _wait_exits(exits, target, spins):
        """Whether ``exits`` reaches ``target`` within ``spins`` reads of it."""
        for _ in range(spins):
            if _load_count(exits) >= target:
                return True
        return False


def run_ranges(kernel, n_items: int, *args, min_items: int = 16) -> None:
    """Call ``kernel(claims, *args)`` on every thread until the ``n_items`` are done.

    ``claims`` cuts ``[0, n_items)`` into contiguous parts of at least
    ``min_items`` items (a few per thread); the kernel takes them with
    :func:`claim`, a part at a time, and must write disjoint parts of its
    outputs for disjoint parts, and nothing outside them. The calling
    thread works too.
    ``kernel``'s ahead-of-time export runs where there is one (:mod:`.aot`).

    The call returns once every part is written, without waiting for a
    worker that has not started: waking a worker thread and then being
    woken by it cost about 40 us each on these machines (a frame's
    correction launches some 65 kernels). Once the calling thread finds no
    part left, it closes the call (:class:`_Call`): the workers that have
    started may hold a part, and it waits (spinning without the GIL, then
    on their futures) until each of them, and only they, have found none
    left; a worker that comes later returns without entering the kernel.
    """
    threads = numba.get_num_threads()
    n_parts = 1 if threads == 1 else PARTS_PER_THREAD * threads
    n_parts = max(1, min(n_parts, n_items // max(1, min_items)))
    bounds = np.array([n_items * k // n_parts for k in range(n_parts + 1)], np.int64)
    claims = (bounds, np.zeros(1, np.int64), np.zeros(1, np.int64))
    kernel = resolve(kernel, (claims, *args))
    workers = min(threads, n_parts) - 1
    if workers == 0:
        kernel(claims, *args)
        return
    pool = _pool(threads - 1)
    call = _Call(kernel, claims, args, workers)
    futures = [pool.submit(call.work, w) for w in range(workers)]
    try:
        kernel(claims, *args)
    except BaseException:
        for w in call.close():  # none writes past the error (theirs, if any, the same)
            futures[w].exception()
        raise
    started = call.close()
    # Every part is claimed; only the started workers can still hold one.
    wait = (claims[2], 1 + len(started), _SPINS)
    if not resolve(_wait_exits, wait)(*wait):
        for w in started:  # a worker is slow or failed: wait for it
            futures[w].result()


# Reads of the exit count before the calling thread blocks on the workers'
# futures instead: about a quarter of a millisecond here, most of a worker's
# last part (a part is 1/16 of a kernel's items on two threads; the largest
# kernel takes some 17 ms of one thread's time), without spinning long on a
# machine whose other work keeps the worker from its core.
_SPINS = 1 << 20


class _Call:
    """One :func:`run_ranges` call as its workers see it: open until the caller closes it.

    A worker enters the kernel only if the call is still open, and is then
    counted as started; the caller closes the call once it finds no part
    left, and gets the started workers. Both under one lock, so no worker
    starts unseen: the exits the caller waits for are those of the workers
    it counted (a worker let in after the count would add an exit of its
    own, and the caller would stop waiting for one still writing). Closing
    also lets go of the arguments, so that the task of a worker that comes
    late holds no plane.
    """

    __slots__ = ("_args", "_claims", "_kernel", "_lock", "_open", "_started")

    def __init__(self, kernel, claims: tuple, args: tuple, workers: int) -> None:
        self._lock = threading.Lock()
        self._open = True
        self._started = [False] * workers
        self._kernel, self._claims, self._args = kernel, claims, args

    def work(self, index: int) -> None:
        """Worker ``index``'s task: the kernel, if the call is still open."""
        with self._lock:
            if not self._open:
                return
            self._started[index] = True
            kernel, claims, args = self._kernel, self._claims, self._args
        kernel(claims, *args)

    def close(self) -> list[int]:
        """Let no more workers in; the ones that started."""
        with self._lock:
            self._open = False
            self._kernel = self._claims = self._args = None
            return [w for w, started in enumerate(self._started) if started]
