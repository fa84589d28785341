"""Pictures of a correction, to check the work by eye: one PNG per file.

:func:`plot_correction` draws the image before and after (zscale, the same
limits for both), the source mask, the stripe profile removed from each
readout output and the line-averaged power spectrum before and after.
:func:`plot_files` does the same from a product and its corrected file
(``bgdnoise correct --plot``).

matplotlib is an optional dependency (``pip install 'bgdnoise[plot]'``): it
is imported only when a plot is drawn. Figures are built with
:class:`matplotlib.figure.Figure` on the Agg canvas, never through pyplot, so
plots can be drawn from several threads at once, and are written through
:func:`bgdnoise._atomic.write_atomically`: a plot that fails leaves no file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._atomic import write_atomically
from ._linestats import line_power_spectrum, stripe_profile
from .dqflags import DEFAULT_DQ_FLAGS

__all__ = ["line_power_spectrum", "plot_correction", "plot_files", "stripe_profile"]

# Public here (computed in _linestats.py, which needs no matplotlib).
stripe_profile.__module__ = line_power_spectrum.__module__ = __name__

INSTALL_HINT = "pip install 'bgdnoise[plot]'"
# Inches and dots per inch of the PNG: 1500 x 950 pixels.
_FIGSIZE = (15.0, 9.5)
_DPI = 100


def _matplotlib():
    """``(Figure, FigureCanvasAgg)``, or an ImportError that says how to get them."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            f"plotting needs matplotlib, which is not installed: {INSTALL_HINT}"
        ) from exc
    return Figure, FigureCanvasAgg


