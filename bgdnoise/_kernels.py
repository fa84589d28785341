"""Private numba kernels: arithmetic only, no validation.

Every function here assumes its inputs were checked and converted by
:mod:`bgdnoise.core`: native byte order, C-contiguous, the documented shapes.

Array conventions
-----------------
``data``        (P, Ny, Nx) float32 or float64, P planes.
``flags``       (Pf, Ny, Nx) uint8 with Pf in {1, P} (1 broadcasts); bit
                ``EXCLUDE`` keeps a pixel out of every statistic, bit
                ``PRESERVE`` leaves it uncorrected.  Shape (1, 0, 0): no flags.
``background``  (Pb, Ny, Nx) same dtype as ``data``, Pb in {1, P}; subtracted
                from the values before any statistic.  Shape (1, 0, 0): none.
``band_edges``  (n_bands + 1,) int64 positions along the line where the
                readout bands (amplifier outputs) start and end.
``group_start`` (n_groups + 1,) int64 offsets of each group's segment in the
                per-line scratch buffer; a group is one band, or one band and
                one parity of the position along the line when ``odd_even``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

EXCLUDE = np.uint8(1)
PRESERVE = np.uint8(2)

# Gaussian sigma from the MAD; and the std of a unit Gaussian truncated at +-3.
_MAD_TO_SIGMA = 1.482602218505602
_TRUNC3_STD = 0.9865766634773327

# Numerical range of the moments (sums of squared deviations).  A line whose
# squared deviations overflow, or whose values are all tiny, has its moments
# taken of ``v * 2**-k``, with ``k`` putting its largest magnitude just
# below ``2**_EXP_LIMIT``: exact powers of two, so the clipping is the same
# as with an unbounded exponent.
_FLOAT_MAX = 1.7976931348623157e308
_EXP_LIMIT = 480
_S2_TINY = 2.0**-800
# Values that leave the clipped set holding all but this fraction of the sum
# of squares: the running sums are recomputed (the downdate lost its digits).
_CANCEL = 2.0**-20


@njit(cache=True, nogil=True)
def _mid(a, b):
    """``0.5 * (a + b)`` without overflow for finite ``a`` and ``b``."""
    s = a + b
    if s - s == 0.0:
        return 0.5 * s
    return 0.5 * a + 0.5 * b


# --------------------------------------------------------------------------
# Selection helpers (operate in place on a float64 buffer)
# --------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _select(buf, left, right, k):
    """Place the k-th smallest of ``buf[left:right + 1]`` at index ``k``.

    Hoare partitioning with a median-of-three pivot.  On return
    ``buf[left:k] <= buf[k] <= buf[k + 1:right + 1]``.
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


@njit(cache=True, nogil=True)
def _max_of(buf, start, stop):
    best = buf[start]
    for i in range(start + 1, stop):
        if buf[i] > best:
            best = buf[i]
    return best


@njit(cache=True, nogil=True)
def _min_of(buf, start, stop):
    best = buf[start]
    for i in range(start + 1, stop):
        if buf[i] < best:
            best = buf[i]
    return best


