"""How a product records its 1/f correction: primary cards and HISTORY.

``S_BDGCOR`` ('COMPLETE' or 'SKIPPED'), ``BDGEMPTY`` (planes left
uncorrected), ``BDGDONE`` (corrected before, although this run skipped) and
jwst's ``S_CLNFNS``. Cards outside the datamodel schema travel in
``model.extra_fits`` and are written back untouched.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = [
    "QUALITY_KEYWORDS",
    "AlreadyCorrectedError",
    "BgdNoiseWarning",
    "check_markers",
    "primary_marker",
    "set_marker",
]

MARKER = "S_BDGCOR"
JWST_MARKER = "S_CLNFNS"
EMPTY_KEYWORD = "BDGEMPTY"
DONE_KEYWORD = "BDGDONE"


class BgdNoiseWarning(UserWarning):
    """Data that bgdnoise corrects, but where the user should know something."""


class AlreadyCorrectedError(ValueError):
    """The data carry bgdnoise's or jwst's 1/f correction marker."""


def primary_cards(model) -> list[list]:
    """The primary-header cards that the model carries outside its schema.

    Returned as plain lists: the ``ListNode`` wrappers that stdatamodels hands
    out cannot be serialised back by asdf once put in a new list.
    """
    try:
        header = model.extra_fits.PRIMARY.header
    except AttributeError:
        return []
    return [[_plain(value) for value in card] for card in header]


def _plain(value):
    """A card value without stdatamodels' node wrapper."""
    return getattr(value, "instance", value)


def primary_marker(model) -> tuple[bool, bool]:
    """(ours, jwst's) correction markers present in the model.

    Ours is ``S_BDGCOR = 'COMPLETE'``, or ``BDGDONE = T`` which a skipped run
    leaves on data corrected before (their ``S_BDGCOR`` then says SKIPPED).
    """
    ours = any(
        (card[0] == MARKER and str(card[1]).upper() == "COMPLETE")
        or (card[0] == DONE_KEYWORD and card[1] is True)
        for card in primary_cards(model)
    )
    jwst_done = str(model.meta.cal_step.clean_flicker_noise or "").upper() == "COMPLETE"
    return ours, jwst_done


def check_markers(model, force: bool) -> None:
    ours, jwst_done = primary_marker(model)
    if not (ours or jwst_done):
        return
    who = f"bgdnoise ({MARKER} = 'COMPLETE')" if ours else f"jwst ({JWST_MARKER} = 'COMPLETE')"
    if not force:
        raise AlreadyCorrectedError(
            f"the data were already corrected for 1/f noise by {who}; "
            "pass force=True (--force) to correct them again."
        )
    warnings.warn(f"correcting again data already corrected by {who}.", BgdNoiseWarning, 2)


#: The header cards saying how a correction went (:meth:`CorrectionResult.quality_cards`).
QUALITY_KEYWORDS = (
    "BDGMASKF", "BDGMGROW", "BDGBKG", "BDGNFALL", "BDGSKYX", "BDGREFS", "BDGSTRB", "BDGSTRA",
)  # fmt: skip


def set_marker(
    model, params: dict[str, Any], status: str = "COMPLETE", empty_planes: int | None = None,
    quality: list[list] | None = None,
) -> None:  # fmt: skip
    """Record the correction (or its skipping) in HISTORY and ``S_BDGCOR``.

    ``empty_planes`` (planes left unchanged for want of usable pixels) goes
    into ``BDGEMPTY`` when given; ``quality`` cards (:data:`QUALITY_KEYWORDS`),
    when given, replace all earlier ones, also those not written again.
    """
    from . import __version__

    text = ", ".join(f"{k}={v}" for k, v in params.items())
    what = "1/f stripes removed" if status == "COMPLETE" else f"1/f correction {status.lower()}"
    model.add_history_entry(
        f"bgdnoise {__version__}: {what} ({text})",
        software={"name": "bgdnoise", "version": __version__},
    )
    done_before = primary_marker(model)[0]
    replaced = (
        (MARKER, DONE_KEYWORD) if empty_planes is None else (MARKER, DONE_KEYWORD, EMPTY_KEYWORD)
    )
    quality = quality or []
    # A correction's cards replace every card of an earlier one, written or
    # not this time (an option that drops BDGSKYX must not leave the old one).
    replaced = replaced + (QUALITY_KEYWORDS if quality else ())
    replaced = replaced + tuple(card[0] for card in quality)
    cards = [c for c in primary_cards(model) if c[0] not in replaced]
    cards.append([MARKER, status, "bgdnoise 1/f stripe correction"])
    if done_before and status != "COMPLETE":  # the data stay corrected
        cards.append([DONE_KEYWORD, True, "data corrected by bgdnoise before"])
    if empty_planes is not None:
        cards.append([EMPTY_KEYWORD, empty_planes, "bgdnoise: planes with no usable pixel"])
    cards += [list(card) for card in quality]
    # extra_fits nodes are not created by assigning below them.
    extra = getattr(model, "extra_fits", None)
    if extra is None:
        model.extra_fits = {"PRIMARY": {"header": cards}}
    elif not hasattr(extra, "PRIMARY"):
        extra.PRIMARY = {"header": cards}
    else:
        extra.PRIMARY.header = cards
