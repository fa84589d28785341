"""bgdnoise: fast removal of 1/f stripes (banding) from JWST detector images.

The public array API is :func:`correct_array` (and the estimator behind it,
:func:`measure_levels`). Importing the package compiles nothing and imports
neither jwst nor stdatamodels.
"""

from importlib.metadata import PackageNotFoundError, version

# First: gives numba a writable cache directory before any module defines the kernels.
from . import _numba_cache  # noqa: F401
from .core import (
    DEFAULT_DQ_FLAGS,
    DO_NOT_USE,
    MSA_FAILED_OPEN,
    NON_SCIENCE,
    REFERENCE_PIXEL,
    LineLevels,
    correct_array,
    measure_levels,
)
from .options import CorrectionOptions

try:
    __version__ = version("bgdnoise")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

# Heavier parts load on first use: the file layer and the jwst Step import
# stdatamodels/jwst, which ``import bgdnoise`` must not.
_LAZY = {
    "correct_file": "bgdnoise.io",
    "correct_model": "bgdnoise.io",
    "CorrectionResult": "bgdnoise.io",
    "AlreadyCorrectedError": "bgdnoise.io",
    "BgdNoiseWarning": "bgdnoise.io",
    "rewrite_association": "bgdnoise.asn",
    "readout_geometry": "bgdnoise.instruments",
    "ReadoutGeometry": "bgdnoise.instruments",
    "BgdNoiseStep": "bgdnoise.step",
    "CorrectionReport": "bgdnoise.report",
    "correct_planes": "bgdnoise.stages",
    "source_mask": "bgdnoise.sources",
    "plot_correction": "bgdnoise.plot",
    "warm_cache": "bgdnoise.warm",
    "release_memory": "bgdnoise._scratch",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bgdnoise' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "AlreadyCorrectedError",
    "BgdNoiseStep",
    "BgdNoiseWarning",
    "CorrectionResult",
    "ReadoutGeometry",
    "correct_file",
    "correct_model",
    "readout_geometry",
    "rewrite_association",
    "DEFAULT_DQ_FLAGS",
    "DO_NOT_USE",
    "MSA_FAILED_OPEN",
    "NON_SCIENCE",
    "REFERENCE_PIXEL",
    "LineLevels",
    "CorrectionOptions",
    "CorrectionReport",
    "correct_planes",
    "source_mask",
    "plot_correction",
    "warm_cache",
    "release_memory",
    "__version__",
    "correct_array",
    "measure_levels",
]
