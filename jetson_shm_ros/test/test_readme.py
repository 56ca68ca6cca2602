"""
Every shell block of README.md runs as written, in the shell the README tells users to open.

Each block runs in `bash -e` from the repository root after `source scripts/env.sh` (the
README's "A shell where your nodes run"), in its own ROS_DOMAIN_ID, with a deadline; on the
PyPI path it starts without the venv or the workspace on any path, as a new terminal does.
The comment line above a block (doc/index.md, "How the README stays true") says what must happen:
`expect=REGEX` (exit 0 and a line matching REGEX), `until=REGEX` (REGEX printed, then SIGTERM to
the block's process group, as Ctrl-C / `kill %1` by hand) or `skip: REASON`. A `make` in a block
uses this run's venv and workspace (VENV, BUILD_BASE, INSTALL_BASE, LOG_BASE from the
environment that make test or scripts/env.sh set).
"""

import os
import re
import signal
import subprocess
import time

from conftest import project_segments
from node_processes import isolated_env
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
README = os.path.join(ROOT, 'README.md')
BLOCK_DEADLINE_S = 300.0  # generous: `make demo` rebuilds (a no-op) and streams 300 frames
MAX_SKIPPED = 3
_BLOCK = re.compile(r'(?:<!-- readme-test: (?P<how>[^\n]*?) -->\n)?```(?P<lang>sh|bash)\n'
                    r'(?P<code>.*?)```', re.DOTALL)


def readme_blocks():
    """Return (line number, how, code) of every sh/bash block of the README, in order."""
    with open(README, encoding='utf-8') as source:
        text = source.read()
    return [(text.count('\n', 0, match.start('lang')) + 1, match.group('how') or '',
             match.group('code')) for match in _BLOCK.finditer(text)]


BLOCKS = readme_blocks()
RUN = [block for block in BLOCKS if not block[1].startswith('skip:')]
SKIPPED = [block for block in BLOCKS if block[1].startswith('skip:')]


def _environment() -> dict:
    env = isolated_env()
    env.setdefault('JSR_VENV', os.path.join(ROOT, '.venv'))
    install = env.setdefault('JSR_INSTALL_BASE', os.path.join(ROOT, 'install'))
    suffix = os.path.basename(install)[len('install'):]  # install-py310 -> -py310
    env.setdefault('VENV', env['JSR_VENV'])
    env.setdefault('INSTALL_BASE', install)
    env.setdefault('BUILD_BASE', os.path.join(os.path.dirname(install), 'build' + suffix))
    env.setdefault('LOG_BASE', os.path.join(os.path.dirname(install), 'log' + suffix))
    for name in ('MAKEFLAGS', 'MAKELEVEL', 'MFLAGS'):  # a block's make is a user's make
        env.pop(name, None)
    if env.get('JSR_ROS_MODE') == 'venv':
        # What a new terminal has: neither the venv nor this workspace on any path, so that the
        # block's `source scripts/env.sh` has to provide them (a sourced ROS 2 stays as it is).
        for name in ('PYTHONPATH', 'AMENT_PREFIX_PATH', 'CMAKE_PREFIX_PATH', 'COLCON_PREFIX_PATH',
                     'VIRTUAL_ENV', 'JSR_ROS_MODE', 'JSR_PYTHON',
                     '_ROS_WHEELS_BOOTSTRAP_COMPLETE'):  # the ROS wheels' .pth sets up afresh
            env.pop(name, None)
        for name in ('PATH', 'LD_LIBRARY_PATH'):
            kept = [entry for entry in env.get(name, '').split(':') if entry and not
                    entry.startswith((env['JSR_VENV'] + '/', install + '/'))]
            env[name] = ':'.join(kept)
    return env


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the block's process group, then SIGKILL what is left after a grace period."""
    for signum, grace_s in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def test_the_readme_has_blocks_to_run_and_few_exemptions():
    assert len(RUN) >= 4, f'README.md: only {len(RUN)} shell blocks run'
    print('README blocks not run:\n' + '\n'.join(
        f'  README.md:{line}: {how}' for line, how, _ in SKIPPED))
    assert len(SKIPPED) <= MAX_SKIPPED, \
        f'{len(SKIPPED)} README blocks are exempt (at most {MAX_SKIPPED}): {SKIPPED}'
    unknown = [(line, how) for line, how, _ in BLOCKS if how and
               not re.match(r'(skip: \S|expect=\S|until=\S)', how)]
    assert not unknown, f'README.md: unknown readme-test comments: {unknown}'


def test_no_block_needs_ros2_cli():
    """`ros2` is not on the PyPI path: it may appear in a comment only, beside its equivalent."""
    using = [(line, command) for line, how, code in RUN for command in code.splitlines()
             if re.match(r'\s*(\S+=\S+\s+)*ros2\s', command.split('#')[0])]
    assert not using, f'README.md blocks that run ros2: {using}'


@pytest.mark.parametrize('line, how, code', RUN, ids=[f'line{block[0]}' for block in RUN])
def test_readme_block_runs(tmp_path, line, how, code):
    before = set(project_segments('jetson_shm_ros'))
    script = tmp_path / 'block.sh'
    script.write_text('set -e\nsource scripts/env.sh\n' + code)
    log_path = tmp_path / 'output.log'
    kind, _, pattern = how.partition('=')
    with open(log_path, 'w') as log:
        process = subprocess.Popen(['bash', str(script)], cwd=ROOT, env=_environment(),
                                   stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + BLOCK_DEADLINE_S
            seen = False
            while process.poll() is None and time.monotonic() < deadline:
                if kind == 'until' and re.search(pattern, log_path.read_text()):
                    seen = True
                    break
                time.sleep(0.2)
            if kind == 'until':
                _stop(process)
                output = log_path.read_text()
                assert seen, f'README.md:{line}: no line matched {pattern!r}:\n{output}'
            else:
                timed_out = process.poll() is None
                _stop(process)
                output = log_path.read_text()
                assert not timed_out, \
                    f'README.md:{line}: still running after {BLOCK_DEADLINE_S} s:\n{output}'
                assert process.returncode == 0, \
                    f'README.md:{line}: exit status {process.returncode}:\n{output}'
                if kind == 'expect':
                    assert re.search(pattern, output), \
                        f'README.md:{line}: no line matched {pattern!r}:\n{output}'
        finally:
            _stop(process)
    # Only the block's own segments count (named in its output: other runs share /dev/shm).
    output = log_path.read_text()
    left = sorted(name for name in set(project_segments('jetson_shm_ros')) - before
                  if '/' + name in output)
    assert not left, f'README.md:{line}: segments left in /dev/shm: {left}'


def test_make_shell_opens_the_same_shell():
    """`make shell` (named beside `source scripts/env.sh`): the package imports, nodes run."""
    commands = ('python3 -c "import jetson_shm_ros.ros; print(\'imported\', '
                'jetson_shm_ros.__file__)"\n'
                'install/jetson_shm_ros/lib/jetson_shm_ros/consumer --ros-args -p frames:=x '
                '< /dev/null\necho "consumer exit $?"\nexit\n')
    result = subprocess.run(['make', 'shell'], cwd=ROOT, env=_environment(), input=commands,
                            capture_output=True, text=True, timeout=BLOCK_DEADLINE_S)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    install = _environment()['INSTALL_BASE']
    assert re.search(rf'imported {re.escape(install)}/jetson_shm_ros/\S+/__init__\.py',
                     output), output
    # The installed node ran and refused the bad value the way every node does.
    assert 'bad_option: frames=x' in output and 'consumer exit 2' in output, output
