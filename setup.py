"""Build hook: bgdnoise's numba kernels compiled ahead of time (``bgdnoise/_kernels/aot.py``).

Everything else is declared in ``setup.cfg``. The extension module
``bgdnoise._kernels._compiled`` is built by numba's ``pycc`` from the
kernel sources (``bgdnoise/_kernels/_aot_build.py``), in a subprocess that
imports ``bgdnoise._kernels`` alone (it needs only numpy and numba, the
build requirements) with an empty numba cache. It is optional: without a
C/C++ compiler, or with ``BGDNOISE_AOT=0`` at build time, the package
installs without it and numba compiles the kernels on first use.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError

HERE = Path(__file__).resolve().parent
COMPILED = "bgdnoise._kernels._compiled"

# Imports bgdnoise._kernels without bgdnoise/__init__.py (which needs the runtime dependencies).
BOOTSTRAP = """
import sys, types
package = types.ModuleType("bgdnoise")
package.__path__ = [sys.argv[1]]
sys.modules["bgdnoise"] = package
from bgdnoise._kernels._aot_build import build
build(sys.argv[2])
"""


class BuildKernels(build_ext):
    """``build_ext`` that compiles the kernels with numba's pycc."""

    def build_extension(self, ext):
        if ext.name != COMPILED:
            return super().build_extension(ext)
        # The values of bgdnoise._kernels.aot.opted_out (not importable here).
        if os.environ.get("BGDNOISE_AOT", "1").strip().lower() in ("0", "false", "no", "off"):
            raise CompileError("BGDNOISE_AOT=0: kernels not compiled ahead of time")
        target = Path(self.get_ext_fullpath(ext.name)).resolve()
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as cache:
            # A cache of its own: pycc links the kernels' IR, which numba's cache does not keep.
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            command = [sys.executable, "-c", BOOTSTRAP, str(HERE / "bgdnoise"), str(target)]
            try:
                subprocess.run(command, check=True, env=env)
            except (OSError, subprocess.CalledProcessError) as error:
                message = f"compiling the kernels ahead of time failed: {error}"
                raise CompileError(message) from error


setup(
    ext_modules=[Extension(COMPILED, sources=[], optional=True)],
    cmdclass={"build_ext": BuildKernels},
)
