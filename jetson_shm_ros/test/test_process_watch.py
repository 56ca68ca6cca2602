"""ProcessWatch: the consumer's per-frame question "does the producer still run?"."""

import os
import subprocess
import sys
import time

from jetson_shm_ros.core.liveness import process_start_time, ProcessWatch

TIMEOUT_S = 30.0


def test_a_watch_sees_a_process_run_and_then_exit():
    child = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],
                             stdin=subprocess.PIPE)
    try:
        watch = ProcessWatch(child.pid, process_start_time(child.pid))
        assert watch.alive()
        assert watch.alive(), 'asking twice changes nothing'
        child.stdin.close()
        child.wait(TIMEOUT_S)
        # Reaped: the pid may already be free (or reused); the watch must say gone.
        deadline = time.monotonic() + TIMEOUT_S
        while watch.alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not watch.alive()
        watch.close()
        watch.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(TIMEOUT_S)


def test_a_watch_with_another_start_time_says_gone():
    """A recorded start time that is not the process's own: the pid was reused."""
    assert ProcessWatch(os.getpid(), process_start_time(os.getpid())).alive()
    assert not ProcessWatch(os.getpid(), process_start_time(os.getpid()) + 1).alive()


def test_impossible_pids_are_gone():
    for pid in (0, -1, 2**62):
        assert not ProcessWatch(pid, 1).alive()
