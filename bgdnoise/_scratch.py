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
memory; :func:`clear` empties it. Arrays of fewer than :data:`MIN_POOLED` bytes come from numpy
(the allocator keeps small blocks anyway), as do those above
:data:`MAX_POOLED` (a cube's worth would be kept for nothing).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import weakref
from collections.abc import Iterator

import numpy as np

__all__ = [
    "MAX_KEPT", "MAX_POOLED", "MIN_POOLED", "clear", "copy", "correction", "empty", "kept_bytes",
    "unmasked", "zeros",
]  # fmt: skip

#: Free memory the pool keeps at most (bytes): a 2048x2048 default correction
#: keeps about 80 MiB.
MAX_KEPT = 256 * 2**20
#: Smaller work arrays come from numpy.
MIN_POOLED = 256 * 2**10
#: Larger work arrays come from numpy.
MAX_POOLED = 64 * 2**20

_lock = threading.Lock()
_free: dict[int, list[np.ndarray]] = {}  # size in bytes -> free blocks
_kept = 0
_seen: set[int] = set()  # sizes the finished corrections used: the ones kept
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
    weakref.finalize(array, _give_back, block)
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
    """uint8 work array: ``usable & (masked == 0)`` for two maps of one shape."""
    out = empty(usable.shape, np.bool_)
    np.equal(masked, 0, out=out)
    return np.bitwise_and(usable, out.view(np.uint8), out=out.view(np.uint8))


@contextlib.contextmanager
def correction() -> Iterator[None]:
    """Mark one correction: the sizes of its work arrays are kept from its end on."""
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


def clear() -> None:
    """Let the pool's free memory go, and keep none until a correction has finished again."""
    global _kept
    with _lock:
        _free.clear()
        _seen.clear()
        _kept = 0


def _take(size: int) -> np.ndarray | None:
    global _kept
    with _lock:
        blocks = _free.get(size)
        if not blocks:
            return None
        _kept -= size
        return blocks.pop()


def _give_back(block: np.ndarray) -> None:
    global _kept
    with _lock:
        if block.nbytes in _seen and _kept + block.nbytes <= MAX_KEPT:
            _free.setdefault(block.nbytes, []).append(block)
            _kept += block.nbytes


def _after_fork() -> None:  # a child starts with an empty pool and a free lock
    global _lock, _kept
    _lock = threading.Lock()
    _free.clear()
    _seen.clear()
    _kept = 0


os.register_at_fork(after_in_child=_after_fork)
