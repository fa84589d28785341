"""What a correction did, as data: the report every stage adds to.

The file layer builds its result, header keywords and log from it, and
``correct_array`` its warnings; no code reads warning text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .background import Surface

__all__ = ["CorrectionReport", "make_report"]


@dataclass
class CorrectionReport:
    """Per plane, what the correction measured and decided.

    Arrays are per plane (flat over the leading axes of the data).

    Attributes
    ----------
    plane_level : numpy.ndarray
        float64: the median line level (the pedestal kept with
        ``keep_level``); NaN for a plane with no usable pixel.
    scale : numpy.ndarray
        float64: the plane's clipping dispersion (``scale="global"``), NaN
        where each line's own was used.
    masked_fraction : numpy.ndarray
        float64: fraction of the plane's pixels kept out of the statistics
        (masked, flagged, NaN, zero or clipped away never counted here:
        only what could not enter).
    fallback_groups : numpy.ndarray
        int64: line groups (band, parity, or read-time segment of a
        one-output line) that took the band fallback.
    empty_lines : numpy.ndarray
        int64: lines with no usable pixel (full-frame reference rows or
        columns excepted).
    reference_lines : numpy.ndarray
        int64: of those, lines corrected from their reference pixels.
    seconds : dict
        Wall time of each stage.
    stripe_excess_before, stripe_excess_after : numpy.ndarray
        float64: RMS over lines of the line mean on unmasked sky (around its
        median), divided by what white noise alone gives there; 1.0 is no
        striping left. NaN where it could not be measured.
    line_rms_before, line_rms_after : numpy.ndarray
        float64: the numerator of the stripe excess, in data units.
    background_method : str or None
        The background method used.
    source_mask : numpy.ndarray or None
        bool plane: the sources found (shared by the planes), when searched.
    surface : bgdnoise.background.Surface or None
        The fitted background's nodes, with ``background_method="model"``
        (:attr:`background` evaluates them), and the sky kept across the
        lines (:attr:`sky_across`).
    reference_rms : numpy.ndarray or None
        float64 ``(P,)``: RMS over the lines and groups of what the side reference
        pixels moved the line model by (``use_reference_pixels``; 0 where
        nothing moved), None when the scene stages did not run.
    mask_growth : int or None
        Pixels the mask of the compact sources was grown by around what was
        found (0 to 3: each ring of pixels is masked while its light would
        bias the lines more than its noise costs; docs/algorithm.rst); None
        where the scene stages did not search them.
    """

    plane_level: np.ndarray
    scale: np.ndarray
    masked_fraction: np.ndarray
    fallback_groups: np.ndarray
    empty_lines: np.ndarray
    reference_lines: np.ndarray
    seconds: dict[str, float] = field(default_factory=dict)
    stripe_excess_before: np.ndarray | None = None
    stripe_excess_after: np.ndarray | None = None
    line_rms_before: np.ndarray | None = None
    line_rms_after: np.ndarray | None = None
    background_method: str | None = None
    source_mask: np.ndarray | None = None
    surface: Surface | None = field(default=None, repr=False)
    reference_rms: np.ndarray | None = None
    mask_growth: int | None = None

    @property
    def background(self) -> np.ndarray | None:
        """float32 plane: the fitted background relative to the sky, or None.

        Evaluated from :attr:`surface` at each access (a few milliseconds for
        a full frame): a report does not hold a plane of the data's size.
        """
        return None if self.surface is None else self.surface.evaluate()

    @property
    def sky_across(self) -> np.ndarray | None:
        """float64 ``(n_lines,)``: the sky's shape across the lines kept as sky, or None.

        With ``background_method="model"`` and ``keep_sky_across``: what the
        stripes' spectrum could not explain (see docs/algorithm.rst), not
        subtracted; also part of :attr:`background`.
        """
        return None if self.surface is None else self.surface.across

    @property
    def n_planes(self) -> int:
        """Planes corrected (or not)."""
        return int(self.plane_level.size)

    @property
    def empty_planes(self) -> tuple[int, ...]:
        """Planes with no usable pixel: left unchanged."""
        return tuple(int(p) for p in np.flatnonzero(~np.isfinite(self.plane_level)))

    @property
    def uncorrected_lines(self) -> int:
        """Lines with no usable pixel that no reference pixel could correct."""
        return int(self.empty_lines.sum() - self.reference_lines.sum())

    def warnings(self) -> list[str]:
        """What a user should hear, one sentence each."""
        if len(self.empty_planes) == self.n_planes:
            return ["no usable pixel in data (all NaN, zero, masked or DQ-flagged): "
                    "returned unchanged."]  # fmt: skip
        messages = []
        if self.empty_planes:
            messages.append(
                f"{len(self.empty_planes)} of {self.n_planes} plane(s) had no usable pixel "
                "(all NaN, zero, masked or DQ-flagged): left unchanged."
            )
        n_empty = int(self.empty_lines.sum())
        if n_empty:
            n_ref = int(self.reference_lines.sum())
            messages.append(
                f"{n_empty} line(s) had no usable pixel: {n_ref} corrected from "
                f"their reference pixels, {n_empty - n_ref} left uncorrected."
            )
        return messages


def make_report(prepared, measured, resolved, seconds, extra=None) -> CorrectionReport:
    """The report of a correction, from what its stages produced.

    ``prepared``, ``measured`` and ``resolved`` are the outputs of the
    stages of :mod:`bgdnoise.stages`; ``extra`` holds the report fields of
    the scene and excess stages.
    """
    layout = prepared.layout
    usable = measured.counts.sum(axis=(1, 2))
    total = layout.n_lines * layout.length
    return CorrectionReport(
        plane_level=resolved.plane_level,
        scale=measured.scale,
        masked_fraction=1.0 - usable / total,
        fallback_groups=resolved.fallback.sum(axis=(1, 2)).astype(np.int64),
        empty_lines=resolved.empty_lines,
        reference_lines=resolved.reference_lines,
        seconds=seconds,
        **(extra or {}),
    )
