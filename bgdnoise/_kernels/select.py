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

    Hoare partitioning with a median-of-three pivot.

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
    values between two quantiles of an evenly spread subsample when they
    lie there, else among all the values.

    Parameters
    ----------
    buf : ndarray of float32 or float64
        Finite values; reordered in place when selected among all.
    n : int
        ``n >= 1``.
    first, k : int
        The ranks (0-based), both in the middle half for the subsample to help.
    window : ndarray
        Scratch of ``buf``'s dtype: receives the values between the quantiles.
        It is used only if it is longer than they are (its last entry takes
        what the pass writes beyond them) and than the subsample.

    Returns
    -------
    lower, upper : float
        The two order statistics (equal when ``first == k``).
    """
    cap = window.shape[0]
    if n >= 4 * _SUBSAMPLE and cap >= _SUBSAMPLE:
        m = _SUBSAMPLE
        for i in range(m):
            window[i] = buf[i * (n - 1) // (m - 1)]
        reach = int(_BRACKET * np.sqrt(m) / 2.0) + 1
        lo_rank, hi_rank = m // 2 - reach, m // 2 + reach
        _select(window, np.int64(0), m - 1, lo_rank)
        _select(window, lo_rank, m - 1, hi_rank)
        lo, hi = window[lo_rank], window[hi_rank]
        below = np.int64(0)  # not a literal: see _kernels/__init__.py
        inside = np.int64(0)  # not a literal: see _kernels/__init__.py
        last = cap - 1
        for i in range(n):  # no branch: random values would mispredict it (7x slower)
            v = buf[i]
            window[min(inside, last)] = v
            below += v < lo
            inside += (v >= lo) & (v <= hi)
        # (inside == cap: the last entry was overwritten by values beyond it.)
        if inside < cap and below <= first and k < below + inside:
            return _ranks(window, inside, first - below, k - below)
    return _ranks(buf, n, first, k)


@scalar_helper
def _ranks(buf, n, first, k):
    """The ``first``-th and ``k``-th smallest of ``buf[:n]`` (``first`` is ``k`` or ``k - 1``)."""
    _select(buf, np.int64(0), n - 1, k)
    upper = buf[k]
    if first == k:
        return upper, upper
    lower = buf[0]
    for i in range(1, k):
        if buf[i] > lower:
            lower = buf[i]
    return lower, upper
