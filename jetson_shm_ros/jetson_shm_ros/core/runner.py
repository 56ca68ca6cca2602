"""Run one producer or consumer process so that it always cleans up (no ROS needed)."""

import signal
import sys
from typing import Callable, Optional, TypeVar

Peer = TypeVar('Peer')


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def run_guarded(start: Callable[[], Peer], run: Callable[[Peer], int],
                stop: Callable[[Peer, bool], Optional[int]]) -> int:
    """
    Start, run and always stop one peer (a node, or a ROS-free DDS peer).

    Ctrl-C and SIGTERM both raise KeyboardInterrupt here, so `stop` runs for either (kill and
    launch shutdowns included) while the middleware is still up, and a second signal cannot
    cut it short. An error in `start` is reported as one `[FATAL]` line, not a traceback.

    :param start: build the peer (creates its segment, endpoints, ...)
    :param run: run it until it is finished; return its exit code
    :param stop: stop(peer, interrupted) cleans up; return the peer's exit code
    :return: run's exit code when non-zero, else stop's; 2 when `start` failed
    """
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    peer = None
    exit_code = 0
    interrupted = False
    try:
        peer = start()
        exit_code = run(peer)
    except KeyboardInterrupt:
        interrupted = True
    except Exception as error:
        if peer is not None:
            raise
        print(f'[FATAL] {error}', file=sys.stderr)
        exit_code = 2
    finally:
        if peer is not None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            exit_code = exit_code or stop(peer, interrupted) or 0
    return exit_code
