"""The side reference pixels as a check on the slowest line frequencies.

A full frame's side reference pixels (4 at each end of every line) are read
by the first and last outputs with the science pixels of their line: they
carry that output's 1/f stripe, common and own part, and no light. What the
correction leaves on them is that output's error plus their own noise. At the
lowest line frequencies the science pixels cannot tell a stripe from the
scene's faint light (a crowded field's density, a galaxy's wings, the part
of a sky across the lines kept with the stripes' share of it), while the
reference pixels' noise, averaged over hundreds of lines, is small there.
:func:`anchor_to_reference` measures that error on the reference pixels and
takes it out of the line model: see docs/algorithm.rst, "Sources and
background", the paragraph "The side reference pixels".
"""

from __future__ import annotations

import itertools

import numpy as np

from ._prepare import Prepared
from .dqflags import REFERENCE_PIXEL

__all__ = [
    "MIN_TRACKING",
    "PERIOD",
    "anchor_to_reference",
    "anchored_modes",
    "anchored_spectrum",
    "cosine_spectrum",
    "from_cosine",
    "is_reference",
    "side_reference",
    "tracking",
]

#: Shortest period (lines) anchored to the reference pixels: the slowest
#: modes, where the scene's light and the stripes are alike and the
#: reference pixels' noise is averaged over hundreds of lines.
PERIOD = 256
# Every n-th line is read to find the positions of the side reference pixels,
# within this many pixels of the line's ends; this many positions spread along
# each line tell a line made of reference pixels.
_SAMPLE_STEP = 32
_END = 16
_PROBES = 16
# Blocks of lines whose medians a line's reference residual is compared with
# to find wild ones: a glitch of up to 16 lines stands out.
_NEIGHBOURS = 33
# An output's reference pixels are used when at least this fraction of the lines has one,
# and when they carry at least this share of the model's faster stripes (:func:`tracking`).
_MIN_LINE_FRACTION = 0.5
MIN_TRACKING = 0.5


