"""``BgdNoiseStep``: bgdnoise as a jwst pipeline step (imports jwst).

Run it on a file with ``strun bgdnoise jw..._rate.fits`` (or
``strun bgdnoise.BgdNoiseStep ...``); offline, add ``--disable-crds-steppars``.
It takes a file, a datamodel, a ``ModelContainer`` or an association, and
names what it saves ``<input stem>_bdgCorr.fits`` (see docs/step.rst).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

from jwst.stpipe import Step

from ._files import EXTRA_SUFFIXES, check_fits, scene_plane, scene_plane_model
from .asn import CORRECTED_TYPES, member_type
from .io import correct_model
from .markers import JWST_MARKER, MARKER, primary_marker, set_marker
from .options import from_step, step_spec

__all__ = ["BgdNoiseStep"]

log = logging.getLogger(__name__)

# Association members that are detector images to correct; others (source
# catalogues, segmentation maps, direct images) are left alone.
_MEMBER_TYPES = CORRECTED_TYPES


class BgdNoiseStep(Step):
    """Remove 1/f stripes (banding) with bgdnoise's clipped line medians."""

    class_alias = "bgdnoise"

    # Built from the one list of options (bgdnoise.options), plus stpipe's own.
    spec = "\n".join(
        [
            step_spec(),
            "skip = boolean(default=False)  # Skip the step.",
            "suffix = string(default='bdgCorr')  # Output suffix, appended to the input stem.",
        ]
    )

    @classmethod
    def get_stpipe_loggers(cls):
        """The loggers stpipe configures: jwst's and bgdnoise's own."""
        return (*super().get_stpipe_loggers(), "bgdnoise")

    @classmethod
    def _get_crds_parameters(cls, dataset):
        """jwst's lookup, which also works on a FITS product without an ASDF extension.

        jwst reads a file's metadata from its ASDF extension, which
        stdatamodels writes but a product made with astropy alone (as
        :func:`bgdnoise.sim.write_product` writes) lacks: ``Step.call`` on
        such a file raised a KeyError before the step ran. Its datamodel,
        read from the FITS cards, has the same parameters.

        Parameters
        ----------
        dataset : str, Path, datamodel, list or ModelContainer
            The step's input.

        Returns
        -------
        tuple
            ``(parameters, "jwst")``, as jwst's.
        """
        try:
            return super()._get_crds_parameters(dataset)
        except KeyError:
            if not _fits_without_asdf(dataset):
                raise
            from stdatamodels.jwst import datamodels

            with datamodels.open(dataset) as model:
                return model.get_crds_parameters(), "jwst"

    @staticmethod
    def remove_suffix(name):
        """Keep the input's suffix: ``x_rate`` -> ``x_rate_bdgCorr``.

        jwst steps replace a known suffix, which would give a time series'
        ``_rate`` and ``_rateints`` the same output name.
        """
        return name, "_"

    def run(self, *args):
        """Run the step (see :meth:`process`), with bgdnoise's log configured."""
        with _lend_stpipe_handlers():
            return super().run(*args)

    def process(self, input_data):
        """Correct a product, or every member of a container or association.

        Parameters
        ----------
        input_data : str, Path, datamodel, list, ModelContainer
            A ``_rate``, ``_rateints``, imaging ``_cal`` or ``_ramp`` file or
            model; a list or ``ModelContainer`` of them; or an association
            JSON file, of which every science, background, imprint and
            selfcal member of every product is corrected.

        Returns
        -------
        datamodel or ModelContainer
            The corrected product(s): copies when models were passed to a
            standalone step. A product already marked as corrected (by
            bgdnoise or by jwst's ``clean_flicker_noise``) comes back
            unchanged with ``S_BDGCOR = 'SKIPPED'``, unless ``force``.
        """
        from jwst.datamodels import ModelContainer

        if isinstance(input_data, (str, Path)) and str(input_data).lower().endswith(".json"):
            output = self._open_association(input_data)
        else:
            if isinstance(input_data, (str, Path)):
                # bgdnoise's messages for a missing or non-FITS file (as the
                # command line gives), not astropy's bare OSError
                check_fits(Path(input_data))
            output = self.prepare_output(input_data)
        models = output if isinstance(output, ModelContainer) else [output]
        for model in models:
            self._correct_one(model)
        return output

    def save_model(self, model, suffix=None, idx=None, output_file=None, force=False, **components):
        """Save as stpipe does, but name each container member after its input.

        Without ``output_file``, the members of a container are saved as
        ``<member stem>_bdgCorr.fits`` instead of stpipe's
        ``<first input stem>_<index>_bdgCorr.fits``.
        """
        from jwst.datamodels import ModelContainer

        by_member = isinstance(model, ModelContainer) and not (
            output_file or self.output_file or self.output_use_model
        )
        if not by_member:
            return super().save_model(
                model, suffix=suffix, idx=idx, output_file=output_file, force=force, **components
            )
        if not force and not self.save_results:
            return None
        names = [m.meta.filename for m in model]
        if None in names or len(set(names)) < len(names):
            log.warning("container members have no distinct file names: saving them by index.")
            return super().save_model(model, suffix=suffix, idx=idx, force=force, **components)
        save = super().save_model
        return [
            save(member, suffix=suffix, output_file=name, force=True, **components)
            for member, name in zip(model, names, strict=True)
        ]

    # ----------------------------------------------------------------------
    def _options(self) -> dict:
        return from_step(self)

    def _correct_one(self, model) -> None:
        """Correct ``model`` in place, or mark it SKIPPED when already corrected."""
        name = model.meta.filename or "<model>"
        ours, jwst_done = primary_marker(model)
        if (ours or jwst_done) and not self.force:
            who = (
                f"bgdnoise ({MARKER} = 'COMPLETE')"
                if ours
                else f"jwst clean_flicker_noise ({JWST_MARKER} = 'COMPLETE')"
            )
            log.warning(
                "%s: already corrected for 1/f noise by %s; step skipped for it "
                "(force=True, --force, corrects again).",
                name,
                who,
            )
            set_marker(model, {"already_corrected_by": who, "force": False}, status="SKIPPED")
            return
        options = self._options()
        save = {"mask": options.pop("save_mask"), "background": options.pop("save_background")}
        result = correct_model(model, **options)
        result.input = name
        log.info(result.summary())
        for what, wanted in save.items():
            self._save_scene_plane(model, result, what, wanted)

    def _save_scene_plane(self, model, result, what: str, wanted: bool) -> None:
        """Write the source mask or background beside the product (as jwst's save_mask)."""
        if not wanted:
            return
        plane, why_not = scene_plane(result.report, what)
        if plane is None:
            log.warning(why_not)
            return
        extra = scene_plane_model(model, plane, what)
        suffix = EXTRA_SUFFIXES[what].lstrip("_")
        self.save_model(extra, suffix=suffix, force=True)
        extra.close()

    def _open_association(self, path):
        """Every member of every product that the Step corrects, once each, in a ModelContainer.

        Members of :data:`bgdnoise.asn.CORRECTED_TYPES` (by
        :func:`bgdnoise.asn.member_type`, as ``bgdnoise asn`` reads them);
        catalogues and direct images are left out. ``load_asn`` refuses an
        association with a member without ``exptype`` (jwst's schemas
        require it).

        (``ModelContainer(asn)`` would open the first product only, and a
        stage-2 association has one product per exposure.)
        """
        from jwst.associations import AssociationNotValidError, load_asn
        from jwst.datamodels import ModelContainer
        from stdatamodels.jwst import datamodels

        path = Path(self.make_input_path(str(path)))
        try:
            with path.open() as fh:
                asn = load_asn(fh)
        except AssociationNotValidError as exc:
            raise ValueError(f"{path} is not a readable jwst association: {exc}") from exc
        container = ModelContainer()
        seen = set()
        try:
            for product in asn["products"]:
                for member in product["members"]:
                    exptype = member_type(member)
                    member_path = path.parent / member["expname"]
                    if exptype not in _MEMBER_TYPES or member_path.resolve() in seen:
                        continue
                    seen.add(member_path.resolve())
                    model = datamodels.open(str(member_path))
                    model.meta.asn.exptype = member["exptype"]  # load_asn requires it
                    model.meta.asn.table_name = path.name
                    container.append(model)
        except BaseException:
            container.close()
            raise
        if not len(container):
            raise ValueError(
                f"{path} has no {', '.join(_MEMBER_TYPES)} member: nothing to correct."
            )
        container.asn_table = dict(asn)
        container.asn_table_name = path.name
        container.asn_file_path = str(path)
        container.asn_pool_name = asn.get("asn_pool")
        return container


