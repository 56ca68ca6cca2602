"""
SIGINT and SIGTERM for the whole process: one orderly stop, raised only where it is safe.

install() puts one Python handler on both signals. The handler records the first signal and
wakes whatever the process registered with add_waker() (the endpoints trigger a guard
condition, so an executor blocked in its wait returns). It raises KeyboardInterrupt at once
only when the main thread is in the user's own code; when it is inside rclpy, inside this
library, or in the standard library called from either, raising there could leave a handle in
use or a slot half written, so the signal stays pending and raise_pending() delivers it at the
next safe point (an endpoint's guard-condition or descriptor callback, the next loan). Either
way KeyboardInterrupt is raised once per process: a second signal, or one that arrives during
teardown, is recorded and nothing more, so it cannot cut cleanup short. Nothing here shuts the
middleware down; the program's own `finally` does (doc/lifecycle.md).

The handler runs in the main thread, but only between bytecodes: a thread blocked in C (an
rcl wait) would not see it. So a wake-up fd (signal.set_wakeup_fd) feeds a small thread that
runs the wakers as soon as the signal arrives.

At interpreter exit (atexit, after the program's own cleanup) both signals are set to SIG_IGN:
Python would otherwise restore their default action while it tears down the middleware, and a
late signal would kill the process and replace its exit code.

checkpoint(name) is a test hook: with JSR_TEST_PAUSE_AT=name in the environment, the process
prints `JSR_PHASE name` and waits there until a signal arrives, so a test can land a signal in
an exact phase of start-up or teardown.
"""

import atexit
import os
import re
import signal
import sys
import sysconfig
import threading
import time
from typing import Callable, List, Optional

SIGNALS = (signal.SIGINT, signal.SIGTERM)
PHASE_ENV = 'JSR_TEST_PAUSE_AT'
# The longest a checkpoint waits for the test's signal (a test that never sends it still ends).
_PHASE_WAIT_S = 60.0
_PHASE_POLL_S = 0.005

# Modules rosidl generates for messages, services and actions (`std_msgs.msg._header`).
_ROSIDL_MODULE = re.compile(r'\.(msg|srv|action)\._[a-z0-9_]+$')
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_STDLIB_DIRS = tuple({os.path.realpath(sysconfig.get_paths()[key]) + os.sep
                      for key in ('stdlib', 'platstdlib')})


class _State:
    installed = False
    received = 0          # the first signal's number; 0 before any
    count = 0             # signals received so far
    delivered = False     # KeyboardInterrupt was raised for it (or teardown began)
    deliver = True        # raise KeyboardInterrupt at all (a runner that polls says no)
    wakers: List[Callable[[], None]] = []
    library_dirs = [_PACKAGE_DIR + os.sep]
    wakeup_thread = None
    phases_seen = set()


def received() -> int:
    """Return the number of the first SIGINT/SIGTERM received since install(), else 0."""
    return _State.received


def pending() -> bool:
    """Tell whether a signal arrived and no KeyboardInterrupt was raised for it yet."""
    return bool(_State.received) and not _State.delivered


def installed() -> bool:
    """Tell whether install() took over SIGINT and SIGTERM in this process."""
    return _State.installed


def raise_pending() -> None:
    """
    Raise KeyboardInterrupt for a signal that arrived at an unsafe moment (once per process).

    Called at safe points: where an exception leaves nothing half done. Does nothing in a
    process whose runner polls received() instead (install(deliver=False)).
    """
    if _State.deliver and pending():
        _State.delivered = True
        raise KeyboardInterrupt


def begin_teardown() -> None:
    """From now on a signal is only recorded: nothing raises during cleanup."""
    _State.delivered = True


def add_library_dir(path: str) -> None:
    """Treat code under `path` like this library's (a signal there is delivered later)."""
    path = os.path.realpath(path) + os.sep
    if path not in _State.library_dirs:
        _State.library_dirs.append(path)


def add_waker(wake: Callable[[], None]) -> None:
    """Call `wake()` (from any thread) when a signal arrives; at once if one already has."""
    _State.wakers.append(wake)
    if _State.received:
        _call(wake)


