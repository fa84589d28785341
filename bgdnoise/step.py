"""``BgdNoiseStep``: bgdnoise as a jwst pipeline step (imports jwst).

Run it on a file with ``strun bgdnoise jw..._rate.fits`` (or
``strun bgdnoise.BgdNoiseStep ...``); offline, add ``--disable-crds-steppars``.
"""

from __future__ import annotations

import logging

from jwst.stpipe import Step

from .io import correct_model

__all__ = ["BgdNoiseStep"]

log = logging.getLogger(__name__)


class BgdNoiseStep(Step):
    """Remove 1/f stripes (banding) with bgdnoise's clipped line medians."""

    class_alias = "bgdnoise"

    spec = """
        axis = option('auto', 'rows', 'columns', default='auto')  # Stripe direction.
        n_outputs = string(default='auto')  # 'auto' (NOUTPUTS) or a number of outputs.
        sigma = float(default=3.0)  # Clipping half-width.
        sigma_lower = float(default=None)  # Lower half-width (default sigma).
        sigma_upper = float(default=None)  # Upper half-width (default sigma).
        maxiters = integer(default=10)  # Maximum clipping iterations.
        scale = option('global', 'line', default='global')  # Clipping scale.
        odd_even = boolean(default=False)  # Separate even/odd column levels.
        keep_level = boolean(default=True)  # Keep the sky pedestal.
        min_fraction = float(default=0.2)  # Band fallback threshold.
        user_mask = string(default=None)  # FITS file: True/1 = keep out of the statistics.
        force = boolean(default=False)  # Correct data already marked as corrected.
        skip = boolean(default=False)  # Skip the step.
        suffix = string(default='bdgCorr')  # Output suffix (stpipe replaces _rate etc.).
    """

    def process(self, input_data):
        """Correct a rate, rateints, imaging cal or ramp product.

        Parameters
        ----------
        input_data : str or datamodel
            The product.

        Returns
        -------
        datamodel
            The corrected product (a copy when a model was passed).
        """
        output_model = self.prepare_output(input_data)
        n_outputs = self.n_outputs if self.n_outputs == "auto" else int(self.n_outputs)
        result = correct_model(
            output_model,
            axis=self.axis,
            n_outputs=n_outputs,
            mask=self.user_mask,
            force=self.force,
            sigma=self.sigma,
            sigma_lower=self.sigma_lower,
            sigma_upper=self.sigma_upper,
            maxiters=self.maxiters,
            scale=self.scale,
            odd_even=self.odd_even,
            keep_level=self.keep_level,
            min_fraction=self.min_fraction,
        )
        log.info(result.summary())
        return output_model
