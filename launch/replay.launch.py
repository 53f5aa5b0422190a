"""Replay a Cityscapes-style bag through the segmentation node, in simulated time.

    ros2 launch lma_perception replay.launch.py bag:=/path/to/bag [rate:=0.5] [loop:=true]

Plays the bag with `ros2 bag play --clock` where rosbag2 is installed, otherwise with the
package's own player (same topics, headers and /clock). The node runs with use_sim_time and the
rig parameters (cameras front, front_left, front_right by default, as `lma-perception bag`
writes them).
"""

from ament_index_python.packages import PackageNotFoundError, get_package_prefix
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def rosbag2_installed() -> bool:
    """Whether `ros2 bag` is available in this ROS environment."""
    try:
        get_package_prefix('ros2bag')
    except PackageNotFoundError:
        return False
    return True


def player(context: LaunchContext) -> list:
    bag = LaunchConfiguration('bag').perform(context)
    rate = LaunchConfiguration('rate').perform(context)
    loop = LaunchConfiguration('loop').perform(context).lower() in ('true', '1')
    if rosbag2_installed():
        command = ['ros2', 'bag', 'play', bag, '--clock', '--rate', rate]
        return [ExecuteProcess(cmd=[*command, *(['--loop'] if loop else [])], output='screen')]
    arguments = [bag, '--clock', '--rate', rate, *(['--loop'] if loop else [])]
    return [Node(package='lma_perception', executable='bag_player', name='bag_player',
                 arguments=arguments, output='screen')]


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare('lma_perception')
    sim_time = {'use_sim_time': True}
    return LaunchDescription([
        DeclareLaunchArgument('bag', description='rosbag2 folder to play'),
        DeclareLaunchArgument('rate', default_value='1.0', description='playback speed factor'),
        DeclareLaunchArgument('loop', default_value='false', description='play in a loop'),
        DeclareLaunchArgument('params_file',
                              default_value=PathJoinSubstitution([share, 'config',
                                                                  'rig_front3.yaml']),
                              description='node parameters (cameras of the bag)'),
        DeclareLaunchArgument('rviz', default_value='false', description='open RViz'),
        OpaqueFunction(function=player),
        Node(package='lma_perception', executable='segment_node', name='segment_node',
             parameters=[LaunchConfiguration('params_file'), sim_time], output='screen'),
        Node(package='rviz2', executable='rviz2',
             arguments=['-d', PathJoinSubstitution([share, 'config', 'lma.rviz'])],
             parameters=[sim_time], condition=IfCondition(LaunchConfiguration('rviz'))),
    ])
