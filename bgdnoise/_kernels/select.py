"""Selection in place on a float buffer: order statistics and exact medians."""

from __future__ import annotations

import numpy as np

from ._jit import scalar_helper


@scalar_helper
def _mid(a, b):
    """``0.5 * (a + b)`` without overflow.

    Parameters
    ----------
    a, b : float
        Finite values.

    Returns
    -------
    float
        Their mean; halved first when the sum would overflow.
    """
    s = a + b
    if s - s == 0.0:
        return 0.5 * s
    return 0.5 * a + 0.5 * b


@scalar_helper
def _select(buf, left, right, k):
    """Place the k-th smallest of ``buf[left:right + 1]`` at index ``k``.

    Hoare partitioning with a median-of-three pivot. The line kernel
    selects with it in the small bins of its histogram; the medians of
    large samples (thresholds, the dispersion) use :func:`_kth_smallest`,
    whose partitions have no branch: on values in random order Hoare's
    mispredict about half their comparisons (5x the time on a row's sums).

    Parameters
    ----------
    buf : ndarray of float32 or float64
        Reordered in place.
    left, right : int
        First and last index of the range (inclusive).
    k : int
        Target index, ``left <= k <= right``.

    Returns
    -------
    None
        On return ``buf[left:k] <= buf[k] <= buf[k + 1:right + 1]``.
    """
    while left < right:
        mid = (left + right) >> 1
        # Median of three, moved to ``mid``, protects against sorted input.
        if buf[mid] < buf[left]:
            buf[mid], buf[left] = buf[left], buf[mid]
        if buf[right] < buf[left]:
            buf[right], buf[left] = buf[left], buf[right]
        if buf[right] < buf[mid]:
            buf[right], buf[mid] = buf[mid], buf[right]
        pivot = buf[mid]
        i = left
        j = right
        while i <= j:
            while buf[i] < pivot:
                i += 1
            while pivot < buf[j]:
                j -= 1
            if i <= j:
                buf[i], buf[j] = buf[j], buf[i]
                i += 1
                j -= 1
        if k <= j:
            right = j
        elif k >= i:
            left = i
        else:
            return


@scalar_helper
def _extreme_of(buf, start, stop, largest):
    """Largest (``largest``) or smallest value of ``buf[start:stop]`` (non-empty).

    Parameters
    ----------
    buf : ndarray of float32 or float64
    start, stop : int
    largest : bool
        A constant at every call site, so the branch leaves the loop.

    Returns
    -------
    float
    """
    best = buf[start]
    for i in range(start + 1, stop):
        v = buf[i]
        if (best < v) if largest else (v < best):
            best = v
    return best


@scalar_helper
def _window_median(buf, lo, hi, pivot):
    """Exact median of ``buf[lo:hi]``, selecting on one side of a pivot.

    After a clipping pass the middle usually lies in about half the window,
    so only the side of the old pivot that holds it is searched.

    Parameters
    ----------
    buf : ndarray of float32 or float64
        Reordered in place within ``[lo, hi)``.
    lo, hi : int
        The window.
    pivot : int
        An index inside the window already in its sorted place (everything
        left of it is <= it, everything right >= it), or -1.

    Returns
    -------
    median : float
        NaN for an empty window; the mean of the two middle values for an
        even count.
    new_pivot : int
        An index now in its sorted place (-1 for an empty window).
    """
    m = hi - lo
    if m <= 0:
        return np.nan, -1
    if pivot < lo or pivot >= hi:
        pivot = -1
    if m & 1:
        k = lo + (m >> 1)
        if pivot < 0:
            _select(buf, lo, hi - 1, k)
        elif k < pivot:
            _select(buf, lo, pivot - 1, k)
        elif k > pivot:
            _select(buf, pivot + 1, hi - 1, k)
        return buf[k], k
    k2 = lo + (m >> 1)
    k1 = k2 - 1
    if pivot < 0:
        _select(buf, lo, hi - 1, k2)
        pivot = k2
    if pivot == k2:
        return _mid(_extreme_of(buf, lo, k2, np.bool_(True)), buf[k2]), k2
    if pivot == k1:
        return _mid(buf[k1], _extreme_of(buf, k2, hi, np.bool_(False))), k1
    if k2 < pivot:
        # Select the lower middle; the upper one is the smallest of the few
        # values between it and the old pivot.
        _select(buf, lo, pivot - 1, k1)
        return _mid(buf[k1], _extreme_of(buf, k2, pivot, np.bool_(False))), k1
    _select(buf, pivot + 1, hi - 1, k2)
    return _mid(_extreme_of(buf, pivot + 1, k2, np.bool_(True)), buf[k2]), k2


# Order statistics of a large buffer are sought first among the values between
# two quantiles of a subsample of this many, which hold the ranks wanted but
# about a fifth of the values: selecting among all of a large buffer costs
# ~9 ns a value once it is out of the caches; among the fifth, in cache, and
# with the pass that finds them, a fifth of that time.
_SUBSAMPLE = 1024
# The quantiles bracket the subsample's median by this many of its standard
# errors of rank (sqrt(m) / 2): for values in random order the middle ranks
# fall outside about once in 10**9 (then the whole buffer is selected).
_BRACKET = 6.0