def remove_waker(wake: Callable[[], None]) -> None:
    """Forget a waker added by add_waker (idempotent)."""
    if wake in _State.wakers:
        _State.wakers.remove(wake)


def owns_signals() -> bool:
    """Tell whether SIGINT and SIGTERM have no Python handler of the program's own."""
    return all(signal.getsignal(signum) in (
        signal.default_int_handler, signal.SIG_DFL, signal.SIG_IGN, None, _on_signal)
        for signum in SIGNALS)


def install(release_others: Callable[[], None] = lambda: None,
            deliver: Optional[bool] = None) -> bool:
    """
    Take over SIGINT and SIGTERM for this process (idempotent).

    Only from the main thread, only when the program has no Python handler of its own for them
    and no other wake-up fd is set (asyncio's, say): then nothing changes and this returns False.

    :param release_others: called just before the handlers are set, e.g. to uninstall rclpy's
    :param deliver: False: never raise KeyboardInterrupt, the caller polls received() (the
        package's runner: no exception ever crosses rclpy's executor); None keeps the setting
    :return: whether this process's SIGINT and SIGTERM are now handled here
    """
    if deliver is not None:
        _State.deliver = deliver
    if threading.current_thread() is not threading.main_thread() or not owns_signals():
        return False
    if _State.wakeup_thread is None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        if previous != -1:
            signal.set_wakeup_fd(previous)
            os.close(read_fd)
            os.close(write_fd)
            return False
        _State.wakeup_thread = threading.Thread(
            target=_read_wakeups, args=(read_fd,), name='jsr-signal-wakeup', daemon=True)
        _State.wakeup_thread.start()
        atexit.register(_ignore_signals)
    release_others()
    for signum in SIGNALS:
        signal.signal(signum, _on_signal)
    _State.installed = True
    return True


def checkpoint(name: str) -> None:
    """Test hook: with JSR_TEST_PAUSE_AT=name, print `JSR_PHASE name`, wait for a signal."""
    if os.environ.get(PHASE_ENV) != name or name in _State.phases_seen:
        return
    _State.phases_seen.add(name)  # the first time only (a node closes several endpoints)
    seen = _State.count
    print(f'JSR_PHASE {name}', file=sys.stderr, flush=True)
    deadline = time.monotonic() + _PHASE_WAIT_S
    while _State.count == seen and time.monotonic() < deadline:
        time.sleep(_PHASE_POLL_S)


def _ignore_signals() -> None:
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _record(signum: int) -> None:
    if signum in SIGNALS:
        _State.received = _State.received or signum


def _on_signal(signum, frame) -> None:
    _State.count += 1
    _record(signum)
    for wake in list(_State.wakers):
        _call(wake)
    if _State.deliver and not _State.delivered and _in_user_code(frame):
        _State.delivered = True
        raise KeyboardInterrupt


def _in_user_code(frame) -> bool:
    """Tell whether the innermost frame that is not the standard library's is the program's."""
    while frame is not None:
        if _ROSIDL_MODULE.search(frame.f_globals.get('__name__') or ''):
            # A generated message class, built by rclpy's C++ while it takes a message:
            # raising there fails the take inside pybind11 (seen: RuntimeError under stress).
            return False
        path = frame.f_code.co_filename
        if path.startswith('<'):  # '<frozen importlib...>' is the standard library's
            if not path.startswith('<frozen'):
                return True  # '<string>', '<stdin>': the program's
        else:
            path = os.path.realpath(path)
            if path.startswith(tuple(_State.library_dirs)):
                return False
            if not path.startswith(_STDLIB_DIRS):
                return True
        frame = frame.f_back
    return False


def _read_wakeups(read_fd: int) -> None:
    while True:
        try:
            data = os.read(read_fd, 64)
        except InterruptedError:
            continue
        if not data:
            return
        for signum in data:
            if signum in SIGNALS:
                _record(signum)
                for wake in list(_State.wakers):
                    _call(wake)


def _call(wake: Callable[[], None]) -> None:
    try:
        wake()
    except Exception:  # a waker whose entity is already gone has nothing left to wake
        pass