def _fits_without_asdf(dataset) -> bool:
    """Whether ``dataset`` names a FITS file that has no ASDF extension."""
    if not isinstance(dataset, (str, Path)) or not Path(dataset).is_file():
        return False
    from astropy.io import fits

    try:
        with fits.open(dataset) as hdul:
            return "ASDF" not in hdul
    except (OSError, ValueError):  # not FITS: jwst's error stands
        return False


@contextmanager
def _lend_stpipe_handlers():
    """Give the ``bgdnoise`` logger the handlers of stpipe's active log configuration.

    Standalone (``strun bgdnoise``, ``BgdNoiseStep.call``), stpipe configures
    the loggers of :meth:`BgdNoiseStep.get_stpipe_loggers`, ``bgdnoise``
    included, and this does nothing. As a pre- or post-hook in a jwst
    pipeline, stpipe has configured the pipeline's loggers only: without this
    the summary line would not be shown, nor kept in the pipeline's log.
    """
    try:
        from stpipe._log import LogConfig
    except ImportError:  # pragma: no cover - stpipe reorganised
        yield
        return
    applied = LogConfig.applied
    logger = logging.getLogger("bgdnoise")
    if applied is None or _reaches(logger, applied.handlers):
        yield
        return
    level = logger.level
    for handler in applied.handlers:
        logger.addHandler(handler)
    if applied.level != logging.NOTSET:
        logger.setLevel(applied.level)
    try:
        yield
    finally:
        for handler in applied.handlers:
            logger.removeHandler(handler)
        logger.setLevel(level)


def _reaches(logger: logging.Logger, handlers) -> bool:
    """Whether a record of ``logger`` already goes to one of ``handlers``."""
    current = logger
    while current is not None:
        if any(handler in current.handlers for handler in handlers):
            return True
        if not current.propagate:
            return False
        current = current.parent
    return False
