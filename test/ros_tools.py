"""Shared by the tests that run the ROS 2 command-line tools (`ros2`, `colcon`) as processes."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest


def tool(name: str) -> str | None:
    """The executable `name` of this Python environment, else the one on PATH, else None."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name)


ROS2 = tool('ros2')
COLCON = tool('colcon')

_INSTALL_HINT = ('`make setup` installs them from ../shared/ros-tools where it exists; a ROS '
                 'install brings them')

needs_ros2_launch = pytest.mark.skipif(
    ROS2 is None or importlib.util.find_spec('launch_ros') is None
    or importlib.util.find_spec('psutil') is None,
    reason=f'ros2 launch (ros2cli, launch_ros) is not installed: {_INSTALL_HINT}',
)
needs_colcon = pytest.mark.skipif(
    COLCON is None or importlib.util.find_spec('colcon_ros') is None,
    reason=f'colcon with colcon-ros is not installed: {_INSTALL_HINT}',
)
