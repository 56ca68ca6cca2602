"""
No first-frame loss when a subscriber is already there (doc/late-joiners.md).

Separate processes with real rclpy on one random ROS domain: a subscription that runs before
the publisher exists gets frame #0 (`reliable`), or at the latest the first frame published
after its match (`latest`); a subscription that joins a running publisher gets recent frames
and never an invalid one.
"""

import os
import re
import subprocess
import sys
import tempfile
import time

from node_processes import isolated_env, RUN_TIMEOUT_S, START_TIMEOUT_S
import pytest

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'late_joiner_peers.py')
FRAMES = 5
SLOTS = 8


class Peer:
    """One late_joiner_peers.py process; its output kept in a file."""

    def __init__(self, env, *argv):
        self._log = tempfile.TemporaryFile(mode='w+')
        self.popen = subprocess.Popen([sys.executable, PEERS, *map(str, argv)], env=env,
                                      stdin=subprocess.PIPE, stdout=self._log,
                                      stderr=subprocess.STDOUT, text=True)

    def output(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT_S) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output(), re.MULTILINE)
            if match or self.popen.poll() is not None:
                break
            time.sleep(0.05)
        match = re.search(pattern, self.output(), re.MULTILINE)
        assert match, f'no {pattern!r} within {timeout} s; output:\n{self.output()}'
        return match

    def counts(self) -> dict:
        line = self.wait_for(r'^COUNTS (.*)$').group(1)
        return {key: int(value) for key, value in re.findall(r'(\w+)=(\d+)', line)}

    def frames(self) -> list:
        return [int(k) for k in re.findall(r'^FRAME (\d+)$', self.output(), re.MULTILINE)]

    def end(self) -> int:
        """Close stdin (a publisher then cleans up and exits) and wait for the exit status."""
        if self.popen.poll() is None:
            self.popen.stdin.close()
            try:
                self.popen.wait(RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def stop(self) -> None:
        """Make sure the process is gone (test teardown)."""
        self.end()
        self._log.close()


def _subscriber_first(processes, shm_name, policy, rate_hz, discovery_s):
    env = isolated_env()
    sub = processes.start(Peer(env, 'sub', 'frames', FRAMES))
    sub.wait_for(r'^UP$')
    pub = processes.start(Peer(env, 'pub', 'frames', shm_name, policy, rate_hz, SLOTS,
                               discovery_s))
    sub.wait_for(r'^COUNTS ', timeout=RUN_TIMEOUT_S)
    pub.end()
    return sub, pub


def test_a_running_subscription_gets_frame_zero_under_reliable(processes, shm_name):
    # A generous discovery wait: it ends when the subscription matched, however loaded the
    # machine is (the default, RELIABLE_DISCOVERY_TIMEOUT_S, is what bench.first_frame times).
    sub, pub = _subscriber_first(processes, shm_name, 'reliable', 50.0, START_TIMEOUT_S)
    assert sub.frames() == list(range(FRAMES)), sub.output() + pub.output()
    counts = sub.counts()
    assert counts['invalid'] == 0 and counts['dropped'] == 0, sub.output()
    assert pub.popen.returncode == 0, pub.output()


def test_a_running_subscription_gets_the_first_frame_after_discovery_under_latest(
        processes, shm_name):
    # No discovery wait (the default under latest). The slots and history cover the time
    # between the publisher's side of the match and the subscription's: 8 frames at 5 Hz.
    sub, pub = _subscriber_first(processes, shm_name, 'latest', 5.0, -1)
    frames = sub.frames()
    # Frames published before the publisher saw the subscription may come too (its history);
    # the subscription may even have had all its frames before the publisher counted it.
    matched = re.search(r'^MATCHED (\d+)$', pub.output(), re.MULTILINE)
    matched = int(matched.group(1)) if matched else frames[-1] if frames else -1
    assert frames and frames[0] <= matched, (frames, matched, sub.output() + pub.output())
    assert frames == list(range(frames[0], frames[0] + FRAMES)), frames
    assert sub.counts()['invalid'] == 0, sub.output()


@pytest.mark.parametrize('policy', ['latest', 'reliable'])
def test_a_late_joiner_gets_recent_frames_and_no_invalid_one(processes, shm_name, policy):
    env = isolated_env()
    pub = processes.start(Peer(env, 'pub', 'frames', shm_name, policy, 50.0, SLOTS, 0))
    pub.wait_for(r'^AT 25$')  # the publisher runs for a while before anyone subscribes
    sub = processes.start(Peer(env, 'sub', 'frames', FRAMES))
    sub.wait_for(r'^COUNTS ', timeout=RUN_TIMEOUT_S)
    pub.end()
    frames = sub.frames()
    assert len(frames) == FRAMES and frames == sorted(frames), sub.output()
    assert frames[0] >= 25 - SLOTS, f'a late joiner starts near the newest frame, got {frames}'
    counts = sub.counts()
    # History whose slot was rewritten meanwhile is dropped unread: at most the history depth.
    assert counts['invalid'] == 0 and counts['dropped'] <= SLOTS, sub.output()
    assert pub.popen.returncode == 0, pub.output()


def test_a_parameter_makes_the_subscription_volatile_for_a_volatile_publisher(
        context, shm_name):
    # An older jetson_shm_ros (or a hand-written publisher) offers volatile descriptors: a
    # transient-local subscription cannot match it, one overridden to volatile does.
    from jetson_shm_ros import ShmPublisher, ShmSubscription
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import DurabilityPolicy

    def node(name, endpoint):
        return Node(name, context=context, parameter_overrides=[Parameter(
            f'qos_overrides./frames.{endpoint}.durability', value='volatile')])

    old, new = node('jsr_volatile_pub', 'publisher'), node('jsr_volatile_sub', 'subscription')
    received = []
    try:
        pub = ShmPublisher(old, 'frames', dtype='uint8', shape=[8], shm_name=shm_name)
        sub = ShmSubscription(new, 'frames', lambda frame, info: received.append(info),
                              diagnostics_period_s=0.0)
        assert pub._publisher.qos_profile.durability == DurabilityPolicy.VOLATILE
        assert sub._subscription.qos_profile.durability == DurabilityPolicy.VOLATILE
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(new)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not received and time.monotonic() < deadline:
            if pub.subscription_count():
                pub.publish_test_pattern()
            executor.spin_once(timeout_sec=0.05)
        assert received, 'nothing arrived through the volatile override'
        executor.shutdown()
    finally:
        new.destroy_node()
        old.destroy_node()
