"""Helpers for tests of the public API: a private rclpy context and a spin-until loop."""

import random
import time

import rclpy

SPIN_TIMEOUT_S = 30.0


def new_context() -> rclpy.Context:
    """Init a fresh context on a domain of its own (other graphs on this host stay out)."""
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=random.SystemRandom().randrange(100, 200))
    return context


def spin_until(executor, condition, timeout: float = SPIN_TIMEOUT_S) -> bool:
    """Spin `executor` until `condition()` holds or the deadline passes; return condition()."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    return condition()
