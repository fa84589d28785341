"""``CorrectionResult``: what a correction of a product did, for people and programs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _nanstats
from .instruments import ReadoutGeometry
from .report import CorrectionReport

__all__ = ["CorrectionResult"]


@dataclass
class CorrectionResult:
    """What a correction did.

    Attributes
    ----------
    input, output : str
        Paths (output is None for an in-memory correction).
    geometry : ReadoutGeometry
        Axis and outputs used.
    rms_before, rms_after : numpy.ndarray
        Per plane (leading shape of the data): RMS over lines of the line
        mean on unmasked sky (within the clip's bounds around each band's
        level) around its median,
        before and after, in data units. It includes the white-noise floor,
        so it does not drop to zero (``stripe_excess`` divides by that).
    empty_lines : int
        Lines with no usable pixel.
    empty_planes : tuple of int
        Planes (flat index over the leading axes) with no usable pixel at
        all: left unchanged. When every plane is empty nothing was corrected
        and the file says ``S_BDGCOR = 'SKIPPED'``.
    n_planes : int
        Planes in the data.
    seconds : float
        Wall time of the whole call.
    model_output : str or None
        The stripe model file, with ``save_model=True``.
    extra_outputs : dict
        Files written beside the product: ``{"model" | "mask" | "background": path}``.
    params : dict
        Axis, outputs and the options that differ from their defaults.
    report : CorrectionReport or None
        Per plane: levels, fallbacks, masked fraction, timings of the stages.
    """

    input: str | None
    output: str | None
    geometry: ReadoutGeometry
    rms_before: np.ndarray
    rms_after: np.ndarray
    empty_lines: int
    empty_planes: tuple[int, ...] = ()
    n_planes: int = 1
    seconds: float = 0.0
    model_output: str | None = None
    extra_outputs: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    report: CorrectionReport | None = None

    @classmethod
    def from_report(cls, geometry, report: CorrectionReport, before, after) -> CorrectionResult:
        """The result of an in-memory correction, from the stages' report."""
        return cls(
            None, None, geometry, before, after, int(report.empty_lines.sum()),
            empty_planes=report.empty_planes, n_planes=report.n_planes, report=report,
        )  # fmt: skip

    @property
    def stripe_excess(self) -> tuple[float, float]:
        """Mean stripe excess over the planes, before and after (NaN if unknown).

        Line-mean RMS on unmasked sky over what white noise alone gives:
        1.0 is no striping; after a correction values a little below 1 are
        usual (each line's level also takes out part of its own noise).
        """
        report = self.report
        if report is None or report.stripe_excess_before is None:
            return float("nan"), float("nan")
        # NaN where no plane has one: unknown
        return (_nanstats.nanmean(report.stripe_excess_before),
                _nanstats.nanmean(report.stripe_excess_after))  # fmt: skip

    def quality_cards(self) -> list[list]:
        """Header cards saying how the correction went (8-character keywords)."""
        report = self.report
        if report is None:
            return []
        before, after = self.stripe_excess
        method = report.background_method or "NONE"
        cards = [
            ["BDGMASKF", round(float(np.mean(report.masked_fraction)), 4),
             "bgdnoise: fraction of pixels kept out of fits"],
            ["BDGBKG", method.upper(), "bgdnoise: background method"],
            ["BDGNFALL", int(report.fallback_groups.sum()),
             "bgdnoise: line bands that fell back to line level"],
        ]  # fmt: skip
        if report.mask_growth is not None:  # where compact sources were sought
            cards.append(["BDGMGROW", int(report.mask_growth),
                          "bgdnoise: pixels source mask grown by"])  # fmt: skip
        # With the model background and the test on (else the card would say "none" untested).
        if report.surface is not None and self.params.get("keep_sky_across", True):
            kept = report.sky_across
            rms = 0.0 if kept is None else float(np.sqrt(np.mean(kept**2)))
            cards.append(["BDGSKYX", float(f"{rms:.4g}"),
                          "bgdnoise: RMS of sky kept across lines"])  # fmt: skip
        # With the scene stages and the option on (else "none" untested, as above).
        if report.reference_rms is not None and self.params.get("use_reference_pixels", True):
            rms = float(np.sqrt(np.mean(report.reference_rms**2)))
            cards.append(["BDGREFS", float(f"{rms:.4g}"),
                          "bgdnoise: RMS of shift from reference pixels"])  # fmt: skip
        for key, value, when in (("BDGSTRB", before, "before"), ("BDGSTRA", after, "after")):
            if np.isfinite(value):
                cards.append([key, round(value, 3), f"bgdnoise: stripe excess {when} (1=white)"])
        return cards

    @property
    def status(self) -> str:
        """``"COMPLETE"``, or ``"SKIPPED"`` when no plane had a usable pixel."""
        return "SKIPPED" if len(self.empty_planes) == self.n_planes else "COMPLETE"

    def summary(self) -> str:
        """One line: file, axis, outputs, stripe RMS before -> after, seconds."""
        name = Path(self.input).name if self.input else "<model>"
        if self.empty_planes:
            return (
                f"{name}: NOT CORRECTED in {len(self.empty_planes)} of {self.n_planes} "
                f"plane(s) (no usable pixel: all NaN, zero, masked or DQ-flagged); "
                f"{self.geometry.axis}, {self.geometry.n_outputs} output(s), {self.seconds:.2f} s"
            )
        before, after = self.stripe_excess
        excess = f", stripe excess {before:.3g} -> {after:.3g}" if np.isfinite(after) else ""
        masked = ""
        if self.report is not None:
            masked = f", {100 * float(np.mean(self.report.masked_fraction)):.0f}% masked"
            if self.report.sky_across is not None:
                kept = self.report.sky_across
                masked += f", sky across the lines kept (RMS {np.sqrt(np.mean(kept**2)):.3g})"
        return (
            f"{name}: {self.geometry.axis}, {self.geometry.n_outputs} output(s), stripe RMS "
            f"{np.nanmean(self.rms_before):.4g} -> {np.nanmean(self.rms_after):.4g}"
            f"{excess}{masked}, {self.seconds:.2f} s"
        )
