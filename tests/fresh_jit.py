"""One run of the JIT kernels compiled afresh, shared by the tests that need it.

:func:`fresh_jit_run`, an early job (``tests/early.py``), runs four new
processes one after another with the JIT kernels only (``BGDNOISE_AOT=0``) and
a numba cache of their own, empty at first:

1. ``bgdnoise warm``, which compiles every kernel; then, in the same process,
   the return types of every helper compiled without reference counting (a
   process that loaded its callers from a cache would not have compiled them);
2. corrections on sizes the warm-up never saw, each along a path it took,
   which must load everything from the cache;
3. ``bgdnoise warm`` again, which must find nothing to compile;
4. the JIT kernels' outputs on every warm-up case (:func:`run_case`), saved for
   the comparison with the compiled kernels (``tests/test_aot.py``). Last, so
   that what it compiles cannot hide a gap in the warm-up from 2 and 3.

Compiling every kernel takes one core 30 s to 4 minutes (by machine);
started with the session, that runs beside the rest of the suite.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numba_events import LISTENER

from bgdnoise import correct_array
from bgdnoise.warm import WarmCase, _synthetic

BIN = Path(sys.executable).parent
TIMEOUT = 900


def run_case(case: WarmCase) -> tuple[np.ndarray, ...]:
    """Every array ``correct_array`` returns on ``case``'s synthetic inputs."""
    inputs = _synthetic(case, np.random.default_rng(11))
    data = inputs.pop("data")
    with warnings.catch_warnings():
        # Lines of the small synthetic planes left without a usable pixel: not news.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = correct_array(data, case.axis, **inputs, **case.options)
    return result if isinstance(result, tuple) else (result,)


# Run after LISTENER: ``bgdnoise warm``; then the compilations numba did for literal
# arguments and what each helper compiled without reference counting returns.
WARM = r"""
import numba
from bgdnoise import cli

code = cli.main(["warm"])
literal = [c for c in compiled if "Literal" in c]

def holds_array(numba_type):
    if isinstance(numba_type, numba.types.Array):
        return True
    return any(holds_array(t) for t in getattr(numba_type, "types", None) or ())

helpers = {}
for name, module in list(sys.modules.items()):
    if name.startswith("bgdnoise._kernels."):
        for attr, kernel in vars(module).items():
            jitted = isinstance(kernel, numba.core.registry.CPUDispatcher)
            if jitted and not kernel.targetoptions.get("_nrt", True):
                returned = [o.signature.return_type for o in kernel.overloads.values()]
                helpers[attr] = [len(returned), [str(t) for t in returned if holds_array(t)]]
print(json.dumps({"literal": literal, "helpers": helpers}))
sys.exit(code)
"""

# The JIT kernels' outputs on the warm-up cases, into the .npz argv[2] names, as
# "<case index>/<output index>"; argv[1] is this directory, for run_case.
BITS = r"""
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from fresh_jit import run_case
from bgdnoise.warm import warm_cases

bits = {}
for i, case in enumerate(warm_cases()):
    for k, array in enumerate(run_case(case)):
        bits[f"{i}/{k}"] = array
np.savez(sys.argv[2], **bits)
"""

# Run after LISTENER: corrections on sizes the warm-up never saw, each along a
# path it took; prints what each compiled.
AFTER_WARM = r"""
import numpy as np
import bgdnoise

rng = np.random.default_rng(7)
frame = rng.normal(1.0, 0.1, (96, 320)).astype(np.float32)
dq = np.zeros(frame.shape, np.uint32)
dq[:, :4] = bgdnoise.REFERENCE_PIXEL
cube = rng.normal(1.0, 0.1, (4, 80, 384)).astype(np.float32)
plain = {"mask_sources": False, "background_method": None}
calls = [
    ("defaults", lambda: bgdnoise.correct_array(frame, "rows")),
    ("n_outputs=4", lambda: bgdnoise.correct_array(frame, "rows", n_outputs=4)),
    ("odd_even", lambda: bgdnoise.correct_array(frame, "rows", n_outputs=4, odd_even=True)),
    ("columns", lambda: bgdnoise.correct_array(frame, "columns")),
    ("plain", lambda: bgdnoise.correct_array(frame, "rows", **plain)),
    ("plain, columns, DQ", lambda: bgdnoise.correct_array(frame, "columns", dq=dq, **plain)),
    ("DQ, model", lambda: bgdnoise.correct_array(frame, "rows", dq=dq, return_model=True)),
    ("cube", lambda: bgdnoise.correct_array(cube, "rows", n_outputs=4)),
    ("float64", lambda: bgdnoise.correct_array(frame.astype(np.float64), "columns")),
]
found = {}
for name, call in calls:
    before = len(compiled)
    call()
    found[name] = [c for c in compiled[before:] if c.startswith("bgdnoise.")]
print(json.dumps(found))
"""


@dataclass
class FreshJitRun:
    """What :func:`fresh_jit_run` saw.

    Attributes
    ----------
    cache : Path
        The numba cache the processes shared.
    warm, after_warm, warm_again, jit_bits : subprocess.CompletedProcess or None
        Steps 1 to 4 of the module's docstring; the later ones are None when
        ``warm`` failed.
    bits : Path
        The ``.npz`` step 4 wrote.
    """

    cache: Path
    warm: subprocess.CompletedProcess
    after_warm: subprocess.CompletedProcess | None
    warm_again: subprocess.CompletedProcess | None
    jit_bits: subprocess.CompletedProcess | None
    bits: Path

    def require_warm(self) -> None:
        """Fail in one line when step 1 failed (``tests/test_warm.py`` shows why)."""
        if self.warm.returncode != 0:
            message = "the fresh JIT run's `bgdnoise warm` failed: see test_warm.py"
            pytest.fail(message, pytrace=False)


def fresh_jit_run(run, workdir: Path, environ: dict[str, str]) -> FreshJitRun:
    """The early job (``tests/early.py``) described in this module's docstring."""
    cache = workdir / "numba-cache"
    bits = workdir / "jit-bits.npz"
    env = {k: v for k, v in environ.items() if k != "NUMBA_DISABLE_JIT"}  # JIT, always
    env.update(NUMBA_CACHE_DIR=str(cache), BGDNOISE_AOT="0")
    # -P: the installed bgdnoise (as `bgdnoise warm` below), not a source tree in the
    # cwd, whose kernels numba would cache under other paths.
    python = [sys.executable, "-P", "-c"]
    warm = run([*python, LISTENER + WARM], env=env, timeout=TIMEOUT)
    if warm.returncode != 0:
        return FreshJitRun(cache, warm, None, None, None, bits)
    after_warm = run([*python, LISTENER + AFTER_WARM], env=env, timeout=TIMEOUT)
    warm_again = run([str(BIN / "bgdnoise"), "warm"], env=env, timeout=TIMEOUT)
    here = str(Path(__file__).parent)
    jit_bits = run([*python, BITS, here, str(bits)], env=env, timeout=TIMEOUT)
    return FreshJitRun(cache, warm, after_warm, warm_again, jit_bits, bits)
