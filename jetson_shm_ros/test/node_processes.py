"""Run the installed node executables as separate processes, the way `ros2 run` does."""

import os
import random
import re
import signal
import subprocess
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

from ament_index_python.packages import get_package_prefix

PACKAGE = 'jetson_shm_ros'
START_TIMEOUT_S = 30.0
# Every node a test starts uses this backend when set (scripts/gpu_lifecycle_check.sh).
BACKEND_ENV = 'JSR_TEST_BACKEND'
RUN_TIMEOUT_S = 120.0
_SUMMARY = re.compile(r'summary: (.*)')
_RMW = re.compile(r'\brmw=(\S+)')


def executable(name: str) -> str:
    """Return <prefix>/lib/jetson_shm_ros/<name>: exactly the file `ros2 run` executes."""
    path = os.path.join(get_package_prefix(PACKAGE), 'lib', PACKAGE, name)
    assert os.access(path, os.X_OK), f'{path} is not an installed executable'
    return path


def expected_rmw() -> str:
    """Return the RMW that a node started with this environment runs on."""
    from rclpy.utilities import get_rmw_implementation_identifier
    return get_rmw_implementation_identifier()


def reported_rmw(text: str) -> Optional[str]:
    """Return the RMW named by a node's start-up line ('rmw=rmw_cyclonedds_cpp ...')."""
    match = _RMW.search(text)
    return match.group(1) if match else None


# The highest domain both RMWs can open: Cyclone DDS refuses 233 and above (its unicast ports
# would pass 65535), with an error only in the node's output.
MAX_DOMAIN_ID = 232


def domain_range() -> Tuple[int, int]:
    """
    Return the ROS domain range tests pick from (JSR_TEST_DOMAINS, default 100-199).

    JSR_TEST_DOMAINS=200-232 keeps a second test run on the host in other domains.
    """
    text = os.environ.get('JSR_TEST_DOMAINS', '100-199')
    try:
        first, last = (int(x) for x in text.split('-'))
    except ValueError:
        first = last = -1
    if not 0 <= first <= last <= MAX_DOMAIN_ID:
        raise ValueError(f'JSR_TEST_DOMAINS={text!r}: want FIRST-LAST within 0-{MAX_DOMAIN_ID}')
    return first, last


def isolated_env(**extra: str) -> Dict[str, str]:
    """Environment with a random ROS_DOMAIN_ID so parallel tests never hear each other."""
    env = dict(os.environ)
    first, last = domain_range()
    env['ROS_DOMAIN_ID'] = str(random.SystemRandom().randrange(first, last + 1))
    env['PYTHONFAULTHANDLER'] = '1'  # a crash prints the Python stack (seen once: exit -11)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['PYTHONUNBUFFERED'] = '1'
    env.update(extra)
    return env


def default_signals() -> None:
    """
    Give a child the default SIGINT and SIGTERM, as a terminal or `ros2 launch` would.

    A test run started in the background (`cmd &`, nohup) inherits SIGINT ignored, and a
    child would keep ignoring it until its own handler is installed: a signal sent at once
    would then be lost.
    """
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def native_stacks(pid: int) -> str:
    """Every thread's native stack of a live process, by gdb where it is installed ('' if not)."""
    try:
        done = subprocess.run(['gdb', '-p', str(pid), '-batch', '-ex', 'thread apply all bt'],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ''
    return '\n--- native stacks (gdb) ---\n' + done.stdout + '--- end of native stacks ---\n'


def ros_args(params: Dict[str, object]) -> List[str]:
    """Turn {'frames': 10, 'shape': [2, 3]} into --ros-args -p frames:=10 -p shape:=[2,3]."""
    args = ['--ros-args']
    for key, value in params.items():
        if isinstance(value, bool):
            text = str(value).lower()
        elif isinstance(value, (list, tuple)):
            text = '[' + ','.join(str(item) for item in value) + ']'
        else:
            text = str(value)
        args += ['-p', f'{key}:={text}']
    return args


class NodeProcess:
    """One node executable running in its own process, its output kept in a file."""

    def __init__(self, name: str, params: Dict[str, object], env: Dict[str, str],
                 prefix: Sequence[str] = ()):
        """:param prefix: a command that runs the executable, e.g. ['unshare', '-m', ...]."""
        self.name = name
        self._log = tempfile.TemporaryFile(mode='w+')
        if os.environ.get(BACKEND_ENV) and 'backend' not in params:
            params = dict(params, backend=os.environ[BACKEND_ENV])
        self.popen = subprocess.Popen([*prefix, executable(name)] + ros_args(params), env=env,
                                      stdout=self._log, stderr=subprocess.STDOUT,
                                      preexec_fn=default_signals)

    def output(self) -> str:
        """Everything the process printed so far."""
        self._log.seek(0)
        return self._log.read()

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT_S) -> re.Match:
        """Poll the output until `pattern` appears; fail with the output otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output())
            if match:
                return match
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f'{self.name}: no {pattern!r} within {timeout} s; '
                             f'output:\n{self.output()}')

    def finish(self, timeout: float = RUN_TIMEOUT_S) -> int:
        """Wait for a normal exit (kill on timeout and fail)."""
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            # Native stacks first (a hang inside the RMW shows only there), then
            # PYTHONFAULTHANDLER (isolated_env) dumps every thread's Python stack on SIGABRT.
            self._log.write(native_stacks(self.popen.pid))
            self._log.flush()
            self.popen.send_signal(signal.SIGABRT)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
            raise AssertionError(f'{self.name} did not finish in {timeout} s; '
                                 f'output:\n{self.output()}')

    def interrupt(self, signum: int = signal.SIGINT, timeout: float = 30.0) -> int:
        """Send a signal and wait for the process to clean up and exit."""
        self.popen.send_signal(signum)
        return self.finish(timeout)

    def stop(self) -> None:
        """Make sure the process is gone (test teardown)."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()


def summary(text: str) -> Optional[Dict[str, int]]:
    """Parse the consumer's last 'summary: received=N verified=N ...' line."""
    lines = _SUMMARY.findall(text)
    if not lines:
        return None
    return {key: int(value) for key, value in re.findall(r'(\w+)=(\d+)', lines[-1])}
