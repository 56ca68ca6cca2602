"""
Which rclpy executor spins a node that receives descriptors: make_executor().

Measured (bench, doc/performance.md): rclpy's EventsExecutor hands a descriptor over in about
half the time of the SingleThreadedExecutor, and costs less CPU per message. It arrived as
`rclpy.experimental.EventsExecutor` in Jazzy; Humble has none. But it refuses guard conditions,
and every ShmPublisher/ShmSubscription owns one (its wake-up when a signal arrives,
doc/lifecycle.md): adding such a node to it raises "Guard conditions not supported". So 'auto'
is the SingleThreadedExecutor; 'events' is for nodes without endpoints (the bench's descriptor
floor) until the wake-up no longer needs a guard condition.

The MultiThreadedExecutor is many times slower per message in rclpy and, under load, lets DDS
drop descriptors from a keep-last queue before a callback takes them: ShmSubscription counts
such gaps (`counts['missed']`), but use it only for callbacks that must run in parallel, with a
queue depth that covers the bursts.
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

    :param kind: 'auto' (the SingleThreadedExecutor: the one that spins the endpoints fastest),
        'events' (EventsExecutor, for nodes without endpoints; raises where it is missing),
        'single' or 'multi'
    :param context: the rclpy context; None: the default one
    :param num_threads: 'multi' only: worker threads (rclpy's default when None)
    :raises ValueError: for an unknown kind, or 'events' where rclpy has no EventsExecutor
    """
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
    if kind not in EXECUTORS:
        raise ValueError(f'executor {kind!r} is not one of {list(EXECUTORS)}')
    if kind == 'events':
        events = events_executor_class()
        if events is not None:
            return events(context=context)
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