def cosine_spectrum(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The cosine modes of one value per line, its valid lines' mean taken out.

    The modes of the series and its mirror image (``2 n_lines`` values): a
    trend across the lines is then no jump at the ends, which plain Fourier
    modes would spread into every frequency. Mode ``k`` has a period of
    ``2 n_lines / k`` lines.

    Parameters
    ----------
    values : numpy.ndarray
        float64 ``(n_lines,)``.
    valid : numpy.ndarray
        bool ``(n_lines,)``: the lines with a value; the others count as the
        valid ones' mean (at least one must be valid).

    Returns
    -------
    numpy.ndarray
        complex ``(n_lines + 1,)``: modes 0 (the mean, 0 here) to ``n_lines``.
    """
    centred = np.where(valid, values - np.mean(values[valid]), 0.0)
    return np.fft.rfft(np.concatenate([centred, centred[::-1]]))


def from_cosine(spectrum: np.ndarray, n_lines: int) -> np.ndarray:
    """The series of ``n_lines`` values whose :func:`cosine_spectrum` is ``spectrum``.

    Parameters
    ----------
    spectrum : numpy.ndarray
        complex ``(n_lines + 1,)``, as :func:`cosine_spectrum` gives.
    n_lines : int
        Lines of the series.

    Returns
    -------
    numpy.ndarray
        float64 ``(n_lines,)``.
    """
    return np.fft.irfft(spectrum, 2 * n_lines)[:n_lines]


def anchored_modes(n_lines: int) -> int:
    """Cosine modes of :data:`PERIOD` lines and longer over ``n_lines`` lines.

    Parameters
    ----------
    n_lines : int
        Lines of the plane.

    Returns
    -------
    int
        ``2 n_lines // PERIOD``: 16 on a full frame.
    """
    return 2 * n_lines // PERIOD


def anchored_spectrum(residual: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The slow cosine modes of ``residual`` that are error, not noise.

    Parameters
    ----------
    residual : numpy.ndarray
        float64 ``(n_lines,)``: one value per line.
    valid : numpy.ndarray
        bool ``(n_lines,)``: lines with a value (the others count as the
        mean of the valid ones).

    Returns
    -------
    numpy.ndarray
        complex, :func:`cosine_spectrum`'s shape: its modes ``1 ..``
        :func:`anchored_modes` (periods of :data:`PERIOD` lines and longer),
        each weighted by ``1 - noise / power`` (at least 0; a Wiener weight
        from that mode's power), ``noise`` being the mean power of the upper
        half of the modes, where the reference pixels' own noise dominates
        (with the part of the stripe they do not share with the line's mean
        and the model's white error); the mean and the faster modes are 0.
    """
    spectrum = cosine_spectrum(residual, valid)
    power = np.abs(spectrum) ** 2
    noise = power[power.size // 2 :].mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(power > 0, np.clip(1.0 - noise / power, 0.0, 1.0), 0.0)
    weight[0] = 0.0
    weight[anchored_modes(residual.size) + 1 :] = 0.0
    return spectrum * weight


def tracking(reference: np.ndarray, model: np.ndarray, valid: np.ndarray) -> float:
    """How much of the line model's stripe the reference pixels carry (1: all of it).

    The regression of the reference pixels' line means on the model's over
    the modes faster than the anchored ones (where the scene's light is not
    in the model): near 1 where the reference pixels are read with the
    stripes (0.78-0.92 on the quality benchmark's full frames: they are 4
    instants of the line's read, the model its mean), near 0 where they hold
    none (a product that replaced them, or whose processing took their
    stripes away but not the science pixels').

    Parameters
    ----------
    reference, model : numpy.ndarray
        float64 ``(n_lines,)``: the reference pixels' and the model's level
        per line.
    valid : numpy.ndarray
        bool ``(n_lines,)``: the lines with both.

    Returns
    -------
    float
        The regression coefficient; NaN without a model stripe to compare.
    """
    fast = anchored_modes(valid.size) + 1
    ref = cosine_spectrum(reference, valid)[fast:]
    mod = cosine_spectrum(model, valid)[fast:]
    power = float(np.sum(np.abs(mod) ** 2))
    if not power > 0:
        return float("nan")
    return float(np.real(np.sum(ref * np.conj(mod)))) / power


def _inner(spectra: list[np.ndarray], n_bands: int) -> np.ndarray:
    """The anchored modes of each band without reference pixels.

    ``spectra``: those of the bands with reference pixels (at least 2, fewer
    than ``n_bands``). Each band's error is the line's common error ``C``
    plus its own; the common mode stage takes the common level as the mean
    of the bands, so the bands' own errors add up to about zero. ``C`` is
    the bands' mean ``M`` times their share in common (their mean pairwise
    cross-power over ``M``'s power, 0 to 1); the other bands then share
    what is left of the measured bands' own errors, with the opposite sign:
    ``M (share n_bands - n) / (n_bands - n)``, ``n`` the measured bands. A
    stripe the measured bands agree on moves every band alike; their own
    errors move the others the other way, leaving the line's mean alone
    (moving the measured bands alone worsened the sparse field's line
    residual on one seed in three, 0.107 to 0.117, while its bands
    improved).
    """
    stacked = np.array(spectra)
    n = stacked.shape[0]
    mean = stacked.mean(axis=0)
    total = stacked.sum(axis=0)
    cross = (np.abs(total) ** 2 - (np.abs(stacked) ** 2).sum(axis=0)) / (n * (n - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(np.abs(mean) > 0, np.clip(cross / np.abs(mean) ** 2, 0.0, 1.0), 0.0)
    return mean * (share * n_bands - n) / (n_bands - n)


def is_reference(dq: np.ndarray) -> np.ndarray:
    """bool, ``dq``'s shape: the pixels DQ-flagged REFERENCE_PIXEL."""
    return (dq.astype(np.uint32, copy=False) & np.uint32(REFERENCE_PIXEL)) != 0


def side_reference(dq_lines: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where a plane's side reference pixels are, from its DQ.

    Parameters
    ----------
    dq_lines : numpy.ndarray
        ``(n_lines, length)`` DQ of one plane, lines along the first axis.

    Returns
    -------
    all_ref : numpy.ndarray
        bool ``(n_lines,)``: lines made of reference pixels (flagged at each
        of a few positions spread along them).
    positions : numpy.ndarray
        int64: positions along the line, within :data:`_END` of its ends,
        where sampled other lines have a reference pixel (the side reference
        pixels sit at the ends of the lines). Only a sample of the DQ is
        read.
    """
    length = dq_lines.shape[1]
    probes = np.unique(np.linspace(0, length - 1, _PROBES).round().astype(np.int64))
    all_ref = is_reference(dq_lines[:, probes]).all(axis=1)
    sample = np.flatnonzero(~all_ref)[::_SAMPLE_STEP]
    ends = np.unique(np.r_[0 : min(_END, length), max(0, length - _END) : length])
    if sample.size == 0:
        return all_ref, np.zeros(0, np.int64)
    flagged = is_reference(dq_lines[np.ix_(sample, ends)]).any(axis=0)
    return all_ref, ends[flagged]


def _group_of(positions: np.ndarray, layout) -> np.ndarray:
    """The readout group of each position along the line."""
    band = np.searchsorted(layout.band_edges, positions, side="right") - 1
    return 2 * band + positions % 2 if layout.odd_even else band


def _output_groups(layout, outputs: np.ndarray) -> list[slice]:
    """The groups of each output: its bands, or its read-time segments."""
    per_band = 2 if layout.odd_even else 1
    starts = np.searchsorted(layout.band_edges[:-1], outputs, side="left")
    return [slice(per_band * a, per_band * b) for a, b in itertools.pairwise(starts)]


def _row_medians(values: np.ndarray) -> np.ndarray:
    """Median of each row's non-NaN values (a few per row; NaN: none)."""
    ordered = np.sort(values, axis=1)  # NaN last
    count = np.sum(~np.isnan(values), axis=1)
    rows = np.arange(values.shape[0])
    low, high = (np.maximum(count, 1) - 1) // 2, np.maximum(count, 1) // 2
    return np.where(count > 0, 0.5 * (ordered[rows, low] + ordered[rows, high]), np.nan)


def _line_means(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean per line of ``values`` (NaN: none), without the values more than 5
    robust sigmas from their line's median (a hot or jumping reference pixel;
    the mean, not the median: it has pi/2 less variance), and the lines with
    a mean."""
    deviation = values - _row_medians(values)[:, None]
    finite = np.abs(deviation[~np.isnan(deviation)])
    spread = 1.4826 * float(np.median(finite)) if finite.size else 0.0
    if spread > 0:
        with np.errstate(invalid="ignore"):
            values = np.where(np.abs(deviation) <= 5.0 * spread, values, np.nan)
    count = np.sum(~np.isnan(values), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.nansum(values, axis=1) / count
    return means, count > 0


def _steady(level: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``valid`` without the lines more than 5 robust sigmas from the local
    median (a glitch): a few wild lines would otherwise throw every slow mode.

    The local median is that of blocks of :data:`_NEIGHBOURS` lines,
    interpolated between the blocks' middles: a glitch of fewer than half a
    block's lines does not move it.
    """
    filled = np.where(valid, level, np.median(level[valid]))
    n, size = filled.size, min(_NEIGHBOURS, filled.size)
    n_blocks = n // size  # (the last few lines take the last block's median)
    blocks = np.median(filled[: n_blocks * size].reshape(n_blocks, size), axis=1)
    middles = size * np.arange(n_blocks) + 0.5 * (size - 1)
    local = np.interp(np.arange(n), middles, blocks)
    step = np.diff(filled[valid])
    spread = 1.4826 * np.median(np.abs(step - np.median(step))) / np.sqrt(2.0)
    if not spread > 0:
        return valid
    return valid & (np.abs(filled - local) <= 5.0 * spread)


def _plane_shift(
    plane: np.ndarray, is_ref: np.ndarray, side: tuple, line_model: np.ndarray,
    finite: np.ndarray, layout, outputs: np.ndarray,
) -> np.ndarray | None:  # fmt: skip
    """``(n_lines, n_groups)`` to add to one plane's line model, or None."""
    all_ref, positions = side
    n_lines, n_outputs = layout.n_lines, outputs.size - 1
    values = plane[:, positions].astype(np.float64)
    # (exact zeros carry no data: a product may zero its reference pixels)
    use = is_ref & np.isfinite(values) & (values != 0) & (~all_ref & finite)[:, None]
    model = line_model[:, _group_of(positions, layout)]
    residual = np.where(use, values - model, np.nan)
    owner = np.searchsorted(outputs, positions, side="right") - 1
    fixes = {}
    for output in np.unique(owner):
        here = owner == output
        valid = use[:, here].any(axis=1)
        if valid.sum() < _MIN_LINE_FRACTION * n_lines:
            continue
        level, kept = _line_means(residual[:, here])
        valid &= kept
        count = np.maximum(use[:, here].sum(axis=1), 1)  # (lines without: not valid)
        model_level = np.where(use[:, here], model[:, here], 0.0).sum(axis=1) / count
        model_level = np.where(valid, model_level, 0.0)
        level = np.where(valid, level, 0.0)
        valid = _steady(level, valid)
        # (NaN: cannot tell)
        if not tracking(level + model_level, model_level, valid) >= MIN_TRACKING:
            continue
        fixes[int(output)] = anchored_spectrum(level, valid)
    if not fixes or len(fixes) == 1 < n_outputs:  # one output of several: own or common?
        return None
    shared = _inner(list(fixes.values()), n_outputs) if len(fixes) < n_outputs else None
    shift = np.zeros(line_model.shape)
    for output, groups in enumerate(_output_groups(layout, outputs)):
        spectrum = fixes.get(output, shared)
        shift[:, groups] = from_cosine(spectrum, n_lines)[:, None]
    shift[~finite] = 0.0
    return shift


def anchor_to_reference(
    prepared: Prepared, levels: np.ndarray, line_model: np.ndarray, outputs: np.ndarray
) -> np.ndarray | None:
    """What the line model misses at its slowest modes, seen on the side reference pixels.

    For each plane and each readout output with side reference pixels
    (pixels DQ-flagged REFERENCE_PIXEL at the ends of lines that are not all
    reference, finite and not zero) on at least half of the lines, and
    carrying the model's stripes (:func:`tracking`): the mean per line of
    those pixels (a wild one left out) minus the line model of their groups
    is that output's error plus their noise. Its modes of :data:`PERIOD` lines and longer, each
    weighted by its power over the noise's (:func:`anchored_spectrum`), are
    that output's shift, given to every group of it (its parities, or the
    read-time segments of a one-output line); an output without reference
    pixels takes what :func:`_inner` infers from those with them. With only
    one of several outputs measured, common and own errors cannot be told
    apart and nothing moves. Planes of fewer than ``2 * PERIOD`` lines, or
    without DQ, are left alone.

    Parameters
    ----------
    prepared : Prepared
        The planes, their DQ and layout.
    levels : numpy.ndarray
        ``(P, n_lines, n_groups)`` resolved levels: lines without a level in
        every group are not used nor moved.
    line_model : numpy.ndarray
        ``(P, n_lines, n_groups)`` what is subtracted from each group.
    outputs : numpy.ndarray
        int64: the edges of the readout outputs along the line (those of the
        layout before read-time segments split a one-output line).

    Returns
    -------
    numpy.ndarray or None
        float64 ``(P, n_lines, n_groups)`` to add to the line model (and the
        levels), or None when no plane has a shift.
    """
    layout = prepared.layout
    if prepared.dq is None or layout.n_lines < 2 * PERIOD:
        return None
    dq_planes = prepared.dq if layout.along_rows else prepared.dq.transpose(0, 2, 1)
    # The reference pixels are where they are in every plane of a chunk.
    side = side_reference(dq_planes[0])
    if side[1].size == 0:
        return None
    finite = np.isfinite(levels).all(axis=2)
    shifts = np.zeros(line_model.shape)
    moved = False
    is_ref = {}
    for p in range(prepared.planes.shape[0]):
        d = p if dq_planes.shape[0] > 1 else 0
        if d not in is_ref:
            is_ref[d] = is_reference(dq_planes[d][:, side[1]])
        plane = prepared.planes[p] if layout.along_rows else prepared.planes[p].T
        shift = _plane_shift(plane, is_ref[d], side, line_model[p], finite[p], layout, outputs)
        if shift is not None:
            shifts[p] = shift
            moved = True
    return shifts if moved else None
