"""bgdnoise: fast removal of 1/f stripes (banding) from JWST detector images.

The public array API is :func:`correct_array` (and the estimator behind it,
:func:`measure_levels`). Importing the package compiles nothing and imports
neither jwst nor stdatamodels.
"""

from importlib.metadata import PackageNotFoundError, version

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

try:
    __version__ = version("bgdnoise")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "DEFAULT_DQ_FLAGS",
    "DO_NOT_USE",
    "MSA_FAILED_OPEN",
    "NON_SCIENCE",
    "REFERENCE_PIXEL",
    "LineLevels",
    "__version__",
    "correct_array",
    "measure_levels",
]
