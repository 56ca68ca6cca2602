"""Helpers for tests of the public API: a spin-until loop over an executor."""

import time

SPIN_TIMEOUT_S = 30.0


def spin_until(executor, condition, timeout: float = SPIN_TIMEOUT_S) -> bool:
    """Spin `executor` until `condition()` holds or the deadline passes; return condition()."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    return condition()
