"""The decorator of the kernels' scalar helpers.

Numba counts references on every array a compiled function receives: each
call of a helper from a loop updates the counts of its array arguments on
entry and exit (atomic operations), which was a fifth of the line kernel's
time on lines of 128 values. A helper that allocates nothing and returns
only scalars, tuples of scalars or nothing needs no counting, as long as its
caller keeps the arrays alive (it always does: they are the caller's). Such
helpers are compiled with numba's ``_nrt=False``. A helper that allocates
fails to compile with it (a clear error); one that returned an array or a
view would hand its caller an uncounted reference, so none may be declared
here.
"""

from __future__ import annotations

from numba import njit

#: ``@njit(cache=True, nogil=True)`` without reference counting, for
#: helpers that allocate nothing and return no array (module docstring).
scalar_helper = njit(cache=True, nogil=True, _nrt=False)
