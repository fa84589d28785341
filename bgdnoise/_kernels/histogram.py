"""A line's values bucket-sorted into a fine histogram, and queries on it.

The histogram is described by ``hist = (lo, inv_w, nb, shift)``: ``nb``
regular bins of width ``1 / inv_w`` from ``lo``, plus an underflow bin (0)
and an overflow bin (``nb + 1``); sums are of ``v - shift``.  Its arrays are
the first ones of the estimator's scratch tuple
``(srt, idx, cnt, start, ps1, ps2, smp)``:

``srt``    the values, sorted by bin (bin ``b`` is ``srt[start[b]:start[b + 1]]``);
``idx``    uint32 bin of each value (scratch for the sort);
``cnt``    int64 per-bin counts, then write cursors;
``start``  int64 first index of each bin in ``srt``;
``ps1``    sum of ``v - shift`` over the regular bins ``1..b-1``;
``ps2``    the same for ``(v - shift)**2``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._jit import scalar_helper
from .select import _insertion_sort, _mid, _select

# Bins of at most this many values are sorted rather than selected in.
_SMALL_BIN = 24


@njit(cache=True, nogil=True)
def n_bins_for(length):
    """Regular bins used for a line of ``length`` values.

    Parameters
    ----------
    length : int

    Returns
    -------
    int
        Between 16 and 4096.  Scratch arrays indexed by bin need
        ``n_bins_for(length) + 3`` entries.
    """
    return max(16, min(4096, length // 2))


@scalar_helper
def _bin_of(v, lo, inv_w, nb):
    """Monotonic bin index: 0 underflow, 1..nb regular, nb + 1 overflow.

    Parameters
    ----------
    v, lo, inv_w : float
    nb : int

    Returns
    -------
    int
        Within ``0..nb + 1`` for any ``v`` (NaN goes to 0), so no input can
        index out of bounds; monotonic for finite ``lo`` and ``inv_w > 0``.
    """
    t = (v - lo) * inv_w
    if not (t >= 0.0):
        return 0
    if t >= nb:
        return nb + 1
    return 1 + int(t)


@scalar_helper
def _fill_histogram(vals, n, hist, scratch, with_sums):
    """Sort ``vals[:n]`` into the bins of ``hist``, with prefix sums of deviations.

    Parameters
    ----------
    vals : ndarray of float64
        Not modified.
    n : int
    hist : tuple
        ``(lo, inv_w, nb, shift)``.
    scratch : tuple
        Fills ``srt``, ``start``, ``ps1`` and ``ps2`` (module docstring).
    with_sums : bool
        False: only ``srt`` and ``start`` (a clip of fixed scale needs no
        moments; the sums were a third of the fill); ``ps1`` and ``ps2`` are
        then zero.

    Returns
    -------
    float
        The sum of squares of all the deviations, under- and overflow bins
        included (0 without the sums).
    """
    lo, inv_w, nb, shift = hist
    srt, idx, cnt, start, ps1, ps2, _ = scratch
    total_bins = nb + 2
    for b in range(total_bins + 1):
        cnt[b] = 0
        ps1[b] = 0.0
        ps2[b] = 0.0
    top = np.float64(nb)
    for i in range(n):  # _bin_of without branches or counts: the loop vectorises
        # Clamped to [-1, nb] before the floor; max(-1.0, NaN) is -1.0 (the
        # first argument unless the second is greater), so NaN goes to bin 0.
        t = min(top, max(-1.0, (vals[i] - lo) * inv_w))
        idx[i] = np.uint32(np.floor(t) + 1.0)
    # Unsigned bins and cursors index without numba's code for negative indices.
    for i in range(n):
        cnt[idx[i]] += 1
    start[0] = 0
    for b in range(total_bins):
        start[b + 1] = start[b] + cnt[b]
        cnt[b] = start[b]  # becomes the write cursor
    if not with_sums:
        for i in range(n):
            b = idx[i]
            srt[np.uint64(cnt[b])] = vals[i]
            cnt[b] += 1
        return 0.0
    for i in range(n):
        b = idx[i]
        v = vals[i]
        srt[np.uint64(cnt[b])] = v
        cnt[b] += 1
        d = v - shift
        ps1[b] += d
        ps2[b] += d * d
    # Prefix sums over the regular bins only: ps[b] = sum of bins 1..b-1, so
    # outliers in the under- and overflow bins never enter a difference.
    outside2 = ps2[0] + ps2[nb + 1]  # read before the prefix sums overwrite them
    run1 = 0.0
    run2 = 0.0
    for b in range(1, nb + 1):
        t1 = ps1[b]
        t2 = ps2[b]
        ps1[b] = run1
        ps2[b] = run2
        run1 += t1
        run2 += t2
    ps1[nb + 1] = run1
    ps2[nb + 1] = run2
    return outside2 + run2


@scalar_helper
def _window_stats(srt, start, ps1, ps2, hist, a, b):
    """Count below ``a``, and count, sum and sum of squares in ``[a, b]``.

    Whole bins strictly between the bins of ``a`` and ``b`` come from the
    prefix sums; only the two edge bins are read.  (Called every
    iteration: the arrays are passed one by one, not as the scratch tuple,
    which numba would pass field by field.)

    Parameters
    ----------
    srt, start, ps1, ps2 : ndarray
        A filled histogram (module docstring).
    hist : tuple
        ``(lo, inv_w, nb, shift)``.
    a, b : float
        The bounds.

    Returns
    -------
    below, m : int
        Values below ``a``; values within ``[a, b]``.
    s1, s2 : float
        Sums of ``v - shift`` and its square over those ``m`` values.
    """
    lo, inv_w, nb, shift = hist
    fa = _bin_of(a, lo, inv_w, nb)
    fb = _bin_of(b, lo, inv_w, nb)
    below = start[fa]
    m = 0
    s1 = 0.0
    s2 = 0.0
    if fa == fb:
        for j in range(start[fa], start[fa + 1]):
            v = srt[j]
            if v < a:
                below += 1
            elif v <= b:
                d = v - shift
                m += 1
                s1 += d
                s2 += d * d
    else:
        for j in range(start[fa], start[fa + 1]):
            v = srt[j]
            if v < a:
                below += 1
            else:
                d = v - shift
                m += 1
                s1 += d
                s2 += d * d
        for j in range(start[fb], start[fb + 1]):
            v = srt[j]
            if v <= b:
                d = v - shift
                m += 1
                s1 += d
                s2 += d * d
        m += start[fb] - start[fa + 1]
        s1 += ps1[fb] - ps1[fa + 1]
        s2 += ps2[fb] - ps2[fa + 1]
    return below, m, s1, s2


@scalar_helper
def _count_outside(srt, start, n, hist, a, b):
    """Number of values below ``a`` plus number above ``b``.

    Parameters
    ----------
    srt, start : ndarray
        A filled histogram of ``n`` values.
    n : int
    hist : tuple
        ``(lo, inv_w, nb, shift)``.
    a, b : float

    Returns
    -------
    int
    """
    lo, inv_w, nb, _ = hist
    fa = _bin_of(a, lo, inv_w, nb)
    fb = _bin_of(b, lo, inv_w, nb)
    out = start[fa] + (n - start[fb + 1])
    for j in range(start[fa], start[fa + 1]):
        if srt[j] < a:
            out += 1
    for j in range(start[fb], start[fb + 1]):
        if srt[j] > b:
            out += 1
    return out


@scalar_helper
def _bin_of_rank(start, n_bins_total, r):
    """The bin holding the r-th smallest value (0-based).

    Parameters
    ----------
    start : ndarray of int64
        A filled histogram's bin starts.
    n_bins_total : int
        ``nb + 2``.
    r : int

    Returns
    -------
    int
        The bin ``b`` with ``start[b] <= r < start[b + 1]``.
    """
    lo_b = 0
    hi_b = n_bins_total - 1
    while lo_b < hi_b:  # last bin whose start <= r
        mid = (lo_b + hi_b + 1) >> 1
        if start[mid] <= r:
            lo_b = mid
        else:
            hi_b = mid - 1
    while start[lo_b + 1] <= r:  # skip empty bins sharing the same start
        lo_b += 1
    return lo_b


@scalar_helper
def _sort_small_bin(srt, first, stop):
    """Insertion-sort ``srt[first:stop]`` when it holds at most ``_SMALL_BIN`` values.

    Returns whether it is now sorted. A sorted bin costs one predictable
    pass to sort again, where a selection in it takes mispredicted branches
    at every call.
    """
    if stop - first > _SMALL_BIN:
        return False
    _insertion_sort(srt, first, stop)
    return True


@scalar_helper
def _rank_median(srt, start, n_bins_total, below, m, sort_small):
    """Median of the ``m`` values of ranks ``below..below + m - 1``.

    The (lower) middle value is selected in its bin. For an even ``m`` the
    upper middle value follows from that selection: the smallest value after
    it in its bin (the selection left the bin's larger values there), or else
    the smallest of the next non-empty bin; no second search.

    Parameters
    ----------
    srt, start : ndarray
    n_bins_total : int
    below, m : int
    sort_small : bool
        Sort a bin of at most ``_SMALL_BIN`` values instead of selecting in
        it (the fixed-scale clip: its iterations come back to the same bins).
        Not where sums over the bins' values follow: their order changes.
        Equal values may end in another order than a selection leaves them,
        the same values but for zeros of both signs, which the gathered
        values never hold (a zero is not usable, and a value minus the
        background is never -0.0).

    Returns
    -------
    float
        NaN when ``m <= 0``.
    """
    level = np.nan
    if m > 0:
        r = below + (m >> 1)
        low = r - 1 + (m & 1)  # the lower middle rank (the middle one for odd m)
        b = _bin_of_rank(start, n_bins_total, low)
        if not (sort_small and _sort_small_bin(srt, start[b], start[b + 1])):
            _select(srt, start[b], start[b + 1] - 1, low)
        if m & 1:
            level = srt[low]
        else:
            stop = start[b + 1]
            if stop <= r:  # r opens a later bin: the first non-empty one
                b += 1
                while start[b + 1] <= r:
                    b += 1
                stop = start[b + 1]
            upper = srt[r]
            for j in range(r + 1, stop):
                upper = min(upper, srt[j])
            level = _mid(srt[r - 1], upper)
    return level
