"""Turn the benchmark JSON into the README's performance table.

Usage: ``python benchmarks/make_table.py [results.json] [--check]``. The table
sits between the ``benchmark-table`` markers of README.md and is never edited
by hand; ``--check`` exits 1 if README.md differs from what the JSON gives.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.json"
README = ROOT / "README.md"
START = "<!-- benchmark-table:start -->"
END = "<!-- benchmark-table:end -->"

K = "test_bench_kernel.py::"
C = "test_bench_correct.py::"
F = "test_bench_file.py::"
S = "test_bench_startup.py::"
Q = "test_bench_cube.py::"
JWST = C + "test_baseline_jwst_clean_flicker_noise"
FIRST_RUN = "test_first_run_correct_file_cold_cache"
FIRST_RUN_JIT = "test_first_run_correct_file_cold_cache_jit"

# (what, ours, baseline, how the ratio reads, target)
SPEED_ROWS = [
    ("Kernel, 2048x2048, rows", K + "test_bgdnoise_kernel[rows]",
     K + "test_baseline_np_median[rows]", "time", "<= 0.5x np.median"),
    ("Kernel, 2048x2048, rows", K + "test_bgdnoise_kernel[rows]",
     K + "test_baseline_astropy_sigma_clip[rows]", "speedup", ""),
    ("Kernel, 2048x2048, columns", K + "test_bgdnoise_kernel[columns]",
     K + "test_baseline_np_median[columns]", "time", "<= 0.5x np.median"),
    ("Kernel, 2048x2048, columns", K + "test_bgdnoise_kernel[columns]",
     K + "test_baseline_astropy_sigma_clip[columns]", "speedup", ""),
    ("Kernel, 4 outputs + odd/even", K + "test_bgdnoise_kernel_outputs_odd_even",
     K + "test_baseline_np_median[rows]", "time", ""),
    ("Kernel, cube 50x256x2048", K + "test_bgdnoise_kernel_cube",
     K + "test_baseline_np_median_cube", "time", ""),
    ("Kernel, ramp 2x8x2048x2048", K + "test_bgdnoise_kernel_ramp",
     K + "test_baseline_np_median_ramp", "time", ""),
    ("correct_array, defaults", C + "test_bgdnoise_correct_array_defaults",
     JWST + "[median]", "speedup", ">= 10x (mask + background; plain >= 50x)"),
    ("correct_array, 4 outputs", C + "test_bgdnoise_correct_array_outputs",
     JWST + "[median-by-channel]", "speedup", ""),
    ("correct_array, 4 outputs, lines along columns", C + "test_bgdnoise_correct_array_columns",
     C + "test_bgdnoise_correct_array_outputs", "time", ""),
    ("correct_array, defaults", C + "test_bgdnoise_correct_array_defaults",
     JWST + "[model-background]", "speedup", ">= 10x"),
    ("correct_file, 2048x2048 _rate.fits", F + "test_bgdnoise_correct_file",
     F + "test_baseline_datamodels_open_save", "time", "dominated by FITS I/O"),
    ("Kernel on 1 thread", K + "test_bgdnoise_kernel_threads[1]",
     K + "test_bgdnoise_kernel_threads[2]", "time", "~2x on 2 cores"),
    ("First call, empty numba cache", S + "test_first_call_cold_cache",
     S + "test_baseline_python_startup", "time", ""),
    ("First call, JIT kernels, empty numba cache", S + "test_first_call_cold_cache_jit",
     S + "test_baseline_python_startup", "time", ""),
    ("First call, JIT kernels, warm numba cache", S + "test_first_call_warm_cache",
     S + "test_baseline_python_startup", "time", ""),
    ("First run, correct_file 2048x2048 _rate, empty numba cache", S + FIRST_RUN,
     S + "test_baseline_jwst_first_run", "time", "<= 1x jwst's first run"),
    ("First run, same, JIT kernels (`BGDNOISE_AOT=0`), empty numba cache", S + FIRST_RUN_JIT,
     S + "test_baseline_jwst_first_run", "time", ""),
    ("First run, same, JIT kernels, after `bgdnoise warm`",
     S + "test_first_run_correct_file_after_warm", S + "test_baseline_jwst_first_run", "time", ""),
]  # fmt: skip

BASELINE_NAMES = {
    "test_baseline_np_median": "np.median",
    "test_baseline_np_median_cube": "np.median",
    "test_baseline_np_median_ramp": "np.median",
    "test_baseline_astropy_sigma_clip": "astropy sigma_clip + masked median",
    "test_baseline_jwst_clean_flicker_noise": "jwst clean_flicker_noise",
    "test_baseline_datamodels_open_save": "datamodels open + save",
    "test_bgdnoise_kernel_threads": "same, 2 threads",
    "test_bgdnoise_correct_array_outputs": "same, lines along rows",
    "test_baseline_python_startup": "python -c 'import numpy'",
    "test_baseline_jwst_first_run": "jwst clean_flicker_noise (median), fresh process",
}

# correct_array on cubes against the frame, per pixel (test_bench_cube.py).
CUBE_OPTIONS = {"defaults": "defaults", "outputs": "4 outputs",
                "outputs-odd-even": "4 outputs + odd/even", "plain": "plain path"}  # fmt: skip
CUBE_SHAPES = ["50x256x2048", "200x64x2048"]
FRAME_SHAPE = "2048x2048"
OPEN_SAVE_WEIGHT = 1.5  # issue 13: correct_file <= correct_array + 1.5x open + save


def _key(fullname: str) -> str:
    return fullname.split("/")[-1]


def _seconds(value: float) -> str:
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.1f} ms"
    return f"{value * 1e6:.0f} us"


def _baseline_label(name: str) -> str:
    test, _, param = name.partition("[")
    label = BASELINE_NAMES.get(test, test)
    if param and test != "test_bgdnoise_kernel_threads":
        label += f" ({param.rstrip(']')})"
    return label


def _pixels(shape: str) -> int:
    total = 1
    for n in shape.split("x"):
        total *= int(n)
    return total


def _cube_rows(bench: dict) -> list[str]:
    """Per-pixel time of each cube over the frame's, same options; absent: no row."""
    lines = []
    for variant, says in CUBE_OPTIONS.items():
        frame = bench.get(Q + f"test_bgdnoise_correct_array_frame[{variant}]")
        if not frame:
            continue
        t_frame = frame["stats"]["median"]
        for shape in CUBE_SHAPES:
            cube = bench.get(Q + f"test_bgdnoise_correct_array_cube[{shape}-{variant}]")
            if not cube:
                continue
            t_cube = cube["stats"]["median"]
            ratio = (t_cube / _pixels(shape)) / (t_frame / _pixels(FRAME_SHAPE))
            lines.append(
                f"| correct_array, cube {shape} vs frame ({says}), time per pixel | "
                f"{_seconds(t_cube)} | same, {FRAME_SHAPE} frame | {_seconds(t_frame)} | "
                f"{ratio:.2f}x per pixel | <= 1.1x the frame's |"
            )
    return lines


