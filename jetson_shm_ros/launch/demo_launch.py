"""
Start the producer and the consumer: `ros2 launch jetson_shm_ros demo_launch.py [arg:=value]`.

Parameters come from config/demo.yaml (or config:=<file>); each launch argument below that is
given overrides that parameter on the nodes it applies to. rmw:= picks the RMW of both nodes
(default rmw_cyclonedds_cpp); when it is not installed, launching stops with one sentence that
says how to install it. `ros2 launch jetson_shm_ros demo_launch.py --show-args` lists them all.
"""

import os

from jetson_shm_ros.process.options import launch_arguments
from jetson_shm_ros.process.role_options import CONSUMER_NODE_OPTIONS, PRODUCER_NODE_OPTIONS
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = 'jetson_shm_ros'
DEFAULT_RMW = 'rmw_cyclonedds_cpp'

# One launch argument per node parameter, derived from the nodes' option schemas: each sets
# the parameter of the same name on the nodes that have it; left empty, the config file stands.
ARGUMENTS = launch_arguments({'producer': PRODUCER_NODE_OPTIONS,
                              'consumer': CONSUMER_NODE_OPTIONS})


def _nodes(context):
    from jetson_shm_ros.ros.middleware import rmw_problem

    rmw = LaunchConfiguration('rmw').perform(context).strip() or DEFAULT_RMW
    problem = rmw_problem(rmw)
    if problem:
        raise RuntimeError(problem)  # `ros2 launch` prints it as one line, no traceback
    overrides = {'producer': {}, 'consumer': {}}
    for argument in ARGUMENTS:
        if not LaunchConfiguration(argument.name).perform(context).strip():
            continue
        # value_type None (lists): parsed as YAML by launch_ros ([480,640,3] -> integer array)
        value = ParameterValue(LaunchConfiguration(argument.name),
                               value_type=argument.value_type)
        for node in argument.nodes:
            overrides[node][argument.name] = value
    common = {'package': PACKAGE, 'namespace': LaunchConfiguration('namespace'),
              'output': 'screen', 'emulate_tty': True,
              'additional_env': {'RMW_IMPLEMENTATION': rmw, 'PYTHONUNBUFFERED': '1'}}
    config = LaunchConfiguration('config')
    return [
        Node(executable='producer', name='producer',
             parameters=[config, overrides['producer']], **common),
        Node(executable='consumer', name='consumer',
             parameters=[config, overrides['consumer']], **common),
    ]


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments and start both nodes with the chosen RMW."""
    from ament_index_python.packages import get_package_share_directory

    config = os.path.join(get_package_share_directory(PACKAGE), 'config', 'demo.yaml')
    arguments = [
        DeclareLaunchArgument('rmw', default_value=DEFAULT_RMW, description=(
            'RMW implementation of both nodes, e.g. rmw_cyclonedds_cpp, rmw_fastrtps_cpp')),
        DeclareLaunchArgument('namespace', default_value='', description=(
            'Namespace of both nodes (the relative descriptor topic follows it)')),
        DeclareLaunchArgument('config', default_value=config, description=(
            'Parameter file of both nodes')),
    ]
    arguments += [DeclareLaunchArgument(argument.name, default_value='', description=(
        f'{argument.description} ({", ".join(argument.nodes)}); empty: from the config file'))
        for argument in ARGUMENTS]
    return LaunchDescription(arguments + [OpaqueFunction(function=_nodes)])
