"""Counting numba's compilations in a subprocess (``tests/fresh_jit.py``, ``tests/test_aot.py``).

:data:`LISTENER` goes at the start of the script a test runs with
``python -P -c``; it appends every compilation numba finishes to
``compiled`` as ``"module.name(args)"``.
"""

LISTENER = r"""
import json, sys
from numba.core import event

compiled = []

class Listener(event.Listener):
    def on_start(self, ev):
        pass

    def on_end(self, ev):
        func = ev.data["dispatcher"].py_func
        compiled.append(f"{func.__module__}.{func.__qualname__}{tuple(ev.data['args'])}")

event.register("numba:compile", Listener())
"""
