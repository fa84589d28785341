"""Pixel flags: which pixels the statistics skip and which keep their values."""

from __future__ import annotations

import numpy as np
from numba import njit

from .threads import claim, run_ranges

# Bits of the uint8 flags array.
EXCLUDE = np.uint8(1)  # kept out of every statistic
PRESERVE = np.uint8(2)  # left uncorrected (reference pixels)


def build_flags(mask, dq, dq_flags, preserve_bits, out):
    """One pass: ``out = EXCLUDE * (mask | dq & dq_flags) | PRESERVE * (dq & preserve_bits)``.

    Parameters
    ----------
    mask : ndarray of uint8
        (P, Ny, Nx) like ``out``, (1, Ny, Nx) to broadcast over the planes,
        or (1, 0, 0) when absent; non-zero excludes the pixel.
    dq : ndarray of unsigned int
        The DQ array, shaped like ``mask``.
    dq_flags, preserve_bits : uint64
        DQ bits that exclude a pixel; DQ bits that preserve it.
    out : ndarray of uint8
        (P, Ny, Nx), written.

    Returns
    -------
    None
    """
    run_ranges(
        _build_flags_range,
        out.shape[0] * out.shape[1],
        mask,
        dq,
        dq_flags,
        preserve_bits,
        out,
        min_items=16,
    )


@njit(cache=True, nogil=True)
def _build_flags_range(claims, mask, dq, dq_flags, preserve_bits, out):
    """Items of :func:`build_flags`."""
    ny, nx = out.shape[1], out.shape[2]
    has_mask = mask.shape[1] > 0
    has_dq = dq.shape[1] > 0
    start, stop = claim(claims)
    while start < stop:
        for row in range(start, stop):
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
        start, stop = claim(claims)


def or_exclude(flags, mask, out):
    """``out = flags | EXCLUDE`` where ``mask`` is non-zero, for every plane.

    Parameters
    ----------
    flags : ndarray of uint8
        (P, Ny, Nx), or (1, 0, 0) for none.
    mask : ndarray of uint8
        (Ny, Nx).
    out : ndarray of uint8
        (P, Ny, Nx) (P = 1 without flags), written.

    Returns
    -------
    None
    """
    run_ranges(_or_exclude_range, out.shape[0] * out.shape[1], flags, mask, out)


@njit(cache=True, nogil=True)
def _or_exclude_range(claims, flags, mask, out):
    """Rows (over all planes) of :func:`or_exclude`."""
    ny = out.shape[1]
    has_flags = flags.shape[1] > 0
    start, stop = claim(claims)
    while start < stop:
        for row in range(start, stop):
            p, y = row // ny, row % ny
            orow, mrow = out[p, y], mask[y]
            if has_flags:
                frow = flags[p, y]
                for x in range(orow.shape[0]):
                    orow[x] = frow[x] | (EXCLUDE if mrow[x] != 0 else np.uint8(0))
            else:
                for x in range(orow.shape[0]):
                    orow[x] = EXCLUDE if mrow[x] != 0 else np.uint8(0)
        start, stop = claim(claims)


def usable_unmasked(usable, mask, out):
    """``out = 1`` where ``usable`` is non-zero and ``mask`` is zero, else 0.

    Parameters
    ----------
    usable, mask : ndarray of uint8
        (Ny, Nx).
    out : ndarray of uint8
        (Ny, Nx), written.

    Returns
    -------
    None
    """
    run_ranges(_usable_unmasked_range, out.shape[0], usable, mask, out)


@njit(cache=True, nogil=True)
def _usable_unmasked_range(claims, usable, mask, out):
    """Rows of :func:`usable_unmasked`."""
    start, stop = claim(claims)
    while start < stop:
        for y in range(start, stop):
            urow, mrow, orow = usable[y], mask[y], out[y]
            for x in range(orow.shape[0]):
                orow[x] = np.uint8((urow[x] != 0) & (mrow[x] == 0))
        start, stop = claim(claims)


def finite_unexcluded(values, flags, out):
    """``out = 1`` where a value is finite and its flags lack EXCLUDE, else 0.

    Parameters
    ----------
    values : ndarray of float32 or float64
        (Ny, Nx).
    flags : ndarray of uint8
        (Ny, Nx), or (0, 0) for none.
    out : ndarray of uint8
        (Ny, Nx), written.

    Returns
    -------
    None
    """
    run_ranges(_finite_unexcluded_range, out.shape[0], values, flags, out)


@njit(cache=True, nogil=True)
def _finite_unexcluded_range(claims, values, flags, out):
    """Rows of :func:`finite_unexcluded`."""
    has_flags = flags.shape[0] > 0
    start, stop = claim(claims)
    while start < stop:
        for y in range(start, stop):
            vrow, orow = values[y], out[y]
            if has_flags:
                frow = flags[y]
                for x in range(orow.shape[0]):
                    v = vrow[x]
                    orow[x] = np.uint8((v - v == 0.0) & ((frow[x] & EXCLUDE) == 0))
            else:
                for x in range(orow.shape[0]):
                    v = vrow[x]
                    orow[x] = np.uint8(v - v == 0.0)
        start, stop = claim(claims)
