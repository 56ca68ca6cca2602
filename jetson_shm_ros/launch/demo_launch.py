"""
Start the producer and the consumer: `ros2 launch jetson_shm_ros demo_launch.py [arg:=value]`.

Parameters come from config/demo.yaml (or config:=<file>); each launch argument below that is
given overrides that parameter on the nodes it applies to. rmw:= picks the RMW of both nodes
(default rmw_cyclonedds_cpp); when it is not installed, launching stops with one sentence that
says how to install it. `ros2 launch jetson_shm_ros demo_launch.py --show-args` lists them all.
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = 'jetson_shm_ros'
DEFAULT_RMW = 'rmw_cyclonedds_cpp'

# Launch argument: (parameter type, nodes it sets, description). Each argument sets the
# parameter of the same name; left empty, the value in the config file stands.
PARAMETERS = {
    'shape': ('list', ('producer',), 'Frame shape in elements, e.g. [480,640,3]'),
    'dtype': ('str', ('producer',), 'Element type, e.g. uint8, uint16, float32'),
    'rate_hz': ('float', ('producer',), 'Frames per second'),
    'frames': ('int', ('producer', 'consumer'), 'Frames to send and receive; 0 = endless'),
    'slots': ('int', ('producer',), 'Slots in the segment = frames in flight'),
    'policy': ('str', ('producer',), 'latest (never block) or reliable (wait for consumers)'),
    'backend': ('str', ('producer', 'consumer'), 'auto, cpu, pinned or cuda_ipc'),
    'mode': ('str', ('producer', 'consumer'), 'zero_copy or copy'),
    'shm_name': ('str', ('producer',), 'POSIX shared-memory name; empty: from the node name'),
    'wait_for_consumers': ('int', ('producer',), 'Subscriptions to wait for before sending'),
    'queue_depth': ('int', ('consumer',), 'Consumer queue depth; at least the slot count'),
}
_TYPES = {'int': int, 'float': float, 'str': str}


def _nodes(context):
    from jetson_shm_ros.ros.middleware import rmw_problem

    rmw = LaunchConfiguration('rmw').perform(context).strip() or DEFAULT_RMW
    problem = rmw_problem(rmw)
    if problem:
        raise RuntimeError(problem)  # `ros2 launch` prints it as one line, no traceback
    overrides = {'producer': {}, 'consumer': {}}
    for name, (kind, nodes, _) in PARAMETERS.items():
        if not LaunchConfiguration(name).perform(context).strip():
            continue
        # list: parsed as YAML by launch_ros ([480,640,3] -> integer array)
        value = ParameterValue(LaunchConfiguration(name), value_type=_TYPES.get(kind))
        for node in nodes:
            overrides[node][name] = value
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
    arguments += [DeclareLaunchArgument(name, default_value='', description=(
        f'{text} ({", ".join(nodes)}); empty: from the config file'))
        for name, (_, nodes, text) in PARAMETERS.items()]
    return LaunchDescription(arguments + [OpaqueFunction(function=_nodes)])
