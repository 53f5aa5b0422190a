"""Segment every camera of a rig listed in a YAML file.

    ros2 launch lma_perception rig.launch.py rig_file:=/path/to/rig.yaml [per_camera:=true]

The rig file is the node's parameter file (see config/rig_front3.yaml): `cameras` lists the
camera names and `<camera>.image_topic` their input topics. By default one node serves all
cameras with one model, batching them into one forward pass; `per_camera:=true` starts one node
per camera instead (one model each: more memory, no batching). `lifecycle:=true` starts the
managed node(s) unconfigured, for a lifecycle manager to configure and activate.
"""

from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

from lma_perception.rig import camera_parameters, load_rig
from lma_perception.ros.launch_actions import rviz, transport_profile


def segment_node(lifecycle: bool, name: str, parameters: list) -> Node:
    if lifecycle:
        return LifecycleNode(package='lma_perception', executable='segment_lifecycle_node',
                             name=name, namespace='',
                             parameters=[*parameters, {'autostart': False}], output='screen')
    return Node(package='lma_perception', executable='segment_node', name=name,
                parameters=parameters, output='screen')


def segment_nodes(context: LaunchContext) -> list[Node]:
    rig_file = LaunchConfiguration('rig_file').perform(context)
    common = {
        'use_sim_time': LaunchConfiguration('use_sim_time'),
        'device': LaunchConfiguration('device'),
    }
    lifecycle = LaunchConfiguration('lifecycle').perform(context).lower() in ('true', '1')
    if LaunchConfiguration('per_camera').perform(context).lower() not in ('true', '1'):
        return [segment_node(lifecycle, 'segment_node', [rig_file, common])]
    # One node per camera, named after it; the rig's parameters are passed directly because
    # the file's section name matches `segment_node` only.
    rig = load_rig(rig_file)
    return [
        segment_node(lifecycle, f'segment_node_{camera}', [camera_parameters(rig, camera), common])
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
        DeclareLaunchArgument('lifecycle', default_value='false',
                              description='managed node(s), left unconfigured for a manager'),
        rviz(use_sim_time=LaunchConfiguration('use_sim_time')),
        OpaqueFunction(function=segment_nodes),
    ])
