"""The ``bgdnoise`` command: correct files, rewrite associations, inspect, demo.

Exit status: 0 all good, 1 some file failed, 2 usage error, 3 every file
written but some with planes that had no usable pixel (left uncorrected).
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
import warnings
from pathlib import Path

from .options import OPTIONS, Option

__all__ = ["main"]

DEMO_NAME = "jw01234001001_01101_00001_nrca2_rate.fits"
# What a directory argument stands for: the stage-1 products bgdnoise corrects.
PRODUCT_PATTERNS = ("*_rate.fits", "*_rateints.fits", "*_cal.fits", "*_calints.fits", "*_ramp.fits")
# Names of what bgdnoise writes: never inputs of an expanded glob or directory.
OWN_OUTPUT_ENDINGS = ("_bdgcorr.fits", "_bdgmodel.fits", "_bdgmask.fits", "_bdgbkg.fits")

_EXAMPLES = {
    "correct": """examples:
  bgdnoise correct 'jw*_rate.fits' -o corrected/ --jobs 2
  bgdnoise correct raw/ -o corrected/        # every _rate/_rateints/_cal/_calints/_ramp in raw/
  bgdnoise correct jw..._nrs1_rate.fits --axis columns --outputs 4""",
    "asn": """example:
  bgdnoise asn jw..._image2_asn.json -o corrected/image2_asn.json --search-dir corrected/""",
    "info": """example:
  bgdnoise info jw01234001001_01101_00001_nrca1_rate.fits""",
    "demo": """example:
  bgdnoise demo demo_output/""",
    "warm": """examples:
  bgdnoise warm                                       # the cache numba would use anyway
  NUMBA_CACHE_DIR=/var/cache/numba bgdnoise warm      # container image, cluster worker setup""",
}


def _all_examples() -> str:
    """Every command's examples under one heading (each line names its command)."""
    lines = [line for text in _EXAMPLES.values() for line in text.splitlines()[1:]]
    return "examples:\n" + "\n".join(lines)


class _UsageError(Exception):
    pass


def _argument_type(declared: Option):
    """An argparse type that checks a value as the options object does."""

    def convert(text: str):
        if declared.optional and text.strip().lower() == "none":
            return None
        parse = {"float": float, "int": int, "bits": lambda t: int(t, 0)}
        value = parse.get(declared.kind, str)(text)
        try:
            return declared.validate(value)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def named(text: str):
        try:
            return convert(text)
        except ValueError as exc:  # float('x'), int('x')
            raise argparse.ArgumentTypeError(f"{declared.name}: {exc}") from None

    named.__name__ = declared.kind  # argparse names the type in its messages
    return named


def _choice_type(declared: Option):
    """Argument type of a choice: ``none`` is None where None is allowed."""

    def choice(text: str):
        return "none" if declared.optional and text.lower() == "none" else text

    return choice


