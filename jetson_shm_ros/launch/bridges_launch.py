"""
The image bridges: `ros2 launch jetson_shm_ros bridges_launch.py [arg:=value]`.

    camera --Image--> image_to_shm --shared memory--> gpu_consumer (your GPU nodes)
                                                  +--> shm_to_image --Image--> viewer

image_to_shm copies each camera image once into a slot; GPU consumers on this machine then read
it in place. shm_to_image turns frames back into images, at most max_rate_hz, for what speaks
only sensor_msgs/Image: rviz2, rqt_image_view, `ros2 bag record`, nodes on other hosts.
camera:=true starts a USB camera (package v4l2_camera), viewer:=true starts rqt_image_view;
by default only this package's nodes start and the camera topic is whatever publishes on it.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = 'jetson_shm_ros'
ARGUMENTS = {
    'camera_topic': ('/camera/image_raw', 'sensor_msgs/Image topic of the camera'),
    'descriptor_topic': ('/camera/shm', 'Descriptor topic between the bridges and consumers'),
    'viewer_topic': ('/camera/image_shm', 'sensor_msgs/Image topic that shm_to_image publishes'),
    'backend': ('auto', 'auto, cpu, pinned (Jetson) or cuda_ipc (discrete GPU)'),
    'max_rate_hz': ('10.0', 'Most images per second for the viewer; the camera is never slowed'),
    'camera': ('false', 'Also start v4l2_camera_node (package v4l2_camera) as the camera'),
    'viewer': ('false', 'Also start rqt_image_view on viewer_topic'),
}


def generate_launch_description() -> LaunchDescription:
    """Declare the arguments and start camera (optional), bridges, consumer, viewer (optional)."""
    arg = LaunchConfiguration
    common = {'output': 'screen', 'emulate_tty': True,
              'additional_env': {'PYTHONUNBUFFERED': '1'}}
    return LaunchDescription([
        DeclareLaunchArgument(name, default_value=default, description=text)
        for name, (default, text) in ARGUMENTS.items()
    ] + [
        Node(package='v4l2_camera', executable='v4l2_camera_node', name='camera',
             remappings=[('image_raw', arg('camera_topic'))],
             condition=IfCondition(arg('camera')), **common),
        Node(package=PACKAGE, executable='image_to_shm', name='image_to_shm',
             remappings=[('image_raw', arg('camera_topic'))],
             parameters=[{'topic': arg('descriptor_topic'), 'backend': arg('backend')}],
             **common),
        # Stands for your GPU nodes: it maps the segment and verifies each frame on the GPU.
        Node(package=PACKAGE, executable='consumer', name='gpu_consumer',
             parameters=[{'topic': arg('descriptor_topic'), 'backend': arg('backend')}],
             **common),
        Node(package=PACKAGE, executable='shm_to_image', name='shm_to_image',
             remappings=[('image', arg('viewer_topic'))],
             parameters=[{'topic': arg('descriptor_topic'), 'backend': arg('backend'),
                          'max_rate_hz': ParameterValue(arg('max_rate_hz'), value_type=float)}],
             **common),
        Node(package='rqt_image_view', executable='rqt_image_view', name='viewer',
             arguments=[arg('viewer_topic')], condition=IfCondition(arg('viewer')), **common),
    ])
