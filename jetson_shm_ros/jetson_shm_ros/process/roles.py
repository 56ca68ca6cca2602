"""
What the demo producer and consumer do, once, for any transport (no ROS needed).

The rclpy nodes and the Cyclone DDS peers are adapters: they own the endpoints and the
segment, and hand a role small callables (ports) to ask the transport things. The role
decides everything else: the wait gate, the frame limit and the drain, the idle timeout,
the status and summary lines, and the exit code. (The endpoints log their own start-up line:
transport, backend, segment, QoS; the role adds its own.)
"""

import time
from typing import Callable, Mapping, Optional

Clock = Callable[[], float]


def fields(values: Mapping[str, object]) -> str:
    """Format {'a': 1, 'b': 2} as 'a=1 b=2'."""
    return ' '.join(f'{key}={value}' for key, value in values.items())


class _Role:
    """What both roles hold: options, log, topic, clock, and whether and how they ended."""

    def __init__(self, options: Mapping[str, object], log, topic: str, clock: Clock):
        """
        Keep what every role needs.

        :param options: the role's parsed options (process.options.parse_options)
        :param log: a logger with info() and warning() (Python's or a node's)
        :param topic: the resolved descriptor topic, for log lines
        :param clock: monotonic seconds
        """
        self.options = options
        self.log = log
        self.topic = topic
        self._clock = clock
        self.finished = False
        self.exit_code = 0

    def poll(self) -> bool:
        """Return whether the role is finished (a consumer also checks its limits here)."""
        return self.finished


class ProducerRole(_Role):
    """
    The producer's behaviour, advanced by `tick()` once per frame period.

    A tick waits until `wait_for_consumers` subscriptions matched, then writes one frame, and
    once `frames` were published waits for the readers to release them (at most
    release_timeout_s per slot) before it sets `finished`.
    """

    def __init__(self, options: Mapping[str, object], log, topic: str, *,
                 subscriptions: Callable[[], Optional[int]], write_frame: Callable[[], bool],
                 all_released: Callable[[], bool], details: Callable[[], Mapping[str, int]],
                 clock: Clock = time.monotonic):
        """
        Prepare the role (options: parsed PRODUCER_OPTIONS); nothing is written before a tick.

        :param subscriptions: matched subscriptions now; None when it cannot be asked
        :param write_frame: write the next frame and publish it; False when no slot was free
        :param all_released: whether no reader still holds a published frame
        :param details: more status fields, e.g. readers and the pool's counters
        """
        super().__init__(options, log, topic, clock)
        self._subscriptions = subscriptions
        self._write_frame = write_frame
        self._all_released = all_released
        self._details = details
        self.published = 0
        self.waits = 0
        self._waiting_logged = False
        self._drain_deadline: Optional[float] = None
        self._last_status = clock()

    @property
    def period_s(self) -> float:
        """Seconds between ticks (1 / rate_hz)."""
        return 1.0 / self.options['rate_hz']

    def startup_line(self) -> str:
        """Return the role's start-up line (the endpoint logs its own: segment, QoS, ...)."""
        options = self.options
        return (f'rate={options["rate_hz"]} Hz frames={options["frames"] or "endless"} '
                f'wait_for_consumers={options["wait_for_consumers"]}')

    def tick(self) -> None:
        """Advance by one frame period: gate, write, drain or log status as due."""
        if self.finished:
            return
        frames = self.options['frames']
        if frames and self.published >= frames:
            self._drain()
            return
        wanted = self.options['wait_for_consumers']
        matched = self._subscriptions() if wanted else None
        if wanted and (matched is None or matched < wanted):
            if not self._waiting_logged:
                self.log.info(f'waiting for {wanted} subscription(s) on {self.topic}')
                self._waiting_logged = True
        elif self._write_frame():
            self.published += 1
        else:
            self.waits += 1
        now = self._clock()
        if now - self._last_status >= self.options['status_period_s']:
            self._last_status = now
            self.log.info(self.status())

    def _drain(self) -> None:
        # Stay until consumers are done with the last frames, but never forever.
        now = self._clock()
        if self._drain_deadline is None:
            self._drain_deadline = now + \
                self.options['release_timeout_s'] * self.options['slots']
        if self._all_released() or now > self._drain_deadline:
            self.finished = True

    def status(self) -> str:
        """Return 'published=N waits=N [subscriptions=N] readers=N <pool counters>'."""
        values = {'published': self.published, 'waits': self.waits}
        matched = self._subscriptions()
        if matched is not None:
            values['subscriptions'] = matched
        values.update(self._details())
        return fields(values)

    def done_line(self) -> str:
        """Return the last line a producer logs."""
        return 'done: ' + self.status()


class ConsumerRole(_Role):
    """
    The consumer's behaviour: `poll()` after each descriptor, `tick()` now and then.

    Finished after `frames` descriptors, or when none arrived for idle_timeout_s after the
    first one; the exit code is 1 when any descriptor was invalid.
    """

    def __init__(self, options: Mapping[str, object], log, topic: str, *,
                 counts: Callable[[], Mapping[str, int]], summary: Callable[[], str],
                 clock: Clock = time.monotonic):
        """
        Prepare the role (options: parsed CONSUMER_OPTIONS).

        :param counts: the frame counters, at least 'received' and 'invalid'
        :param summary: the one-line counter summary ('received=N verified=N ...')
        """
        super().__init__(options, log, topic, clock)
        self._counts = counts
        self._summary = summary
        now = clock()
        self._last_received = (0, now)  # (count, when it last changed)
        self._last_status = (0, now)

    def startup_line(self) -> str:
        """Return the role's start-up line (the endpoint logs its own: backend, QoS, ...)."""
        options = self.options
        return (f'policy=from-producer frames={options["frames"] or "endless"} '
                f'idle_timeout_s={options["idle_timeout_s"] or "never"}')

    def poll(self) -> bool:
        """Check the frame limit and the idle timeout; return `finished`."""
        if self.finished:
            return True
        received, now = self._counts()['received'], self._clock()
        frames, idle_timeout = self.options['frames'], self.options['idle_timeout_s']
        if received != self._last_received[0]:
            self._last_received = (received, now)
        if frames and received >= frames:
            self.finished = True
        elif idle_timeout and received and now - self._last_received[1] > idle_timeout:
            self.log.warning(f'no descriptor for {idle_timeout} s: the producer seems gone; '
                             'exiting')
            self.finished = True
        return self.finished

    def tick(self) -> None:
        """Poll, and log the status line when status_period_s has passed."""
        self.poll()
        if self._clock() - self._last_status[1] >= self.options['status_period_s']:
            self.log_status()

    def log_status(self) -> None:
        """Log 'status: <summary> rate=N/s' (descriptors per second since the last one)."""
        received, now = self._counts()['received'], self._clock()
        last_received, last_time = self._last_status
        rate = (received - last_received) / max(now - last_time, 1e-9)
        self._last_status = (received, now)
        self.log.info(f'status: {self._summary()} rate={rate:.1f}/s')

    def finish(self) -> int:
        """Log the summary line and return the exit code (1 when anything was invalid)."""
        self.log.info('summary: ' + self._summary())
        self.exit_code = 1 if self._counts()['invalid'] else 0
        return self.exit_code
