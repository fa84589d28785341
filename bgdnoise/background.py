"""A smooth background fitted together with the line levels (``background_method="model"``).

A background fitted first and removed before the line levels absorbs the
stripes' low frequencies (most of the 1/f power is below 1/32 cycles per
line). Here the surface is fitted with every (line, band) level free, so the
surface only sees what varies along a band; a surface that is one smooth
sheet across the output boundaries cannot carry a band's jump, and soft pins
hold it at the sky level where there is no source, which fixes what no
smooth surface and line levels can tell apart (a function of the line alone;
where such a function is far above what the stripes' 1/f spectrum can give,
:func:`sky_across_lines` keeps it as the sky's shape across the lines).
The pins hold each node row's mean over its sky nodes, and each sky node, on
the sky's tilt along the lines, fitted first: a sky that changes along the
lines (stray light, a zodiacal gradient) keeps its shape, and its bright end
is told from a source by its height above that tilt.
See :mod:`bgdnoise._kernels.surface` and docs/algorithm.rst.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import legendre

from . import _scratch
from ._kernels import surface as _surface
from ._kernels.aot import launch
from ._prepare import Layout

__all__ = ["Surface", "fit_background", "fit_surface", "sky_across_lines"]

# Squared second differences weigh this much per pixel of a node cell: a
# light hand (the data decide where they can) ...
_SMOOTH = 0.01
# ... and three times as much around a sky node (one the pins hold): the sky
# between the sources is smoother than they are. On the quality benchmark's
# frames, four seeds of each full frame and two of each subarray, the band
# residual fell by 1-8% on every scene but the crowded field (1% more on
# average, within its spread over the seeds); ten times as much gained more
# elsewhere but cost the crowded field 6% (docs/algorithm.rst).
_SKY_SMOOTH = 3.0 * _SMOOTH
# Pins weigh this much per pixel of a cell: enough to fix the null space,
# too little to overrule the data. Each node row's mean over its sky nodes
# is pinned with this weight per node; each sky node alone with a tenth of it
# (both toward the sky's fitted tilt along the lines), which steadies the surface
# on flat sky but barely bends a sky that changes along the lines (at full
# weight, node pins toward one level on the faint half of a 20-sigma ramp bent
# each output's part of the surface by up to 1.3 sigma, which the levels took
# as output offsets: band residual 1.6-1.9 and bias -0.6 to -0.7
# sigma on a 2048x2048 sparse field, three seeds).
_PIN = 1e-2
_NODE_PIN = 0.1 * _PIN
# A node is sky while it stands less than this many node-noise sigmas above
# the sky's tilt (about the median over the pinned nodes) and at most half of
# its cell is masked; the same margin sets the least slope kept
# (_visible_slope).
_SKY_SIGMAS = 2.0
_SKY_MAX_MASKED = 0.5
# Nodes pinned at first: those with at most this fraction of masked pixels
# (or the emptiest tenth when there are too few).
_FIRST_PIN_MASKED = 0.05
_PIN_ROUNDS = 2
# The fewest nodes (fraction) that may be pinned first; a fit where half as
# many stay at the sky level has nothing to anchor it and is not used.
_MIN_SKY_NODES = 0.1


# The sky across the lines (sky_across_lines): Legendre terms of degree 1 to
# this over the lines are tested, then the cosine modes from the next up to
# those the stripes' power is measured on, each against the stripes' own
# power there.
_ACROSS_DEGREE = 3
# A term is sky only where its power exceeds the stripes' expected power in
# it this many times, beyond two standard errors of that expectation's
# estimate (its log's error, pi / sqrt(2) / sqrt(modes), as each mode's power
# is a chi-square of one degree of freedom): 20 times on a full frame's 241
# modes, 51 on the 13 of a 128-line plane. Kept by mistake, a stripe term
# stays in the image, so the test has to be sure: on patterns of simulated
# 1/f stripes 1 of 4000 was kept at 2048 and at 1024 lines, none from 128 to
# 512; the expectation follows the stripes' measured steepness where it is
# clearly steeper than 1/f (_stripe_steepness), and with an f^-1.2 spectrum
# 0.95% of full frames and at most 0.12% of smaller ones kept a term, with
# f^-1.6 10.7% and 5.7% (35% and 16% with 1/f assumed and the Legendre
# terms alone; 62% and 23% with 1/f assumed and the cosine terms).
_ACROSS_THRESHOLD = 15.0
# The stripes' power is measured on the DCT modes from n_lines // 128 to
# n_lines // 8 (periods of 256 to 16 lines on a full frame; at least 4 to 16):
# low enough to stand above the levels' white noise, high enough that a smooth
# sky has little power there. Planes with fewer lines are not tested.
_ACROSS_MIN_LINES = 128
# The cosine terms are tested only where at most this fraction of the lines
# has no level (their values are interpolated from the neighbours').
_ACROSS_MAX_GAPS = 0.1
# No source mask, for the kernels.
_NO_SOURCES = np.zeros((0, 0), np.uint8)
# E[ln chi2_1] = -(Euler's gamma + ln 2): the log-periodogram's mean falls
# this far below the log of the power; its standard deviation is pi / sqrt(2).
_LOG_CHI2_BIAS = np.euler_gamma + np.log(2.0)
_LOG_CHI2_SPREAD = np.pi / np.sqrt(2.0)


def node_grid(n_lines: int, length: int, spacing: int) -> tuple[int, int]:
    """Nodes across and along the lines for a node ``spacing``."""
    return (max(2, -(-(n_lines - 1) // spacing) + 1), max(2, -(-(length - 1) // spacing) + 1))


def _band_nodes(band_edges: np.ndarray, spacing: int, n_x: int) -> np.ndarray:
    first = np.minimum(band_edges[:-1] // spacing, n_x - 2)
    stop = np.minimum((band_edges[1:] - 1) // spacing + 2, n_x)
    return np.stack([first, stop], axis=1).astype(np.int64)


def _normal_equations(plane, usable, layout: Layout, spacing: int, grid) -> tuple:
    """The banded normal matrix and right-hand side of the data (no penalties yet)."""
    n_y, n_x = grid
    n_lines, n_bands = layout.n_lines, layout.band_edges.size - 1
    sums = (
        _scratch.empty((n_lines, n_x)), _scratch.empty((n_lines, n_x)),
        _scratch.empty((n_lines, n_bands, n_x)), _scratch.empty((n_lines, n_bands, n_x)),
        _scratch.empty((n_lines, n_bands)), _scratch.empty((n_lines, n_bands)),
    )  # fmt: skip
    edges = layout.band_edges.astype(np.int64)
    _surface.line_sums(plane, usable, layout.along_rows, edges, (float(spacing), n_x), sums)
    band_nodes = _band_nodes(edges, spacing, n_x)
    bandwidth = max(2 * n_x, n_x + int((band_nodes[:, 1] - band_nodes[:, 0]).max()) + 1)
    matrix = _scratch.zeros((bandwidth + 1, n_y * n_x))
    rhs = np.zeros(n_y * n_x)
    _surface.normal_equations(sums, (float(spacing), n_y, n_x), band_nodes, matrix, rhs)
    return matrix, rhs


def _solve(equations: tuple, spacing: int, sky: np.ndarray, slope: float = 0.0) -> np.ndarray:
    """Node values of the surface pinned at the ``sky`` nodes (bool ``(n_y, n_x)``).

    The surface is stiffer around the sky nodes (:data:`_SKY_SMOOTH`).

    Each row's mean over its sky nodes, and each sky node, is pinned to the
    sky's tilt, ``slope`` per node along the lines about the middle of the
    row (:func:`_tilt`): zero for a flat sky. One tilt for every row, so rows
    pinned over different stretches of a sky that changes along the lines
    are held at the same sky.
    """
    n_y, n_x = sky.shape
    matrix, rhs = equations
    matrix = _scratch.copy(matrix)  # the data's part is reused for every set of pins
    cell = float(spacing) ** 2
    ridge = 1e-6 * cell
    node_pins = np.where(sky, _NODE_PIN * cell, 0.0)
    smooth = np.where(sky, _SKY_SMOOTH * cell, _SMOOTH * cell).ravel()
    launch(_surface.add_penalties, matrix, (n_y, n_x), smooth, node_pins.ravel() + ridge)
    _add_row_pins(matrix, sky, _PIN * cell)
    if slope:
        tilt = _tilt(sky.shape, slope)
        row_rhs = np.where(sky, _PIN * cell * _pinned_row_means(tilt, sky)[:, None], 0.0)
        rhs = rhs + (node_pins * tilt + row_rhs).ravel()
    return launch(_surface.banded_solve, matrix, rhs).reshape(n_y, n_x)


def _pinned_row_means(values: np.ndarray, pinned: np.ndarray) -> np.ndarray:
    """Each node row's mean of ``values`` over its pinned nodes, ``(n_y,)``; 0 where none."""
    per_row = pinned.sum(axis=1)
    return np.divide((pinned * values).sum(axis=1), per_row, out=np.zeros(per_row.size),
                     where=per_row > 0)  # fmt: skip


