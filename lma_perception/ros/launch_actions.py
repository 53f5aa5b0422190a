"""Launch actions shared by the package's launch files (imported only by them).

- `rviz`: RViz with `config/lma.rviz` on `rviz:=true`, refused before anything starts when
  rviz2 is not installed, so a missing RViz never leaves a node running on its own.
- `after_subscribed`: starts actions (a bag player) only once the node's subscriptions are on
  the ROS graph, so that a bag's first messages are not published before anyone listens.
- `transport_profile`: the `transport_profile` argument, by default the Fast DDS profile of
  `config/fastdds_loopback.xml` (or the one the environment already selects), set for every
  process the launch starts after it; `transport_profile:=''` keeps Fast DDS's defaults.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from ament_index_python.packages import PackageNotFoundError, get_package_prefix
from launch import Action, LaunchContext
from launch.actions import (
    DeclareLaunchArgument,
    OpaqueCoroutine,
    OpaqueFunction,
    RegisterEventHandler,
    SetEnvironmentVariable,
)
from launch.conditions import IfCondition
from launch.event import Event
from launch.event_handler import EventHandler
from launch.substitutions import (
    EnvironmentVariable,
    LaunchConfiguration,
    NotEqualsSubstitution,
    PathJoinSubstitution,
)
from launch_ros.actions import Node
from launch_ros.ros_adapters import get_ros_node
from launch_ros.substitutions import FindPackageShare

from lma_perception.ros.transport_profile import PROFILE_NAME, profile_variable

GRAPH_POLL_S = 0.1


class RvizNotInstalledError(RuntimeError):
    """`rviz:=true` on a machine without rviz2."""


def rviz(use_sim_time: Any) -> OpaqueFunction:
    """RViz on `rviz:=true`; list it before every other process of the launch description."""
    return OpaqueFunction(function=_rviz, args=[use_sim_time])


def _rviz(context: LaunchContext, use_sim_time: Any) -> list[Node]:
    if not IfCondition(LaunchConfiguration('rviz')).evaluate(context):
        return []
    try:
        get_package_prefix('rviz2')
    except PackageNotFoundError:
        raise RvizNotInstalledError(
            'rviz:=true, but rviz2 is not installed here: install it (ros-$ROS_DISTRO-rviz2) '
            'or launch without rviz:=true'
        ) from None
    config = PathJoinSubstitution([FindPackageShare('lma_perception'), 'config', 'lma.rviz'])
    return [Node(package='rviz2', executable='rviz2', arguments=['-d', config],
                 parameters=[{'use_sim_time': use_sim_time}])]


def transport_profile() -> list[Action]:
    """Select the Fast DDS profile for the processes listed after these actions."""
    variable = profile_variable()
    shipped = PathJoinSubstitution([FindPackageShare('lma_perception'), 'config', PROFILE_NAME])
    return [
        DeclareLaunchArgument(
            'transport_profile', default_value=EnvironmentVariable(variable,
                                                                   default_value=shipped),
            description=f'Fast DDS XML profile ({variable}); empty for Fast DDS defaults',
        ),
        SetEnvironmentVariable(variable, LaunchConfiguration('transport_profile'),
                               condition=IfCondition(NotEqualsSubstitution(
                                   LaunchConfiguration('transport_profile'), ''))),
    ]


class _Subscribed(Event):
    name = 'lma_perception.events.Subscribed'


def after_subscribed(context: LaunchContext, topics: Iterable[str],
                     actions: list[Action]) -> list[Action]:
    """Actions that start `actions` once every topic in `topics` has a subscriber."""
    node = get_ros_node(context)  # the launch process's own node, which watches the graph
    topics = list(topics)
    event = _Subscribed()

    async def wait_and_start(context: LaunchContext) -> None:
        while any(node.count_subscribers(topic) == 0 for topic in topics):
            await asyncio.sleep(GRAPH_POLL_S)
        await context.emit_event(event)

    return [
        RegisterEventHandler(EventHandler(matcher=lambda e: e is event, entities=actions)),
        OpaqueCoroutine(coroutine=wait_and_start),
    ]
