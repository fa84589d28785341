"""Point a stage-2 association at the corrected files instead of the originals."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ._atomic import write_atomically

__all__ = ["CORRECTED_TYPES", "corrected_name", "rewrite_association"]

SUFFIX = "_bdgCorr"
#: Member types (``exptype``) that carry detector data to correct; the others
#: (source catalogues, segmentation maps, direct images) are kept as they are.
CORRECTED_TYPES = ("science", "background", "imprint", "selfcal")


def member_type(member: dict) -> str:
    """A member's ``exptype``, lower case; ``"science"`` when it has none.

    (jwst's association schemas require one, and the Step's ``load_asn``
    refuses an association without it. Here science is the safe side: the
    rewrite requires the member's corrected file instead of keeping the
    original unnoticed.)
    """
    return str(member.get("exptype", "science")).lower()


def corrected_name(expname: str) -> str:
    """The corrected counterpart's name: ``_bdgCorr`` appended to the stem.

    The one naming rule of ``correct_file``, the command line and the Step:
    ``x_rate.fits`` -> ``x_rate_bdgCorr.fits`` (a suffix replacement would
    give a time series' ``_rate`` and ``_rateints`` the same name).
    """
    stem = expname[:-5] if expname.lower().endswith(".fits") else expname
    return f"{stem}{SUFFIX}.fits"


def rewrite_association(
    asn_path: str | Path,
    output: str | Path | None = None,
    *,
    search_dir: str | Path | None = None,
    allow_missing: bool = False,
    overwrite: bool = False,
) -> tuple[Path, int]:
    """Replace each member ``expname`` by its corrected counterpart.

    Only members of the :data:`CORRECTED_TYPES` (a member without an
    ``exptype`` counts as science) are replaced, as the Step corrects only
    those; the others keep their file, named relative to the output.

    Parameters
    ----------
    asn_path : str or Path
        A jwst association JSON file.
    output : str or Path, optional
        Where to write the new association; default ``<stem>_bdgCorr.json``
        next to the input. The input is never modified, even with
        ``overwrite``. Member names are written relative to the output's
        directory, so they resolve from there.
    search_dir : str or Path, optional
        Where the corrected files are; default next to each member (relative
        members are relative to the association's directory).
    allow_missing : bool
        Keep members without a counterpart instead of failing.
    overwrite : bool
        Replace an existing output.

    Returns
    -------
    output : Path
        The new association file.
    replaced : int
        Number of members pointed at a corrected file.

    Raises
    ------
    ValueError
        Not an association, a malformed one (the message names the entry),
        the output would replace the input, or a counterpart is missing (the
        message lists them) and ``allow_missing`` is False.
    FileExistsError
        The output exists and ``overwrite`` is False.
    """
    asn_path = Path(asn_path)
    asn = _read_association(asn_path)
    output = Path(output) if output is not None else asn_path.with_name(
        f"{asn_path.stem}{SUFFIX}.json"
    )  # fmt: skip
    if output.is_dir():
        output = output / f"{asn_path.stem}{SUFFIX}.json"
    if output.resolve() == asn_path.resolve():
        raise ValueError(f"the output {output} is the input association; choose another name.")
    if not output.parent.is_dir():
        raise FileNotFoundError(f"output directory {output.parent} does not exist.")
    base = asn_path.parent.resolve()
    out_dir = output.parent.resolve()
    missing: list[str] = []
    replaced = 0
    for member in _members(asn, asn_path):
        expname = member["expname"]
        original = base / expname  # absolute names stay absolute
        where = Path(search_dir).resolve() if search_dir is not None else original.parent
        candidate = where / corrected_name(original.name)
        if member_type(member) not in CORRECTED_TYPES:
            if not Path(expname).is_absolute():  # kept, resolving from the new place
                member["expname"] = _relative_to(original, out_dir)
        elif candidate.is_file():
            member["expname"] = _relative_to(candidate, out_dir)
            replaced += 1
        else:
            missing.append(expname)
            if not Path(expname).is_absolute():  # keep it resolving from the new place
                member["expname"] = _relative_to(original, out_dir)
    if missing and not allow_missing:
        raise ValueError(
            f"{len(missing)} member(s) have no corrected counterpart ("
            + ", ".join(missing[:5])
            + (", ..." if len(missing) > 5 else "")
            + "); run bgdnoise correct on them first, or pass allow_missing=True "
            "(--allow-missing) to keep the originals."
        )
    text = json.dumps(asn, indent=4) + "\n"
    write_atomically([(output, lambda tmp: tmp.write_text(text))], overwrite=overwrite)
    return output, replaced


def _relative_to(path: Path, folder: Path) -> str:
    """A member name as jwst writes them: bare in the same folder, else relative."""
    return path.name if path.parent == folder else os.path.relpath(path, folder)


def _read_association(asn_path: Path) -> dict:
    try:
        asn = json.loads(asn_path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{asn_path}: no such file.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{asn_path} is not a readable association JSON file: {exc}") from exc
    if not isinstance(asn, dict) or not isinstance(asn.get("products"), list):
        raise ValueError(f"{asn_path} has no 'products' list: not a jwst association.")
    return asn


def _members(asn: dict, asn_path: Path) -> list[dict]:
    """Every member with an ``expname``; a malformed structure is named exactly."""
    members = []
    for i, product in enumerate(asn["products"]):
        where = f"{asn_path.name}: products[{i}]"
        if not isinstance(product, dict):
            raise ValueError(f"{where} is a {type(product).__name__}, not an object.")
        listed = product.get("members", [])
        if not isinstance(listed, list):
            raise ValueError(f"{where}.members is a {type(listed).__name__}, not a list.")
        for j, member in enumerate(listed):
            if not isinstance(member, dict):
                raise ValueError(
                    f"{where}.members[{j}] is a {type(member).__name__}, not an object."
                )
            expname = member.get("expname")
            if not isinstance(expname, str) or not expname.strip():
                raise ValueError(
                    f"{where}.members[{j}] has no expname file name (got {expname!r})."
                )
            members.append(member)
    return members
