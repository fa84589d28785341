"""The common mode stage: each output's level as the line's level plus a filtered own part.

The outputs of a full frame are read at the same time, so most of a line's
stripe is common to all of them; only a smaller part is each output's own.
A group's measured level (band, parity) is ``c + O + q + e``: the line's
common level ``c`` (the weighted mean of its groups' levels less their
offsets, without those that stray), the group's
constant offset ``O``, its own stripe ``q`` and an error ``e``. The level used
is ``c + O`` plus ``q`` as a Wiener filter over the lines recovers it from the
measured ``q + e``:

- ``q`` is 1/f noise read out line after line, so its power falls as 1/f
  with the line frequency; it and the white measuring error (whose floor is
  known from the pixels each group kept and the variance of its sky values:
  an output with more read noise, or under a brighter sky, weighs less in
  ``c`` too) are fitted to the power at line frequencies above 1/16, where a
  scene has little;
- power at lower frequencies beyond that 1/f law is error: the large-scale
  structure of a crowded field or a galaxy's wings, different in each
  band, which the band levels pick up and a stripe does not have;
- each frequency keeps ``S_q / (S_q + S_e)`` of what was measured;
- a group mostly covered by a source on a line (fewer than half its
  typical usable pixels) is left out of its own part's spectrum there, and
  the filter fills it from the neighbouring lines: its few pixels lie in
  the source's wings (outputs and parities; not the read-time segments of a
  one-output line, whose own parts change too fast for that);
- the filtered own parts of a line are then moved together so that their
  precision-weighted mean over the line's groups (those less than 6 robust
  spreads from the others: a source's bias) is the measured one: that
  mean belongs to the line's level, measured on all of the line's usable
  pixels; the filters decide only how the level splits among the groups.

A plane with too few lines for a spectrum uses one weight per line,
``tau^2 / (tau^2 + var(e))``.

After the fallbacks, a line whose level rests on fewer than a quarter of the
typical line's pixels is weighed against its neighbours
(:func:`steady_noisy_lines`, called by the stages): the filters above take
one error for every line.

The common level ``c`` (or the single group's level, with one group) is
filtered the same way against its own, smaller error: the line's stripe is
1/f noise too, so at the highest line frequencies, where its power comes
near the error's, part of what was measured is error. There, power at low
frequencies beyond the law is kept as stripe, except the scene's share of
it that the own parts show: a scene whose structure differs from one
output's band to the next (a nebula) puts ``n - 1`` times as much power
into the own parts of ``n`` bands as into their mean, ``c``, so the own
parts' power far beyond their law (:data:`_SCENE_EXCESS`), over ``n - 1``,
is counted as the common level's error too, at most what it has beyond its
own law. See docs/algorithm.rst.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np

from . import _nanstats

__all__ = [
    "MEAN_EFFICIENCY",
    "MEDIAN_EFFICIENCY",
    "share_common_mode",
    "steady_noisy_lines",
    "wiener_over_lines",
]

# Variance of a median over that of a mean of Gaussian values is pi/2; the
# clipped median sits close to it.
MEDIAN_EFFICIENCY = np.pi / 2
# The mean of Gaussian values within +-3 sigma has about the mean's variance.
MEAN_EFFICIENCY = 1.0
# Lines a group needs to estimate its offset and own variance.
_MIN_LINES = 16
# A group's noise is taken within this factor of the median group's (_group_noise).
_NOISE_RANGE = 4.0
# Lines a group needs for the spectral filter; the 1/f law and the white
# error are fitted at line frequencies from 1 / _SCENE_LINES up, smoothing
# the power over _SMOOTH_BINS frequencies.
_MIN_SPECTRUM_LINES = 64
_SCENE_LINES = 16
_SMOOTH_BINS = 9
# Own parts' power beyond their law counts as scene in the common level only at
# frequencies where it is more than this many times the law (their 1/f part and
# white floor): a nebula's band-to-band structure stands tens of times above it,
# while own stripes steeper than 1/f, extrapolated from 1/16 down to the lowest
# frequencies, stay within about ten times it (f**-1.5: power 11 times the law
# at 1/2048, so 10 times beyond it; less once smoothed). Counting every excess
# cost frames of such stripes up to twice their line residual (an independent
# generator's empty and sparse frames, own stripes f**-1.3 with 30% of the
# power); with the threshold they are as before and the nebulae keep their
# gain (docs/algorithm.rst).
_SCENE_EXCESS = 10.0
# A group this many robust spreads from the median of its line's groups is
# left out of the line's common level.
_STRAY = 3.0
# A group this many robust spreads from the median of its line's groups is a
# source's bias, not noise (a Gaussian's chance of it is 2e-9; a crowded
# field's faint light reaches 3 to 5): left out of the line's mean level too.
_FAR = 6.0
# A group with fewer usable pixels on a line than this fraction of its median
# count is mostly covered by a source: its own part there is left out of the
# own parts' spectral filter, which fills it from the neighbouring lines.
_COVERED = 0.5
# The MAD of a Gaussian times this is its standard deviation.
_MAD_TO_SIGMA = 1.4826
# A line whose level has more than this many times the median line's error
# variance (fewer than a quarter of the pixels: a trace along the line, a
# galaxy's core) leans on its neighbours (steady_noisy_lines).
_NOISY = 4.0
# The median of a chi-square of one degree of freedom: median(x**2) of a
# Gaussian x over its variance.
_CHI2_1_MEDIAN = 0.4549364


def share_common_mode(
    measured, sigma: np.ndarray, efficiency: float = MEDIAN_EFFICIENCY, covered: bool = True,
    bands: int = 1,
):  # fmt: skip
    """``measured`` with its common level and each group's own part filtered (module docstring).

    Parameters
    ----------
    measured : bgdnoise.stages.Measured
        Levels and counts ``(P, n_lines, n_groups)`` and the pixels a group
        needs (groups with fewer are left for the band fallback).
    sigma : numpy.ndarray
        ``(P,)`` white-noise dispersion of a pixel in each plane; a group's
        own is that times the square root of its share of the noise
        (:func:`_group_noise`) when ``measured.sky_vars`` is known.
    efficiency : float
        A level's variance over ``sigma**2 * noise / count`` (``noise``: the
        group's share, :func:`_group_noise`): pi/2 for clipped medians, 1 for
        the sky means of :func:`bgdnoise.stages.with_sky_levels`.
    covered : bool
        Leave a group that a source mostly covers on a line out of its own
        part's spectrum there (:func:`_mostly_covered`): for groups read at
        once (outputs, parities), whose own parts are slow; not for the
        read-time segments of a one-output line, whose own parts are the
        1/f within the line, which the neighbouring lines do not give back.
        With ``covered`` the own parts' scene power also counts as the common
        level's error (module docstring).
    bands : int
        Readout bands of a line (their groups' own parts share a band's
        scene: the parities of one band). With ``covered`` and more than
        one group per line, 2 or more count the own parts' scene power in
        the common level's error (:func:`_scene_in_common`); the default, 1,
        does not.

    Returns
    -------
    bgdnoise.stages.Measured
        The same, with new ``raw`` levels: with one group per line, that
        level filtered as the common level is; unchanged on planes whose
        dispersion is not a positive finite number.
    """
    raw, counts = measured.raw, measured.counts
    ok = (counts >= measured.needed) & np.isfinite(raw)
    noise = _group_noise(measured.sky_vars, ok)
    error_var = np.full(raw.shape, np.inf)
    for p in range(raw.shape[0]):
        if np.isfinite(sigma[p]) and sigma[p] > 0:
            error_var[p] = efficiency * sigma[p] ** 2 * noise[p] / np.maximum(counts[p], 1)
    ok &= np.isfinite(error_var)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        precision = np.where(ok, 1.0 / error_var, 0.0)
        if raw.shape[2] == 1:
            common, common_var = np.where(ok[:, :, 0], raw[:, :, 0], np.nan), error_var[:, :, 0]
            shared = _filtered_common(common, common_var)[:, :, None]
        else:
            common, common_var = _common_level(raw, ok, precision)
            own_error_var = np.maximum(error_var - common_var[:, :, None], 0.0)
            ok &= np.isfinite(raw - common[:, :, None])
            offset = _group_offsets(raw - common[:, :, None], ok)
            aligned, median, distance, spread = _stray_distance(raw, ok, offset)
            kept = ok & (distance <= _STRAY * spread)
            common, common_var = _robust_common(
                aligned, median, kept, precision, common, common_var
            )
            own = raw - common[:, :, None] - offset[:, None, :]
            in_mean = ok & (distance <= _FAR * spread)
            in_spectrum = (ok & ~_mostly_covered(counts, ok)) if covered else ok
            filtered_own, own_excess = _filtered(own, own_error_var, in_spectrum)
            scene = _scene_in_common(own_excess, bands) if covered else None
            shared = (
                _filtered_common(common, common_var, scene)[:, :, None]
                + offset[:, None, :]
                + _keep_line_mean(filtered_own, own, in_mean, precision)
            )
    ok &= np.isfinite(shared)
    return replace(measured, raw=np.where(ok, shared, raw))


def _group_noise(sky_vars, ok) -> np.ndarray:
    """``(P, n_groups)``: each group's share of the plane's noise variance.

    The median over the lines of each group's sky variance (its values within
    the clip around its level), over the median of the groups': outputs with
    more read noise, or under a brighter sky (more photon noise), weigh less
    in the line's common level. Over the median, not the mean, because the
    result scales an absolute error floor (the own parts' filter keeps what
    is measured beyond it): one noisy group must not lower the floor of the
    others, which then stay at the plane's noise. Kept within
    ``[1 / _NOISE_RANGE, _NOISE_RANGE]`` (a group with little sky variance
    for another reason than little noise must not take over the line), and 1
    for a group with sky on fewer than ``_MIN_LINES`` lines, and for every
    group without ``sky_vars``.
    """
    if sky_vars is None:
        return np.ones((ok.shape[0], ok.shape[2]))
    with np.errstate(invalid="ignore"):
        usable = ok & np.isfinite(sky_vars) & (sky_vars > 0)
    typical = _nanstats.nanmedian(np.where(usable, sky_vars, np.nan), axis=1)  # (P, G)
    typical = np.where(usable.sum(axis=1) >= _MIN_LINES, typical, np.nan)
    middle = _nanstats.nanmedian(typical, axis=1)[:, None]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        relative = typical / middle
    relative = np.where(np.isfinite(relative) & (relative > 0), relative, 1.0)
    return np.clip(relative, 1.0 / _NOISE_RANGE, _NOISE_RANGE)


def _scene_in_common(own_excess: tuple, bands: int) -> np.ndarray | None:
    """``(P, n_freq)`` the scene's expected power in the common level, from its own parts'.

    ``own_excess = (excess, law)``, each ``(P, n_groups, n_freq)``: each own
    part's power beyond its 1/f law, and that law (NaN for a group without a
    spectrum); only an excess more than :data:`_SCENE_EXCESS` times the law
    is scene here. A scene that differs from band to band, with the same
    power ``V`` in each, puts ``V / n`` into the mean of ``n`` bands and ``V
    (1 - 1 / n)`` into each band's part about it: the common level's share is
    the own parts' mean over ``n - 1``. In that mean a group below the
    threshold counts as 0 and a group without a finite excess is left out;
    a frequency with no group left gets 0. None with fewer than 2 bands.
    """
    excess, law = own_excess
    if bands < 2:
        return None
    with np.errstate(invalid="ignore"):
        scene_like = np.where(excess > _SCENE_EXCESS * law, excess, 0.0)
    # (An infinite excess is a broken spectrum, not a measure of the scene.)
    scene_like[~np.isfinite(excess)] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a plane without spectra: NaN
        scene = np.nanmean(scene_like, axis=1) / (bands - 1)
    return np.where(np.isfinite(scene), scene, 0.0)


def _filtered_common(common, common_var, scene=None):
    """``(P, n_lines)`` the common level, Wiener-filtered over the lines where it has enough.

    The line's stripe is 1/f noise read out line after line too, and its
    measuring error white: where the stripe's power is near the error's (the
    highest line frequencies) part of what was measured is error. Power at
    low frequencies beyond the fitted law is kept as stripe (a steeper
    spectrum), not taken for scene as for the own parts, except ``scene``
    (``(P, n_freq)`` or None, :func:`_scene_in_common`): that much of it,
    at most, is error.
    """
    filtered = common.copy()
    valid = np.isfinite(common) & np.isfinite(common_var)
    planes = np.flatnonzero(valid.sum(axis=1) >= _MIN_SPECTRUM_LINES)
    if not planes.size:
        return filtered
    # The mean, not the median: the filter drops the series' mean (gain 0 at
    # frequency 0), which must come back whole or the plane shifts.
    level = np.array([float(np.mean(common[p, valid[p]])) for p in planes])
    series = (common[planes] - level[:, None], valid[planes], common_var[planes])
    scene = None if scene is None else scene[planes]
    # Every plane's series in one call.
    stripes = wiener_over_lines(*series, low_excess="signal", scene=scene)
    for i, p in enumerate(planes):
        filtered[p, valid[p]] = level[i] + stripes[i, valid[p]]
    return filtered


def steady_noisy_lines(
    level: np.ndarray, error_var: np.ndarray, valid: np.ndarray
) -> np.ndarray:  # fmt: skip
    """``level`` with its noisy lines' values weighed against their neighbours'.

    The spectral filters assume one error for every line; a line whose level
    rests on a few pixels (a trace filling most of it, whose bands fell back
    to the line's few free pixels) has far more. There the level is the
    least-squares compromise between the line's own value (weight ``1 /
    error_var``) and its neighbours': a random walk whose step from one line
    to the next has the variance the well-measured lines' steps show (their
    median squared step as a chi-square's, at least their error variance),
    ``k`` times that across ``k`` lines without a level; a tridiagonal
    system over the lines with a level. Only lines with more than
    :data:`_NOISY` times the median error variance change (none when half of
    the lines or more are that noisy: the median is then no reference); the
    others keep their values bit for bit.

    Parameters
    ----------
    level : numpy.ndarray
        float64 ``(n_lines,)``: one plane's line levels.
    error_var : numpy.ndarray
        float64 ``(n_lines,)``: their measuring errors' variance, positive
        and finite where ``valid``.
    valid : numpy.ndarray
        bool ``(n_lines,)``: lines with a level and an error.

    Returns
    -------
    numpy.ndarray
        float64 ``(n_lines,)``: a new array.
    """
    out = np.array(level, dtype=np.float64)
    if valid.sum() < _MIN_LINES:
        return out
    typical = float(np.median(error_var[valid]))
    noisy = valid & (error_var > _NOISY * typical)
    clean = valid & ~noisy
    pairs = clean[1:] & clean[:-1]
    if not noisy.any() or pairs.sum() < _MIN_LINES or not 0 < typical < np.inf:
        return out
    # The clean lines' levels were filtered over the lines already: their
    # steps are the stripe's, their error well below ``typical``.
    steps = np.diff(out)[pairs]
    step_var = max(float(np.median(steps**2)) / _CHI2_1_MEDIAN, typical)
    # (W + L) x = W level: W the lines' weights, L the chain of the steps
    # between consecutive lines with a level, each weighed 1 / (gap * step_var).
    lines = np.flatnonzero(valid)
    weight = 1.0 / error_var[lines]
    coupling = 1.0 / (step_var * np.diff(lines))
    diagonal = weight.copy()
    diagonal[:-1] += coupling
    diagonal[1:] += coupling
    steady = _solve_chain(diagonal, -coupling, weight * out[lines])
    keep = noisy[lines]
    out[lines[keep]] = steady[keep]
    return out


def _solve_chain(diagonal: np.ndarray, off: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve a symmetric tridiagonal system (Thomas algorithm; ``off``: the ``n - 1`` couplings).

    Stable without pivoting for the diagonally dominant systems of
    :func:`steady_noisy_lines`.
    """
    n = diagonal.size
    c = np.empty(n)
    d = np.empty(n)
    c[0] = off[0] / diagonal[0] if n > 1 else 0.0
    d[0] = rhs[0] / diagonal[0]
    for i in range(1, n):
        pivot = diagonal[i] - off[i - 1] * c[i - 1]
        c[i] = off[i] / pivot if i < n - 1 else 0.0
        d[i] = (rhs[i] - off[i - 1] * d[i - 1]) / pivot
    x = np.empty(n)
    x[-1] = d[-1]
    for i in range(n - 2, -1, -1):
        x[i] = d[i] - c[i] * x[i + 1]
    return x