def _zscale(plane: np.ndarray) -> tuple[float, float]:
    """zscale limits of the finite pixels (0, 1 when there are none)."""
    from astropy.visualization import ZScaleInterval

    finite = plane[np.isfinite(plane)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = ZScaleInterval().get_limits(finite)
    return float(low), float(high)


def _first_plane(array, name: str, plane_shape: tuple, data_shape: tuple) -> np.ndarray | None:
    """Plane 0 of a mask or DQ given as one plane or with the data's shape."""
    if array is None:
        return None
    array = np.asarray(array)
    if array.shape not in (plane_shape, data_shape):
        raise ValueError(
            f"{name} has shape {array.shape}; it must be one plane {plane_shape} or the "
            f"data's shape {data_shape}."
        )
    return array[(0,) * (array.ndim - 2)]


def plot_correction(
    before: np.ndarray,
    after: np.ndarray,
    path: str | os.PathLike,
    *,
    axis: str,
    n_outputs: int = 1,
    mask: np.ndarray | None = None,
    title: str | None = None,
    dq: np.ndarray | None = None,
    dq_flags: int = DEFAULT_DQ_FLAGS,
    overwrite: bool = True,
) -> Path:
    """Write one PNG showing what a correction did.

    Five panels: the image before and after (zscale limits of the corrected
    image, used for both, so what was removed shows at the contrast of what
    is left), the source mask (or a note that there is none), the stripe
    profile removed from each output (:func:`stripe_profile`, against the
    line index) and the power spectrum of the line means before and after
    (:func:`line_power_spectrum` on unmasked pixels, log-log). For a cube
    (or a stack of planes) plane 0 is drawn and the title says so. Pixels
    flagged in ``dq`` (reference pixels, DO_NOT_USE, ...) are left blank and
    out of the profile and the spectrum, as they are out of the correction.

    Parameters
    ----------
    before, after : numpy.ndarray
        The data before and after the correction: one plane ``(ny, nx)`` or
        planes ``(..., ny, nx)`` of the same shape.
    path : str or os.PathLike
        The PNG to write.
    axis : {"rows", "columns"}
        Direction the stripes run (one level per row or per column).
    n_outputs : int
        Readout outputs along the line.
    mask : numpy.ndarray, optional
        bool plane (or planes of the data's shape, plane 0 is used): True on
        the sources kept out of the correction's statistics.
    title : str, optional
        Title of the figure; default the PNG's name without ``.png``.
    dq : numpy.ndarray, optional
        DQ plane (or planes of the data's shape, plane 0 is used).
    dq_flags : int
        DQ bits that leave a pixel out (the correction's default).
    overwrite : bool
        Replace an existing PNG (otherwise that is a FileExistsError).

    Returns
    -------
    Path
        The PNG written.

    Raises
    ------
    ImportError
        matplotlib is not installed (``pip install 'bgdnoise[plot]'``).
    ValueError
        Shapes that do not match, an unknown axis, a bad ``n_outputs``.
    FileExistsError, OutputWriteError
        The PNG exists and ``overwrite`` is False, or it could not be
        written; nothing is left behind.

    Examples
    --------
    >>> import bgdnoise
    >>> clean = bgdnoise.correct_array(sci, "rows", n_outputs=4)  # doctest: +SKIP
    >>> bgdnoise.plot_correction(
    ...     sci, clean, "check.png", axis="rows", n_outputs=4
    ... )  # doctest: +SKIP
    PosixPath('check.png')
    """
    Figure, FigureCanvasAgg = _matplotlib()
    path = Path(path)
    before_plane, after_plane, mask, n_planes = _planes_to_show(before, after, mask, dq, dq_flags)
    low, high = _zscale(after_plane)
    fig = Figure(figsize=_FIGSIZE, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 3, height_ratios=(1.15, 1.0))
    ny, nx = before_plane.shape
    aspect = "equal" if max(ny, nx) <= 3 * min(ny, nx) else "auto"
    shown = {"origin": "lower", "aspect": aspect}
    _draw_images(fig, grid, (before_plane, after_plane), (low, high), shown)
    _draw_mask(fig.add_subplot(grid[0, 2]), mask, shown)
    profile = stripe_profile(before_plane, after_plane, axis, n_outputs)
    _draw_profile(fig.add_subplot(grid[1, :2]), profile, axis, n_outputs)
    spectra = {
        when: line_power_spectrum(plane, axis, mask)
        for when, plane in (("before", before_plane), ("after", after_plane))
    }
    _draw_spectra(fig.add_subplot(grid[1, 2]), spectra, mask is not None)
    heading = title if title is not None else path.stem
    if n_planes > 1:
        heading += f" - plane 0 of {n_planes} shown"
    heading += f" - one level per {axis[:-1]}, {n_outputs} output(s)"
    fig.suptitle(heading)
    write_atomically([(path, lambda tmp: fig.savefig(tmp, format="png", dpi=_DPI))],
                     overwrite=overwrite)  # fmt: skip
    return path


def _planes_to_show(before, after, mask, dq, dq_flags):
    """Plane 0 of before and after (float64, flagged pixels NaN), the mask, the plane count."""
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape:
        raise ValueError(f"before has shape {before.shape} but after has {after.shape}.")
    if before.ndim < 2:
        raise ValueError(f"the data must have at least 2 dimensions, got shape {before.shape}.")
    plane_shape = before.shape[-2:]
    n_planes = int(np.prod(before.shape[:-2], dtype=np.int64))
    if n_planes == 0:
        raise ValueError(f"the data have no plane (shape {before.shape}).")
    first = (0,) * (before.ndim - 2)
    before_plane = before[first].astype(np.float64)
    after_plane = after[first].astype(np.float64)
    mask = _first_plane(mask, "mask", plane_shape, before.shape)
    dq = _first_plane(dq, "dq", plane_shape, before.shape)
    if dq is not None:
        flagged = (dq.astype(np.uint32) & np.uint32(dq_flags)) != 0
        before_plane[flagged] = np.nan
        after_plane[flagged] = np.nan
    return before_plane, after_plane, None if mask is None else mask.astype(bool), n_planes


def _draw_images(fig, grid, planes, limits, shown) -> None:
    """The planes before and after, with the same zscale limits."""
    low, high = limits
    for column, (when, plane) in enumerate(zip(("before", "after"), planes, strict=True)):
        ax = fig.add_subplot(grid[0, column])
        image = ax.imshow(plane, cmap="gray", vmin=low, vmax=high, **shown)
        ax.set_title(f"{when} (zscale {low:.4g} to {high:.4g})")
        ax.set_xlabel("x [pixel]")
        ax.set_ylabel("y [pixel]")
    fig.colorbar(image, ax=ax, shrink=0.8)


def _draw_mask(ax, mask, shown) -> None:
    """The source mask, or a note that there is none."""
    if mask is None:
        ax.text(0.5, 0.5, "no source mask\n(mask_sources=False or none given)",
                ha="center", va="center", transform=ax.transAxes)  # fmt: skip
        ax.set_title("source mask")
        ax.set_axis_off()
        return
    ax.imshow(mask, cmap="Greys", vmin=0, vmax=1, **shown)
    ax.set_title(f"source mask ({mask.mean():.1%} of the pixels)")
    ax.set_xlabel("x [pixel]")
    ax.set_ylabel("y [pixel]")


def _draw_profile(ax, profile, axis: str, n_outputs: int) -> None:
    """The stripe level removed from each output against the line index."""
    line_index = np.arange(profile.shape[1])
    for band, levels in enumerate(profile):
        ax.plot(line_index, levels, lw=0.7, label=f"output {band + 1}")
    if n_outputs > 1:
        ax.legend(loc="upper right", fontsize="small")
    ax.set_title("stripe profile removed, per output (mean of before - after over each band)")
    ax.set_xlabel(f"line index ({axis[:-1]})")
    ax.set_ylabel("removed level")


def _draw_spectra(ax, spectra: dict, masked: bool) -> None:
    """The power spectrum of the line means before and after, log-log."""
    for when, (frequency, power) in spectra.items():
        positive = power > 0
        ax.loglog(frequency[positive], power[positive], lw=0.7, label=when)
    ax.legend(loc="lower left", fontsize="small")
    ax.set_title("power spectrum of line means" + (" (unmasked)" if masked else ""))
    ax.set_xlabel("frequency [cycles per line]")
    ax.set_ylabel("power")


def plot_files(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    png_path: str | os.PathLike,
    mask: np.ndarray | str | os.PathLike | None = None,
    *,
    axis: str | None = None,
    n_outputs: int | None = None,
    overwrite: bool = True,
) -> Path:
    """Write the PNG of :func:`plot_correction` for a product and its corrected file.

    Reads the SCI extension of both files and the input's DQ (PIXELDQ of a
    ramp): flagged pixels are left out as the correction leaves them out.
    For a ramp (4D SCI) the first group difference (group 1 - group 0) of
    integration 0 is drawn: that is what the correction measured; group 0
    itself is never changed.

    Parameters
    ----------
    input_path, output_path : str or os.PathLike
        The product and its corrected file (``<stem>_bdgCorr.fits``).
    png_path : str or os.PathLike
        The PNG to write.
    mask : numpy.ndarray, str or os.PathLike, optional
        The source mask: a bool plane (``CorrectionResult.report.source_mask``)
        or a ``_bdgMask.fits`` file (nonzero SCI = source).
    axis : {"rows", "columns"}, optional
        Direction the stripes run; default read from the corrected file's
        header (:func:`bgdnoise.readout_geometry`).
    n_outputs : int, optional
        Readout outputs; default read from the header likewise.
    overwrite : bool
        Replace an existing PNG.

    Returns
    -------
    Path
        The PNG written.

    Raises
    ------
    ImportError
        matplotlib is not installed (``pip install 'bgdnoise[plot]'``).
    ValueError
        The files' SCI shapes differ, or the geometry cannot be read (pass
        ``axis`` and ``n_outputs``).
    """
    from astropy.io import fits

    _matplotlib()  # say what is missing before reading anything
    with fits.open(input_path) as hdul:
        names = {hdu.name for hdu in hdul}
    dq_name = next((n for n in ("DQ", "PIXELDQ") if n in names), None)
    # Memory-mapped where astropy can: only the plane drawn is read.
    before = fits.getdata(input_path, "SCI")
    after = fits.getdata(output_path, "SCI")
    dq = fits.getdata(input_path, dq_name) if dq_name else None
    if axis is None or n_outputs is None:
        from .instruments import readout_geometry

        geometry = readout_geometry(
            fits.getheader(output_path, 0), axis=axis or "auto", n_outputs=n_outputs or "auto"
        )
        axis, n_outputs = geometry.axis, geometry.n_outputs
    if isinstance(mask, (str, os.PathLike)):
        mask = fits.getdata(mask, "SCI") != 0
    title = Path(input_path).name
    if before.ndim == 4 and before.shape == after.shape and before.shape[1] >= 2:
        n_ints = before.shape[0]
        title += f" - integration 0 of {n_ints}, group 1 - group 0"
        before = before[0, 1].astype(np.float64) - before[0, 0]
        after = after[0, 1].astype(np.float64) - after[0, 0]
        dq = dq if dq is None or dq.ndim == 2 else None  # PIXELDQ is one plane
    return plot_correction(
        before, after, png_path, axis=axis, n_outputs=n_outputs, mask=mask, title=title,
        dq=dq, overwrite=overwrite,
    )  # fmt: skip