def _add_option(parser: argparse.ArgumentParser, declared: Option) -> None:
    """One command-line argument from an option's declaration."""
    flags = {"dest": declared.name, "default": declared.default, "help": declared.help}
    if declared.kind == "bool":
        parser.add_argument(declared.cli_flag, action=argparse.BooleanOptionalAction, **flags)
    elif declared.kind == "choice":
        choices = declared.choices + (("none",) if declared.optional else ())
        parser.add_argument(
            declared.cli_flag, choices=choices, type=_choice_type(declared), **flags
        )
    elif declared.kind == "path":
        parser.add_argument(declared.cli_flag, type=Path, metavar="FILE", **flags)
    else:
        metavar = {"outputs": "auto|N", "bits": "BITS"}.get(declared.kind, declared.kind.upper())
        parser.add_argument(
            declared.cli_flag, type=_argument_type(declared), metavar=metavar, **flags
        )


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line on stderr (the rule of every bgdnoise error)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in the help text (none where there is none); examples kept as written."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def _subcommand(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name, help=help_text, description=help_text, epilog=_EXAMPLES[name],
        formatter_class=_HelpFormatter,
    )  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="bgdnoise",
        description="Remove 1/f stripes (banding) from JWST products.",
        epilog=_all_examples() + "\n\n'bgdnoise COMMAND --help' for each command.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    correct = _subcommand(sub, "correct", "correct _rate/_rateints/_cal/_ramp files")
    correct.add_argument(
        "files", nargs="+", metavar="FILE_GLOB_OR_DIR",
        help="files, quoted globs, or directories (their _rate, _rateints, _cal, _calints and "
        "_ramp products); earlier _bdgCorr/_bdgModel/_bdgMask/_bdgBkg outputs are skipped",
    )  # fmt: skip
    correct.add_argument(
        "-o", "--output-dir", metavar="OUT", help="directory for the outputs (created if "
        "needed), or, when one file is corrected (after globs and directories are expanded), "
        "the output file: a name ending in .fits; default: next to each input",
    )  # fmt: skip
    for declared in OPTIONS:
        _add_option(correct, declared)
    correct.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    correct.add_argument("--jobs", type=int, default=1, help="files in parallel")
    correct.add_argument(
        "--executor", choices=("auto", "serial", "threads", "processes"), default="auto",
        help="how --jobs runs files in parallel; auto: threads for at least 4 files per job, "
        "else one at a time (measured: benchmarks/batch_results.md); processes: a worker "
        "that dies costs only its file",
    )  # fmt: skip

    asn = _subcommand(sub, "asn", "point an association at the corrected files")
    asn.add_argument("asn_file", type=Path, metavar="IN.json")
    asn.add_argument(
        "-o", "--output", type=Path, metavar="OUT.json",
        help="the new association; default IN_bdgCorr.json next to IN.json",
    )  # fmt: skip
    asn.add_argument(
        "--search-dir", type=Path, help="where the corrected files are; default next to each member"
    )
    asn.add_argument(
        "--allow-missing", action="store_true", help="keep members that have no corrected file"
    )
    asn.add_argument("--overwrite", action="store_true", help="replace an existing OUT.json")

    info = _subcommand(sub, "info", "print the readout geometry and correction status")
    info.add_argument("file", type=Path)

    demo = _subcommand(sub, "demo", "write a synthetic NIRCam _rate.fits and correct it")
    demo.add_argument(
        "directory",
        type=Path,
        nargs="?",
        default=Path("bgdnoise_demo"),
        help="where to write (the demo's own files there from an earlier run are replaced)",
    )

    _subcommand(
        sub, "warm", "compile every kernel a correction uses into the numba cache (NUMBA_CACHE_DIR)"
    )
    return parser


def _error(message: str) -> None:
    print(f"bgdnoise: error: {message}", file=sys.stderr)


def _is_own_output(path: Path) -> bool:
    return path.name.lower().endswith(OWN_OUTPUT_ENDINGS)


def _expand(patterns: list[str]) -> list[Path]:
    """Files named, matched by a glob, or the products in a directory.

    Our own outputs met through a glob or a directory are skipped with a
    note; a file named explicitly is taken as given.
    """
    files: list[Path] = []
    for pattern in patterns:
        if Path(pattern).is_dir():
            matches = sorted({str(m) for p in PRODUCT_PATTERNS for m in Path(pattern).glob(p)})
            empty = f"no product to correct in directory {pattern!r} (none of {PRODUCT_PATTERNS})"
        elif glob.has_magic(pattern):
            matches, empty = sorted(glob.glob(pattern)), f"no file matches {pattern!r}"
        else:
            files.append(Path(pattern))
            continue
        own = [Path(m) for m in matches if _is_own_output(Path(m))]
        if own:
            print(
                f"bgdnoise: note: skipping {len(own)} earlier bgdnoise output(s) in {pattern!r}",
                file=sys.stderr,
            )
        matches = [m for m in matches if not _is_own_output(Path(m))]
        if not matches:
            raise _UsageError(empty + (" but earlier bgdnoise outputs" if own else ""))
        files.extend(Path(m) for m in matches)
    return files


