"""``python -m bgdnoise._kernels record | build OUTPUT [CPU]``: see :mod:`.aot`."""

import sys

from .aot import main

sys.exit(main())
