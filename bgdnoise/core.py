"""Public array API: ``correct_array`` and ``measure_levels``.

Both build a :class:`~bgdnoise.options.CorrectionOptions` from their
keywords and run the stages of :mod:`bgdnoise.stages`: ``measure_levels``
stops after measuring and resolving the levels (per line, per readout band,
optionally per column parity); ``correct_array`` subtracts them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from . import stages
from ._prepare import prepare
from .dqflags import DEFAULT_DQ_FLAGS, DO_NOT_USE, MSA_FAILED_OPEN, NON_SCIENCE, REFERENCE_PIXEL
from .options import CorrectionOptions

__all__ = [
    "DEFAULT_DQ_FLAGS",
    "DO_NOT_USE",
    "MSA_FAILED_OPEN",
    "NON_SCIENCE",
    "REFERENCE_PIXEL",
    "LineLevels",
    "correct_array",
    "measure_levels",
]


@dataclass
class LineLevels:
    """What :func:`measure_levels` measured.

    Arrays have the leading (plane) shape of the data, ``lead``, then the
    line index, then the group index where there is one.

    Attributes
    ----------
    axis : str
        ``"rows"`` or ``"columns"``: the direction the stripes run.
    band_edges : numpy.ndarray
        Positions along the line where the readout bands start and end.
    odd_even : bool
        Whether each band has separate levels for even and odd positions.
    raw : numpy.ndarray
        ``lead + (n_lines, n_groups)`` float64: the clipped median of each
        group, NaN where it had no usable pixel.
    counts : numpy.ndarray
        ``lead + (n_lines, n_groups)`` int64: usable pixels per group.
    group_sizes : numpy.ndarray
        ``(n_groups,)`` pixels per group on one line.
    line : numpy.ndarray
        ``lead + (n_lines,)`` float64: the clipped median over the whole
        line (equal to ``raw[..., 0]`` when there is one group).
    levels : numpy.ndarray
        ``lead + (n_lines, n_groups)`` float64: the level used for each
        group: ``raw``, or, for a group with fewer than ``min_fraction`` of
        its pixels usable, the line's level plus that group's median offset
        from the line level in the plane; NaN for a line with no usable pixel.
    fallback : numpy.ndarray
        ``lead + (n_lines, n_groups)`` bool: groups that took the fallback.
    plane_level : numpy.ndarray
        ``lead`` float64: median of each plane's finite ``levels`` (the sky
        pedestal kept when ``keep_level``), NaN for an all-masked plane.
    scale : numpy.ndarray
        ``lead`` float64: the fixed clipping dispersion of each plane
        (``scale="global"``), NaN where the line's standard deviation was
        used.
    n_empty : int
        Number of lines with no usable pixel.
    """

    axis: str
    band_edges: np.ndarray
    odd_even: bool
    raw: np.ndarray
    counts: np.ndarray
    group_sizes: np.ndarray
    line: np.ndarray
    levels: np.ndarray
    fallback: np.ndarray
    plane_level: np.ndarray
    scale: np.ndarray
    n_empty: int


# --------------------------------------------------------------------------
# The public functions
# --------------------------------------------------------------------------
def _options(options: CorrectionOptions | None, kwargs: dict) -> CorrectionOptions:
    """The options object, with keywords (canonical names or aliases) over it.

    Its ``axis`` is not used: the array functions take theirs as an argument.
    """
    return CorrectionOptions.from_kwargs(options, **kwargs)


def measure_levels(
    data: np.ndarray,
    axis: Literal["rows", "columns"],
    *,
    dq: np.ndarray | None = None,
    background: np.ndarray | None = None,
    options: CorrectionOptions | None = None,
    **kwargs: Any,
) -> LineLevels:
    """Measure the stripe level of every line (and band) of every plane.

    Parameters are those of :func:`correct_array`; ``background`` (a plane
    or an array of the data's shape) is subtracted from the values before
    any statistic and is not part of the levels.

    Returns
    -------
    LineLevels
        The raw and final levels, usable counts, fallbacks and plane levels.
    """
    options = _options(options, kwargs)
    prepared = prepare(data, axis, options, dq=dq, background=background)
    measured = stages.measure(prepared, options, all_lines=True)
    resolved = stages.resolve(prepared, measured, options)
    lead = prepared.work.shape[:-2]
    layout = prepared.layout
    counts = measured.full_counts if layout.group_sizes.size > 1 else measured.counts[:, :, 0]
    return LineLevels(
        axis=axis,
        band_edges=layout.band_edges,
        odd_even=layout.odd_even,
        raw=measured.raw.reshape(lead + measured.raw.shape[1:]),
        counts=measured.counts.reshape(lead + measured.counts.shape[1:]),
        group_sizes=layout.group_sizes,
        line=measured.full.reshape(lead + measured.full.shape[1:]),
        levels=resolved.levels.reshape(lead + resolved.levels.shape[1:]),
        fallback=resolved.fallback.reshape(lead + resolved.fallback.shape[1:]),
        plane_level=resolved.plane_level.reshape(lead),
        scale=measured.scale.reshape(lead),
        n_empty=int(np.count_nonzero(counts == 0)),
    )


def correct_array(
    data: np.ndarray,
    axis: Literal["rows", "columns"],
    *,
    dq: np.ndarray | None = None,
    background: np.ndarray | None = None,
    return_model: bool = False,
    out: np.ndarray | None = None,
    options: CorrectionOptions | None = None,
    **kwargs: Any,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Remove 1/f stripes from a 2D image or a stack of them.

    Every line (row or column) of every 2D plane gets a level: the
    iteratively sigma-clipped median of its usable pixels, per readout band
    and column parity if asked. The levels (minus the plane's median level
    when ``keep_level``) are subtracted along the lines. By default the
    sources are found first (``mask_sources``) and a smooth background is
    fitted with the levels (``background_method="model"``), once for a cube
    of planes of one scene (docs/algorithm.rst); with ``mask_sources=False,
    background_method=None`` each plane is corrected on its own by the plain
    per-line levels.

    Parameters
    ----------
    data : numpy.ndarray
        2D ``(ny, nx)``, 3D ``(nints, ny, nx)`` or 4D
        ``(nints, ngroups, ny, nx)``; each 2D plane gets its own levels. The
        scene stages find one source mask, background and sky across the
        lines for all planes: planes of one scene (integrations, or a
        ramp's group differences, not its accumulating groups).
        float32 and float64 of either byte order, or integers (as float32);
        any finite, infinite, NaN or denormal value. The masked pixels of a
        ``numpy.ma.MaskedArray`` are kept out of the statistics as with
        ``mask`` (and still corrected); the result is a plain array.
    axis : {"rows", "columns"}
        Direction the stripes run: ``"rows"`` gives one level per row
        (median over the last axis; NIRCam), ``"columns"`` one level per
        column (median over the second-to-last axis; NIRISS, NIRSpec, FGS,
        MIRI imager).
    dq : numpy.ndarray of int, optional
        JWST DQ array, shape of one plane or of ``data``. Pixels with any bit
        of ``dq_flags`` are kept out of the statistics; pixels flagged
        REFERENCE_PIXEL are left unchanged.
    return_model : bool, optional
        Also return the subtracted stripe model (float32, shape of data).
    out : numpy.ndarray, optional
        Array to write the result to; same shape as ``data`` and the output
        dtype. May be ``data`` itself for an in-place correction; any other
        array sharing memory with ``data`` (a shifted or reversed view) is
        refused with a ValueError.
    background : numpy.ndarray, optional
        A smooth background (plane or data shape) subtracted before the
        statistics only; it stays in the output.
    options : CorrectionOptions, optional
        The options as an object; keywords given as well win over it.
    **kwargs
        Any correction option, by its name in :data:`bgdnoise.options.OPTIONS`
        (table in docs/options.rst): ``mask`` (True = keep out of the
        statistics, plane or data shape; masked pixels are still corrected),
        ``sigma`` (3), ``sigma_lower``/``sigma_upper`` (``sigma``),
        ``maxiters`` (10; 0 a plain median, None until nothing changes),
        ``scale`` (``"global"``: each plane's white-noise dispersion, so a
        source filling most of a line does not widen the clip; ``"line"``:
        each line's standard deviation, exactly astropy ``sigma_clip``),
        ``n_outputs`` (equal bands along the line, each with its level;
        ``"auto"`` = 1 for arrays), ``odd_even`` (separate even/odd levels
        per band), ``keep_level`` (True: keep the sky pedestal),
        ``min_fraction`` (0.2: a band with fewer usable pixels takes the
        line level plus its typical offset), ``dq_flags``
        (DO_NOT_USE | NON_SCIENCE | REFERENCE_PIXEL | MSA_FAILED_OPEN),
        ``mask_sources`` (True: find sources at every scale and keep them
        out of the statistics), ``background_method`` (``"model"``: a smooth
        background fitted with the levels; ``"median"``; None),
        ``background_box_size`` (64: node spacing of the model background),
        ``keep_sky_across`` (True: with the model background, a smooth sky
        across the lines that the stripes' 1/f spectrum cannot explain is
        kept, not subtracted), ``use_reference_pixels`` (True: with the
        source mask or the model background, each output's error at periods
        of 256 lines and more is measured on its side reference pixels,
        DQ-flagged REFERENCE_PIXEL, and taken out).

    Returns
    -------
    corrected : numpy.ndarray
        Same shape as ``data``; float32 for float32 and integer input,
        float64 for float64, native byte order.
    model : numpy.ndarray
        Only with ``return_model=True``: the subtracted stripes, float32.

    Warns
    -----
    RuntimeWarning
        When lines had no usable pixel (their correction falls back to the
        line's reference pixels when ``dq`` marks some, else zero), and when
        no pixel at all is usable (data returned unchanged).

    Raises
    ------
    ValueError
        Bad shape, axis, or parameter value; ``out`` overlapping ``data``;
        or a correction the output dtype cannot hold, named in the message:
        a finite pixel minus its stripe model beyond the dtype's maximum
        (float32 values near 3.4e38 in a line whose level is far from the
        plane level: mask or DQ-flag them, or pass float64 data), a line
        level minus the plane level beyond float64, or with
        ``return_model`` a model beyond float32. Nothing is written then.
    TypeError
        Unsupported dtype of ``data``, ``mask``, ``dq`` or ``out``.

    Notes
    -----
    Levels are computed in float64 and are finite for every line with a
    usable pixel, whatever the values: huge and tiny ones are handled
    without overflow or underflow, see docs/algorithm.rst.

    Examples
    --------
    >>> import numpy as np
    >>> from bgdnoise import correct_array
    >>> rng = np.random.default_rng(0)
    >>> stripes = rng.normal(0, 0.05, (64, 1))
    >>> image = (1.0 + rng.normal(0, 0.01, (64, 128)) + stripes).astype(np.float32)
    >>> clean = correct_array(image, "rows")
    >>> bool(np.std(np.median(clean, axis=1)) < 0.2 * np.std(stripes))
    True
    """
    options = _options(options, kwargs)
    result, model, report = stages.correct_planes(
        data, axis, options, dq=dq, background=background, out=out, return_model=return_model
    )
    for message in report.warnings():
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return (result, model) if return_model else result
