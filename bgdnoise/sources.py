"""Source masks from the image itself.

Sources are found on the residual of a rough destriping at more than one
scale: single pixels and 3x3 boxes for stars and PSF wings, boxes of 9, 33
and 65 pixels for low-surface-brightness emission that no single pixel
shows. Each scale's threshold is a number of robust standard deviations of
that scale's own map (white noise and what striping is left both average
down with the box, and the map measures what remains), so no noise model
has to be assumed. Detections are dilated and the rough destriping is
redone without them, a few times. See docs/algorithm.rst.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import _kernels, _nanstats, _scratch
from ._kernels import mask as _mask_kernels
from ._kernels import planes as _planes
from ._kernels.aot import launch
from ._prepare import Prepared, make_layout, prepare

__all__ = ["COMPACT_SCALES", "DETECTION_SCALES", "PIXEL_SCALES", "detect", "source_mask"]

#: (cell size, box half-width in cells, threshold in robust sigmas of the
#: map): single pixels (4), 3x3 boxes (3), and boxes of 12 (3), 40 and 80
#: pixels (8) on coarser cells (a detection there is a region, dilated
#: anyway). The largest boxes average thousands of pixels: their maps vary
#: with the density of faint sources in a deep field, and masking its denser
#: patches biases every line by its own share of them (3 sigma there made a
#: field of faint sources four times worse than no mask); galaxy and trace
#: wings stand far above 8.
DETECTION_SCALES = ((1, 0, 4.0), (1, 1, 3.0), (4, 1, 3.0), (8, 2, 8.0), (16, 2, 8.0))
#: The pixel scales alone (single pixels and 3x3 boxes).
PIXEL_SCALES = DETECTION_SCALES[:2]
#: What the model background cannot follow, sought again on the plane destriped
#: without the extended sources: the pixel scales and the 12-pixel box (steep
#: trace wings and inner halos, which a surface on 64-pixel nodes would smear
#: into its neighbours; leaving them out of the surface took the grism traces
#: from 0.57 / 0.37 to 0.37 / 0.20 of the injected line striping).
COMPACT_SCALES = DETECTION_SCALES[:3]
# A bright pixel whose neighbours across the lines stand on average within this
# fraction of its height of the sky is a spike (hot pixel, cosmic ray), kept out
# of the larger boxes; only pixels this many robust sigmas above the sky are tested.
_SPIKE_RATIO = 0.01
_SPIKE_SIGMAS = 100.0
# Dilation of every detection (pixels), and rounds of mask-then-destripe.
_GROW = 2
_ROUNDS = 3
# Pixels per bin along the lines in the search for extended sources.
_BIN = 4
# Boxes wider than this fraction of the (binned) plane's smaller side are not used.
_MAX_BOX_FRACTION = 1 / 3
# Every n-th pixel of a map along each axis estimates its spread.
_SPREAD_STEP = 7
# The pixel scales' spreads sample at most this many pixels (see _sample_step).
_SPREAD_SAMPLES = 1 << 15
# A line's band is weighed by grow_marks with more free pixels than this
# (and the sky with at least as many samples).
_MIN_RING_PIXELS = 16
# A search round measures again only the lines its mask changed, unless they
# are more than this fraction of the lines.
_AGAIN_MAX_FRACTION = 0.8
# "Every pixel usable" for the kernels.
_NO_USABLE = np.zeros((0, 0), np.uint8)


def _spread(
    values: np.ndarray, usable: np.ndarray | None = None, step: int | None = None
) -> tuple[float, float]:
    """Median and robust standard deviation (1.4826 MAD) of a map's finite values.

    A sample: every ``step``-th row and column where ``usable`` (uint8, the
    map's shape) is non-zero; by default every :data:`_SPREAD_STEP`-th of a
    2D map of more than ``16 * _SPREAD_STEP**2`` values, else all of them.
    ``(0.0, inf)`` for fewer than 16 values (no threshold).
    """
    if step is None:
        step = _SPREAD_STEP if values.ndim == 2 and values.size > 16 * _SPREAD_STEP**2 else 1
    grid = values if values.ndim == 2 else values.reshape(1, -1)
    ny, nx = grid.shape
    scratch = _scratch.empty(2 * -(-ny // step) * -(-nx // step), grid.dtype)
    where = _NO_USABLE if usable is None else usable
    n, centre, mad = launch(_mask_kernels.median_and_mad, grid, where, step, scratch)
    if n < 16:
        return 0.0, np.inf
    return centre, 1.4826 * mad


def _sample_step(shape: tuple[int, int]) -> int:
    """Step of the pixel scales' samples of a plane: every n-th row and column.

    At least :data:`_SPREAD_STEP`, and odd (both parities of rows and
    columns, which may differ by an odd-even offset), for at most
    :data:`_SPREAD_SAMPLES` pixels: their median and spread are then known to
    about 1%, at the same cost on any plane (a full frame's 85,000 pixels at
    step 7 took half a millisecond a median, in one thread).
    """
    step = _SPREAD_STEP
    while -(-shape[0] // step) * -(-shape[1] // step) > _SPREAD_SAMPLES:
        step += 2
    return step


def _cell_sums(residual, weights, block: int, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    """Sums and counts on cells of ``block`` pixels, built from finer cells when cached."""
    if block in cache:
        return cache[block]
    half = block // 2
    if half in cache and half > 1:
        sums, counts = cache[half]
        shape = (-(-sums.shape[0] // 2), -(-sums.shape[1] // 2))
        cache[block] = _scratch.empty(shape), _scratch.empty(shape)
        launch(_mask_kernels.pool_cells, sums, counts, *cache[block])
        return cache[block]
    ny, nx = residual.shape
    shape = (-(-ny // block), -(-nx // block))
    sums, counts = _scratch.empty(shape), _scratch.empty(shape)
    _mask_kernels.block_sums(residual, weights, block, sums, counts)
    cache[block] = sums, counts
    return sums, counts


def _scale_map(residual, weights, block: int, half: int, cache: dict) -> np.ndarray:
    """Box-mean map of one scale, on cells of ``block`` pixels."""
    sums, counts = _cell_sums(residual, weights, block, cache)
    mean = _scratch.empty(sums.shape)
    min_count = 0.2 * ((2 * half + 1) * block) ** 2
    launch(_mask_kernels.box_means, sums, counts, half, min_count, mean)
    return mean


def detect(
    residual: np.ndarray, usable: np.ndarray, masked: np.ndarray, scales, grow: int,
    along_rows: bool = True,
):  # fmt: skip
    """Pixels above threshold at any scale, dilated: uint8 ``(ny, nx)``.

    Parameters
    ----------
    residual : numpy.ndarray
        ``(ny, nx)`` (the data's dtype): the image minus its stripes, the sky
        pedestal kept (values where not usable are not used).
    usable : numpy.ndarray
        uint8: pixels with a value.
    masked : numpy.ndarray or None
        uint8: pixels masked in earlier rounds (None: none); the boxes larger
        than 3x3 leave them out. What this call's compact scales mark does enter the
        boxes: a bright source's mask grows with its brightness, as its PSF
        or trace wings do (leaving the cores out of the boxes left the wings
        of bright traces unmasked, and their residuals three times larger).
        Spikes do not (:func:`_without_spikes`): a hot pixel or a cosmic
        ray's hit has no wings.
    scales : sequence of (int, int, float)
        Cell sizes, box half-widths and thresholds, as :data:`DETECTION_SCALES`.
    grow : int
        Dilation radius.
    along_rows : bool
        Lines along rows (else columns): where a spike's neighbours across
        the lines are (:func:`_without_spikes`).
    """
    ny, nx = residual.shape
    marks = _scratch.zeros((ny, nx), np.uint8)
    # (No plane-sized copy when nothing is masked yet: the compact search.)
    nothing = masked is None or not masked.any()
    unmasked = usable if nothing else _scratch.unmasked(usable, masked)
    cells: dict = {}  # cell sums of the unmasked residual, per cell size
    # The single pixels' and 3x3 boxes' thresholds (inf: scale not used), marked
    # in one pass after the loop: no scale's map or threshold depends on marks.
    compact = [np.inf, np.inf]
    pixel_centre = pixel_spread = np.nan  # the single pixels' map's: the spikes' test's
    step = _sample_step((ny, nx))
    for block, half, n_sigma in scales:
        if block * (2 * half + 1) > _MAX_BOX_FRACTION * min(ny, nx):
            continue  # a box must be small against the plane to find a local excess
        if block == 1 and half == 0:
            centre, spread = _spread(residual, usable, step)
            compact[0] = np.fmin(compact[0], centre + n_sigma * spread)  # (a scale twice)
            pixel_centre, pixel_spread = centre, spread
            continue
        if block == 1 and half == 1:
            sample = _scratch.empty((-(-ny // step), -(-nx // step)))
            _mask_kernels.box3_sample(residual, usable, step, sample)
            centre, spread = _spread(sample, step=1)
            compact[1] = np.fmin(compact[1], centre + n_sigma * spread)
            continue
        if not cells and np.isfinite(pixel_centre + pixel_spread):
            spike_floor = max(compact[0], pixel_centre + _SPIKE_SIGMAS * pixel_spread)
            unmasked = _without_spikes(
                residual, usable, unmasked, (pixel_centre, spike_floor), along_rows
            )
        mean = _scale_map(residual, unmasked, block, half, cells)
        centre, spread = _spread(mean)
        _mask_kernels.mark_above(mean, centre + n_sigma * spread, block, marks)
    if compact != [np.inf, np.inf]:
        thresholds = (float(compact[0]), float(compact[1]))
        _mask_kernels.mark_pixels_and_box3(residual, usable, thresholds, 2, marks)
    if grow <= 0:
        return marks
    cells.clear()  # not held through the dilation's scratch plane
    _mask_kernels.dilate(marks, grow, marks)
    return marks


def _without_spikes(residual, usable, unmasked, limits, along_rows: bool) -> np.ndarray:
    """``unmasked`` less the spikes: the pixels the boxes larger than 3x3 average.

    ``limits = (centre, threshold)``. A spike is a pixel above ``threshold``
    (:data:`_SPIKE_SIGMAS` robust sigmas of the single pixels' map) whose
    usable neighbours across the lines stand on average within
    :data:`_SPIKE_RATIO` of its height of ``centre`` (the sky): a hot pixel or a
    cosmic ray's single-pixel hit, which DQ does not always flag. In a box
    it would pass for the bright core of a source and mask the box's area
    (on a frame of noise with 2,500 such pixels, 10 to 1000 sigma, a third
    of the frame); it is still marked at its own scale. No star is that
    sharp: pixel-integrated images of JWST's aperture (an Airy pattern with
    its central obstruction, every sub-pixel position) put at least 2.6% of
    the core's height in the mean neighbour across the lines for NIRISS at
    F090W (0.44 pixel per lambda / D, JWST's most undersampled imaging;
    NIRCam F070W 5.1%), 3.4% on the plane binned by 4 along the lines,
    while interpixel capacitance gives a hot pixel's neighbours about 0.5-1%.
    The neighbours along the lines are not looked at: binned, they are 4
    pixels away (a star's bin then had less than 2% of its height in the
    mean of its 8 neighbours). Spikes below ~36 sigma do not reach a box's
    threshold (a 12-pixel box's is 3 of its map's sigmas, sigma / 12), and
    those that mask the largest boxes are brighter than 300 sigma: only
    those above 100 are tested, where the test's noise (sigma / sqrt(2) for
    the two neighbours) is 0.7% of the height or less. Returns ``unmasked``
    itself or a copy of ``usable``.
    """
    weights = _scratch.copy(usable) if unmasked is usable else unmasked
    centre, threshold = limits
    _mask_kernels.drop_spikes(
        residual, usable, (float(centre), float(threshold), _SPIKE_RATIO), along_rows, weights
    )
    return weights


def grow_marks(
    marks, residual, usable, layout, max_radius: int, *, sigma: float, cost_sigma: float
) -> tuple[np.ndarray, int]:  # fmt: skip
    """The marks dilated ring by ring, while masking the next ring keeps the lines cleaner.

    A source's wings spread its light beyond the pixels found; the ring of
    pixels at distance ``k`` (Chebyshev) from the marks carries some. Left
    in, it moves the level of a line's band by ``b = s / n`` (``s`` the
    ring's sum above the typical unmasked pixel, ``n`` the band's pixels
    not yet masked); masked, it costs the level the ring's ``r`` pixels,
    about ``N = r spread**2 / n**2`` more variance (``spread`` the robust
    scatter of the unmasked pixels, white noise and unresolved light alike:
    that of the pixels a level is a mean of). Across the lines, ``b``
    varies about its median by ``V = B + N`` (``B`` from the light, ``N``
    from the ring's own scatter; a shift every line shares is the sky's),
    so masking the ring pays where ``B > N``: ``V > 2 N``, means over the
    lines and bands. Rings are taken outward from the marks until one does
    not pay, up to ``max_radius``: around the many faint stars of a crowded
    field or a bright trace every ring pays; around the few stars of a
    sparse field the first one or two do, and further rings only cost
    pixels.
    Where no line band has enough pixels to weigh the first ring, the marks
    are grown by ``max_radius``.

    Parameters
    ----------
    marks : numpy.ndarray
        uint8 ``(ny, nx)``: the sources found (:func:`detect` without
        growth); overwritten with the result.
    residual : numpy.ndarray
        ``(ny, nx)``: the image minus its stripes, the sky kept (as for
        :func:`detect`).
    usable : numpy.ndarray
        uint8: pixels with a value.
    layout : Layout
        Lines and readout bands of the plane.
    max_radius : int
        Largest dilation radius, 0 to 254.
    sigma : float
        White noise of a pixel of ``residual``.
    cost_sigma : float
        White noise of a pixel of the planes whose levels the mask serves:
        ``sigma``, or a single plane's where ``residual`` is the median of a
        cube's planes, less noisy. Their pixels scatter by ``spread**2 +
        cost_sigma**2 - sigma**2``, the cost of masking in ``B > N``.

    Returns
    -------
    tuple
        ``(mask, radius)``: ``marks`` dilated by ``radius`` pixels.
    """
    if not 0 <= max_radius < 255:
        raise ValueError(f"max_radius must be 0 to 254, not {max_radius}")
    if max_radius == 0 or not marks.any():
        return marks, 0
    if not (np.isfinite(sigma) and sigma > 0 and np.isfinite(cost_sigma)):
        _mask_kernels.dilate(marks, max_radius, marks)  # no noise to weigh rings against
        return marks, max_radius
    cap = max_radius + 1
    distance = _scratch.empty(marks.shape, np.uint8)
    _mask_kernels.mark_distance(marks, cap, distance)
    # The typical unmasked pixel and its scatter, on a sample.
    step = _sample_step(marks.shape) if marks.size > 16 * _SPREAD_STEP**2 else 1
    free_sample = (distance[::step, ::step] != 0) & (usable[::step, ::step] != 0)
    centre, spread = _spread(np.ascontiguousarray(residual[::step, ::step][free_sample]))
    edges = layout.band_edges.astype(np.int64)
    # Every line: a ring's cost falls on the few lines through a bright star's
    # wings (a sample of every fourth line took the galaxy's frame to 1 pixel).
    shape = (layout.n_lines, edges.size - 1, cap + 1)
    sums, counts = _scratch.empty(shape), _scratch.empty(shape)
    _mask_kernels.ring_sums(
        residual, usable, distance, layout.along_rows, edges, float(centre), sums, counts
    )
    # Per ring k (1..max_radius): the pixels farther than k - 1, not yet masked
    # when ring k is weighed, and the level shift of each line band left with it.
    free = np.cumsum(counts[:, :, :0:-1], axis=2)[:, :, ::-1][:, :, :max_radius]
    ring, ring_sum = counts[:, :, 1:cap], sums[:, :, 1:cap]
    weighed = free > _MIN_RING_PIXELS
    radius = max_radius  # nothing to weigh the first ring on: grown as far as allowed
    if np.isfinite(spread) and weighed[:, :, 0].any():
        cost = max(spread**2 + cost_sigma**2 - sigma**2, 0.0)  # a served plane's scatter
        with np.errstate(invalid="ignore", divide="ignore"):
            shift = np.where(weighed, ring_sum / free, np.nan)
            share = np.where(weighed, ring / free**2, np.nan)  # N over the scatter
        shift -= _nanstats.nanmedian(shift, axis=0)  # per band and ring: the sky's
        radius = 0
        for k in range(max_radius):
            kept = weighed[:, :, k]
            if not kept.any():
                break
            moved = float(np.mean(shift[:, :, k][kept] ** 2))  # V
            noise = float(np.mean(share[:, :, k][kept]))
            if not moved - noise * spread**2 > noise * cost:  # B > N
                break
            radius = k + 1
    np.less_equal(distance, np.uint8(radius), out=marks.view(np.bool_))
    return marks, radius


def residual_of(
    prepared: Prepared, options, mask: np.ndarray | None = None, plane_scale=None, previous=None
) -> tuple[np.ndarray, np.ndarray, object]:
    """Destripe one plane without the ``mask``ed pixels: ``(residual, usable, measured)``.

    The stripes are the plain per-line levels (the stages of the plain
    correction) measured with ``mask`` (uint8, plane-shaped) left out and
    subtracted with the sky pedestal kept, so a line the mask empties (no
    level, nothing subtracted) stays on the same baseline as the others.
    ``usable`` marks every pixel with a value (masked ones included: they are
    still looked at); ``measured`` is what :func:`search_levels` gave.
    ``plane_scale``: the plane's dispersion, if already measured;
    ``previous``: see :func:`search_levels`.
    """
    from . import stages  # the stages call this module: import at use

    options = replace(options, keep_level=True)  # see above, whatever the correction keeps
    masked, measured = search_levels(prepared, options, mask, plane_scale, previous)
    resolved = stages.resolve(masked, measured, options)
    return (*_residual(prepared, resolved), measured)


def search_levels(prepared: Prepared, options, mask, plane_scale, previous=None):
    """The plain levels of one plane with ``mask`` left out: ``(masked, measured)``.

    ``masked`` is ``prepared`` with the mask in its flags. ``previous``:
    ``(measured, mask)`` of an earlier call on the same plane, options and
    ``plane_scale``; only the groups (of lines) whose mask has changed since
    are measured again (the same levels: a round's new detections touch part
    of the lines, and of their outputs).
    """
    from . import stages  # the stages call this module: import at use

    masked = prepared if mask is None else with_mask(prepared, mask)
    if previous is None:
        return masked, stages.measure(masked, options, plane_scale=plane_scale)
    measured, mask_then = previous
    now = np.zeros(prepared.planes.shape[1:], np.uint8) if mask is None else mask
    groups = _changed_groups(now != mask_then, prepared.layout)
    lines = np.flatnonzero(groups.any(axis=1))
    if lines.size == 0:
        return masked, measured
    if lines.size > _AGAIN_MAX_FRACTION * groups.shape[0]:  # a copy of most lines buys nothing
        return masked, stages.measure(masked, options, plane_scale=plane_scale)
    again = (measured, lines, groups[lines])
    return masked, stages.measure(masked, options, plane_scale=plane_scale, again=again)


def _changed_groups(changed: np.ndarray, layout) -> np.ndarray:
    """bool ``(n_lines, n_groups)``: the groups with a ``changed`` pixel (plane-shaped bool)."""
    along = changed if layout.along_rows else changed.T
    edges = layout.band_edges
    groups = np.empty((layout.n_lines, layout.group_sizes.size), bool)
    for g in range(groups.shape[1]):
        band = g // 2 if layout.odd_even else g
        first, step = edges[band], 1
        if layout.odd_even:  # the band's positions of parity g % 2
            first, step = first + (first % 2 != g % 2), 2
        groups[:, g] = along[:, first : edges[band + 1] : step].any(axis=1)
    return groups


def _residual(prepared: Prepared, resolved) -> tuple[np.ndarray, np.ndarray]:
    """``(residual, usable)``: one plane destriped by ``resolved``, see :func:`residual_of`.

    The levels are subtracted from ``prepared``'s plane without the search's
    mask (the mask adds EXCLUDE flags only, so the subtraction is the same),
    and in the same pass the pixels with a finite result that ``prepared``
    does not exclude are marked usable, the others set to 0. The residual is
    in the data's dtype (float32 for a float32 product: its values are
    float32 already, and a float64 copy was the largest array of the scene
    search). It keeps the sky pedestal: every threshold of :func:`detect` is
    relative to a median of its own map, so a constant changes no detection
    (a sky median taken out of the residual here cost a pass over the plane
    per round and changed no mask bit on the tests' frames).
    """
    from . import stages  # the stages call this module: import at use

    usable = _scratch.empty(prepared.planes.shape, np.uint8)  # (one plane)
    corrected, _ = stages.apply(prepared, resolved, out=_work_plane(prepared), usable=usable)
    return corrected.reshape(prepared.planes.shape)[0], usable[0]


def _work_plane(prepared: Prepared) -> np.ndarray:
    """A work array for the corrected planes of ``prepared`` (:func:`stages.apply`'s ``out``)."""
    return _scratch.empty(prepared.work.shape, prepared.out_dtype)


def with_mask(prepared: Prepared, mask: np.ndarray) -> Prepared:
    """``prepared`` with ``mask`` (uint8, plane-shaped) added to its EXCLUDE flags."""
    flags = prepared.flags
    ny, nx = prepared.planes.shape[1:]
    out = _scratch.empty((flags.shape[0] if flags.shape[1] else 1, ny, nx), np.uint8)
    _kernels.or_exclude(flags, np.ascontiguousarray(mask), out)
    return replace(prepared, flags=out)


def _binned(prepared: Prepared, options, factor: int) -> Prepared:
    """One plane binned by ``factor`` along its lines: the stripes stay whole."""
    plane = prepared.planes[0]
    along_rows = prepared.layout.along_rows
    ny, nx = plane.shape
    shape = (ny, nx // factor) if along_rows else (ny // factor, nx)
    out, out_flags = _scratch.empty(shape, plane.dtype), _scratch.empty(shape, np.uint8)
    flags = prepared.flags[0] if prepared.flags.shape[1] else np.zeros((0, 0), np.uint8)
    _planes.bin_along_lines(plane, flags, along_rows, factor, out, out_flags)
    # Even and odd positions mix in a bin of even size: one level per band.
    layout = make_layout(shape, prepared.axis, replace(options, odd_even=False))
    return replace(
        prepared, work=out, planes=out[None], flags=out_flags[None],
        background=np.zeros((1, 0, 0), plane.dtype), dq=None, layout=layout,
    )  # fmt: skip


def _bin_factor(prepared: Prepared) -> int:
    """Pixels per bin along the lines for the extended search (1: none)."""
    length, n_bands = prepared.layout.length, prepared.layout.band_edges.size - 1
    factor = _BIN
    while factor > 1 and (length % factor or length // factor // n_bands < 32):
        factor //= 2
    return factor


def extended_mask(prepared: Prepared, options, rounds: int = _ROUNDS) -> np.ndarray:
    """Sources at every scale, found on a plane destriped without them.

    ``prepared`` holds one plane. Returns uint8 ``(ny, nx)``; see
    :func:`extended_search`.
    """
    return extended_search(prepared, options, rounds, with_residual=False)[0]


def spread_mask(mask: np.ndarray, prepared: Prepared) -> np.ndarray:
    """A mask of the binned search plane spread back to every pixel of ``prepared``'s plane."""
    factor = _bin_factor(prepared)
    mask = np.ascontiguousarray(mask)
    if factor == 1:
        return mask
    spread = _scratch.empty(prepared.planes.shape[1:], mask.dtype)
    _mask_kernels.repeat_along_lines(mask, prepared.layout.along_rows, factor, spread)
    return spread


def extended_search(
    prepared: Prepared, options, rounds: int = _ROUNDS, with_residual=True, spread=True
):
    """The extended search: ``(mask, residual, usable)`` of one plane.

    The search runs on the plane binned by :data:`_BIN` pixels along its
    lines (the stripes are constant along a line, so they survive the
    binning; a quarter of the work), and the mask is spread back to every
    pixel (``spread=False``: the binned mask, for :func:`spread_mask` once
    the residual is no longer held). With ``with_residual``, the full plane
    destriped by the levels of the binned plane without the final mask (what
    the compact sources are then searched in), as from :func:`residual_of`;
    else None, None.
    """
    factor = _bin_factor(prepared)
    binned = _binned(prepared, options, factor) if factor > 1 else prepared
    # The pedestal kept whatever the correction keeps (see residual_of).
    bin_options = replace(options, keep_level=True)
    if factor > 1:
        bin_options = replace(bin_options, odd_even=False)
    ny, nx = binned.planes.shape[1:]
    mask = _scratch.zeros((ny, nx), np.uint8)
    from . import stages  # the stages call this module: import at use

    # The white-noise dispersion from pairs of neighbours ignores sources:
    # measured once, not again each round with the growing mask.
    scale = stages.plane_dispersion(binned, bin_options)
    previous = None  # each round measures again only the groups its mask changed
    residual = usable = None
    for _ in range(rounds):
        residual, usable, measured = residual_of(binned, bin_options, mask, scale, previous)
        previous = (measured, _scratch.copy(mask))
        along_rows = binned.layout.along_rows
        mask |= detect(residual, usable, mask, DETECTION_SCALES, _GROW, along_rows)
    if not with_residual:
        return (spread_mask(mask, prepared) if spread else mask), None, None
    if factor == 1:  # the mask is the plane's own: nothing to spread
        residual, usable, _ = residual_of(prepared, options, mask, scale, previous)
        return mask, residual, usable
    masked, measured = search_levels(binned, bin_options, mask, scale, previous)
    resolved = stages.resolve(masked, measured, bin_options)
    # The binned planes are done with: not held beside the full plane's residual.
    del binned, masked, measured, previous, residual, usable
    # The binned plane's levels fit the full plane: same lines, same bands.
    layout = make_layout(prepared.planes.shape[1:], prepared.axis, bin_options)
    residual, usable = _residual(replace(prepared, layout=layout), resolved)
    # Spread after the residual is made (spread=False: by the caller, later).
    return (spread_mask(mask, prepared) if spread else mask), residual, usable


def source_mask(data, axis: str, *, dq=None, n_outputs: int | str = 1, **kwargs) -> np.ndarray:
    """Find the sources of an image: a boolean mask of its shape.

    The mask :func:`bgdnoise.correct_array` builds with ``mask_sources=True``
    before measuring the stripes (with ``background_method=None``). For a
    cube, one mask from the median over its planes.

    Parameters
    ----------
    data : numpy.ndarray
        ``(ny, nx)`` image or a cube of planes of the same scene.
    axis : {"rows", "columns"}
        Direction the stripes run.
    dq : numpy.ndarray, optional
        DQ array; flagged pixels are left out of the statistics (and are not
        part of the returned mask).
    n_outputs : int or "auto"
        Readout outputs of the rough destriping.
    **kwargs
        Other correction options (e.g. ``mask`` for pixels to leave out).

    Returns
    -------
    numpy.ndarray
        bool, one plane ``(ny, nx)``: True on sources.
    """
    from .options import CorrectionOptions
    from .scene import reference_plane

    options = CorrectionOptions.from_kwargs(n_outputs=n_outputs, **kwargs)
    plane = reference_plane(prepare(data, axis, options, dq=dq))
    mask = extended_mask(plane, options).astype(bool)
    if plane.flags.shape[1]:  # flagged pixels are left out anyway, not sources
        mask &= (plane.flags[0] & _kernels.EXCLUDE) == 0
    return mask
