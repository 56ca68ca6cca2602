"""process.signals in a process of its own: where KeyboardInterrupt is raised, and how often."""

import subprocess
import sys
import textwrap

from node_processes import default_signals

RUN_TIMEOUT_S = 60.0

# A module that stands for library code: a signal that lands in it must not raise there.
LIBRARY_MODULE = """
import os
import time

def signal_self_and_wait(signum, seconds):
    os.kill(os.getpid(), signum)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
"""

PROGRAM = """
import os, signal, sys, time
sys.path.insert(0, sys.argv[1])
from jetson_shm_ros.process import signals
import fake_library

signals.add_library_dir(sys.argv[1])
assert signals.install()
woken = []
signals.add_waker(lambda: woken.append(1))

fake_library.signal_self_and_wait(signal.SIGTERM, 0.2)  # in library code: not raised there
print('deferred', signals.received() == signal.SIGTERM, signals.pending(), bool(woken))
try:
    signals.raise_pending()
except KeyboardInterrupt:
    print('raised at the safe point')
signals.raise_pending()  # once per process
os.kill(os.getpid(), signal.SIGINT)  # in user code, but the one KeyboardInterrupt was raised
time.sleep(0.2)
print('second signal recorded only', signals.received() == signal.SIGTERM)
"""

USER_CODE_PROGRAM = """
import os, signal, time
from jetson_shm_ros.process import signals

assert signals.install()
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
except KeyboardInterrupt:
    print('raised at once in user code')
"""


def _run(program, *args):
    done = subprocess.run([sys.executable, '-c', textwrap.dedent(program), *args],
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          preexec_fn=default_signals)
    return done.returncode, done.stdout + done.stderr


def test_a_signal_in_library_code_waits_for_a_safe_point_and_is_raised_once(tmp_path):
    (tmp_path / 'fake_library.py').write_text(LIBRARY_MODULE)
    code, output = _run(PROGRAM, str(tmp_path))
    assert code == 0, output
    assert 'deferred True True True' in output
    assert 'raised at the safe point' in output
    assert 'second signal recorded only True' in output


def test_sigterm_in_user_code_is_keyboard_interrupt_at_once():
    code, output = _run(USER_CODE_PROGRAM)
    assert code == 0 and 'raised at once in user code' in output, output


def test_a_signal_at_interpreter_exit_is_ignored():
    # After main returns Python restores the default actions while the middleware is torn down;
    # from the library's atexit hook on, both signals are ignored, so the exit code stays the
    # program's. atexit runs last-in first-out: late_signal, registered first, runs after it.
    program = """
    import atexit, os, signal, time
    from jetson_shm_ros.process import signals

    def late_signal():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        print('still here')

    atexit.register(late_signal)
    assert signals.install()
    """
    code, output = _run(program)
    assert code == 0 and 'still here' in output, f'exit {code}: {output}'
    assert 'KeyboardInterrupt' not in output, output


def test_a_signal_in_a_generated_message_class_is_not_raised_there(tmp_path):
    # rclpy's C++ builds each message it takes through the generated <pkg>/msg/_<name>.py: a
    # KeyboardInterrupt raised there became "RuntimeError: Unable to convert call argument"
    # (seen once in make stress, frame_subscriber.py).
    msg_dir = tmp_path / 'fake_msgs' / 'msg'
    msg_dir.mkdir(parents=True)
    (msg_dir / '_fake.py').write_text(LIBRARY_MODULE)
    code, output = _run("""
import signal, sys
sys.path.insert(0, sys.argv[1])
from jetson_shm_ros.process import signals
import _fake

assert signals.install()
_fake.signal_self_and_wait(signal.SIGINT, 0.2)
print('pending after a message class', signals.pending())
""", str(msg_dir))
    assert code == 0 and 'pending after a message class True' in output, output


def test_a_pending_signal_is_raised_in_the_main_thread_only(tmp_path):
    # A KeyboardInterrupt in another thread would end that thread alone and the signal would be
    # lost: raise_pending() leaves it pending there; raise_pending_in_task() (the endpoints'
    # executor task) raises Interrupt, an Exception too, which rclpy's Task keeps and the
    # executor re-raises in the spinning thread. Wakers run in the wake-up thread.
    (tmp_path / 'fake_library.py').write_text(LIBRARY_MODULE)
    code, output = _run("""
import signal, sys, threading
sys.path.insert(0, sys.argv[1])
from jetson_shm_ros.process import signals
import fake_library

signals.add_library_dir(sys.argv[1])
assert signals.install()
woken_in = []
signals.add_waker(lambda: woken_in.append(threading.current_thread().name))
fake_library.signal_self_and_wait(signal.SIGINT, 0.2)
outcome = []

def in_a_worker(function):
    try:
        function()
        outcome.append('nothing')
    except signals.Interrupt as error:
        outcome.append('Interrupt is KeyboardInterrupt %s, Exception %s' % (
            isinstance(error, KeyboardInterrupt), isinstance(error, Exception)))

for function in (signals.raise_pending, signals.raise_pending_in_task,
                 signals.raise_pending_in_task):
    worker = threading.Thread(target=in_a_worker, args=(function,))
    worker.start()
    worker.join()
print('woken in', woken_in)
print('outcome', outcome)
print('pending after', signals.pending())
""", str(tmp_path))
    assert code == 0, output
    assert "woken in ['jsr-signal-wakeup']" in output
    assert ("outcome ['nothing', 'Interrupt is KeyboardInterrupt True, Exception True', "
            "'nothing']") in output
    assert 'pending after False' in output
