"""Replay a Cityscapes-style bag through the segmentation node, in simulated time.

    ros2 launch lma_perception replay.launch.py bag:=/path/to/bag [rate:=0.5] [loop:=true]

Plays the bag with `ros2 bag play --clock` where rosbag2 is installed, otherwise with the
package's own player (same topics, headers and /clock). The node runs with use_sim_time and the
rig parameters (cameras front, front_left, front_right by default, as `lma-perception bag`
writes them). The player starts only once the node subscribes to its image topics, so no frame
of the bag is published before the node listens; the package's player also waits until its own
publishers have matched those subscriptions, and `ros2 bag play` is given a second for it.
"""

from ament_index_python.packages import PackageNotFoundError, get_package_prefix
from launch import Action, LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from lma_perception.rig import input_topics, load_rig
from lma_perception.ros.launch_actions import after_subscribed, rviz, transport_profile

# How long the package's player waits for its publishers to match the node's subscriptions,
# which are already on the graph when it starts.
MATCH_TIMEOUT_S = '30'


def rosbag2_installed() -> bool:
    """Whether `ros2 bag` is available in this ROS environment."""
    try:
        get_package_prefix('ros2bag')
    except PackageNotFoundError:
        return False
    return True


def player(context: LaunchContext) -> list[Action]:
    bag = LaunchConfiguration('bag').perform(context)
    rate = LaunchConfiguration('rate').perform(context)
    loop = ['--loop'] if LaunchConfiguration('loop').perform(context).lower() in (
        'true', '1') else []
    topics = input_topics(load_rig(LaunchConfiguration('params_file').perform(context)))
    if rosbag2_installed():
        play = ExecuteProcess(cmd=['ros2', 'bag', 'play', bag, '--clock', '--rate', rate,
                                   '--delay', '1', *loop], output='screen')
    else:
        play = Node(package='lma_perception', executable='bag_player', name='bag_player',
                    arguments=[bag, '--clock', '--rate', rate, *loop,
                               '--wait-for-subscribers', MATCH_TIMEOUT_S,
                               '--wait-topics', *topics],
                    output='screen')
    return after_subscribed(context, topics, [play])


def generate_launch_description() -> LaunchDescription:
    share = FindPackageShare('lma_perception')
    return LaunchDescription([
        DeclareLaunchArgument('bag', description='rosbag2 folder to play'),
        DeclareLaunchArgument('rate', default_value='1.0', description='playback speed factor'),
        DeclareLaunchArgument('loop', default_value='false', description='play in a loop'),
        DeclareLaunchArgument('params_file',
                              default_value=PathJoinSubstitution([share, 'config',
                                                                  'rig_front3.yaml']),
                              description='node parameters (cameras of the bag)'),
        DeclareLaunchArgument('rviz', default_value='false', description='open RViz'),
        *transport_profile(),
        rviz(use_sim_time=True),
        Node(package='lma_perception', executable='segment_node', name='segment_node',
             parameters=[LaunchConfiguration('params_file'), {'use_sim_time': True}],
             output='screen'),
        OpaqueFunction(function=player),
    ])
