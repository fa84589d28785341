"""Work arrays whose memory is kept for the next correction.

The scene stages make a few dozen plane-sized work arrays per correction
(residuals, masks, flags, cell sums). Freed, their memory goes back to the
operating system (glibc returns large blocks), and the next correction gets
fresh pages: every page is zeroed and mapped again, a page fault each, about
a fifth of the default correction's time on a full frame. Here the memory of
a work array returns to a pool when the array (and every view of it) is
gone, and the next work array of the same size takes it: the same lifetimes
as with ``np.empty``, the memory kept.

Only sizes that a finished correction (:func:`correction`) used are kept: a
process's first correction of a given size returns every block to numpy as
it goes, so its peak memory is that of ``np.empty`` (the pool cannot lend a
block to a work array of another size, and would otherwise hold the first
planes of a correction through its later ones). From the second on, their
memory is kept. The pool keeps at most :data:`MAX_KEPT` bytes of free
memory, letting the sizes least recently asked for go first;
:func:`release_memory` (``bgdnoise.release_memory``) empties it. It is process-wide
state, shared by threads under a lock; a forked child starts empty.
Arrays of fewer than :data:`MIN_POOLED` bytes come from numpy (the
allocator keeps small blocks anyway), as do those above :data:`MAX_POOLED`
(a cube's worth would be kept for nothing).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import threading
import weakref
from collections.abc import Iterator

import numpy as np

__all__ = [
    "MAX_KEPT", "MAX_POOLED", "MIN_POOLED", "POISON", "copy", "correction", "empty",
    "kept_bytes", "release_memory", "unmasked", "zeros",
]  # fmt: skip

#: Free memory the pool keeps at most (bytes): a 2048x2048 default correction
#: keeps about 80 MiB.
MAX_KEPT = 256 * 2**20
#: Smaller work arrays come from numpy.
MIN_POOLED = 256 * 2**10
#: Larger work arrays come from numpy.
MAX_POOLED = 64 * 2**20

#: Tests set a byte value: every work array handed out is filled with it, so
#: a result that depends on what memory held before shows.
POISON: int | None = None

# Re-entrant: a garbage collection inside the lock may free a pooled array,
# whose finalizer then gives its block back on the same thread.
_lock = threading.RLock()
_free: dict[int, list[np.ndarray]] = {}  # size in bytes -> free blocks
_kept = 0
_seen: set[int] = set()  # sizes the finished corrections used: the ones kept
_asked: dict[int, int] = {}  # size -> when it was last asked for (a count)
_clock = itertools.count()
_local = threading.local()  # .sizes: those of this thread's correction under way


class _Block(np.ndarray):
    """The memory of one work array.

    An ndarray subclass that owns its memory, so that numpy does not collapse
    the base of a view of a work array past the work array (it stops at an
    owner of another type): every view of a work array keeps the work array
    alive, and the memory returns to the pool only when all are gone.
    """


def empty(shape, dtype=np.float64) -> np.ndarray:
    """An uninitialised C-contiguous array, as ``np.empty``, on pooled memory."""
    dtype = np.dtype(dtype)
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(shape)
    size = math.prod(shape) * dtype.itemsize  # (np.prod costs microseconds)
    if not MIN_POOLED <= size <= MAX_POOLED:
        return np.empty(shape, dtype)
    sizes = getattr(_local, "sizes", None)
    if sizes is not None:
        sizes.add(size)
    block = _take(size)
    if block is None:
        block = _Block((size,), np.uint8)  # owns its memory: no base beyond it
    array = np.ndarray(shape, dtype, buffer=block)
    # Not at exit: arrays still in use (a daemon thread, a later exit
    # handler) would give their memory to another array.
    weakref.finalize(array, _give_back, block).atexit = False
    if POISON is not None:
        block.fill(POISON)
    return array


def zeros(shape, dtype=np.float64) -> np.ndarray:
    """An array of zeros, as ``np.zeros``, on pooled memory."""
    array = empty(shape, dtype)
    array.fill(0)
    return array


def copy(array: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``array`` on pooled memory."""
    out = empty(array.shape, array.dtype)
    np.copyto(out, array)
    return out


def unmasked(usable: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """uint8 work array: 1 where ``usable`` is non-zero and ``masked`` zero (one shape)."""
    from ._kernels import flags  # (the kernels import this module)

    out = empty(usable.shape, np.uint8)
    flags.usable_unmasked(
        np.ascontiguousarray(usable).view(np.uint8), np.ascontiguousarray(masked).view(np.uint8),
        out,
    )  # fmt: skip
    return out


@contextlib.contextmanager
def correction() -> Iterator[None]:
    """Mark one correction: the sizes of its work arrays are kept from its end on.

    Also when it ends in an exception: the sizes were asked for all the same.
    """
    outer = getattr(_local, "sizes", None)
    sizes: set[int] = set()
    _local.sizes = sizes
    try:
        yield
    finally:
        _local.sizes = outer
        if outer is not None:  # a correction within one: the outer one ends later
            outer |= sizes
        else:
            with _lock:
                _seen.update(sizes)


def kept_bytes() -> int:
    """Bytes of free memory the pool holds now."""
    return _kept


def release_memory() -> None:
    """Give back the work memory bgdnoise keeps between corrections.

    From its second correction of a given image size on, a process keeps the
    memory of the correction's work arrays (at most 256 MiB; about 80 MiB
    for a 2048x2048 frame with the defaults), so that the next correction
    does not map and zero fresh pages: a fifth of the time of a full frame.
    Call this where that memory is wanted back (a long-lived worker that
    has finished its frames); later corrections keep memory again from
    their second of a size on.

    Returns
    -------
    None
    """
    global _kept
    with _lock:
        _free.clear()
        _seen.clear()
        _asked.clear()
        _kept = 0


def _take(size: int) -> np.ndarray | None:
    global _kept
    with _lock:
        _asked[size] = next(_clock)
        blocks = _free.get(size)
        if not blocks:
            return None
        _kept -= size
        return blocks.pop()


def _give_back(block: np.ndarray) -> None:
    global _kept
    size = block.nbytes
    with _lock:
        if size not in _seen or size > MAX_KEPT:
            return
        # Room first from the sizes asked for longest ago (a process that
        # moved on to other shapes), never from this one.
        stale = []
        if _kept + size > MAX_KEPT:
            stale = sorted((s for s in _free if s != size and _free[s]), key=_asked.get)
        while _kept + size > MAX_KEPT and stale:
            oldest = stale[0]
            _free[oldest].pop()
            _kept -= oldest
            if not _free[oldest]:
                stale.pop(0)
        if _kept + size <= MAX_KEPT:
            _free.setdefault(size, []).append(block)
            _kept += size


def _after_fork() -> None:  # a child starts with an empty pool and a free lock
    global _lock, _kept
    _lock = threading.RLock()
    _free.clear()
    _seen.clear()
    _asked.clear()
    _kept = 0


os.register_at_fork(after_in_child=_after_fork)
