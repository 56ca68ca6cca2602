"""Run one producer or consumer process so that it always cleans up (no ROS needed)."""

import sys
from typing import Callable, Optional, TypeVar

from jetson_shm_ros.process import signals

Peer = TypeVar('Peer')


def stop_requested() -> bool:
    """Tell whether SIGINT or SIGTERM arrived (process.signals, installed by run_guarded)."""
    return bool(signals.received())


def run_guarded(start: Callable[[], Peer], run: Callable[[Peer], int],
                stop: Callable[[Peer, bool], Optional[int]]) -> int:
    """
    Start, run and always stop one peer (a node, or a ROS-free DDS peer).

    SIGINT and SIGTERM are handled by process.signals from the first line here, and never as an
    exception: a signal before or during `start` lets start finish (nothing is left half made)
    and then skips `run`; during `run` it ends the run (`run` polls stop_requested()); during
    `stop` it is only recorded, so cleanup is never cut short. An error in `start` is reported
    as one `[FATAL]` line, not a traceback.

    :param start: build the peer (creates its segment, endpoints, ...)
    :param run: run it until it is finished or stop_requested(); return its exit code
    :param stop: stop(peer, interrupted) cleans up; return the peer's exit code
    :return: run's exit code when non-zero, else stop's; 2 when `start` failed
    """
    signals.install(deliver=False)
    peer = None
    exit_code = 0
    interrupted = False
    try:
        if not stop_requested():
            peer = start()
            if not stop_requested():
                exit_code = run(peer)
        interrupted = stop_requested()
    except KeyboardInterrupt:
        interrupted = True
    except Exception as error:
        if peer is not None:
            raise
        print(f'[FATAL] {error}', file=sys.stderr)
        exit_code = 2
    finally:
        signals.begin_teardown()
        if peer is not None:
            exit_code = exit_code or stop(peer, interrupted) or 0
    return exit_code