def _positions(shape: tuple[int, int]) -> np.ndarray:
    """Each node's position along the lines (in nodes), ``(n_y, n_x)``."""
    return np.broadcast_to(np.arange(shape[1], dtype=np.float64), shape)


def _about_row_centres(pinned: np.ndarray) -> np.ndarray:
    """Node positions along the lines less their row's mean pinned position."""
    position = _positions(pinned.shape)
    return position - _pinned_row_means(position, pinned)[:, None]


def _tilt(shape: tuple[int, int], slope: float) -> np.ndarray:
    """The sky's tilt on the nodes: ``slope`` per node along the lines about the row's middle."""
    return slope * (_positions(shape) - 0.5 * (shape[1] - 1))


def _add_row_pins(matrix: np.ndarray, sky: np.ndarray, weight: float) -> None:
    """Pin each node row's mean over its sky nodes, ``weight`` per sky node.

    The penalty ``weight * m * (mean - target)**2`` of a row with ``m`` sky
    nodes adds ``weight / m`` to the normal matrix for every pair of them
    (banded storage: ``matrix[d, k]`` is element ``(k, k + d)``; a row's
    nodes are within the bandwidth); the right-hand side's part,
    ``weight * target`` per sky node, is added by :func:`_solve`.
    """
    n_y = sky.shape[0]
    counts = sky.sum(axis=1)
    per_pair = np.divide(weight, counts, out=np.zeros(n_y), where=counts > 0)
    launch(_surface.add_row_pins, matrix, sky.astype(np.float64), per_pair)


