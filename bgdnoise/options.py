"""Every option of a correction, declared once.

:data:`OPTIONS` is the one list: name, default, type, allowed values, one
line of help and the other names users already type (jwst's ``user_mask`` in
the Step, ``--outputs`` on the command line). :class:`CorrectionOptions` (the
options of the correction itself), the ``bgdnoise correct`` arguments, the
Step's ``spec`` and the parameter table of the docs are all built from it. A
new option is one :class:`Option` here (plus what uses it).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .dqflags import DEFAULT_DQ_FLAGS

__all__ = ["OPTIONS", "CorrectionOptions", "Option", "option"]


@dataclass(frozen=True)
class Option:
    """One option: its canonical name and everything derived from it.

    Attributes
    ----------
    name : str
        The canonical name (a Python keyword argument).
    default : object
        Default value.
    kind : str
        ``"float"``, ``"int"``, ``"bool"``, ``"choice"``, ``"outputs"``
        (``"auto"`` or a positive integer), ``"bits"`` (a uint32 bit mask)
        or ``"path"`` (a file, or an array in Python).
    help : str
        One line for people.
    choices : tuple of str
        Allowed values of a ``"choice"``.
    optional : bool
        None is allowed (means: "see help").
    scope : str
        ``"correction"`` (changes the numbers: part of
        :class:`CorrectionOptions`) or ``"file"`` (how files are handled:
        ``correct_file``, the command line and the Step).
    aliases : dict
        Other names per interface: ``{"cli": "--outputs", "step": "user_mask"}``.
    minimum : float
        Smallest allowed value of a number (inclusive unless ``above``).
    above : bool
        The number must be strictly greater than ``minimum``.
    maximum : float
        Largest allowed value of a number (inclusive).
    in_step : bool
        Whether the jwst Step offers it (stpipe has its own save options).
    """

    name: str
    default: Any
    kind: str
    help: str
    choices: tuple[str, ...] = ()
    optional: bool = False
    scope: str = "correction"
    aliases: Mapping[str, str] = field(default_factory=dict)
    minimum: float | None = None
    above: bool = False
    maximum: float | None = None
    in_step: bool = True

    @property
    def cli_flag(self) -> str:
        """The command-line flag: ``--odd-even`` for ``odd_even`` unless aliased."""
        return self.aliases.get("cli", "--" + self.name.replace("_", "-"))

    @property
    def step_name(self) -> str:
        """The Step parameter's name."""
        return self.aliases.get("step", self.name)

    def validate(self, value: Any) -> Any:
        """Return ``value`` checked and normalised, or raise TypeError/ValueError."""
        if value is None and (self.optional or self.default is None):
            return None
        if self.kind == "choice" and self.optional and str(value).lower() == "none":
            return None  # as typed on a command line or in a Step's configuration
        return _VALIDATORS[self.kind](self, value)


def _number(option: Option, value: Any, integer: bool) -> float | int:
    what = "an integer" if integer else "a number"
    numeric = hasattr(value, "__index__") or (not integer and hasattr(value, "__float__"))
    if isinstance(value, (bool, str)) or not (isinstance(value, (int, float)) or numeric):
        raise TypeError(f"{option.name} must be {what}, got {value!r}.")
    if integer and not float(value).is_integer():
        raise TypeError(f"{option.name} must be {what}, got {value!r}.")
    number = int(value) if integer else float(value)
    low, high = option.minimum, option.maximum
    too_low = low is not None and (number <= low if option.above else number < low)
    if math.isfinite(number) and not too_low and (high is None or number <= high):
        return number
    if option.above and low == 0:
        rule = "a positive finite number"
    elif high is not None:
        rule = f"a number in [{low:g}, {high:g}]"
    else:
        rule = f">= {low:g}" + (" (or None for no limit)" if option.optional else "")
    raise ValueError(f"{option.name} must be {rule}, got {value!r}.")


def _choice(option: Option, value: Any) -> str:
    if value not in option.choices:
        allowed = ", ".join(repr(c) for c in option.choices + ((None,) if option.optional else ()))
        raise ValueError(f"{option.name} must be one of {allowed}, got {value!r}.")
    return value