def _file_vs_array_row(bench: dict) -> list[str]:
    """correct_file over correct_array on the same data plus 1.5x a bare open + save."""
    ours = bench.get(F + "test_bgdnoise_correct_file")
    array = bench.get(F + "test_bgdnoise_correct_array_same_data")
    bare = bench.get(F + "test_baseline_datamodels_open_save")
    if not (ours and array and bare):
        return []
    t_ours = ours["stats"]["median"]
    t_base = array["stats"]["median"] + OPEN_SAVE_WEIGHT * bare["stats"]["median"]
    return [
        f"| correct_file vs correct_array + open/save, 2048x2048 _rate.fits | "
        f"{_seconds(t_ours)} | correct_array on its SCI/DQ + {OPEN_SAVE_WEIGHT:g}x "
        f"datamodels open + save | {_seconds(t_base)} | {t_ours / t_base:.2f}x the time | "
        "<= 1x |"
    ]


def render(results: dict) -> str:
    """The markdown table (with its footnote) for one benchmark JSON."""
    bench = {_key(b["fullname"]): b for b in results["benchmarks"]}
    lines = [
        "| What | bgdnoise | Baseline | Baseline time | Ratio | Target |",
        "|---|---|---|---|---|---|",
    ]
    for what, ours, base, how, target in SPEED_ROWS:
        if ours not in bench or base not in bench:
            continue
        t_ours = bench[ours]["stats"]["median"]
        t_base = bench[base]["stats"]["median"]
        if how == "speedup":
            ratio = f"{t_base / t_ours:.0f}x faster"
        else:
            ratio = f"{t_ours / t_base:.2f}x the time"
        label = _baseline_label(base.split("::")[1])
        lines.append(
            f"| {what} | {_seconds(t_ours)} | {label} | {_seconds(t_base)} | {ratio} | {target} |"
        )
        compiling = bench[ours]["extra_info"].get("compile_seconds")
        if ours in (S + FIRST_RUN, S + FIRST_RUN_JIT) and compiling is not None:
            lines.append(f"| ... of which numba compiling | {_seconds(compiling)} | | | | |")
    frame = bench.get(K + "test_bgdnoise_kernel[rows]")
    cube = bench.get(K + "test_bgdnoise_kernel_cube")
    if frame and cube:
        per_pixel = (cube["stats"]["median"] / (50 * 256 * 2048)) / (
            frame["stats"]["median"] / (2048 * 2048)
        )
        lines.append(
            f"| Cube vs frame, time per pixel | | kernel, 2048x2048 | | {per_pixel:.2f}x | "
            "<= 1.3x |"
        )
    lines += _cube_rows(bench)
    lines += _file_vs_array_row(bench)
    for which, label in (("rate_file", "2048x2048 _rate"), ("cube_file", "50x256x2048 _rateints")):
        b = bench.get(F + f"test_bgdnoise_peak_memory[{which}]")
        if b:
            info = b["extra_info"]
            lines.append(
                f"| Peak memory, correct_file, {label} | {info['peak_bytes'] / 2**20:.0f} MiB | "
                f"datamodels open + save | {info['bare_peak_bytes'] / 2**20:.0f} MiB | "
                f"+{info['increment_over_sci']:.2f}x the SCI size | <= +2x |"
            )
    machine = results["machine_info"]
    packages = machine.get("packages", {})
    versions = ", ".join(f"{k} {v}" for k, v in packages.items())
    cpu = machine.get("cpu", {}).get("brand_raw", "unknown CPU")
    cores = machine.get("cpu", {}).get("count", "?")
    date = results.get("datetime", "")[:10]
    lines += [
        "",
        f"Medians of one `make bench` run on {date}: {cpu}, {cores} cores, "
        f"{machine.get('numba_threads', '?')} numba threads, Python "
        f"{machine.get('python_version', '?')}; {versions}. Ratios compare benchmarks of "
        "the same run on the same data; generated by `benchmarks/make_table.py` from "
        "`benchmarks/results.json`, not edited by hand.",
    ]
    return "\n".join(lines)


def update(readme: str, table: str) -> str:
    """README text with the block between the markers replaced by ``table``."""
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    results = json.loads(Path(paths[0] if paths else RESULTS).read_text())
    readme = README.read_text()
    new = update(readme, render(results))
    if check:
        if new != readme:
            print("README.md performance table is out of date: run benchmarks/make_table.py")
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