def _filtered(own, own_error_var, ok):
    """The own parts, Wiener-filtered over the lines (one weight per line on short planes).

    Returns the filtered own parts and ``(excess, law)``, each ``(P,
    n_groups, n_freq)``: their power beyond their law and that law
    (:func:`wiener_over_lines`; NaN for a group filtered with one weight per
    line).
    """
    filtered = np.empty(own.shape)
    excess = np.full((own.shape[0], own.shape[2], own.shape[1] // 2 + 1), np.nan)
    law = excess.copy()
    spectral = ok.sum(axis=1) >= _MIN_SPECTRUM_LINES  # (P, n_groups)
    if not spectral.all():
        tau2 = _own_variance(own, own_error_var, ok)
        filtered[...] = tau2[None, None, :] / (tau2[None, None, :] + own_error_var) * own
    # Every spectral series of every plane in one call: (series, lines).
    planes, groups = np.nonzero(spectral)
    if planes.size:
        series = (own[planes, :, groups], ok[planes, :, groups], own_error_var[planes, :, groups])
        filtered[planes, :, groups], excess[planes, groups], law[planes, groups] = (
            wiener_over_lines(*series, return_excess=True)
        )
    return filtered, (excess, law)


def wiener_over_lines(
    measured, valid, error_var, low_excess="error", *, scene=None, return_excess=False
):  # fmt: skip
    """The 1/f stripe in ``measured`` (one series over the lines), Wiener-filtered.

    Parameters
    ----------
    measured : numpy.ndarray
        ``(n_lines,)`` stripe plus error, its level removed; read where
        ``valid``. Or ``(n_series, n_lines)``: each row filtered on its own
        (the same numbers as one call per row; the transforms of all rows
        at once).
    valid : numpy.ndarray
        bool, shaped like ``measured``.
    error_var : numpy.ndarray
        Shaped like ``measured``: variance of the white measuring error (its
        floor).
    low_excess : {"error", "signal"}
        What power beyond the fitted law is: ``"error"`` at every frequency
        (an own part: the scene's structure), ``"signal"`` below 1/16 only,
        where the law is extrapolated (the common level, whose spectrum may
        be steeper than 1/f; above 1/16 the law was fitted there).
    scene : numpy.ndarray, optional
        Only with ``low_excess="signal"``: ``(n_series, n_lines // 2 + 1)``
        (``(n_lines // 2 + 1,)`` for one series) power of each frequency (as
        ``|rfft|**2`` over the valid lines) that is the scene's, not stripe;
        at most the power beyond the law is taken as error.
    return_excess : bool
        Also return the power beyond the law and the law itself (its 1/f
        part and white floor).

    Returns
    -------
    filtered : numpy.ndarray
        Shaped like ``measured``: the filtered stripe (meaningful where
        ``valid``).
    excess, law : numpy.ndarray
        Only with ``return_excess``: ``(n_series, n_lines // 2 + 1)``
        (``(n_lines // 2 + 1,)`` for one series), 0 at frequency 0.

    Raises
    ------
    ValueError
        ``low_excess`` is neither, ``scene`` is given with ``"error"``, or
        its shape is not that of the spectra.
    """
    if low_excess not in ("error", "signal"):
        raise ValueError(f"low_excess must be 'error' or 'signal', not {low_excess!r}")
    if scene is not None and low_excess != "signal":
        raise ValueError("scene is used only with low_excess='signal'; pass scene=None.")
    if np.ndim(measured) == 1:
        many = wiener_over_lines(
            measured[None], valid[None], error_var[None], low_excess,
            scene=None if scene is None else np.asarray(scene)[None], return_excess=True,
        )  # fmt: skip
        return tuple(a[0] for a in many) if return_excess else many[0][0]
    n_lines = measured.shape[1]
    if scene is not None and np.shape(scene) != (measured.shape[0], n_lines // 2 + 1):
        raise ValueError(
            f"scene has shape {np.shape(scene)}; one power per frequency of each series, "
            f"{(measured.shape[0], n_lines // 2 + 1)}, was expected."
        )
    values = np.where(valid, measured, 0.0)
    spectrum = np.fft.rfft(values, axis=1)
    power = np.abs(spectrum) ** 2 / valid.sum(axis=1)[:, None]
    freq = np.fft.rfftfreq(n_lines)
    high = freq >= 1.0 / _SCENE_LINES
    design = np.stack([1.0 / freq[high], np.ones(int(high.sum()))], axis=1)
    signal = np.zeros(power.shape)
    error = np.empty(power.shape)
    excess, law = np.zeros(power.shape), np.zeros(power.shape)
    for s in range(power.shape[0]):
        floor = float(np.mean(error_var[s][valid[s]]))
        signal[s], error[s], excess[s, 1:], law[s, 1:] = _signal_and_error(
            power[s], freq, high, design, floor, low_excess, None if scene is None else scene[s]
        )
    gain = signal / (signal + error)
    gain[:, 0] = 0.0  # the mean is the offset, already taken
    filtered = np.fft.irfft(gain * spectrum, n_lines, axis=1)
    return (filtered, excess, law) if return_excess else filtered


def _signal_and_error(power, freq, high, design, floor, low_excess, scene=None):
    """One series' power per frequency: signal, error, beyond the law and the law.

    (:func:`wiener_over_lines`; the last two from frequency 1 on.)
    ``scene``: power that is the scene's (``"signal"`` only), at most the
    power beyond the law: error, and no longer signal below 1/16.
    """
    # power = A / f + N at the high frequencies: the own 1/f part and a white
    # part; what of N is above the error floor is white own signal.
    (slope, white), *_ = np.linalg.lstsq(design, power[high], rcond=None)
    slope = max(float(slope), 0.0)
    white = max(float(white), floor)
    signal = np.zeros(freq.size)
    signal[1:] = slope / freq[1:] + (white - floor)
    # Power beyond that law, smoothed as a ratio (the 1/f power changes by
    # factors across a few of the lowest frequencies), is error: the scene.
    model = signal[1:] + floor
    ratio = power[1:] / model
    edge = _SMOOTH_BINS // 2  # the ratio's end values repeated (np.pad's "edge", faster)
    ratio = np.concatenate([np.full(edge, ratio[0]), ratio, np.full(edge, ratio[-1])])
    smooth = np.convolve(ratio, np.ones(_SMOOTH_BINS) / _SMOOTH_BINS, mode="valid")
    error = np.full(freq.size, floor)
    beyond = excess = np.maximum(smooth - 1.0, 0.0) * model
    if low_excess == "error":
        error[1:] += excess
    else:
        if scene is not None:
            # (At most the excess: where the common level has none beyond its
            # law, the own parts' scene is not in it.)
            taken = np.minimum(scene[1:], excess)
            error[1:] += taken
            excess = excess - taken
        signal[1:] += np.where(high[1:], 0.0, excess)
    return signal, error, beyond, model


def _common_level(raw, ok, precision):
    """``(P, n_lines)`` precision-weighted mean of a line's groups, and its variance."""
    total = precision.sum(axis=2)
    common = (precision * np.where(ok, raw, 0.0)).sum(axis=2) / total
    return np.where(total > 0, common, np.nan), 1.0 / total


def _stray_distance(raw, ok, offset):
    """Each group's distance from its line's others, and its robust spread.

    ``(aligned, median, distance, spread)``: ``(P, n_lines, n_groups)`` the
    groups' levels less their offsets (NaN where a group is not usable),
    ``(P, n_lines)`` their median over the line's usable groups (NaN: a line
    without one), ``(P, n_lines, n_groups)`` each group's distance from that
    median, and ``(P, 1, n_groups)`` the robust spread of that distance over
    the lines (the group's own).
    """
    aligned = np.where(ok, raw - offset[:, None, :], np.nan)
    median = _nanstats.nanmedian(aligned, axis=2)  # NaN: a line without a group
    distance = np.abs(aligned - median[:, :, None])
    spread = _MAD_TO_SIGMA * _nanstats.nanmedian(distance, axis=1)  # (P, n_groups)
    return aligned, median, distance, spread[:, None, :]


def _robust_common(aligned, median, kept, precision, fallback, fallback_var):
    """``(P, n_lines)`` the line's common level, from the groups that do not stray.

    The precision-weighted mean of the ``kept`` groups' levels less their
    offsets (the usable groups within :data:`_STRAY` spreads of the line's
    others, :func:`_stray_distance`): a band whose level a source wing biased
    would otherwise set the split of the line's level among its groups (the
    line's mean level is restored after the own parts' filter, over the
    groups within :data:`_FAR` spreads, :func:`_keep_line_mean`).
    ``aligned`` and ``median`` are :func:`_stray_distance`'s. The usable
    groups' median where none is kept, ``fallback`` where no group is usable.
    """
    weights = np.where(kept, precision, 0.0)
    total = weights.sum(axis=2)
    mean = (weights * np.where(kept, aligned, 0.0)).sum(axis=2) / np.where(total > 0, total, 1)
    common = np.where(total > 0, mean, median)
    variance = np.where(total > 0, 1.0 / np.where(total > 0, total, 1), fallback_var)
    finite = np.isfinite(common)
    return np.where(finite, common, fallback), np.where(finite, variance, fallback_var)


def _keep_line_mean(filtered, own, ok, precision):
    """The filtered own parts, moved together so their line mean is the measured one.

    Each group's filter keeps its own share of its own part, so their
    precision-weighted mean over the line's ``ok`` groups would move with
    the filters. That mean is part of the line's level, measured on the
    line's usable pixels: only how it splits between the groups is
    uncertain enough to filter.
    """
    ok = ok & np.isfinite(filtered)  # a group left unfiltered keeps its measured level
    weights = np.where(ok, precision, 0.0)
    total = weights.sum(axis=2, keepdims=True)
    moved = (weights * np.where(ok, filtered - own, 0.0)).sum(axis=2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(total > 0, moved / np.where(total > 0, total, 1.0), 0.0)
    return filtered - shift


def _mostly_covered(counts, ok):
    """bool ``(P, n_lines, n_groups)``: usable groups a source mostly covers on their line.

    A group with fewer usable pixels on a line than :data:`_COVERED` times
    its typical count (its median over the lines) has lost most of them to
    the source mask: what is left lies in the source's wings, so its
    measured own part there is the wings' light more than its stripe.
    """
    typical = np.median(counts, axis=1, keepdims=True)
    return ok & (counts < _COVERED * typical)


def _group_offsets(own, ok):
    """``(P, n_groups)`` median over lines of each group's own part (0 if too few)."""
    offset = np.zeros(own.shape[::2])
    for p in range(own.shape[0]):
        for g in range(own.shape[2]):
            usable = ok[p, :, g]
            if usable.sum() >= _MIN_LINES:
                offset[p, g] = np.median(own[p, usable, g])
    return offset


def _own_variance(own, own_error_var, ok):
    """``(n_groups,)`` variance of each group's own part, pooled over the planes.

    The robust spread of the measured own part, less the typical measuring
    error; 0 where it is all error. A group without enough lines gets
    ``inf``: its own level is kept.
    """
    tau2 = np.full(own.shape[2], np.inf)
    for g in range(own.shape[2]):
        usable = ok[:, :, g]
        if usable.sum() < _MIN_LINES:
            continue
        values = own[:, :, g][usable]
        spread = _MAD_TO_SIGMA * np.median(np.abs(values - np.median(values)))
        with np.errstate(over="ignore", invalid="ignore"):
            tau2[g] = max(0.0, spread**2 - float(np.median(own_error_var[:, :, g][usable])))
    return tau2