def _outputs(option: Option, value: Any) -> str | int:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    if isinstance(value, (bool, float)):
        raise TypeError(f"{option.name} must be 'auto' or a positive integer, got {value!r}.")
    text = str(value).strip()
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{option.name} must be 'auto' or a positive integer, got {value!r}.")
    return int(text)


def _bits(option: Option, value: Any) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__") or not 0 <= value < 2**32:
        raise ValueError(
            f"{option.name} must be a uint32 bit mask of DQ bits (0 to 2**32 - 1), got {value!r}."
        )
    return int(value)


def _bool(option: Option, value: Any) -> bool:
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise TypeError(f"{option.name} must be True or False, got {value!r}.")
    return bool(value)


_VALIDATORS: dict[str, Callable[[Option, Any], Any]] = {
    "float": lambda o, v: _number(o, v, integer=False),
    "int": lambda o, v: _number(o, v, integer=True),
    "bool": _bool,
    "choice": _choice,
    "outputs": _outputs,
    "bits": _bits,
    "path": lambda o, v: v,  # a path or an array: checked where it is read
}

OPTIONS: tuple[Option, ...] = (
    Option("axis", "auto", "choice", "stripe direction; auto reads FASTAXIS or the detector",
           choices=("auto", "rows", "columns")),
    Option("n_outputs", "auto", "outputs",
           "readout outputs; auto reads NOUTPUTS (5, IRS2, means 4)",
           aliases={"cli": "--outputs"}),
    Option("sigma", 3.0, "float", "clipping half-width, in units of the scale",
           minimum=0.0, above=True),
    Option("sigma_lower", None, "float", "lower half-width (default: sigma)", optional=True,
           minimum=0.0, above=True),
    Option("sigma_upper", None, "float", "upper half-width (default: sigma)", optional=True,
           minimum=0.0, above=True),
    Option("maxiters", 10, "int", "maximum clipping iterations; 0: plain median, "
           "None: until nothing changes", optional=True, minimum=0),
    Option("scale", "global", "choice",
           "dispersion the clip uses: the plane's white noise or each line's",
           choices=("global", "line")),
    Option("odd_even", False, "bool", "separate even/odd column levels in each output"),
    Option("keep_level", True, "bool", "keep the sky pedestal (else subtract it too)"),
    Option("min_fraction", 0.2, "float",
           "a band with fewer usable pixels than this fraction falls back to the line level",
           minimum=0.0, maximum=1.0),
    Option("mask_sources", True, "bool",
           "find sources (every scale) and keep them out of the statistics"),
    Option("background_method", "model", "choice",
           "background: 'model' a smooth surface fitted with the line levels, 'median' "
           "the plane's median, None none", choices=("median", "model"), optional=True),
    Option("background_box_size", 64, "int",
           "node spacing of the 'model' background, in pixels", minimum=8),
    Option("keep_sky_across", True, "bool",
           "with the 'model' background, keep a smooth sky across the lines (up to cubic) "
           "that the stripes' 1/f spectrum cannot explain"),
    Option("use_reference_pixels", True, "bool",
           "with the source mask or the 'model' background, check each output's slowest "
           "line frequencies (periods of 256 lines and more) on its side reference pixels "
           "(DQ REFERENCE_PIXEL)"),
    Option("dq_flags", DEFAULT_DQ_FLAGS, "bits",
           "DQ bits that keep a pixel out of the statistics"),
    Option("mask", None, "path",
           "FITS file (or array, not in the Step): nonzero/True = keep out of the statistics",
           aliases={"step": "user_mask"}),
    Option("force", False, "bool", "correct data already corrected (by bgdnoise or jwst)",
           scope="file"),
    Option("save_model", False, "bool", "also write the subtracted stripes as _bdgModel.fits",
           scope="file", in_step=False),
    Option("save_mask", False, "bool", "also write the source mask as _bdgMask.fits",
           scope="file"),
    Option("save_background", False, "bool",
           "also write the fitted background as _bdgBkg.fits", scope="file"),
    Option("plot", False, "bool", "also write a PNG per file: before/after, mask, stripe "
           "profile, power spectrum (needs matplotlib)", scope="file", in_step=False),
)  # fmt: skip
_BY_NAME = {o.name: o for o in OPTIONS}
_ALIASES = {alias: o.name for o in OPTIONS for alias in o.aliases.values()}
_CORRECTION = tuple(o for o in OPTIONS if o.scope == "correction")


