"""Run one producer or consumer process so that it always cleans up (no ROS needed)."""

import signal
import sys
from typing import Callable, Optional, TypeVar

Peer = TypeVar('Peer')


# While `run` polls stop_requested(), a signal only sets this flag (see run_guarded).
_signals = {'defer': False, 'requested': False}


def _on_signal(signum, frame):
    if _signals['defer']:
        _signals['requested'] = True
    else:
        raise KeyboardInterrupt


def stop_requested() -> bool:
    """Tell whether SIGINT or SIGTERM arrived while run_guarded() deferred signals."""
    return _signals['requested']


def run_guarded(start: Callable[[], Peer], run: Callable[[Peer], int],
                stop: Callable[[Peer, bool], Optional[int]], defer_signals: bool = False) -> int:
    """
    Start, run and always stop one peer (a node, or a ROS-free DDS peer).

    Ctrl-C and SIGTERM both raise KeyboardInterrupt here, so `stop` runs for either (kill and
    launch shutdowns included) while the middleware is still up, and a second signal cannot
    cut it short. An error in `start` is reported as one `[FATAL]` line, not a traceback.

    With `defer_signals`, a signal during `run` only sets stop_requested(), which `run` polls:
    an exception raised inside rclpy's executor can leave a subscription marked "in use", and
    destroying it at shutdown then blocks forever (seen under Python 3.10).

    :param start: build the peer (creates its segment, endpoints, ...)
    :param run: run it until it is finished or stop_requested(); return its exit code
    :param stop: stop(peer, interrupted) cleans up; return the peer's exit code
    :param defer_signals: let `run` see signals through stop_requested() instead
    :return: run's exit code when non-zero, else stop's; 2 when `start` failed
    """
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    peer = None
    exit_code = 0
    interrupted = False
    try:
        peer = start()
        _signals['defer'] = defer_signals
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
        _signals['defer'] = False
        if peer is not None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            exit_code = exit_code or stop(peer, interrupted) or 0
    return exit_code
