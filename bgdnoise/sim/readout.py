"""How a HAWAII-2RG frame is clocked out, and the noise it picks up on the way.

:class:`Readout` holds the geometry and the timing (which pixel is read
when), :class:`NoiseModel` the amplitudes of the noise components. Both are
plain frozen dataclasses: change a field with :func:`dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NoiseModel", "Readout", "readout_for"]


@dataclass(frozen=True)
class NoiseModel:
    """Amplitudes of the simulated noise.

    The readout terms follow Rauscher's HxRG noise model (NGHXRG) and its
    defaults: standard deviations, in electrons, of time streams that run
    through every frame of an integration; the slope fit turns them into
    DN/s in the rate.

    Attributes
    ----------
    read_noise : float
        White read noise per pixel and frame (e-).
    common_pink : float
        The 1/f stream shared by all outputs at the same instant (e-).
    output_pink : float
        Each output's own, uncorrelated 1/f stream (e-).
    acn : float
        Alternating column noise: a 1/f stream per output whose sign
        alternates from one pixel clock to the next (e-).
    output_offset : float
        RMS of a constant offset per output in the rate (DN/s), drawn per
        integration (what bias drifts and the reference-pixel step leave).
    odd_even_offset : float
        RMS of a constant +/- offset between even and odd pixel clocks of
        each output in the rate (DN/s), drawn per integration.
    gain : float
        e- per DN.
    photon_noise : bool
        Add the shot noise of the scene (its Gaussian limit) to the white
        noise of the rate.
    pink_exponent : float
        Power per frequency falls as ``f ** -pink_exponent``.
    """

    read_noise: float = 4.0
    common_pink: float = 3.0
    output_pink: float = 1.0
    acn: float = 0.5
    output_offset: float = 0.01
    odd_even_offset: float = 0.002
    gain: float = 2.0
    photon_noise: bool = True
    pink_exponent: float = 1.0


@dataclass(frozen=True)
class Readout:
    """Geometry and timing of one detector readout.

    Attributes
    ----------
    fastaxis, slowaxis : int
        Signed readout axes in the DMS frame, as the FITS keywords FASTAXIS
        and SLOWAXIS: 1 is x (numpy axis 1), 2 is y; the sign is the read
        direction. ``|fastaxis| == 1``: lines are rows (NIRCam);
        ``|fastaxis| == 2``: lines are columns (NIRISS, NIRSpec, FGS).
    n_outputs : int
        Outputs read in parallel, each a band of equal width along the
        line. Output ``k`` reads in direction ``sign(fastaxis)`` for even
        ``k`` and the opposite for odd ``k``.
    ngroups, nframes, groupgap : int
        The ramp: ``ngroups`` groups of ``nframes`` averaged frames, with
        ``groupgap`` frames dropped between groups.
    pixel_time : float
        Seconds per pixel clock (10 us).
    line_overhead : int
        Pixel clocks of overhead per line on each output (12).
    frame_overhead_lines : int or None
        Lines' worth of clocks of overhead per frame; default 1 with
        several outputs, 2 with one (what the JWST frame times give).
    """

    fastaxis: int = 1
    slowaxis: int = -2
    n_outputs: int = 4
    ngroups: int = 5
    nframes: int = 1
    groupgap: int = 0
    pixel_time: float = 10e-6
    line_overhead: int = 12
    frame_overhead_lines: int | None = None

    def __post_init__(self):
        axes = {abs(self.fastaxis), abs(self.slowaxis)}
        if axes != {1, 2}:
            raise ValueError(
                f"fastaxis and slowaxis must be +-1 and +-2 (one each), got "
                f"{self.fastaxis} and {self.slowaxis}."
            )
        if self.n_outputs < 1 or self.ngroups < 2 or self.nframes < 1 or self.groupgap < 0:
            raise ValueError(
                "need n_outputs >= 1, ngroups >= 2, nframes >= 1 and groupgap >= 0, got "
                f"{self.n_outputs}, {self.ngroups}, {self.nframes}, {self.groupgap}."
            )

    @classmethod
    def for_axis(cls, axis: str = "rows", n_outputs: int = 4, **fields) -> Readout:
        """A readout with lines along ``axis``, with the directions of a real detector.

        ``"rows"``: FASTAXIS=1, SLOWAXIS=-2 (NIRCam NRCA2, NRCB1);
        ``"columns"``: FASTAXIS=-2, SLOWAXIS=-1 (NIRISS, NIRSpec NRS2).
        Other ``fields`` (``ngroups``, ...) go to the constructor.
        """
        if axis not in ("rows", "columns"):
            raise ValueError(f"axis must be 'rows' or 'columns', got {axis!r}.")
        fast, slow = (1, -2) if axis == "rows" else (-2, -1)
        return cls(fast, slow, n_outputs, **fields)

    @property
    def axis(self) -> str:
        """``"rows"`` or ``"columns"``: the direction the stripes run."""
        return "rows" if abs(self.fastaxis) == 1 else "columns"

    @property
    def overhead_lines(self) -> int:
        """Lines' worth of overhead clocks per frame."""
        if self.frame_overhead_lines is not None:
            return self.frame_overhead_lines
        return 1 if self.n_outputs > 1 else 2

    def line_geometry(self, shape: tuple[int, int]) -> tuple[int, int]:
        """``(n_lines, length)`` of a ``(ny, nx)`` image in this readout."""
        ny, nx = shape
        n_lines, length = (ny, nx) if self.axis == "rows" else (nx, ny)
        if length % self.n_outputs:
            raise ValueError(
                f"a line of {length} pixels does not split into {self.n_outputs} outputs."
            )
        return n_lines, length

    def frame_clocks(self, shape: tuple[int, int]) -> int:
        """Pixel clocks per frame on each output, overheads included."""
        n_lines, length = self.line_geometry(shape)
        return (n_lines + self.overhead_lines) * (length // self.n_outputs + self.line_overhead)

    def frame_time(self, shape: tuple[int, int]) -> float:
        """Seconds per frame (TFRAME): 10.737 s for a 4-output full frame."""
        return self.frame_clocks(shape) * self.pixel_time

    @property
    def n_frames(self) -> int:
        """Frames read in one integration, dropped ones included."""
        return self.ngroups * (self.nframes + self.groupgap) - self.groupgap

    def frame_weights(self, shape: tuple[int, int]) -> np.ndarray:
        """Weight of each frame in the least-squares slope, per second.

        The rate of a pixel is ``sum(weights * frames)``: the ordinary
        least-squares slope through the group means against the group
        times. Dropped frames weigh 0; the weights sum to 0.
        """
        period = self.nframes + self.groupgap
        times = np.arange(1, self.n_frames + 1) * self.frame_time(shape)
        group_times = np.array(
            [times[g * period : g * period + self.nframes].mean() for g in range(self.ngroups)]
        )
        centred = group_times - group_times.mean()
        slope = centred / np.sum(centred**2)
        weights = np.zeros(self.n_frames)
        for g in range(self.ngroups):
            weights[g * period : g * period + self.nframes] = slope[g] / self.nframes
        return weights

    def read_order(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """When each pixel is read, in the readout frame ``(n_lines, length)``.

        Returns
        -------
        clock : numpy.ndarray
            ``(n_lines, length)`` int64: the pixel clock within the frame
            at which each pixel is read (the same on every output).
        position : numpy.ndarray
            ``(length,)`` int64: the index of each pixel in its output's
            read order (its parity is the column parity of the readout).
        """
        n_lines, length = self.line_geometry(shape)
        width = length // self.n_outputs
        x = np.arange(length)
        band, offset = np.divmod(x, width)
        forward = np.where(band % 2 == 0, 1, -1) * np.sign(self.fastaxis) > 0
        position = np.where(forward, offset, width - 1 - offset)
        lines = np.arange(n_lines)
        if self.slowaxis < 0:
            lines = lines[::-1]
        clock = lines[:, None] * (width + self.line_overhead) + position[None, :]
        return clock, position


def readout_for(header, *, ngroups: int | None = None) -> Readout:
    """The :class:`Readout` a product header describes.

    Parameters
    ----------
    header : astropy.io.fits.Header or mapping
        A primary header (or its keywords): FASTAXIS, SLOWAXIS, NOUTPUTS,
        NGROUPS, NFRAMES, GROUPGAP; INSTRUME and DETECTOR fill in missing
        axes from :data:`bgdnoise.instruments.DETECTORS`.
    ngroups : int, optional
        Override NGROUPS (fewer groups simulate faster).

    Returns
    -------
    Readout
    """
    from ..instruments import readout_geometry

    geometry = readout_geometry(header)
    if geometry.instrument == "MIRI":
        raise ValueError("MIRI's detectors are not read like a HAWAII-2RG; not simulated.")

    def number(key, default):
        value = header.get(key)
        return int(value) if value not in (None, "") else default

    return Readout(
        fastaxis=geometry.fastaxis,
        slowaxis=geometry.slowaxis,
        n_outputs=geometry.n_outputs,
        ngroups=ngroups or max(2, number("NGROUPS", 5)),
        nframes=number("NFRAMES", 1),
        groupgap=number("GROUPGAP", 0),
    )
