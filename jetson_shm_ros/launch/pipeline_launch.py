"""
A three-stage GPU pipeline: `ros2 launch jetson_shm_ros pipeline_launch.py [arg:=value]`.

producer (rgb8 camera-like frames) -> image_filter (normalized float32 CHW tensor, one kernel,
written straight into its own segment) -> consumer (verifies every tensor). No stage copies a
frame through DDS; each reads the previous stage's slot in place. Parameters come from
config/pipeline.yaml; the arguments below override them. rmw:= as in demo_launch.py.
"""

import os

from jetson_shm_ros.process.options import launch_arguments
from jetson_shm_ros.process.role_options import (
    CONSUMER_NODE_OPTIONS, IMAGE_FILTER_NODE_OPTIONS, PRODUCER_NODE_OPTIONS)
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = 'jetson_shm_ros'
DEFAULT_RMW = 'rmw_cyclonedds_cpp'
STAGES = ('producer', 'image_filter', 'consumer')

# What users change in a pipeline, derived from the stages' option schemas: each argument sets
# the parameter of the same name on the stages that have it; empty: the config file's value.
ARGUMENTS = launch_arguments(
    {'producer': PRODUCER_NODE_OPTIONS, 'image_filter': IMAGE_FILTER_NODE_OPTIONS,
     'consumer': CONSUMER_NODE_OPTIONS},
    names=('shape', 'encoding', 'rate_hz', 'frames', 'backend', 'mode', 'output_order'))


def _nodes(context):
    from jetson_shm_ros.ros.middleware import rmw_problem

    rmw = LaunchConfiguration('rmw').perform(context).strip() or DEFAULT_RMW
    problem = rmw_problem(rmw)
    if problem:
        raise RuntimeError(problem)  # `ros2 launch` prints it as one line, no traceback
    overrides = {stage: {} for stage in STAGES}
    for argument in ARGUMENTS:
        if LaunchConfiguration(argument.name).perform(context).strip():
            for node in argument.nodes:
                overrides[node][argument.name] = ParameterValue(
                    LaunchConfiguration(argument.name), value_type=argument.value_type)
    config = LaunchConfiguration('config')
    nodes = {stage: Node(package=PACKAGE, executable=stage, name=stage,
                         namespace=LaunchConfiguration('namespace'), output='screen',
                         emulate_tty=True, parameters=[config, overrides[stage]],
                         additional_env={'RMW_IMPLEMENTATION': rmw, 'PYTHONUNBUFFERED': '1'})
             for stage in STAGES}
    # image_filter runs until it is stopped: when the consumer is done (frames:=N), so is the
    # pipeline, and the filter is interrupted like any node at shutdown (its segment unlinked).
    done = RegisterEventHandler(OnProcessExit(target_action=nodes['consumer'], on_exit=[
        EmitEvent(event=Shutdown(reason='the consumer finished'))]))
    return list(nodes.values()) + [done]


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments and start the three stages with the chosen RMW."""
    from ament_index_python.packages import get_package_share_directory

    config = os.path.join(get_package_share_directory(PACKAGE), 'config', 'pipeline.yaml')
    arguments = [
        DeclareLaunchArgument('rmw', default_value=DEFAULT_RMW, description=(
            'RMW implementation of every stage, e.g. rmw_cyclonedds_cpp, rmw_fastrtps_cpp')),
        DeclareLaunchArgument('namespace', default_value='', description=(
            'Namespace of every stage (the relative topics follow it)')),
        DeclareLaunchArgument('config', default_value=config, description=(
            'Parameter file of the stages')),
    ]
    arguments += [DeclareLaunchArgument(argument.name, default_value='', description=(
        f'{argument.description} ({", ".join(argument.nodes)}); empty: from the config file'))
        for argument in ARGUMENTS]
    return LaunchDescription(arguments + [OpaqueFunction(function=_nodes)])
