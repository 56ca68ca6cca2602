"""
The producer and consumer roles (process.roles) without ROS or DDS.

The ports are real: a FrameProducer's segment and a FrameConsumer that maps it, with the
descriptor handed over in-process. Only the clock is the test's, so timeouts are exact and
nothing waits.
"""

from dataclasses import replace

from jetson_shm_ros.core.frame_consumer import FrameConsumer
from jetson_shm_ros.core.frame_producer import FrameProducer
from jetson_shm_ros.process.options import parse_options
from jetson_shm_ros.process.role_options import CONSUMER_OPTIONS, PRODUCER_OPTIONS
from jetson_shm_ros.process.roles import ConsumerRole, ProducerRole
import pytest


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Log:
    """Collect log lines by level."""

    def __init__(self):
        self.lines = []

    def info(self, message: str) -> None:
        self.lines.append(('info', message))

    def warning(self, message: str) -> None:
        self.lines.append(('warning', message))

    def text(self) -> str:
        return '\n'.join(message for _, message in self.lines)


class Loopback:
    """A producer role whose descriptors go straight into a consumer role's stream."""

    def __init__(self, shm_name, producer_options, consumer_options):
        self.clock = Clock()
        self.producer_log, self.consumer_log = Log(), Log()
        self.matched = 0
        producer_options = parse_options(PRODUCER_OPTIONS, dict(
            producer_options, shm_name=shm_name, shape=[16], status_period_s=1.0))
        self.producer = FrameProducer(
            shm_name, producer_options['slots'], 'uint8', [16],
            policy=producer_options['policy'],
            required_readers=producer_options['wait_for_consumers'])
        self.consumer = FrameConsumer()
        self.descriptors = []
        self.producer_role = ProducerRole(
            producer_options, self.producer_log, '/topic', subscriptions=lambda: self.matched,
            write_frame=self._write, all_released=self.producer.all_released,
            details=lambda: dict(self.producer.pool.counters), clock=self.clock)
        self.consumer_role = ConsumerRole(
            parse_options(CONSUMER_OPTIONS, dict(consumer_options, status_period_s=1.0)),
            self.consumer_log, '/topic', counts=lambda: self.consumer.counts,
            summary=self.consumer.summary, clock=self.clock)

    def _write(self) -> bool:
        desc = self.producer.try_write_pattern()
        if desc is None:
            return False
        self.descriptors.append(desc)
        return True

    def deliver(self) -> None:
        """Hand every published descriptor to the consumer, polling after each."""
        while self.descriptors:
            self.consumer.handle(self.descriptors.pop(0))
            self.consumer_role.poll()

    def close(self) -> None:
        self.consumer.close()
        self.producer.close()


@pytest.fixture
def loopback(shm_name, request):
    producer_options, consumer_options = request.param
    pair = Loopback(shm_name, producer_options, consumer_options)
    yield pair
    pair.close()


@pytest.mark.parametrize('loopback', [({'frames': 5, 'wait_for_consumers': 1,
                                        'policy': 'reliable'}, {'frames': 5})],
                         indirect=True)
def test_gate_then_frames_then_drain_then_summary(loopback):
    producer, consumer = loopback.producer_role, loopback.consumer_role
    for _ in range(3):
        producer.tick()
    assert producer.published == 0, 'nothing is written before a subscription matched'
    waiting = [line for line in loopback.producer_log.lines if 'waiting for' in line[1]]
    assert waiting == [('info', 'waiting for 1 subscription(s) on /topic')], 'logged once'
    loopback.matched = 1
    while not consumer.finished:
        producer.tick()
        loopback.deliver()
    assert producer.published == 5 and not producer.finished
    producer.tick()
    assert producer.finished, 'every frame released: the drain ends at once'
    assert consumer.finish() == 0
    assert 'summary: received=5 verified=5 dropped=0 invalid=0' in loopback.consumer_log.text()
    assert producer.done_line().startswith('done: published=5 waits=0 subscriptions=1 ')