@scalar_helper
def _middle_ranks(buf, n, first, k, window):
    """The ``first``-th and ``k``-th smallest of ``buf[:n]`` (``k - 1 <= first <= k``).

    Exact whatever the order of the values: they are selected among the
    values between two quantiles of an evenly spread subsample of
    :data:`_SUBSAMPLE` when they lie there (:func:`_bracketed_ranks`), else
    among all the values.

    Parameters
    ----------
    buf : ndarray of float32 or float64
        Finite values; reordered in place when selected among all.
    n : int
        ``n >= 1``.
    first, k : int
        The ranks (0-based), both in the middle half for the subsample to help.
    window : ndarray
        Scratch of ``buf``'s dtype, as for :func:`_bracketed_ranks`.

    Returns
    -------
    lower, upper : float
        The two order statistics (equal when ``first == k``).
    """
    reach = int(_BRACKET * np.sqrt(_SUBSAMPLE) / 2.0) + 1
    sample = (np.int64(_SUBSAMPLE), np.int64(reach))
    found, lower, upper = _bracketed_ranks(buf, n, (first, k), window, sample)
    if found:
        return lower, upper
    return _ranks(buf, n, first, k)


@scalar_helper
def _bracketed_ranks(values, n, ranks, window, sample):
    """The ``first``-th and ``k``-th smallest of ``values[:n]``, if inside a subsample's bracket.

    Selecting with :func:`_kth_smallest`:
    the values between two order statistics of an evenly spread subsample
    are copied to ``window`` (one branch-free pass) and the ranks selected
    among them, when they lie there.

    Parameters
    ----------
    values : ndarray of float32 or float64
        Not NaN; read only.
    n : int
    ranks : tuple of int
        ``(first, k)``, ``k - 1 <= first <= k``.
    window : ndarray
        Scratch of ``values``' dtype, not empty, used only if at least as
        long as the subsample and longer than the values between the
        quantiles (its last entry takes what the pass writes beyond them).
    sample : tuple of int
        ``(size, reach)``: the subsample's size, and how many of its ranks
        either side of its middle bound the values selected among.

    Returns
    -------
    found : bool
        False: the subsample was not taken (``n < 4 size``) or the ranks lie
        outside the bracket; select among all the values.
    lower, upper : float
        The two order statistics when found (equal when ``first == k``).
    """
    first, k = ranks
    size, reach = sample
    cap = window.shape[0]
    if n < 4 * size or cap < size:
        return False, window[0], window[0]
    for i in range(size):
        window[i] = values[i * (n - 1) // (size - 1)]
    lo_rank, hi_rank = size // 2 - reach, size // 2 + reach
    lo = _kth_smallest(window, np.int64(0), np.int64(size - 1), np.int64(lo_rank))
    hi = _kth_smallest(window, np.int64(lo_rank), np.int64(size - 1), np.int64(hi_rank))
    below = np.int64(0)  # not a literal: see _kernels/__init__.py
    inside = np.int64(0)  # not a literal: see _kernels/__init__.py
    last = cap - 1
    for i in range(n):  # no branch: the values' order would mispredict it
        v = values[i]
        window[min(inside, last)] = v
        below += v < lo
        inside += (v >= lo) & (v <= hi)
    # (inside == cap: the last entry was overwritten by values beyond it.)
    if inside < cap and below <= first and k < below + inside:
        lower, upper = _ranks(window, inside, first - below, k - below)
        return True, lower, upper
    return False, window[0], window[0]


@scalar_helper
def _ranks(buf, n, first, k):
    """The ``first``-th and ``k``-th smallest of ``buf[:n]`` (``first``: ``k`` or ``k - 1``).

    ``buf`` is reordered (:func:`_kth_smallest`).
    """
    upper = _kth_smallest(buf, np.int64(0), n - 1, k)
    if first == k:
        return upper, upper
    lower = buf[0]  # the largest of buf[:k], the k smallest
    for i in range(1, k):
        lower = buf[i] if buf[i] > lower else lower
    return lower, upper


@scalar_helper
def _kth_smallest(buf, left, right, k):
    """The ``k``-th smallest of ``buf[left:right + 1]``, placed at ``k``.

    Quickselect with branch-free (Lomuto) partitions: every value is swapped
    with the first not below the pivot whatever it is, and that position
    advances by the comparison. Hoare partitioning branched on every
    comparison, which random values mispredict half the time (5x slower on
    a row's sums).

    Parameters
    ----------
    buf : ndarray of float32 or float64
        Not NaN (with a NaN pivot the partitions cannot progress: an
        arbitrary value is returned); reordered in place.
    left, right : int
        First and last index of the range (inclusive).
    k : int
        ``left <= k <= right``.

    Returns
    -------
    float
        ``buf[k]``; on return ``buf[left:k] <= buf[k] <= buf[k + 1:right + 1]``.
    """
    while right - left >= 16:
        a, b, c = buf[left], buf[(left + right) >> 1], buf[right]
        low, high = (a, b) if a < b else (b, a)
        pivot = low if c < low else (c if c < high else high)  # median of three
        j = left
        for i in range(left, right + 1):
            v = buf[i]
            buf[i] = buf[j]
            buf[j] = v
            j += v < pivot
        # buf[left:j] < pivot <= buf[j:right + 1]
        if k < j:
            right = j - 1
            continue
        if j == left:  # none below the pivot: its equals first, then the rest
            for i in range(left, right + 1):
                v = buf[i]
                buf[i] = buf[j]
                buf[j] = v
                j += v <= pivot
            if k < j or j == left:  # (j == left: a NaN pivot; no NaN is passed here)
                return buf[k]
        left = j
    _insertion_sort(buf, left, right + 1)  # a few left
    return buf[k]


@scalar_helper
def _insertion_sort(buf, first, stop):
    """Sort ``buf[first:stop]`` in place by insertion (for a few values)."""
    for i in range(first + 1, stop):
        v = buf[i]
        j = i
        while j > first and buf[j - 1] > v:
            buf[j] = buf[j - 1]
            j -= 1
        buf[j] = v