def _sky_slope(nodes: np.ndarray, pinned: np.ndarray) -> float:
    """The sky's slope along the lines (per node), fitted within the rows' pinned nodes.

    Each row's own offset is left free (it is what the pins set); 0 where no
    row has pinned nodes at two positions.
    """
    dx = np.where(pinned, _about_row_centres(pinned), 0.0)
    dz = np.where(pinned, nodes - _pinned_row_means(nodes, pinned)[:, None], 0.0)
    spread = float((dx * dx).sum())
    return float((dx * dz).sum()) / spread if spread > 0 else 0.0


def _visible_slope(slope: float, threshold: float, n_x: int) -> float:
    """``slope``, or 0 where the sky test could not tell it from a flat sky.

    A tilt that moves a row's end nodes by less than the sky test's
    ``threshold`` is not told from a flat sky, so a flat field keeps the flat
    pins. Above that least slope it is shrunk by ``least**2 / slope``:
    continuous at the cut, and vanishing for a clear slope (taking ``least``
    off every slope left a tilt of ``threshold`` at the row ends in the sky
    test, which then dropped half the sky nodes at a ramp's bright end).
    """
    least = threshold / (0.5 * (n_x - 1))
    if not abs(slope) > least:
        return 0.0
    return float(slope - least * least / slope)