@njit(cache=True, nogil=True)
def _window_median(buf, lo, hi, pivot):
    """Exact median of ``buf[lo:hi]``; returns ``(median, new_pivot)``.

    ``pivot`` is an index inside the window already in its sorted place
    (everything left of it is <= it, everything right >= it), or -1.  The
    selection then only searches the side of the pivot that holds the
    middle, which after a clipping pass is usually about half the window.
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
        return _mid(_max_of(buf, lo, k2), buf[k2]), k2
    if pivot == k2:
        return _mid(_max_of(buf, lo, k2), buf[k2]), k2
    if pivot == k1:
        return _mid(buf[k1], _min_of(buf, k2, hi)), k1
    if k2 < pivot:
        # Select the lower middle; the upper one is the smallest of the few
        # values between it and the old pivot.
        _select(buf, lo, pivot - 1, k1)
        return _mid(buf[k1], _min_of(buf, k2, pivot)), k1
    _select(buf, pivot + 1, hi - 1, k2)
    return _mid(_max_of(buf, pivot + 1, k2), buf[k2]), k2


# --------------------------------------------------------------------------
# The line-level estimator
# --------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _scaled(v, k):
    """``v * 2**-k`` (exact unless it leaves the normal range)."""
    return v if k == 0 else math.ldexp(v, -k)


@njit(cache=True, nogil=True)
def _moment_exponent(buf, lo, hi, shift):
    """``k`` for the moments of ``buf[lo:hi]`` about ``shift``; 0 if in range.

    Non-zero when the largest magnitude (of the values and ``shift``) is
    above ``2**_EXP_LIMIT`` (squares could overflow) or below
    ``2**-_EXP_LIMIT`` (squares underflow); ``v * 2**-k`` then has its
    largest magnitude in ``[2**(_EXP_LIMIT - 1), 2**_EXP_LIMIT)``.
    """
    amax = abs(shift)
    for i in range(lo, hi):
        a = abs(buf[i])
        if a > amax:
            amax = a
    if amax == 0.0:
        return 0
    e = math.frexp(amax)[1]
    if e > _EXP_LIMIT or e < -_EXP_LIMIT:
        return e - _EXP_LIMIT
    return 0


@njit(cache=True, nogil=True)
def _moments(buf, lo, hi, shift, k):
    """Sum and sum of squares of ``(v - shift) * 2**-k`` over ``buf[lo:hi]``."""
    sh = _scaled(shift, k)
    s1 = 0.0
    s2 = 0.0
    for i in range(lo, hi):
        d = _scaled(buf[i], k) - sh
        s1 += d
        s2 += d * d
    return s1, s2


@njit(cache=True, nogil=True)
def _clip_below(buf, start, stop, lower, use_std, shift, k, s1, s2):
    """Move values of ``buf[start:stop]`` below ``lower`` to its front.

    Returns their count and the moments ``s1``, ``s2`` (of
    ``(v - shift) * 2**-k``, ``shift`` already scaled) with them removed
    when ``use_std``.
    """
    i = start
    for j in range(start, stop):
        v = buf[j]
        if v < lower:
            buf[j] = buf[i]
            buf[i] = v
            i += 1
            if use_std:
                d = _scaled(v, k) - shift
                s1 -= d
                s2 -= d * d
    return i - start, s1, s2


@njit(cache=True, nogil=True)
def _clip_above(buf, start, stop, upper, use_std, shift, k, s1, s2):
    """Move values of ``buf[start:stop]`` above ``upper`` to its back."""
    j = stop
    for t in range(stop - 1, start - 1, -1):
        v = buf[t]
        if v > upper:
            j -= 1
            buf[t] = buf[j]
            buf[j] = v
            if use_std:
                d = _scaled(v, k) - shift
                s1 -= d
                s2 -= d * d
    return stop - j, s1, s2


@njit(cache=True, nogil=True)
def _clipped_median(buf, n, sigma_lower, sigma_upper, fixed_scale, maxiters):
    """Iteratively sigma-clipped median of ``buf[:n]`` (finite values).

    Same result as astropy ``sigma_clip(cenfunc="median", stdfunc="std")``
    followed by a masked median: the clipped set is always a window
    ``[lo, hi)`` of the order statistics, kept partitioned in ``buf`` so
    each iteration is one pass plus a selection inside half the window.
    ``fixed_scale > 0`` replaces the standard deviation by that constant;
    ``maxiters < 0`` iterates until nothing changes.  Reorders ``buf``.

    Any finite values give a finite result: the median of two values does
    not overflow, moments of huge or tiny values are taken of values scaled
    by a power of two, and bounds that keep no value (a zero spread between
    two middle values) give the last median rather than NaN.
    """
    if n <= 0:
        return np.nan
    lo = 0
    hi = n
    med, pivot = _window_median(buf, lo, hi, -1)
    if maxiters == 0 or n < 2:
        return med
    use_std = not (fixed_scale > 0.0)
    # Moments about the first median, updated as values leave the window,
    # so the standard deviation costs no extra pass per iteration.
    shift = med
    k = 0
    s1 = 0.0
    s2 = 0.0
    if use_std:
        s1, s2 = _moments(buf, 0, n, shift, 0)
        if not (_S2_TINY <= s2 <= _FLOAT_MAX):  # overflow, or tiny values
            k = _moment_exponent(buf, 0, n, shift)
            if k != 0:
                s1, s2 = _moments(buf, 0, n, shift, k)
    shift_k = _scaled(shift, k)
    iteration = 0
    need_median = False
    lower = med
    upper = med
    while True:
        m = hi - lo
        if use_std:
            mean = s1 / m
            var = s2 / m - mean * mean
            scale = np.sqrt(var) if var > 0.0 else 0.0
            if k != 0:
                scale = math.ldexp(scale, k)
        else:
            scale = fixed_scale
        lower = med - sigma_lower * scale
        upper = med + sigma_upper * scale
        s2_before = s2
        if pivot >= 0 and lower <= buf[pivot] <= upper:
            # Values below ``lower`` can only sit left of the pivot, values
            # above ``upper`` only right of it.
            n_below, s1, s2 = _clip_below(buf, lo, pivot, lower, use_std, shift_k, k, s1, s2)
            n_above, s1, s2 = _clip_above(buf, pivot + 1, hi, upper, use_std, shift_k, k, s1, s2)
        else:
            pivot = -1
            n_below, s1, s2 = _clip_below(buf, lo, hi, lower, use_std, shift_k, k, s1, s2)
            n_above, s1, s2 = _clip_above(buf, lo + n_below, hi, upper, use_std, shift_k, k, s1, s2)
        if n_below + n_above == 0:
            break
        lo += n_below
        hi -= n_above
        iteration += 1
        if hi <= lo or (maxiters > 0 and iteration >= maxiters):
            need_median = True
            break
        med, pivot = _window_median(buf, lo, hi, pivot)
        if use_std and not (s2 >= _CANCEL * s2_before):
            # The clipped values held nearly all of the sum of squares (far
            # outliers): recompute the moments of what is left, about its
            # median and in its own range.
            shift = med
            k = _moment_exponent(buf, lo, hi, shift)
            s1, s2 = _moments(buf, lo, hi, shift, k)
            shift_k = _scaled(shift, k)
    # astropy masks with the final bounds applied to the whole line, so a
    # value clipped early but inside the final bounds counts again.
    j = lo
    for t in range(lo - 1, -1, -1):
        v = buf[t]
        if v >= lower:
            j -= 1
            buf[t] = buf[j]
            buf[j] = v
    i = hi
    for t in range(hi, n):
        v = buf[t]
        if v <= upper:
            buf[t] = buf[i]
            buf[i] = v
            i += 1
    if j != lo or i != hi:
        lo = j
        hi = i
        need_median = True
    if need_median and hi > lo:  # else: no value within the last bounds
        med, pivot = _window_median(buf, lo, hi, pivot)
    return med


# --------------------------------------------------------------------------
# The same estimator on a bucket-sorted copy: every iteration costs O(1)
# --------------------------------------------------------------------------
# Lines shorter than this use the partition version above.
_BINNED_MIN = 64
_SAMPLE = 31
# Bins span the sample median +- _RANGE sample sigmas.
_RANGE = 6.0


@njit(cache=True, nogil=True)
def n_bins_for(length):
    """Regular bins used for a line of ``length`` values."""
    return max(16, min(4096, length // 2))


@njit(cache=True, nogil=True)
def _bin_of(v, lo, inv_w, nb):
    """Monotonic bin index: 0 underflow, 1..nb regular, nb + 1 overflow.

    Within ``0..nb + 1`` for any ``v`` (NaN goes to 0), so no input can
    index out of bounds; monotonic for finite ``lo`` and ``inv_w > 0``.
    """
    t = (v - lo) * inv_w
    if not (t >= 0.0):
        return 0
    if t >= nb:
        return nb + 1
    return 1 + int(t)


@njit(cache=True, nogil=True)
def _window_stats(srt, start, ps1, ps2, shift, lo, inv_w, nb, a, b):
    """Count below ``a``, and count, sum, sum of squares in ``[a, b]``.

    Sums are of ``v - shift``.  Whole bins strictly between the bins of
    ``a`` and ``b`` come from prefix sums; only the two edge bins are read.
    """
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
        return below, m, s1, s2
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


@njit(cache=True, nogil=True)
def _count_outside(srt, start, n, lo, inv_w, nb, a, b):
    """Number of values below ``a`` plus number above ``b``."""
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


@njit(cache=True, nogil=True)
def _order_stat(srt, start, n_bins_total, r):
    """The r-th smallest value (0-based): find its bin, select inside it."""
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
    _select(srt, start[lo_b], start[lo_b + 1] - 1, r)
    return srt[r]


@njit(cache=True, nogil=True)
def _rank_median(srt, start, n_bins_total, below, m):
    if m <= 0:
        return np.nan
    r = below + (m >> 1)
    if m & 1:
        return _order_stat(srt, start, n_bins_total, r)
    v1 = _order_stat(srt, start, n_bins_total, r - 1)
    v2 = _order_stat(srt, start, n_bins_total, r)
    return _mid(v1, v2)


@njit(cache=True, nogil=True)
def _binned_clipped_median(
    vals, n, sigma_lower, sigma_upper, fixed_scale, maxiters, srt, idx, cnt, start, ps1, ps2, smp
):
    """Same result as :func:`_clipped_median`, for longer lines.

    The values are bucket-sorted once into bins of a fine histogram around
    a sample median; the clipped set is always the values inside ``[A, B]``
    (the tightest bounds so far), so its size, moments and median come from
    bin counts, prefix sums and a selection inside one or two small bins.
    Lines shorter than ``_BINNED_MIN``, and the rare lines the histogram
    cannot hold in float64 (a value range or sum of squares beyond the
    float64 range, or only tiny values), use :func:`_clipped_median`.
    Scratch: ``srt`` and ``idx`` of at least ``n``; ``cnt``, ``start``,
    ``ps1``, ``ps2`` of at least ``n_bins_for(n) + 3``; ``smp`` of
    ``_SAMPLE``.  Does not modify ``vals``.
    """
    if n >= _BINNED_MIN:
        med, ok = _binned_core(
            vals, n, sigma_lower, sigma_upper, fixed_scale, maxiters,
            srt, idx, cnt, start, ps1, ps2, smp,
        )  # fmt: skip
        if ok:
            return med
    for i in range(n):
        srt[i] = vals[i]
    return _clipped_median(srt, n, sigma_lower, sigma_upper, fixed_scale, maxiters)


@njit(cache=True, nogil=True)
def _binned_core(
    vals, n, sigma_lower, sigma_upper, fixed_scale, maxiters, srt, idx, cnt, start, ps1, ps2, smp
):
    """The histogram algorithm; returns ``(level, ok)``, ``ok`` False when
    the line needs :func:`_clipped_median` instead (see the caller)."""
    # Sample median and spread place the bins; any placement is exact,
    # a good one keeps the edge bins small.
    ns = _SAMPLE
    for i in range(ns):
        v = vals[i * (n - 1) // (ns - 1)]
        j = i
        while j > 0 and smp[j - 1] > v:
            smp[j] = smp[j - 1]
            j -= 1
        smp[j] = v
    center = smp[ns >> 1]
    if fixed_scale > 0.0:
        spread = fixed_scale
    else:
        spread = 0.5 * (smp[(5 * ns) // 6] - smp[ns // 6])
    nb = n_bins_for(n)
    if spread > 0.0 and np.isfinite(spread):
        lo = center - _RANGE * spread
        width = 2.0 * _RANGE * spread / nb
    else:
        vmin = vals[0]
        vmax = vals[0]
        for i in range(1, n):
            v = vals[i]
            if v < vmin:
                vmin = v
            if v > vmax:
                vmax = v
        if vmax == vmin:
            return vmin, True
        lo = vmin
        width = (vmax - vmin) / nb
    inv_w = 1.0 / width
    if not (width > 0.0 and width - width == 0.0 and inv_w - inv_w == 0.0 and lo - lo == 0.0):
        return np.nan, False  # a range beyond float64, or tiny values
    total_bins = nb + 2
    for b in range(total_bins + 1):
        cnt[b] = 0
        ps1[b] = 0.0
        ps2[b] = 0.0
    for i in range(n):
        b = _bin_of(vals[i], lo, inv_w, nb)
        idx[i] = b
        cnt[b] += 1
    start[0] = 0
    for b in range(total_bins):
        start[b + 1] = start[b] + cnt[b]
        cnt[b] = start[b]  # becomes the write cursor
    shift = center
    for i in range(n):
        b = idx[i]
        v = vals[i]
        srt[cnt[b]] = v
        cnt[b] += 1
        d = v - shift
        ps1[b] += d
        ps2[b] += d * d
    # Prefix sums over the regular bins only: ps[b] = sum of bins 1..b-1,
    # so outliers in the under/overflow bins never enter a difference.
    outside2 = ps2[0] + ps2[nb + 1]  # under/overflow bins, before the prefix overwrites
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

    if maxiters == 0:
        return _rank_median(srt, start, total_bins, 0, n), True
    use_std = not (fixed_scale > 0.0)
    if use_std:
        # Every window's sum of squares is part of this total: finite and
        # not tiny means no moment overflows or loses its digits.
        total2 = outside2 + run2
        if not (_S2_TINY <= total2 <= _FLOAT_MAX):
            return np.nan, False
    a = -np.inf
    b = np.inf
    count = n
    iteration = 0
    med = np.nan
    lower = np.nan
    upper = np.nan
    while True:
        below, m, s1, s2 = _window_stats(srt, start, ps1, ps2, shift, lo, inv_w, nb, a, b)
        med = _rank_median(srt, start, total_bins, below, m)
        if use_std:
            mean = s1 / m
            var = s2 / m - mean * mean
            scale = np.sqrt(var) if var > 0.0 else 0.0
        else:
            scale = fixed_scale
        lower = med - sigma_lower * scale
        upper = med + sigma_upper * scale
        a2 = max(a, lower)
        b2 = min(b, upper)
        if a2 > b2:
            break
        new_count = n - _count_outside(srt, start, n, lo, inv_w, nb, a2, b2)
        if new_count == count or new_count == 0:
            break
        a = a2
        b = b2
        count = new_count
        iteration += 1
        if maxiters > 0 and iteration >= maxiters:
            break
    # astropy masks the whole line with the last bounds.
    below, m, _, _ = _window_stats(srt, start, ps1, ps2, shift, lo, inv_w, nb, lower, upper)
    if m <= 0:
        return med, True  # no value within the last bounds
    return _rank_median(srt, start, total_bins, below, m), True


@njit(cache=True, nogil=True)
def _gather(drow, fplane, bplane, y, has_flags, has_bg, x0, x1, step, dst, c):
    """Append the usable values of ``row[x0:x1:step]`` to ``dst`` from ``c``.

    Branch-free compaction: every value is written, the cursor advances
    only for usable ones.  Returns the new cursor.
    """
    for x in range(x0, x1, step):
        v = np.float64(drow[x])
        ok = (v - v == 0.0) & (v != 0.0)  # finite and not exactly zero
        if has_flags:
            ok &= (fplane[y, x] & EXCLUDE) == 0
        if has_bg:
            v -= np.float64(bplane[y, x])
            ok &= v - v == 0.0
        dst[c] = v
        c += ok
    return c


@njit(cache=True, nogil=True)
def _plane_rows(data, flags, background, p):
    """Plane ``p`` of data, flags and background (empty stand-ins if absent)."""
    q = np.int64(p)
    return data[q], flags[min(q, flags.shape[0] - 1)], background[min(q, background.shape[0] - 1)]


@njit(parallel=True, cache=True)
def line_levels(
    data,
    flags,
    background,
    along_rows,
    band_edges,
    odd_even,
    group_start,
    plane_scale,
    sigma_lower,
    sigma_upper,
    maxiters,
    block,
    n_chunks,
    group_needed,
    full_every,
    levels,
    counts,
    full_levels,
    full_counts,
):
    """Clipped-median level of every group of every line of every plane.

    Writes ``levels[p, line, g]`` and ``counts[p, line, g]`` (usable pixels),
    and, when there is more than one group, ``full_counts[p, line]`` and
    ``full_levels[p, line]`` over the whole line.  The full level is only
    computed for every ``full_every``-th line and for lines where a group
    has fewer than ``group_needed[g]`` usable pixels (NaN elsewhere).  ``plane_scale[p] > 0`` is
    a fixed clipping scale for plane p; otherwise the line's standard
    deviation is used.  Work is split into ``n_chunks`` contiguous runs of
    line blocks (``block`` lines each), one set of scratch buffers per run.
    """
    n_planes, ny, nx = data.shape
    if along_rows:
        n_lines = ny
        length = nx
    else:
        n_lines = nx
        length = ny
    has_flags = flags.shape[1] > 0
    has_bg = background.shape[1] > 0
    n_bands = band_edges.shape[0] - 1
    n_par = 2 if odd_even else 1
    n_groups = n_bands * n_par
    blocks_per_plane = (n_lines + block - 1) // block
    n_items = n_planes * blocks_per_plane
    for chunk in prange(n_chunks):
        item_start = chunk * n_items // n_chunks
        item_stop = (chunk + 1) * n_items // n_chunks
        if item_stop <= item_start:
            continue
        seg = np.empty((block, length))
        work = np.empty(length)
        srt = np.empty(length)
        idx = np.empty(length, dtype=np.int32)
        nbins = n_bins_for(length) + 3
        cnt_b = np.empty(nbins, dtype=np.int64)
        start_b = np.empty(nbins, dtype=np.int64)
        ps1 = np.empty(nbins)
        ps2 = np.empty(nbins)
        smp = np.empty(_SAMPLE)
        cnt = np.zeros((block, n_groups), dtype=np.int64)
        for item in range(item_start, item_stop):
            p = item // blocks_per_plane
            first = (item % blocks_per_plane) * block
            nl = min(block, n_lines - first)
            scale = plane_scale[p]
            dplane, fplane, bplane = _plane_rows(data, flags, background, p)
            # Gather: each usable value goes to its group's segment.
            if along_rows:
                for j in range(nl):
                    y = first + j
                    drow = dplane[y]
                    for b in range(n_bands):
                        x0 = band_edges[b]
                        x1 = band_edges[b + 1]
                        for par in range(n_par):
                            g = b * n_par + par
                            xs = x0
                            if odd_even and (x0 & 1) != par:
                                xs += 1
                            c = _gather(
                                drow,
                                fplane,
                                bplane,
                                y,
                                has_flags,
                                has_bg,
                                xs,
                                x1,
                                n_par,
                                seg[j, group_start[g] :],
                                0,
                            )
                            cnt[j, g] = c
            else:
                # Column lines: walk rows so reads stay contiguous.
                cnt[:, :] = 0
                for b in range(n_bands):
                    for y in range(band_edges[b], band_edges[b + 1]):
                        g = b * n_par + ((y & 1) if odd_even else 0)
                        base = group_start[g]
                        drow = dplane[y]
                        for j in range(nl):
                            x = first + j
                            v = np.float64(drow[x])
                            ok = (v - v == 0.0) & (v != 0.0)
                            if has_flags:
                                ok &= (fplane[y, x] & EXCLUDE) == 0
                            if has_bg:
                                v -= np.float64(bplane[y, x])
                                ok &= v - v == 0.0
                            c = cnt[j, g]
                            seg[j, base + c] = v
                            cnt[j, g] = c + ok
            for j in range(nl):
                line = first + j
                if n_groups > 1:
                    total = 0
                    wanted = line % full_every == 0
                    for g in range(n_groups):
                        if cnt[j, g] < group_needed[g]:
                            wanted = True  # this line needs its fallback level
                        total += cnt[j, g]
                    full_counts[p, line] = total
                    full_levels[p, line] = np.nan
                    if wanted:
                        total = 0
                        for g in range(n_groups):
                            s0 = group_start[g]
                            for t in range(cnt[j, g]):
                                work[total] = seg[j, s0 + t]
                                total += 1
                        full_levels[p, line] = _binned_clipped_median(
                            work, total, sigma_lower, sigma_upper, scale, maxiters,
                            srt, idx, cnt_b, start_b, ps1, ps2, smp,
                        )  # fmt: skip
                for g in range(n_groups):
                    c = cnt[j, g]
                    counts[p, line, g] = c
                    levels[p, line, g] = _binned_clipped_median(
                        seg[j, group_start[g] :],
                        c,
                        sigma_lower,
                        sigma_upper,
                        scale,
                        maxiters,
                        srt,
                        idx,
                        cnt_b,
                        start_b,
                        ps1,
                        ps2,
                        smp,
                    )


# --------------------------------------------------------------------------
# Global dispersion of a plane
# --------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _robust_sigma_of_differences(diff, n):
    """Gaussian sigma of the core of ``diff[:n]``, differences centred on 0.

    MAD start, then a few passes of the standard deviation within +-3 sigma
    corrected for the truncation.  Returns the sigma of one difference.
    """
    if n < 8:
        return np.nan
    absd = np.empty(n)
    for i in range(n):
        absd[i] = abs(diff[i])
    k = n >> 1
    _select(absd, 0, n - 1, k)
    sig = _MAD_TO_SIGMA * absd[k]
    if not (sig > 0.0 and sig <= _FLOAT_MAX):
        return sig
    # Squares of differences far from 1 are taken of ``d * 2**-e``.
    e = math.frexp(sig)[1]
    e = e if e > _EXP_LIMIT or e < -_EXP_LIMIT else 0
    for _ in range(20):
        limit = 3.0 * sig
        s2 = 0.0
        m = 0
        for i in range(n):
            d = diff[i]
            inside = abs(d) <= limit
            d = _scaled(d, e)
            s2 += d * d if inside else 0.0
            m += inside
        if m < 2:
            break
        new = math.ldexp(np.sqrt(s2 / m) / _TRUNC3_STD, e)
        if abs(new - sig) <= 1e-7 * sig:
            sig = new
            break
        sig = new
    return sig


@njit(cache=True, nogil=True)
def _plane_sigma(data, flags, background, p, along_rows, line_step):
    """White-noise sigma of plane ``p`` from pixel pairs two apart along lines.

    For pure noise the difference and the sum of a pair are independent, so
    keeping only pairs whose sum is below the median sum of their row
    leaves the difference distribution unchanged while dropping most pairs
    that sit on a source (sources only add flux).
    """
    _, ny, nx = data.shape
    has_flags = flags.shape[1] > 0
    has_bg = background.shape[1] > 0
    dplane, fplane, bplane = _plane_rows(data, flags, background, p)
    r0 = np.empty(nx)
    r2 = np.empty(nx)
    if along_rows:
        rows = range(0, ny, line_step)
        per_row = max(nx - 2, 0)
    else:
        rows = range(0, max(ny - 2, 0), line_step)
        per_row = nx
    diff = np.empty(max(len(rows) * per_row, 1))
    row_diff = np.empty(max(per_row, 1))
    row_sum = np.empty(max(per_row, 1))
    n = 0
    for y in rows:
        _usable_or_nan(dplane, fplane, bplane, has_flags, has_bg, y, r0)
        m = 0
        if along_rows:
            for x in range(nx - 2):
                d = r0[x + 2] - r0[x]
                row_diff[m] = d
                row_sum[m] = r0[x + 2] + r0[x]
                m += d == d
        else:
            _usable_or_nan(dplane, fplane, bplane, has_flags, has_bg, y + 2, r2)
            for x in range(nx):
                d = r2[x] - r0[x]
                row_diff[m] = d
                row_sum[m] = r2[x] + r0[x]
                m += d == d
        if m == 0:
            continue
        for i in range(m):
            r0[i] = row_sum[i]  # r0 is free now: select on a copy of the sums
        k = m >> 1
        _select(r0, 0, m - 1, k)
        threshold = r0[k]
        for i in range(m):
            keep = row_sum[i] < threshold
            diff[n] = row_diff[i]
            n += keep
    return _robust_sigma_of_differences(diff, n) / np.sqrt(2.0)


@njit(cache=True, nogil=True)
def _usable_or_nan(dplane, fplane, bplane, has_flags, has_bg, y, out):
    drow = dplane[y]
    for x in range(out.shape[0]):
        v = np.float64(drow[x])
        ok = (v - v == 0.0) & (v != 0.0)
        if has_flags:
            ok &= (fplane[y, x] & EXCLUDE) == 0
        if has_bg:
            v -= np.float64(bplane[y, x])
            ok &= v - v == 0.0
        out[x] = v if ok else np.nan


@njit(parallel=True, cache=True)
def plane_dispersion(data, flags, background, along_rows, line_step, out):
    """Per-plane white-noise sigma from differences two pixels apart along lines.

    A difference of pixels two apart on the same line cancels the line's
    stripe, an odd/even column offset and any smooth signal (sky, source
    wings), so the core of its distribution is white noise times sqrt(2)
    whatever the sources.  Every ``line_step``-th line (or row pair) is
    sampled.  Writes ``out[p]`` (NaN when too few pairs).
    """
    for p in prange(data.shape[0]):
        out[p] = _plane_sigma(data, flags, background, p, along_rows, line_step)


# --------------------------------------------------------------------------
# Applying the stripe model
# --------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def subtract_levels(
    data, flags, along_rows, band_edges, odd_even, line_model, out, model, write_model
):
    """``out = data - line_model`` broadcast along lines; optionally the model.

    ``line_model[p, line, g]`` is the value to subtract from group g of the
    line.  Pixels flagged ``PRESERVE`` are copied unchanged (model 0).
    ``out`` may be ``data`` itself.
    """
    n_planes, ny, nx = data.shape
    n_bands = band_edges.shape[0] - 1
    n_par = 2 if odd_even else 1
    has_flags = flags.shape[1] > 0
    for row in prange(n_planes * ny):
        p = row // ny
        y = row % ny
        q = np.int64(p)
        drow = data[q, y]
        orow = out[q, y]
        fplane = flags[min(q, flags.shape[0] - 1)]
        # Each pixel is read before it is written: ``out`` may be ``data``.
        if along_rows:
            lm = line_model[q, y]
            for b in range(n_bands):
                for x in range(band_edges[b], band_edges[b + 1]):
                    level = lm[b * n_par + ((x & 1) if odd_even else 0)]
                    if has_flags and fplane[y, x] & PRESERVE:
                        level = 0.0  # reference pixels keep their values
                    orow[x] = drow[x] - level
                    if write_model:
                        model[q, y, x] = level
        else:
            b = 0
            while y >= band_edges[b + 1]:
                b += 1
            lm = line_model[q, :, b * n_par + ((y & 1) if odd_even else 0)]
            for x in range(nx):
                level = lm[x]
                if has_flags and fplane[y, x] & PRESERVE:
                    level = 0.0
                orow[x] = drow[x] - level
                if write_model:
                    model[q, y, x] = level


# --------------------------------------------------------------------------
# Pixel flags from a mask and a DQ array
# --------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def build_flags(mask, dq, dq_flags, preserve_bits, out):
    """One pass: ``out = EXCLUDE * (mask | dq & dq_flags) | PRESERVE * (dq & preserve_bits)``.

    ``mask`` (uint8) and ``dq`` are (P, Ny, Nx) like ``out``, (1, Ny, Nx)
    to broadcast over the planes, or (1, 0, 0) when absent.
    """
    n_planes, ny, nx = out.shape
    has_mask = mask.shape[1] > 0
    has_dq = dq.shape[1] > 0
    for row in prange(n_planes * ny):
        p = row // ny
        y = row % ny
        q = np.int64(p)
        qm = min(q, mask.shape[0] - 1)
        qd = min(q, dq.shape[0] - 1)
        orow = out[q, y]
        for x in range(nx):
            value = np.uint8(0)
            if has_mask and mask[qm, y, x] != 0:
                value = EXCLUDE
            if has_dq:
                bits = np.uint64(dq[qd, y, x])
                if bits & dq_flags:
                    value |= EXCLUDE
                if bits & preserve_bits:
                    value |= PRESERVE
            orow[x] = value