def option(name: str) -> Option:
    """The declaration of option ``name`` (canonical name or an alias)."""
    return _BY_NAME[_ALIASES.get(name, name)]


@dataclass(frozen=True)
class _CorrectionOptionsBase:
    def __post_init__(self) -> None:
        for declared in _CORRECTION:
            value = declared.validate(getattr(self, declared.name))
            object.__setattr__(self, declared.name, value)

    @classmethod
    def from_kwargs(cls, options: CorrectionOptions | None = None, **kwargs: Any):
        """Options from keywords (canonical names or aliases) over ``options``.

        Raises
        ------
        TypeError
            An unknown keyword (the message lists the known ones), or a name
            given twice (once as an alias).
        """
        changes: dict[str, Any] = {}
        for key, value in kwargs.items():
            name = _ALIASES.get(key, key)
            if name not in _BY_NAME or _BY_NAME[name].scope != "correction":
                known = ", ".join(o.name for o in _CORRECTION)
                raise TypeError(f"unknown option {key!r}; known: {known}.")
            if name in changes:
                raise TypeError(f"option {name!r} given twice (once as {key!r}).")
            changes[name] = value
        base = options if options is not None else cls()
        return dataclasses.replace(base, **changes)

    def as_kwargs(self) -> dict[str, Any]:
        """The options as keywords (canonical names)."""
        return {o.name: getattr(self, o.name) for o in _CORRECTION}

    def changed(self) -> dict[str, Any]:
        """The options that differ from their default (for HISTORY and reports)."""
        return {
            o.name: getattr(self, o.name)
            for o in _CORRECTION
            if o.name != "mask" and getattr(self, o.name) != o.default
        }


CorrectionOptions = dataclasses.make_dataclass(
    "CorrectionOptions",
    [(o.name, Any, field(default=o.default)) for o in _CORRECTION],
    bases=(_CorrectionOptionsBase,),
    frozen=True,
    eq=False,  # arrays (a mask) do not compare as booleans
    namespace={
        "__doc__": "The options of a correction, validated once.\n\n"
        + "\n".join(f"{o.name} : {o.help} (default {o.default!r})" for o in _CORRECTION)
    },
)
CorrectionOptions.__module__ = __name__


# --------------------------------------------------------------------------
# What the interfaces are built from
# --------------------------------------------------------------------------
_SPEC_TYPES = {"float": "float", "int": "integer", "bool": "boolean", "path": "string",
               "outputs": "string", "bits": "integer"}  # fmt: skip


def step_spec() -> str:
    """The Step's configobj ``spec`` lines, one per option (Step names)."""
    lines = []
    for o in (o for o in OPTIONS if o.in_step):
        if o.kind == "choice":
            values = ", ".join(repr(c) for c in o.choices + ((None,) if o.optional else ()))
            kind = f"option({values}, default={o.default!r})"
        else:
            kind = f"{_SPEC_TYPES[o.kind]}(default={o.default!r})"
        lines.append(f"{o.step_name} = {kind}  # {o.help}")
    return "\n".join(lines)


def from_step(step: Any) -> dict[str, Any]:
    """Canonical keywords from a Step's attributes (its names, its strings)."""
    values = {o.name: getattr(step, o.step_name) for o in OPTIONS if o.in_step}
    if str(values["n_outputs"]).strip().lower() == "auto":
        values["n_outputs"] = "auto"
    values["n_outputs"] = option("n_outputs").validate(values["n_outputs"])
    return values


def options_table_rst() -> str:
    """The docs' parameter table (reStructuredText list-table)."""
    rows = [
        ".. list-table:: Options of a correction",
        "   :header-rows: 1",
        "",
        "   * - Python",
        "     - Command line",
        "     - Step (strun)",
        "     - Default",
        "     - Meaning",
    ]
    for o in OPTIONS:
        scope = "" if o.scope == "correction" else " (files only)"
        rows += [
            f"   * - ``{o.name}``",
            f"     - ``{o.cli_flag}``",
            f"     - ``--{o.step_name}``" if o.in_step else "     - (not offered)",
            f"     - ``{o.default!r}``",
            f"     - {o.help}{scope}",
        ]
    return "\n".join(rows) + "\n"
