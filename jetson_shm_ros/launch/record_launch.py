"""
Record a pipeline: `ros2 launch jetson_shm_ros record_launch.py topics:=[a,b] [arg:=value]`.

Starts shm_recorder on the given descriptor topics; every recorder option is an argument of
the same name (empty: the option's default). The launch ends when the recorder does (Ctrl-C,
max_frames, max_bytes, or a write failure), with the bag closed. Replay with
`ros2 run jetson_shm_ros shm_player --ros-args -p bag:=<dir>`. rmw:= as in demo_launch.py.
"""

from jetson_shm_ros.process.options import launch_arguments
from jetson_shm_ros.process.role_options import RECORDER_NODE_OPTIONS
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = 'jetson_shm_ros'
DEFAULT_RMW = 'rmw_cyclonedds_cpp'
ARGUMENTS = launch_arguments({'shm_recorder': RECORDER_NODE_OPTIONS})


def _nodes(context):
    from jetson_shm_ros.ros.middleware import rmw_problem

    rmw = LaunchConfiguration('rmw').perform(context).strip() or DEFAULT_RMW
    problem = rmw_problem(rmw)
    if problem:
        raise RuntimeError(problem)  # `ros2 launch` prints it as one line, no traceback
    parameters = {argument.name: ParameterValue(LaunchConfiguration(argument.name),
                                                value_type=argument.value_type)
                  for argument in ARGUMENTS
                  if LaunchConfiguration(argument.name).perform(context).strip()}
    recorder = Node(package=PACKAGE, executable='shm_recorder', name='shm_recorder',
                    namespace=LaunchConfiguration('namespace'), output='screen',
                    emulate_tty=True, parameters=[parameters],
                    additional_env={'RMW_IMPLEMENTATION': rmw, 'PYTHONUNBUFFERED': '1'})
    done = RegisterEventHandler(OnProcessExit(target_action=recorder, on_exit=[
        EmitEvent(event=Shutdown(reason='the recorder finished'))]))
    return [recorder, done]


def generate_launch_description() -> LaunchDescription:
    """Declare the recorder's arguments and start it with the chosen RMW."""
    arguments = [
        DeclareLaunchArgument('rmw', default_value=DEFAULT_RMW, description=(
            'RMW implementation, e.g. rmw_cyclonedds_cpp, rmw_fastrtps_cpp (the recorded '
            "pipeline's)")),
        DeclareLaunchArgument('namespace', default_value='', description=(
            'Namespace of the recorder (relative topics follow it)')),
    ]
    arguments += [DeclareLaunchArgument(argument.name, default_value='', description=(
        f'{argument.description}; empty: the default')) for argument in ARGUMENTS]
    return LaunchDescription(arguments + [OpaqueFunction(function=_nodes)])
