"""Real installs: the numba cache fallback, light imports, LICENSE, the sdist.

The cache tests need directories numba really cannot write: a read-only copy
of the package and a read-only HOME. Tests run as root in CI, and root ignores
permission bits, so those subprocesses run as root stripped of every
capability (``setpriv``), or as ``nobody``; as themselves when not root. They
are skipped, with the reason, where none of these can be arranged. The setup
and the first run, which compiles the kernels, are an early job
(``tests/early.py``): they run beside the rest of the suite.
"""

from __future__ import annotations

import configparser
import json
import os
import pwd
import shutil
import subprocess
import sys
import tarfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from early import waits_on

REPO = Path(__file__).resolve().parents[1]
IGNORED = (
    ".git",
    ".venv",
    "__pycache__",
    "*.nbi",
    "*.nbc",
    "*.pyc",
    "*.egg-info",
    ".pytest_cache",
    ".hypothesis",
    ".benchmarks",
    ".ruff_cache",
    "build",
    "*.so",
    "dist",
    "_build",
    "demo_output",
    ".coverage",
)
ENV_DROPPED = ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH", "NUMBA_DISABLE_JIT")


def _make_read_only(path: Path) -> None:
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            p = os.path.join(root, name)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode & ~0o222)
    os.chmod(path, os.stat(path).st_mode & ~0o222)


# Proves a way of running works: numba imports, and a read-only directory of
# ours stays read-only.
PROBE = """
import sys
import numba, numpy
try:
    open(sys.argv[1] + "/x", "w")
except PermissionError:
    sys.exit(0)
sys.exit("wrote into a read-only directory: permission bits are not enforced")
"""


def _ways_to_run_unprivileged():
    """(description, command prefix, subprocess kwargs), most robust first."""
    if os.geteuid() != 0:
        yield "as the current user", [], {}
        return
    # Root without any capability: uid 0 still owns its files, but permission
    # bits apply. Needs no other user, and reaches an interpreter under /root.
    setpriv = shutil.which("setpriv")
    if setpriv:
        drop = [setpriv, "--inh-caps=-all", "--bounding-set=-all", "--"]
        yield "as root without capabilities (setpriv)", drop, {}
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return
    kwargs = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    yield "as 'nobody'", [], kwargs


def _run_captured(args: list[str], *, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)


def _find_unprivileged(shared: Path, run=_run_captured) -> tuple[list[str], dict] | str:
    """How to run a command to which permission bits apply, or why there is no way."""
    probe_dir = shared / "probe"
    probe_dir.mkdir()
    probe_dir.chmod(0o555)
    failures = []
    for description, prefix, kwargs in _ways_to_run_unprivileged():
        try:
            proc = run(
                [*prefix, sys.executable, "-c", PROBE, str(probe_dir)],
                cwd=shared,
                timeout=120,
                **kwargs,
            )
        except OSError as exc:
            failures.append(f"{description}: {exc}")
            continue
        if proc.returncode == 0:
            return prefix, kwargs
        failures.append(f"{description}: {proc.stderr.strip()[-300:]}")
    return "no way to run Python where permission bits apply: " + "; ".join(failures)


def _make_read_only_install(shared: Path) -> tuple[Path, Path]:
    """A read-only copy of the package and a read-only HOME; a writable TMPDIR."""
    root = shared / "readonly"
    root.mkdir()
    shutil.copytree(REPO / "bgdnoise", root / "bgdnoise", ignore=shutil.ignore_patterns(*IGNORED))
    (root / "home").mkdir()
    _make_read_only(root)
    tmpdir = shared / "tmp"
    tmpdir.mkdir()
    tmpdir.chmod(0o1777)
    return root, tmpdir


