"""
Which rclpy executor spins a node that receives descriptors: make_executor().

Measured (bench, doc/performance.md): rclpy's EventsExecutor hands a descriptor over in about
0.28 ms against the SingleThreadedExecutor's 0.38 ms, and costs a third to a half of the CPU
per message. It arrived as `rclpy.experimental.EventsExecutor` in Jazzy; Humble has none. So
'auto' is the EventsExecutor where rclpy has it, else the SingleThreadedExecutor. The endpoints
own no guard condition (which the EventsExecutor refuses): on a signal they hand the node's
executor a task (doc/lifecycle.md).

Spin it with a timeout, `executor.spin_once(timeout_sec=...)`: rclpy 9.1.2's EventsExecutor ran
no timers and no tasks in spin() or spin_once() without one.

The MultiThreadedExecutor is many times slower per message in rclpy and, under load, lets DDS
drop descriptors from a keep-last queue before a callback takes them: ShmSubscription counts
such gaps (`counts['missed']`), but use it only for callbacks that must run in parallel, with a
queue depth that covers the bursts. A program's loop spun by it gets SIGINT/SIGTERM when it
dispatches its next callback (the signal's task schedules one, doc/lifecycle.md).
"""

from typing import Optional

EXECUTORS = ('auto', 'events', 'single', 'multi')


def events_executor_class():
    """Return rclpy.experimental.EventsExecutor, or None on a ROS 2 release without it."""
    try:
        from rclpy.experimental import EventsExecutor
    except ImportError:
        return None
    return EventsExecutor


def make_executor(kind: str = 'auto', context=None, num_threads: Optional[int] = None):
    """
    Create an executor of one kind.

    :param kind: 'auto' (the EventsExecutor where rclpy has it, else the
        SingleThreadedExecutor: the fastest there), 'events' (the EventsExecutor; raises where
        it is missing), 'single' or 'multi'
    :param context: the rclpy context; None: the default one
    :param num_threads: 'multi' only: worker threads (rclpy's default when None)
    :raises ValueError: for an unknown kind, or 'events' where rclpy has no EventsExecutor
    """
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    if kind not in EXECUTORS:
        raise ValueError(f'executor {kind!r} is not one of {list(EXECUTORS)}')
    if kind in ('auto', 'events'):
        events = events_executor_class()
        if events is not None:
            return events(context=context)
        if kind == 'auto':
            return SingleThreadedExecutor(context=context)
        raise ValueError('this rclpy has no rclpy.experimental.EventsExecutor (it arrived '
                         'in Jazzy); use executor auto or single')
    if kind == 'multi':
        return MultiThreadedExecutor(num_threads=num_threads, context=context)
    return SingleThreadedExecutor(context=context)


def executor_name(executor) -> str:
    """Name an executor for logs: 'events', 'single', 'multi' or its class name."""
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    if isinstance(executor, MultiThreadedExecutor):
        return 'multi'
    if isinstance(executor, SingleThreadedExecutor):
        return 'single'
    events = events_executor_class()
    if events is not None and 'EventsExecutor' in type(executor).__name__:
        return 'events'
    return type(executor).__name__
