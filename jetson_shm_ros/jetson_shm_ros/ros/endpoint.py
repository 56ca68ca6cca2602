"""What ShmPublisher and ShmSubscription share: backend, lifetime, signals, logs, diagnostics."""

import os
import threading
import time
from typing import Callable

from jetson_shm_ros.core.backend import select_backend
from jetson_shm_ros.process import signals
from jetson_shm_ros.process.teardown import end_if_main_thread_stuck
from jetson_shm_ros.ros.diagnostics import EndpointDiagnostics, HardwareId, Report
from jetson_shm_ros.ros.logs import route_core_logs, unroute_core_logs
from jetson_shm_ros.ros.stamps import NodeClock
import rclpy
from rclpy.node import Node
from rclpy.signals import (
    get_current_signal_handlers_options, SignalHandlerOptions, uninstall_signal_handlers)


# How often a signal that arrived before the node was in an executor checks for one.
_EXECUTOR_POLL_S = 0.02
_RCLPY_DIR = os.path.dirname(os.path.abspath(rclpy.__file__)) + os.sep


def in_rclpy_teardown(frame) -> bool:
    """Tell whether a thread's innermost Python frame is rclpy destroying or shutting down."""
    if frame is None:
        return False
    name = frame.f_code.co_name
    return os.path.abspath(frame.f_code.co_filename).startswith(_RCLPY_DIR) and \
        ('destroy' in name or 'shutdown' in name)


def take_over_signals() -> bool:
    """
    Make SIGINT and SIGTERM this library's for the process (doc/lifecycle.md).

    rclpy's own handler (installed by rclpy.init) shuts every context down from another thread
    while the main thread may be publishing or between spin's context check and its wait set,
    so an ordinary node could fail with RCLError at Ctrl-C. It is uninstalled, and
    process.signals raises KeyboardInterrupt at a safe point instead; the program's `finally`
    then destroys the node and shuts rclpy down. Nothing changes when the program installed
    handlers of its own, or when this is not the main thread.

    :return: whether the library now handles SIGINT and SIGTERM
    """
    signals.add_library_dir(os.path.dirname(os.path.abspath(rclpy.__file__)))

    def uninstall_rclpy_handlers():
        if get_current_signal_handlers_options() != SignalHandlerOptions.NO:
            uninstall_signal_handlers()

    return signals.install(uninstall_rclpy_handlers)


class Endpoint:
    """Base of the public endpoints: closes with its node, reports on /diagnostics."""

    def __init__(self, node: Node, backend: str, mode: str):
        self._node = node
        self._closed = False
        self._diagnostics = None
        take_over_signals()
        # The core logs through `logging`; show its lines in this node's log.
        self._log_handler = route_core_logs(node)
        self._clock = NodeClock(node)
        try:
            self.backend = select_backend(backend, mode)
        except BaseException:
            self._closed = True  # nothing else was made: close() has nothing to do
            self._clock.close()
            unroute_core_logs(self._log_handler)
            raise
        # Called when a signal arrives (process.signals' wake-up thread). No guard condition:
        # rclpy's EventsExecutor refuses them.
        signals.add_waker(self._wake_executor)
        _close_with_node(node, self)

    def _wake_executor(self) -> None:
        """
        Have the executor spinning the node deliver a pending signal (process.signals).

        Executor.create_task is thread-safe and wakes the executor's wait (Humble and later,
        the EventsExecutor too); the task raises KeyboardInterrupt out of spin_once in the
        thread that spins. For a node in no executor yet (a signal during start-up) a thread
        waits until the node is added to one, unless a loan or descriptor delivers it first.
        """
        executor = self._node.executor
        if executor is None:
            threading.Thread(target=self._wake_once_in_executor, daemon=True,
                             name='jsr-signal-executor-wait').start()
            return
        task = executor.create_task(signals.raise_pending_in_task)
        # A MultiThreadedExecutor raises a worker's exception only when a later callback is
        # dispatched: one more task, created when this one is done, is that callback.
        task.add_done_callback(_nothing)

    def _wake_once_in_executor(self) -> None:
        while not self._closed and signals.pending():
            if self._node.executor is not None:
                try:
                    self._wake_executor()
                except Exception:  # an executor already shut down has nothing left to wake
                    pass
                return
            time.sleep(_EXECUTOR_POLL_S)

    @property
    def closed(self) -> bool:
        """Tell whether close() ran."""
        return self._closed

    def _start_diagnostics(self, kind: str, topic: str, hardware_id: HardwareId, period_s: float,
                           report: Callable[[], Report], callback_group) -> None:
        if period_s > 0:
            self._diagnostics = EndpointDiagnostics(
                self._node, f'{self._node.get_name()}: {kind} {topic}', hardware_id, period_s,
                report, callback_group)

    def diagnostic_status(self):
        """Return the diagnostic_msgs/DiagnosticStatus the next period would publish."""
        return self._diagnostics.status() if self._diagnostics else None

    def _close_endpoint(self) -> None:
        _forget_with_node(self._node, self)
        signals.remove_waker(self._wake_executor)
        if self._diagnostics is not None:
            self._diagnostics.close()
        self._clock.close()
        unroute_core_logs(self._log_handler)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - each endpoint defines it
        raise NotImplementedError


def _nothing(*_) -> None:
    pass


def _close_with_node(node: Node, endpoint: Endpoint) -> None:
    """
    Make node.destroy_node() close `endpoint` first (segments are unlinked with the node).

    destroy_node is wrapped once per node, and closed endpoints leave the node's list: a node
    that re-creates its publisher many times (image_to_shm on each new image size) neither
    grows a chain of wrappers nor keeps closed endpoints alive.
    """
    endpoints = node.__dict__.get('_jsr_open_endpoints')
    if endpoints is None:
        endpoints = node.__dict__['_jsr_open_endpoints'] = []
        destroy_node = node.destroy_node

        def close_then_destroy(*args, **kwargs):
            for each in reversed(list(endpoints)):  # the newest first, as before
                each.close()
            if signals.received():
                # Stopping on a signal, every segment already unlinked: the middleware's
                # teardown must not hang the program (process.teardown: a Fast DDS deadlock).
                end_if_main_thread_stuck(in_rclpy_teardown)
            return destroy_node(*args, **kwargs)

        node.destroy_node = close_then_destroy
    endpoints.append(endpoint)


def _forget_with_node(node: Node, endpoint: Endpoint) -> None:
    endpoints = node.__dict__.get('_jsr_open_endpoints', [])
    if endpoint in endpoints:
        endpoints.remove(endpoint)
