"""Compute kernels: ``cpu`` (numba, the fast path) and ``reference`` (plain numpy, for tests).

Every numba kernel in ``cpu`` has a twin of the same name in ``reference`` that computes the
same quantity the obvious way; the test suite checks they agree.
"""
