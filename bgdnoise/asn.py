"""Point a stage-2 association at the corrected files instead of the originals."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

__all__ = ["corrected_name", "rewrite_association"]

SUFFIX = "_bdgCorr"


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

    Parameters
    ----------
    asn_path : str or Path
        A jwst association JSON file.
    output : str or Path, optional
        Where to write the new association; default ``<stem>_bdgCorr.json``
        next to the input. The input is never modified.
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
        Not an association, or a counterpart is missing (the message lists
        them) and ``allow_missing`` is False.
    FileExistsError
        The output exists and ``overwrite`` is False.
    """
    asn_path = Path(asn_path)
    try:
        asn = json.loads(asn_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{asn_path} is not a readable association JSON file: {exc}") from exc
    if not isinstance(asn, dict) or not isinstance(asn.get("products"), list):
        raise ValueError(f"{asn_path} has no 'products' list: not a jwst association.")
    if output is None:
        output = asn_path.with_name(f"{asn_path.stem}_bdgCorr.json")
    output = Path(output)
    if output.is_dir():
        output = output / f"{asn_path.stem}_bdgCorr.json"
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass overwrite=True (--overwrite).")
    base = asn_path.parent
    out_dir = output.parent.resolve()
    missing: list[str] = []
    replaced = 0
    for product in asn["products"]:
        for member in product.get("members", []):
            expname = member.get("expname")
            if not expname:
                continue
            member_path = Path(expname)
            where = Path(search_dir) if search_dir is not None else (base / member_path).parent
            candidate = where / corrected_name(member_path.name)
            found = candidate.resolve() if candidate.is_file() else None
            if found is None:
                missing.append(expname)
                continue
            # Same directory as the new association: a bare name, as jwst writes them.
            member["expname"] = (
                found.name if found.parent == out_dir else os.path.relpath(found, out_dir)
            )
            replaced += 1
    if missing and not allow_missing:
        raise ValueError(
            f"{len(missing)} member(s) have no corrected counterpart ("
            + ", ".join(missing[:5])
            + (", ..." if len(missing) > 5 else "")
            + "); run bgdnoise correct on them first, or pass allow_missing=True "
            "(--allow-missing) to keep the originals."
        )
    fd, tmp = tempfile.mkstemp(prefix=f".{output.stem}.", suffix=".tmp", dir=output.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(asn, fh, indent=4)
            fh.write("\n")
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return output, replaced