def _run_unprivileged(
    code, read_only_install, unprivileged, *args, run=_run_captured, environ=None, **env_extra
):
    """Run ``code`` on the read-only install, unprivileged; its JSON result.

    ``run`` and ``environ``: an early job's (tests/early.py), or subprocess.run
    and os.environ.
    """
    root, tmpdir = read_only_install
    environ = os.environ if environ is None else environ
    env = {k: v for k, v in environ.items() if k not in ENV_DROPPED}
    env.update(
        PYTHONPATH=str(root),
        PYTHONDONTWRITEBYTECODE="1",
        HOME=str(root / "home"),
        TMPDIR=str(tmpdir),
        **env_extra,
    )
    prefix, kwargs = unprivileged
    proc = run(
        [*prefix, sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        cwd=root,
        env=env,
        timeout=600,
        **kwargs,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["file"].startswith(str(root)), result["file"]
    return result


# Imports bgdnoise and corrects a small frame, recording every warning; prints
# what it saw as JSON. argv[1], if given, receives a copy of numba's cache.
SCRIPT = """
    import json, os, shutil, sys, warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if os.environ.get("BGDNOISE_TEST_NO_TEMPDIR"):
            import tempfile

            def refuse(*args, **kwargs):
                raise PermissionError(13, "Permission denied (simulated)")

            tempfile.mkdtemp = refuse
        import numba
        import numpy as np
        from numba.core.dispatcher import Dispatcher

        import bgdnoise
        from bgdnoise import _numba_cache

        out = None
        if os.environ.get("BGDNOISE_TEST_CALL", "1") == "1":
            out = bgdnoise.correct_array(np.ones((64, 64), np.float32), "rows")

    kernels = {
        id(v): v
        for name, module in list(sys.modules.items())
        if name == "bgdnoise" or name.startswith("bgdnoise.")
        for v in vars(module).values()
        if isinstance(v, Dispatcher)
    }.values()

    cache_dir = numba.config.CACHE_DIR
    files = sorted(f for _, _, fs in os.walk(cache_dir) for f in fs) if cache_dir else []
    if len(sys.argv) > 1 and cache_dir:
        shutil.copytree(cache_dir, sys.argv[1], dirs_exist_ok=True)
    print(json.dumps({
        "file": bgdnoise.__file__,
        "status": _numba_cache.cache_status,
        "warnings": [[w.category.__name__, str(w.message)] for w in caught],
        "cache_dir": cache_dir,
        "env": os.environ.get("NUMBA_CACHE_DIR"),
        "files": files,
        "n_kernels": len(kernels),
        "kernel_caches": sorted({type(k._cache).__name__ for k in kernels}),
        "kernel_cache_paths": sorted({str(k.stats.cache_path) for k in kernels}),
        "cache_misses": sum(sum(k.stats.cache_misses.values()) for k in kernels),
        "ok": out is None or bool(
            out.dtype == np.float32 and out.shape == (64, 64) and np.allclose(out, 1.0)
        ),
    }))
"""


@dataclass
class CacheFallbackSetup:
    """What :func:`cache_fallback_setup` made: why it could not (``skip``), or how to
    run unprivileged, the read-only install, and the first run's result and cache."""

    skip: str = ""
    unprivileged: tuple[list[str], dict] | None = None
    install: tuple[Path, Path] | None = None
    unwritable: tuple[dict, Path] | None = None


def cache_fallback_setup(run, workdir: Path, environ: dict[str, str]) -> CacheFallbackSetup:
    """An early job (tests/early.py): the read-only install, and one run of SCRIPT on it
    with no writable cache directory at all, which compiles the kernels (a minute of one
    core on a slow machine), keeping a copy of its cache."""
    found = _find_unprivileged(workdir, run)
    if isinstance(found, str):
        return CacheFallbackSetup(skip=found)
    install = _make_read_only_install(workdir)
    keep = workdir / "kept-cache"
    keep.mkdir()
    keep.chmod(0o777)
    result = _run_unprivileged(SCRIPT, install, found, keep, run=run, environ=environ)
    return CacheFallbackSetup("", found, install, (result, keep))


@pytest.fixture
def cache_setup(early_result) -> CacheFallbackSetup:
    """The early job's setup; skips the test where it found no way to run unprivileged."""
    if early_result.skip:
        pytest.skip(early_result.skip)
    return early_result


@pytest.fixture
def unprivileged(cache_setup):
    """How to run a command to which permission bits apply: (prefix, Popen arguments)."""
    return cache_setup.unprivileged


@pytest.fixture
def read_only_install(cache_setup):
    """The read-only copy of the package and HOME, and a writable TMPDIR."""
    return cache_setup.install


@pytest.fixture
def unwritable_run(cache_setup):
    """The run with no writable cache directory: its result, and a copy of its cache."""
    return cache_setup.unwritable


@waits_on(cache_fallback_setup)
def test_unwritable_cache_dirs_give_one_warning_and_a_temporary_cache(
    unwritable_run, read_only_install
):
    result, _ = unwritable_run
    _, tmpdir = read_only_install
    assert result["ok"]
    assert len(result["warnings"]) == 1, result["warnings"]
    category, message = result["warnings"][0]
    assert category == "NumbaCacheWarning"
    assert "NUMBA_CACHE_DIR" in message and "compiled again in every new process" in message
    assert result["status"] == "temporary"
    cache_dir = Path(result["cache_dir"])
    assert cache_dir.parent == tmpdir and cache_dir.name.startswith("bgdnoise-numba-cache-")
    assert result["env"] == result["cache_dir"]  # inherited by worker processes
    assert result["n_kernels"] > 0 and result["kernel_caches"] == ["FunctionCache"]
    assert all(p.startswith(str(cache_dir)) for p in result["kernel_cache_paths"])
    assert any(f.endswith(".nbi") for f in result["files"])
    assert not cache_dir.exists(), "the temporary cache outlived its process"


@waits_on(cache_fallback_setup)
def test_numba_cache_dir_is_used_without_a_warning(unwritable_run, read_only_install, unprivileged):
    # NUMBA_CACHE_DIR, here warm with the kernels the run above compiled.
    _, cache = unwritable_run
    result = _run_unprivileged(SCRIPT, read_only_install, unprivileged, NUMBA_CACHE_DIR=cache)
    assert result["ok"]
    assert result["warnings"] == []
    assert result["status"] == "ok" and result["cache_dir"] == str(cache)
    assert all(p.startswith(str(cache)) for p in result["kernel_cache_paths"])
    assert any(f.endswith(".nbi") for f in result["files"])
    assert result["cache_misses"] == 0  # loaded from there, nothing recompiled


@waits_on(cache_fallback_setup)
@pytest.mark.parametrize(
    "call", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["import", "call"]
)
def test_no_cache_at_all_when_no_temporary_directory_can_be_made(
    read_only_install, unprivileged, call
):
    # mkdtemp is made to fail (TMPDIR and /tmp cannot be taken away from a user).
    result = _run_unprivileged(
        SCRIPT,
        read_only_install,
        unprivileged,
        BGDNOISE_TEST_NO_TEMPDIR="1",
        BGDNOISE_TEST_CALL="1" if call else "0",
    )
    assert result["ok"]
    assert len(result["warnings"]) == 1, result["warnings"]
    category, message = result["warnings"][0]
    assert category == "NumbaCacheWarning" and "caching is off" in message
    assert "NUMBA_CACHE_DIR" in message
    assert result["status"] == "disabled"
    assert result["n_kernels"] > 0 and result["kernel_caches"] == ["NullCache"]
    assert result["cache_dir"] == "" and result["env"] is None


def test_correct_array_imports_neither_jwst_nor_stdatamodels():
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import bgdnoise

        out = bgdnoise.correct_array(np.ones((64, 64), np.float32), "rows")
        assert out.shape == (64, 64)
        heavy = sorted(
            m for m in sys.modules if m.split(".")[0] in ("jwst", "stdatamodels")
        )
        assert not heavy, heavy
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr


def test_license_is_bsd_3_clause():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "Copyright (c) 2026, the bgdnoise developers" in text
    assert "Neither the name of the copyright holder nor the names of its" in text
    assert "THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS" in text
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    assert config["metadata"]["license"] == "BSD-3-Clause"
    assert "LICENSE" in config["metadata"]["license_files"].split()


# -- sdist -------------------------------------------------------------------


def _source_files() -> set[str]:
    """The files a commit of the work tree would hold (all files without git)."""
    proc = None
    if (REPO / ".git").exists() and shutil.which("git"):
        command = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if proc is not None and proc.returncode == 0:
        names = {n for n in proc.stdout.split("\0") if n}
    else:
        names = set()
        for root, dirs, files in os.walk(REPO):
            dirs[:] = [d for d in dirs if not shutil.ignore_patterns(*IGNORED)(root, [d])]
            kept = set(files) - shutil.ignore_patterns(*IGNORED)(root, files)
            names |= {os.path.relpath(os.path.join(root, f), REPO) for f in kept}
    return {n for n in names if (REPO / n).is_file()} - {".gitignore", "PKG-INFO"}


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    """Builds the sdist from a copy of the tree (builds write egg-info next to it)."""
    base = tmp_path_factory.mktemp("sdist")
    tree = base / "tree"
    shutil.copytree(REPO, tree, ignore=shutil.ignore_patterns(*IGNORED))
    code = (
        "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(base / "dist")],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    path = base / "dist" / proc.stdout.split()[-1]
    with tarfile.open(path) as tar:
        members = tar.getnames()
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(base / "unpacked", **safe)
    top = f"bgdnoise-{_version_of(tree)}"
    names = {m.removeprefix(top + "/") for m in members if m.startswith(top + "/")}
    return path, names, base / "unpacked" / top


def _version_of(tree: Path) -> str:
    config = configparser.ConfigParser()
    config.read(tree / "setup.cfg")
    return config["metadata"]["version"]


def test_sdist_holds_the_whole_source_tree(sdist):
    _, names, _ = sdist
    for required in (
        "LICENSE",
        "README.md",
        "MANIFEST.in",
        "Makefile",
        "setup.cfg",
        "pyproject.toml",
        ".ci/run",
        "docs/index.rst",
        "tests/conftest.py",
        "tests/test_install.py",
        "benchmarks/conftest.py",
        "bgdnoise/__init__.py",
        "bgdnoise/_numba_cache.py",
    ):
        assert required in names, required
    data = {n for n in _source_files() if n.startswith("tests/data/")}
    assert data <= names, sorted(data - names)
    missing = _source_files() - names
    assert not missing, f"add these to MANIFEST.in: {sorted(missing)}"
    junk = [n for n in names if n.endswith((".pyc", ".nbi", ".nbc")) or "__pycache__" in n]
    assert not junk, junk


def _run(command, **kwargs):
    proc = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_sdist_builds_a_wheel_and_its_own_tests_pass(sdist, tmp_path):
    """As a user would: build a wheel from the sdist, install it with its test
    extras into a new virtual environment (from the package index), run the
    unpacked sdist's own test suite there."""
    _, _, unpacked = sdist
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    # Isolated build, with pyproject.toml's build-system requirements.
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", wheels, unpacked], timeout=900)
    (wheel,) = wheels.glob("bgdnoise-*.whl")
    _run([sys.executable, "-m", "venv", venv], timeout=300)
    python = venv / "bin" / "python"
    _run([python, "-m", "pip", "install", "--quiet", f"{wheel}[test]"], timeout=1800)
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROPPED}
    # -P: the unpacked tree must not shadow the installed wheel.
    where = _run([python, "-P", "-c", "import bgdnoise; print(bgdnoise.__file__)"], env=env)
    assert where.stdout.strip().startswith(str(venv))
    _run(
        [python, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=unpacked,
        env=env,
        timeout=3600,
    )