def _run_correct(args) -> int:
    if args.jobs < 1:
        raise _UsageError("--jobs must be >= 1")
    files = _expand(args.files)
    output = directory = None if args.output_dir is None else Path(args.output_dir)
    # A name ending in .fits (a trailing slash: a directory's) is the output
    # file itself, as correct_file takes it, when one file is corrected.
    if output is not None and args.output_dir.lower().endswith(".fits") and not output.is_dir():
        if len(files) != 1:
            raise _UsageError(
                f"-o {output} names one output file, but {len(files)} files were given "
                "(after globs and directories are expanded): give a directory for several"
            )
        directory = output.parent
    if directory is not None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _UsageError(
                f"cannot create the output directory {directory}: {exc.strerror}"
            ) from exc
    options = {o.name: getattr(args, o.name) for o in OPTIONS}
    options.update(output=output, overwrite=args.overwrite)
    from tqdm import tqdm

    from .batch import choose_executor, correct_files

    executor = choose_executor(args.executor, len(files), args.jobs)
    if len(files) > 1:
        how = {"serial": "one at a time", "threads": f"in {args.jobs} threads",
               "processes": f"in {args.jobs} worker processes"}[executor]  # fmt: skip
        print(f"bgdnoise: correcting {len(files)} files {how}", file=sys.stderr)
    start = time.perf_counter()
    failed = incomplete = 0
    # A bar only on a terminal: in a log its redraws are carriage returns and blank lines.
    on_terminal = sys.stderr.isatty()
    bar = tqdm(total=len(files), unit="file", disable=len(files) < 2 or not on_terminal,
               file=sys.stderr)  # fmt: skip
    for outcome in correct_files(files, options, jobs=args.jobs, executor=executor):
        for note in outcome.notes:
            tqdm.write(f"bgdnoise: warning: {note}", file=sys.stderr)
        if outcome.error:
            failed += 1
            bar.clear()
            _error(outcome.error)
        else:
            incomplete += outcome.incomplete
            tqdm.write(outcome.summary, file=sys.stdout)
        bar.update()
    bar.close()
    done = len(files) - failed
    note = f" ({incomplete} with planes left uncorrected)" if incomplete else ""
    print(f"{done} corrected{note}, {failed} failed in {time.perf_counter() - start:.1f} s")
    return 1 if failed else 3 if incomplete else 0


def _run_asn(args) -> int:
    from .asn import rewrite_association

    try:
        output, replaced = rewrite_association(
            args.asn_file, args.output, search_dir=args.search_dir,
            allow_missing=args.allow_missing, overwrite=args.overwrite,
        )  # fmt: skip
    except (ValueError, OSError) as exc:
        _error(str(exc))
        return 1
    print(f"{output}: {replaced} member(s) now point at corrected files")
    return 0


def _run_info(args) -> int:
    from astropy.io import fits

    from ._files import check_fits, naming_the_file, precheck_product
    from .instruments import readout_geometry
    from .markers import JWST_MARKER, MARKER

    try:
        check_fits(args.file)
        header = fits.getheader(args.file, 0)
        geometry = readout_geometry(header)
    except (ValueError, OSError) as exc:
        _error(naming_the_file(args.file, exc))
        return 1
    ours = str(header.get(MARKER, "")).upper() == "COMPLETE"
    theirs = str(header.get(JWST_MARKER, "")).upper() == "COMPLETE"
    correctable = "yes"
    if ours or theirs:
        correctable = "no: already corrected for 1/f noise; --force corrects it again"
    try:  # what `correct` would refuse before reading the data
        with warnings.catch_warnings():  # astropy's on a damaged file: the message says it
            warnings.simplefilter("ignore")
            precheck_product(args.file, "auto", "auto")
    except (ValueError, OSError) as exc:
        correctable = f"no: {exc}"
    print(f"{args.file}: {header.get('DATAMODL', '?')}")
    print(f"  {geometry.describe()}")
    print(f"  band read directions: {geometry.band_directions}")
    status = "corrected by bgdnoise" if ours else "not corrected by bgdnoise"
    if theirs:
        status += "; jwst clean_flicker_noise: COMPLETE"
    print(f"  1/f status: {status}")
    print(f"  correctable: {correctable}")
    return 0


