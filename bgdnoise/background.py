"""A smooth background fitted together with the line levels (``background_method="model"``).

A background fitted first and removed before the line levels absorbs the
stripes' low frequencies (most of the 1/f power is below 1/32 cycles per
line). Here the surface is fitted with every (line, band) level free, so the
surface only sees what varies along a band; a surface that is one smooth
sheet across the output boundaries cannot carry a band's jump, and soft pins
hold it at the sky level where there is no source, which fixes what no
smooth surface and line levels can tell apart (a function of the line alone).
See :mod:`bgdnoise._kernels.surface` and docs/algorithm.rst.
"""

from __future__ import annotations

import numpy as np

from ._kernels import surface as _surface
from ._prepare import Layout

__all__ = ["fit_surface"]

# Squared second differences weigh this much per pixel of a node cell: a
# light hand (the data decide where they can).
_SMOOTH = 0.01
# Pins weigh this much per pixel of a cell: enough to fix the null space,
# too little to overrule the data.
_PIN = 1e-2
# A node is sky while its fitted level is within this many node-noise sigmas
# of the pinned level and at most half of its cell is masked.
_SKY_SIGMAS = 2.0
_SKY_MAX_MASKED = 0.5
# Nodes pinned at first: those with at most this fraction of masked pixels
# (or the emptiest tenth when there are too few).
_FIRST_PIN_MASKED = 0.05
_PIN_ROUNDS = 2
# The fewest nodes (fraction) that may be pinned first; a fit where half as
# many stay at the sky level has nothing to anchor it and is not used.
_MIN_SKY_NODES = 0.1


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
        np.empty((n_lines, n_x)), np.empty((n_lines, n_x)),
        np.empty((n_lines, n_bands, n_x)), np.empty((n_lines, n_bands, n_x)),
        np.empty((n_lines, n_bands)), np.empty((n_lines, n_bands)),
    )  # fmt: skip
    edges = layout.band_edges.astype(np.int64)
    _surface.line_sums(plane, usable, layout.along_rows, edges, (float(spacing), n_x), sums)
    band_nodes = _band_nodes(edges, spacing, n_x)
    bandwidth = max(2 * n_x, n_x + int((band_nodes[:, 1] - band_nodes[:, 0]).max()) + 1)
    matrix = np.zeros((bandwidth + 1, n_y * n_x))
    rhs = np.zeros(n_y * n_x)
    _surface.normal_equations(sums, (float(spacing), n_y, n_x), band_nodes, matrix, rhs)
    return matrix, rhs


def _solve(equations: tuple, spacing: int, pins: np.ndarray) -> np.ndarray:
    """Node values of the surface for given pin weights: ``(n_y, n_x)``."""
    n_y, n_x = pins.shape
    matrix, rhs = equations
    matrix = matrix.copy()  # the data's part is reused for every set of pins
    cell = float(spacing) ** 2
    ridge = 1e-6 * cell
    _surface.add_penalties(matrix, (n_y, n_x), _SMOOTH * cell, pins.ravel() * cell + ridge)
    return _surface.banded_solve(matrix, rhs).reshape(n_y, n_x)


def fit_surface(
    plane: np.ndarray, usable: np.ndarray, layout: Layout, *, spacing: int, sigma: float,
    extended: np.ndarray,
) -> np.ndarray | None:  # fmt: skip
    """Fit the smooth background of one plane, pinned to the sky.

    Parameters
    ----------
    plane : numpy.ndarray
        float64 ``(ny, nx)``: the data (stripes included: the line levels
        are fitted with it).
    usable : numpy.ndarray
        uint8 ``(ny, nx)``: pixels that enter the fit (sources masked).
    layout : Layout
        Lines and readout bands.
    spacing : int
        Node spacing in pixels.
    sigma : float
        White-noise standard deviation of a pixel.
    extended : numpy.ndarray
        uint8 ``(ny, nx)``: every source found at any scale; nodes whose
        cells are free of it are the first sky nodes.

    Returns
    -------
    numpy.ndarray or None
        float32 ``(ny, nx)``: the background relative to the sky level; None
        when too few nodes stay at the sky level to anchor the surface.
    """
    n_y, n_x = node_grid(layout.n_lines, layout.length, spacing)
    masked_ext = np.empty((n_y, n_x))
    _surface.cell_fractions(usable & (extended == 0), layout.along_rows, float(spacing), n_y,
                            n_x, masked_ext)  # fmt: skip
    masked = np.empty((n_y, n_x))
    _surface.cell_fractions(usable, layout.along_rows, float(spacing), n_y, n_x, masked)
    sky = masked_ext <= _FIRST_PIN_MASKED
    if sky.mean() < _MIN_SKY_NODES:
        sky = masked_ext <= np.quantile(masked_ext, _MIN_SKY_NODES)
    node_noise = 1.25 * sigma / spacing if np.isfinite(sigma) and sigma > 0 else 0.0
    nodes, base = np.zeros((n_y, n_x)), 0.0
    equations = _normal_equations(plane, usable, layout, spacing, (n_y, n_x))
    for _ in range(_PIN_ROUNDS):
        nodes = _solve(equations, spacing, np.where(sky, _PIN, 0.0))
        base = float(np.median(nodes[sky]))
        # One-sided: a node the fit puts below the sky is no source.
        sky = ((nodes - base) < _SKY_SIGMAS * node_noise) & (masked < _SKY_MAX_MASKED)
        if sky.mean() < 0.5 * _MIN_SKY_NODES:
            return None
    out = np.empty(plane.shape, np.float32)  # the data's precision is enough for a background
    _surface.evaluate(nodes - base, layout.along_rows, float(spacing), out)
    return out