@dataclass(frozen=True, eq=False)  # no field-wise == or hash on an array
class Surface:
    """A fitted background: its nodes, evaluated on a plane when asked for.

    The plane is as large as the data; the nodes are a few thousand numbers,
    so a correction's report keeps them and not the plane.

    Attributes
    ----------
    nodes : numpy.ndarray
        float64 ``(n_y, n_x)``: node values relative to the sky level.
    along_rows : bool
        The lines are rows.
    spacing : int
        Node spacing in pixels.
    shape : tuple of int
        ``(ny, nx)`` of the plane.
    across : numpy.ndarray or None
        float64 ``(n_lines,)``: the sky's shape across the lines, which the
        surface cannot hold (:func:`sky_across_lines`), added to every
        line; None: none was found.
    """

    nodes: np.ndarray
    along_rows: bool
    spacing: int
    shape: tuple[int, int]
    across: np.ndarray | None = None

    def evaluate(self) -> np.ndarray:
        """The background on every pixel: float32 ``shape`` (a new array)."""
        out = _scratch.empty(self.shape, np.float32)  # the data's precision is enough
        _surface.evaluate(self.nodes, self.along_rows, float(self.spacing), out)
        if self.across is not None:
            profile = self.across.astype(np.float32)
            out += profile[:, None] if self.along_rows else profile[None, :]
        return out


def fit_surface(
    plane: np.ndarray, usable: np.ndarray, layout: Layout, *, spacing: int, sigma: float,
    extended: np.ndarray | None,
) -> np.ndarray | None:  # fmt: skip
    """Fit the smooth background of one plane and evaluate it on the plane.

    Parameters
    ----------
    plane, usable, layout, spacing, sigma, extended
        As for :func:`fit_background`.

    Returns
    -------
    numpy.ndarray or None
        float32 ``(ny, nx)``: :func:`fit_background`'s surface on every
        pixel, relative to the sky level; None where it gives None.
    """
    surface = fit_background(plane, usable, layout, spacing=spacing, sigma=sigma, extended=extended)
    return None if surface is None else surface.evaluate()


def fit_background(
    plane: np.ndarray, usable: np.ndarray, layout: Layout, *, spacing: int, sigma: float,
    extended: np.ndarray | None,
) -> Surface | None:  # fmt: skip
    """Fit the smooth background of one plane, pinned to the sky.

    Parameters
    ----------
    plane : numpy.ndarray
        float32 or float64 ``(ny, nx)``: the data (stripes included: the
        line levels are fitted with it).
    usable : numpy.ndarray
        uint8 ``(ny, nx)``: pixels that enter the fit (sources masked).
    layout : Layout
        Lines and readout bands.
    spacing : int
        Node spacing in pixels.
    sigma : float
        White-noise standard deviation of a pixel.
    extended : numpy.ndarray or None
        uint8 ``(ny, nx)``: every source found at any scale; nodes whose
        cells are free of it are the first sky nodes. None: no sources were
        sought.

    Returns
    -------
    Surface or None
        The background relative to the sky level; None when too few nodes
        stay at the sky level to anchor the surface.
    """
    n_y, n_x = node_grid(layout.n_lines, layout.length, spacing)
    masked, masked_ext = np.empty((n_y, n_x)), np.empty((n_y, n_x))
    sources = _NO_SOURCES if extended is None else np.ascontiguousarray(extended).view(np.uint8)
    _surface.cell_fractions(usable, sources, layout.along_rows, spacing, (n_y, n_x),
                            masked, masked_ext)  # fmt: skip
    if extended is None:
        masked_ext = masked
    sky = masked_ext <= _FIRST_PIN_MASKED
    if sky.mean() < _MIN_SKY_NODES:
        sky = masked_ext <= np.quantile(masked_ext, _MIN_SKY_NODES)
    node_noise = 1.25 * sigma / spacing if np.isfinite(sigma) and sigma > 0 else 0.0
    threshold = _SKY_SIGMAS * node_noise
    equations = _normal_equations(plane, usable, layout, spacing, (n_y, n_x))
    # The sky's slope along the lines first, from a fit pinned flat (the slope
    # is fitted within rows, so the flat pins barely bias it): the pins then
    # hold the sky nodes on that tilt, and the sky test measures each node's
    # height above it. A sky test against one level kept only the faint end of
    # a ramp, and the rest of each row floated with the noise of the band
    # levels' chain across the outputs (on a sparse field under a 20-sigma
    # ramp, four seeds: line residual 0.25-0.40 -> 0.15-0.21).
    nodes = _solve(equations, spacing, sky)
    slope = _visible_slope(_sky_slope(nodes, sky), threshold, n_x)
    for round_ in range(_PIN_ROUNDS):
        pinned = sky
        if round_ or slope:  # a flat sky's first round is the fit above
            nodes = _solve(equations, spacing, pinned, slope)
            slope = _visible_slope(_sky_slope(nodes, pinned), threshold, n_x)
        above = nodes - _tilt(nodes.shape, slope)
        base = float(np.median(above[pinned]))
        # One-sided: a node the fit puts above the sky's tilt is a source.
        sky = ((above - base) < threshold) & (masked < _SKY_MAX_MASKED)
        if sky.mean() < 0.5 * _MIN_SKY_NODES:
            return None
    # Relative to the median pinned node (the sky's tilt included): a constant
    # the line levels take up and the kept pedestal gives back.
    base = float(np.median(nodes[pinned]))
    return Surface(nodes - base, layout.along_rows, spacing, plane.shape)


