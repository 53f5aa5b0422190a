"""Segment one camera.

    ros2 launch lma_perception segment.launch.py image_topic:=/camera/image_raw

Outputs appear under <namespace>/<camera>/: labels, color_mask, overlay (and confidence).
`lifecycle:=true` starts the managed node unconfigured, for a lifecycle manager to configure and
activate; otherwise the plain node starts segmenting at once.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from lma_perception.ros.launch_actions import rviz, transport_profile


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare('lma_perception')
    camera = LaunchConfiguration('camera')
    arguments = [
        # The topic of config/segment.yaml and config/lma.rviz.
        DeclareLaunchArgument('image_topic', default_value='/camera/image',
                              description='sensor_msgs/Image topic to segment'),
        DeclareLaunchArgument('camera', default_value='camera',
                              description='camera name: the namespace of its outputs'),
        DeclareLaunchArgument('params_file',
                              default_value=PathJoinSubstitution([share, 'config',
                                                                  'segment.yaml']),
                              description='node parameters (YAML)'),
        DeclareLaunchArgument('weights', default_value='',
                              description='checkpoint; empty for the shipped weights'),
        DeclareLaunchArgument('device', default_value='auto', description='auto, cpu, cuda'),
        DeclareLaunchArgument('use_sim_time', default_value='false'),
        DeclareLaunchArgument('namespace', default_value=''),
        DeclareLaunchArgument('rviz', default_value='false', description='open RViz'),
        DeclareLaunchArgument('lifecycle', default_value='false',
                              description='managed node, left unconfigured for a manager'),
    ]
    parameters = [
        LaunchConfiguration('params_file'),
        {
            # A list of lists evaluates to a string array (launch_ros rules).
            'cameras': [[camera]],
            (camera, '.image_topic'): LaunchConfiguration('image_topic'),
            'weights': ParameterValue(LaunchConfiguration('weights'), value_type=str),
            'device': LaunchConfiguration('device'),
            'use_sim_time': LaunchConfiguration('use_sim_time'),
        },
    ]
    common = {'package': 'lma_perception', 'name': 'segment_node',
              'namespace': LaunchConfiguration('namespace'), 'output': 'screen'}
    lifecycle = LaunchConfiguration('lifecycle')
    segment = Node(executable='segment_node', parameters=parameters,
                   condition=UnlessCondition(lifecycle), **common)
    managed = LifecycleNode(executable='segment_lifecycle_node',
                            parameters=[*parameters, {'autostart': False}],
                            condition=IfCondition(lifecycle), **common)
    return LaunchDescription([
        *arguments, *transport_profile(), rviz(use_sim_time=LaunchConfiguration('use_sim_time')),
        segment, managed])