def _run_demo(args) -> int:
    from astropy.io import fits

    from .core import correct_array
    from .io import correct_file
    from .sim import score, simulate_rate

    if args.directory.exists() and not args.directory.is_dir():
        raise _UsageError(f"{args.directory} is a file; demo writes into a directory")
    try:
        args.directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _UsageError(f"cannot create {args.directory}: {exc.strerror}") from exc
    sim = simulate_rate("galaxy", seed=7)
    source = sim.save(args.directory / DEMO_NAME, overwrite=True)
    print(f"wrote {source} (NIRCam-like full frame, 4 outputs: a galaxy spanning hundreds "
          "of lines in a sparse field, 1/f noise clocked through the readout, DQ)")  # fmt: skip
    output, result = correct_file(source, overwrite=True)
    print(f"wrote {output} in {result.seconds:.2f} s ({result.geometry.describe()})")
    from ._kernels import aot

    # Built at install, or JIT turned off: nothing compiles.
    if result.seconds > 3 and aot.status() not in ("ok", "no-jit"):
        print("  (the first run compiles the numba kernels; they are cached for later runs)")
    print(result.summary())
    ours = score(sim, fits.getdata(output, "SCI"))
    plain = score(sim, correct_array(sim.data, "rows", dq=sim.dq, n_outputs=4,
                                     mask_sources=False, background_method=None))  # fmt: skip
    print(
        "striping left against the injected truth (line-mean RMS, after / before): "
        f"{ours.line:.3f} (source bias {ours.bias:+.2f} sigma); the plain per-line "
        f"median would leave {plain.line:.3f} (bias {plain.bias:+.2f} sigma)"
    )
    return 0


def _run_warm(args) -> int:
    from . import _numba_cache
    from .warm import cache_dir, warm_cache

    status = _numba_cache.cache_status
    if status == "no-jit":
        _error("NUMBA_DISABLE_JIT is set: numba compiles nothing, there is no cache to warm")
        return 1
    if status != "ok":
        where = "only a temporary one, removed at exit" if status == "temporary" else "none"
        _error(
            f"numba has no lasting cache for bgdnoise's kernels here ({where}); set "
            "NUMBA_CACHE_DIR to a writable directory (docs/install.rst)"
        )
        return 1
    from ._kernels import aot

    compiled = aot.status()
    if compiled == "ok":
        print(
            "bgdnoise: the kernels compiled at install are in use, so corrections compile "
            "nothing; the numba cache serves only BGDNOISE_AOT=0 and a stale or missing build"
        )
    else:
        print(f"bgdnoise: no kernels compiled at install in use ({compiled}): docs/install.rst")
    print(f"bgdnoise: warming the numba cache in {cache_dir()}")
    result = warm_cache(report=print)
    if result.compiled:
        print(
            f"compiled {result.compiled} kernel signatures in {result.compile_seconds:.1f} s "
            f"({result.seconds:.1f} s in all): later processes using this cache load them"
        )
    else:
        print(f"the cache was already warm: nothing compiled ({result.seconds:.1f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(f"bgdnoise {__version__}")
        return 0
    if args.command is None:
        parser.print_usage(sys.stderr)
        _error("a command is required (correct, asn, info, demo, warm)")
        return 2
    handlers = {"correct": _run_correct, "asn": _run_asn, "info": _run_info, "demo": _run_demo,
                "warm": _run_warm}  # fmt: skip
    try:
        return handlers[args.command](args)
    except _UsageError as exc:
        _error(str(exc))
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
