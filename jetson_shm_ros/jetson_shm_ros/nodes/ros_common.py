"""What the package's nodes share: main(), and the node side of a process.roles role."""

import sys
from typing import Callable

from jetson_shm_ros.core.errors import OptionError
from jetson_shm_ros.nodes.command_line import rcl_problem, RCLError, read_command_line
from jetson_shm_ros.process import signals
from jetson_shm_ros.process.runner import run_guarded, stop_requested
from jetson_shm_ros.process.teardown import end_after
from jetson_shm_ros.ros.executors import make_executor
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions


class RoleNode(Node):
    """A node whose behaviour is a process.roles role (`self.role`), run by run_node()."""

    role = None

    @property
    def finished(self) -> bool:
        """Tell whether the role is done; run_node() asks after every callback."""
        return self.role is not None and self.role.poll()

    @property
    def exit_code(self) -> int:
        """Return the role's exit status for the process."""
        return self.role.exit_code if self.role is not None else 0


def _spin(node: Node) -> int:
    # make_executor(): the EventsExecutor where rclpy has it (ros.executors). A signal wakes
    # spin_once at once (the endpoints hand the executor a task) and is seen here: no exception
    # crosses rclpy's executor (process.runner). Always with a timeout: rclpy 9.1.2's
    # EventsExecutor runs no timers in a spin_once without one.
    executor = make_executor(context=node.context)
    executor.add_node(node)
    try:
        while rclpy.ok() and not node.finished and not stop_requested():
            executor.spin_once(timeout_sec=0.1)
    except ExternalShutdownException:
        return 1
    finally:
        # Teardown runs outside any executor, as it did after rclpy.spin_once(node).
        executor.remove_node(node)
    return 0


class _State:
    watchdog = None  # the running teardown watchdog (_stop), cancelled once all is done


def _stop(node: Node, interrupted: bool) -> int:
    # Fast DDS can deadlock in teardown (process.teardown): the node's whole teardown is bounded.
    _State.watchdog = end_after(lambda: node.exit_code)
    node.shutdown()
    exit_code = node.exit_code
    node.destroy_node()
    return exit_code


def _construct(make_node: Callable[..., Node], kwargs: dict) -> Node:
    """
    Build the node; if its constructor fails, destroy what it made before re-raising.

    Otherwise the half-made node (its parameters, services, rosout publisher) is left for
    rclpy.try_shutdown() to destroy from the context's weak list, as an orphan that reference
    cycles tie to the failed endpoint: a start-up failure (no space in /dev/shm) once crashed
    there with SIGSEGV in destroy_node (stress, 1 in 50 rounds).
    """
    if not isinstance(make_node, type):
        return make_node(**kwargs)
    node = make_node.__new__(make_node)
    try:
        node.__init__(**kwargs)
    except BaseException:
        if getattr(node, '_Node__node', None) is not None:  # Node.__init__ itself finished
            try:
                node.destroy_node()
            except Exception:  # noqa: B902 -- the constructor's error is the one to report
                pass
        raise
    return node


def run_node(make_node: Callable[[], Node], args=None) -> int:
    """
    Init rclpy, spin the node until it is finished or interrupted, and always clean up.

    SIGINT and SIGTERM are process.signals' from the first line, before rclpy.init, which is
    told to install no handler of its own (rclpy's would shut the context down from another
    thread): cleanup still has a working context to wait for acknowledgements and to log the
    summary, and a signal in any phase ends the process with the node's own exit code.

    The command line is checked first (nodes.command_line): a malformed `-p`, an argument
    outside `--ros-args` or one rcl refuses ends start-up with one `[FATAL]` line and exit 2.

    :param make_node: the node class (or a factory taking Node keyword arguments)
    :return: the node's exit code (node.exit_code, 0 when it has none); 2 for a bad command
        line or a failed start
    """
    signals.install(deliver=False)
    signals.checkpoint('before_init')
    try:
        # main(args) gets sys.argv-like lists (`main(sys.argv)`) or bare ROS arguments.
        overrides = read_command_line(sys.argv if args is None else args, with_program=(
            args is None or bool(args) and not args[0].startswith('-')))
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except (OptionError, RCLError) as error:
        problem = error.detail if isinstance(error, OptionError) else rcl_problem(error)
        print(f'[FATAL] bad command line: {problem}', file=sys.stderr)
        return 2
    kwargs = {'parameter_overrides': overrides} if overrides else {}
    start = (lambda: _construct(make_node, kwargs))
    try:
        return run_guarded(start, _spin, _stop)
    finally:
        rclpy.try_shutdown()
        if _State.watchdog is not None:
            _State.watchdog.cancel()


def gpu_resources(backend) -> dict:
    """Return {'gpu_resources': 'key:count,...'} of what a GPU backend holds here, else {}."""
    if backend.name == 'cpu':
        return {}
    from jetson_shm_ros.core.cuda.regions import live_resources
    return {'gpu_resources': ','.join(
        f'{key}:{value}' for key, value in sorted(live_resources().items()))}
