"""Segment every camera of a rig listed in a YAML file.

    ros2 launch lma_perception rig.launch.py rig_file:=/path/to/rig.yaml [per_camera:=true]

The rig file is the node's parameter file (see config/rig_front3.yaml): `cameras` lists the
camera names and `<camera>.image_topic` their input topics. By default one node serves all
cameras with one model, batching them into one forward pass; `per_camera:=true` starts one node
per camera instead (one model each: more memory, no batching).
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from lma_perception.rig import camera_parameters, load_rig
from lma_perception.ros.launch_actions import rviz, transport_profile


def segment_nodes(context: LaunchContext) -> list[Node]:
    rig_file = LaunchConfiguration('rig_file').perform(context)
    common = {
        'use_sim_time': LaunchConfiguration('use_sim_time'),
        'device': LaunchConfiguration('device'),
    }
    if LaunchConfiguration('per_camera').perform(context).lower() not in ('true', '1'):
        return [Node(package='lma_perception', executable='segment_node', name='segment_node',
                     parameters=[rig_file, common], output='screen')]
    # One node per camera, named after it; the rig's parameters are passed directly because
    # the file's section name matches `segment_node` only.
    rig = load_rig(rig_file)
    return [
        Node(package='lma_perception', executable='segment_node',
             name=f'segment_node_{camera}',
             parameters=[camera_parameters(rig, camera), common], output='screen')
        for camera in rig['cameras']
    ]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare('lma_perception')
    return LaunchDescription([
        DeclareLaunchArgument('rig_file',
                              default_value=PathJoinSubstitution([share, 'config',
                                                                  'rig_front3.yaml']),
                              description='node parameters listing the cameras'),
        DeclareLaunchArgument('per_camera', default_value='false',
                              description='one node per camera instead of one for all'),
        DeclareLaunchArgument('device', default_value='auto', description='auto, cpu, cuda'),
        DeclareLaunchArgument('use_sim_time', default_value='false'),
        DeclareLaunchArgument('rviz', default_value='false', description='open RViz'),
        *transport_profile(),
        rviz(use_sim_time=LaunchConfiguration('use_sim_time')),
        OpaqueFunction(function=segment_nodes),
    ])
