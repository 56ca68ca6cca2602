"""
A bound on the middleware's teardown: a process that was asked to stop never hangs in it.

Fast DDS 3.2.3 (the Kilted wheels) can deadlock while a process tears its middleware down and
a peer's endpoints leave at the same moment, as every node does when one Ctrl-C or `ros2 launch`
stops them all (gdb stacks in doc/lifecycle.md). Nothing of ours holds a lock there, so it
cannot be fixed here; our own cleanup (segments unlinked, slots released) runs before the
middleware's, so ending the process without it leaves nothing behind.

rclpy calls rcl's *_fini functions holding the GIL, so in that deadlock no Python thread runs
again: the bound is a deadline kept by a C thread (_deadline.c), with a Python timer in front of
it that, when it can run, also flushes the process's buffered output first.

end_after() is the package's nodes' bound: their teardown is theirs, all of it bounded.
end_if_main_thread_stuck() is the one for programs of the user's own: the deadline is pushed on
while the main thread runs anything but the middleware's teardown, so it never cuts the
program's own cleanup short.
"""

import os
import sys
import threading
import time
from typing import Callable, Optional

# How long teardown may stay inside the middleware. Ours takes well under a second (stress:
# slowest signal-to-exit 0.92 s on a loaded 2-core machine).
TEARDOWN_LIMIT_S = 10.0
# The C deadline comes this much after the Python one, which flushes output when it can run.
_NATIVE_GRACE_S = 1.0
_POLL_S = 0.2


def _message(limit_s: float) -> str:
    return (f'[ERROR] teardown did not finish within {limit_s:g} s, inside the middleware (a '
            'Fast DDS deadlock, doc/lifecycle.md); exiting without it\n')


def _arm_native(exit_code: int, limit_s: float) -> None:
    from jetson_shm_ros.process import _deadline  # C: built with the package
    _deadline.arm(time.monotonic() + limit_s + _NATIVE_GRACE_S, exit_code, _message(limit_s))


def _give_up(exit_code: int, limit_s: float) -> None:
    sys.stderr.write(_message(limit_s))
    sys.stderr.flush()
    sys.stdout.flush()  # os._exit skips it: the process's last lines must not be lost
    os._exit(exit_code)


class TeardownBound:
    """A running end_after() bound; cancel() it once teardown is done."""

    def __init__(self, exit_code: Callable[[], int], limit_s: float):
        self._timer = threading.Timer(limit_s, lambda: _give_up(exit_code(), limit_s))
        self._timer.daemon = True
        _arm_native(exit_code(), limit_s)
        self._timer.start()

    def cancel(self) -> None:
        """Lift the bound (both deadlines)."""
        from jetson_shm_ros.process import _deadline
        self._timer.cancel()
        _deadline.disarm()


def end_after(exit_code: Callable[[], int], limit_s: float = TEARDOWN_LIMIT_S) -> TeardownBound:
    """
    End the process with exit_code() unless the returned bound is cancelled within limit_s.

    Without the GIL (the C deadline, 1 s later) the exit code is the one exit_code() gave now.
    """
    _Watch.bounded = True
    return TeardownBound(exit_code, limit_s)


class _Watch:
    thread: Optional[threading.Thread] = None
    bounded = False  # end_after() bounds the whole teardown (with the node's own exit code)


def end_if_main_thread_stuck(in_teardown: Callable[[object], bool], exit_code: int = 0,
                             limit_s: float = TEARDOWN_LIMIT_S) -> None:
    """
    End the process if the main thread stays in the middleware's teardown for limit_s.

    A daemon thread samples the main thread's innermost Python frame every 0.2 s. While
    in_teardown(frame) is false it pushes the C deadline on; while it holds without a break for
    limit_s (or the thread cannot run at all: the GIL held in C), the process logs one [ERROR]
    line and ends with exit_code. Started once per process; later calls, and calls once
    end_after() runs, do nothing.
    """
    if _Watch.thread is not None or _Watch.bounded:
        return
    _arm_native(exit_code, limit_s)
    _Watch.thread = threading.Thread(target=_watch, args=(in_teardown, exit_code, limit_s),
                                     name='jsr-teardown-watch', daemon=True)
    _Watch.thread.start()


def _watch(in_teardown: Callable[[object], bool], exit_code: int, limit_s: float) -> None:
    main = threading.main_thread()
    stuck_since = None
    while main.is_alive():
        time.sleep(_POLL_S)
        now = time.monotonic()
        if in_teardown(sys._current_frames().get(main.ident)):
            stuck_since = stuck_since or now
            if now - stuck_since >= limit_s:
                _give_up(exit_code, limit_s)
        else:
            stuck_since = None
            _arm_native(exit_code, limit_s)  # the program's own code runs: not stuck