def sky_across_lines(pattern: np.ndarray) -> np.ndarray | None:
    """The part of a line pattern that is the sky's shape across the lines, not stripes.

    A function of the line alone (a sky gradient across the lines) is the
    same to the line levels as a stripe, and the surface's pins hold the sky
    flat across the lines, so the levels take it. Only the stripes' spectrum
    tells it apart: 1/f noise puts a limited power, ``A / k`` on the ``k``-th
    cosine mode over the lines, into the lowest modes, and a smooth sky puts
    far more there and almost none at periods of 16 to 256 lines. ``A`` is
    measured on those middle modes of ``pattern`` itself (their mean log
    power times ``k**s``, ``s`` the stripes' steepness: 1, or their fitted
    log-log slope where that is clearly steeper); each Legendre term of degree 1
    to :data:`_ACROSS_DEGREE`, and each cosine mode ``k`` of what they leave
    below the modes ``A`` is measured on (structure on a few hundred lines:
    a nebula), whose power exceeds ``A / degree**s`` or ``A / k**s`` by
    :data:`_ACROSS_THRESHOLD` times, beyond two standard errors of ``A``, is
    sky, less the stripes' expected part (the Wiener weight ``1 -
    expected / power``).

    Parameters
    ----------
    pattern : numpy.ndarray
        float64 ``(n_lines,)``: the level subtracted from each line (its
        mean over the readout bands), NaN for lines without one.

    Returns
    -------
    numpy.ndarray or None
        float64 ``(n_lines,)``: the sky part (zero mean over the lines with
        a level, 0 on the others); None when no term is sky or the pattern
        has fewer than :data:`_ACROSS_MIN_LINES` lines with a level.
    """
    ok = np.isfinite(pattern)
    n = int(ok.sum())
    if n < _ACROSS_MIN_LINES:
        return None
    values = pattern[ok]
    # The test is the same at any scale: in units of the largest deviation,
    # no square of a value near the float64 limits over- or underflows.
    values = values - values.mean()
    unit = float(np.max(np.abs(values)))
    if not (np.isfinite(unit) and unit > 0):
        return None
    values = values / unit
    position = np.flatnonzero(ok)
    # Legendre terms of degree 1 to _ACROSS_DEGREE (a smooth gradient) ...
    x = 2.0 * position / max(1, pattern.size - 1) - 1.0
    basis, _ = np.linalg.qr(legendre.legvander(x, _ACROSS_DEGREE))  # orthonormal
    coefficients = basis.T @ values
    # ... and the cosine modes of what they leave (a sky with structure on a
    # few hundred lines: a nebula), on every line: a line without a level
    # takes its neighbours' (interpolated), so that a gap does not shift the
    # phase of every mode after it. Term i stands for the stripes' i-th mode,
    # whose expected power is A / i**s.
    lines = np.arange(pattern.size)
    waves = _dct(np.interp(lines, position, values - basis @ coefficients))
    k = np.arange(max(4, n // 128), max(16, n // 8) + 1)
    k = k[waves[k] ** 2 > 0]
    if k.size < 8:  # a degenerate pattern: nothing to compare with
        return None
    power = waves[k] ** 2
    steepness = _stripe_steepness(power, k)
    amplitude = _stripe_amplitude(power * k**steepness)
    margin = _ACROSS_THRESHOLD * np.exp(2.0 * _LOG_CHI2_SPREAD / np.sqrt(k.size))
    # (Only the modes below those A is measured on: above, the sky has little
    # power, and testing A's own modes against it would keep a stripe mode now
    # and then.)
    cosines = waves[_ACROSS_DEGREE + 1 : k[0]]
    if n < (1.0 - _ACROSS_MAX_GAPS) * pattern.size:
        cosines = np.zeros(0)  # too much interpolated to stand for the sky
    terms = np.concatenate([coefficients, cosines])
    index = np.arange(terms.size)
    expected = amplitude / np.maximum(index, 1) ** steepness
    wiener = np.where(
        terms**2 > margin * expected, 1.0 - expected / np.maximum(terms**2, 1e-300), 0.0
    )
    wiener[0] = 0.0  # the mean: a pedestal, not a shape
    kept = terms * wiener
    if not kept.any():
        return None
    shape = basis @ kept[: _ACROSS_DEGREE + 1]
    modes = index[_ACROSS_DEGREE + 1 :]
    if kept[modes].any():
        modes = modes[kept[modes] != 0]
        shape = shape + _cosine_sum(kept[modes], modes, position, pattern.size)
    sky = np.zeros(pattern.size)
    sky[ok] = shape * unit
    return sky


def _dct(values: np.ndarray) -> np.ndarray:
    """Orthonormal DCT-II coefficients of ``values`` (through an FFT of its mirror)."""
    n = values.size
    spectrum = np.fft.rfft(np.concatenate([values, values[::-1]]))[:n]
    coefficients = np.real(spectrum * np.exp(-0.5j * np.pi * np.arange(n) / n))
    scale = np.full(n, np.sqrt(0.5 / n))
    scale[0] = np.sqrt(0.25 / n)
    return coefficients * scale


def _cosine_sum(coefficients, modes, lines, n: int) -> np.ndarray:
    """The orthonormal DCT-II modes ``modes`` (all > 0) of ``n`` lines, weighted, on ``lines``."""
    return np.sqrt(2.0 / n) * (np.cos(np.pi * np.outer(lines + 0.5, modes) / n) @ coefficients)


def _stripe_steepness(power: np.ndarray, k: np.ndarray) -> float:
    """The stripes' steepness on modes ``k``: 1, or their log-log slope if clearly steeper.

    A 1/f extrapolation from the measured modes underestimates a steeper
    spectrum's lowest terms (f^-1.6: 3 to 12 times on a full frame), which
    would then pass for sky; a shallower one is left to the 1/f expectation,
    which is then the cautious side. Scene power on the lower measured modes
    steepens the fit too, which again only makes the test more cautious.
    """
    log_k = np.log(k) - np.log(k).mean()
    spread = float(np.sum(log_k**2))
    slope = float(np.sum(log_k * np.log(power)) / spread)
    # Less one standard error (each log power scatters by _LOG_CHI2_SPREAD):
    # a 1/f spectrum's fit is steeper than 1 by chance half the time, by 0.19
    # on a full frame's modes in one case in six, which made a real sky miss.
    return max(1.0, -slope - _LOG_CHI2_SPREAD / np.sqrt(spread))


def _stripe_amplitude(scaled_power: np.ndarray) -> float:
    """``A`` of the stripes' ``A / k**s`` from their modes' power times ``k**s`` (mean of logs)."""
    return float(np.exp(np.mean(np.log(scaled_power)) + _LOG_CHI2_BIAS))