def _producer_role(clock, log, all_released=lambda: True, write_frame=lambda: True,
                   subscriptions=lambda: 0, **options):
    return ProducerRole(parse_options(PRODUCER_OPTIONS, options), log, '/topic',
                        subscriptions=subscriptions, write_frame=write_frame,
                        all_released=all_released, details=lambda: {'readers': 1},
                        clock=clock)


def test_the_drain_gives_up_after_release_timeout_per_slot():
    clock = Clock()
    role = _producer_role(clock, Log(), all_released=lambda: False, frames=2, slots=2,
                          release_timeout_s=3.0)
    role.tick()
    role.tick()
    role.tick()  # the drain starts: a reader holds a frame, wait at most 3 s * 2 slots
    clock.now += 6.0
    role.tick()
    assert not role.finished
    clock.now += 0.01
    role.tick()
    assert role.finished and role.published == 2 and role.exit_code == 0


def test_a_full_pool_counts_a_wait_and_the_status_line_comes_each_period():
    clock, log = Clock(), Log()
    free = iter([True, False, False, True])
    role = _producer_role(clock, log, write_frame=lambda: next(free), status_period_s=2.0)
    for _ in range(3):
        role.tick()
        clock.now += 1.0
    role.tick()
    assert (role.published, role.waits) == (2, 2)
    assert log.lines == [('info', 'published=1 waits=2 subscriptions=0 readers=1')], log.lines


def test_without_a_graph_the_gate_stays_closed_and_status_leaves_subscriptions_out():
    # rclpy cannot be asked for the graph after Ctrl-C: the port then says None.
    role = _producer_role(Clock(), Log(), subscriptions=lambda: None, wait_for_consumers=1)
    role.tick()
    assert role.published == 0
    assert role.status() == 'published=0 waits=0 readers=1'


def test_endless_producer_never_finishes_and_says_so_at_start_up():
    role = _producer_role(Clock(), Log(), rate_hz=20)
    for _ in range(100):
        role.tick()
    assert not role.finished and role.published == 100 and role.period_s == 0.05
    assert role.startup_line() == 'rate=20.0 Hz frames=endless wait_for_consumers=0'


@pytest.mark.parametrize('loopback', [({}, {'idle_timeout_s': 2.0})], indirect=True)
def test_the_consumer_exits_when_the_producer_went_quiet_but_not_before_the_first_frame(
        loopback):
    consumer = loopback.consumer_role
    loopback.clock.now += 100.0
    assert not consumer.poll(), 'no idle timeout before the first descriptor'
    loopback.producer_role.tick()
    loopback.deliver()
    loopback.clock.now += 2.0
    assert not consumer.poll()
    loopback.clock.now += 0.01
    assert consumer.poll()
    assert loopback.consumer_log.lines[-1] == (
        'warning', 'no descriptor for 2.0 s: the producer seems gone; exiting')


@pytest.mark.parametrize('loopback', [({}, {})], indirect=True)
def test_an_invalid_descriptor_makes_the_exit_code_one(loopback):
    loopback.producer_role.tick()
    good = loopback.descriptors.pop()
    loopback.descriptors.append(replace(good, nbytes=good.nbytes + 1))
    loopback.deliver()
    assert loopback.consumer_role.finish() == 1
    assert 'invalid=1' in loopback.consumer_log.text()


@pytest.mark.parametrize('loopback', [({}, {})], indirect=True)
def test_the_consumer_status_line_says_the_descriptor_rate(loopback):
    for _ in range(4):
        loopback.producer_role.tick()
    loopback.deliver()
    loopback.clock.now += 0.5
    loopback.consumer_role.tick()
    assert loopback.consumer_log.lines == []
    loopback.clock.now += 1.5
    loopback.consumer_role.tick()
    assert loopback.consumer_log.lines == [
        ('info', 'status: received=4 verified=4 dropped=0 invalid=0 unverified=0 '
                 'in_place_bytes=64 copied_bytes=0 missed=0 rate=2.0/s')]
