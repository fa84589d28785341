"""``python -m bgdnoise._kernels record | check | build [OUTPUT [CPU]]``: see :mod:`._aot_build`."""

import sys

from ._aot_build import main

sys.exit(main())
