"""Shared fixtures: real rclpy contexts isolated on loopback with their own ROS domain."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Before any rclpy import: DDS discovery stays on this machine.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'

# The shipped Fast DDS transport (shared memory sized for camera images, UDP on loopback only),
# for every test and the processes it starts, as the launch files and commands select it.
from lma_perception.ros.transport_profile import use_loopback_profile

use_loopback_profile()


def _add_this_environment_to_the_ament_prefixes() -> None:
    """Let launch files and `ros2 launch` find a pip install of the package (`make setup`).

    ROS tools find packages through the ament index of the prefixes on AMENT_PREFIX_PATH; a
    sourced workspace that has the package already (a colcon install) comes first and stays so.
    """
    marker = Path('share', 'ament_index', 'resource_index', 'packages', 'lma_perception')
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    if (Path(sys.prefix) / marker).exists() and not any((Path(p) / marker).exists()
                                                         for p in prefixes):
        os.environ['AMENT_PREFIX_PATH'] = os.pathsep.join([sys.prefix, *prefixes])


_add_this_environment_to_the_ament_prefixes()

_held: list[int] = []  # lock file descriptors of the running test


def next_domain_id() -> int:
    """A ROS domain id that no other test, in this run or another one, uses now."""
    from lma_perception.ros.domains import reserve_domain

    domain, lock = reserve_domain()
    _held.append(lock)
    return domain


@pytest.fixture(autouse=True)
def _release_domains():
    """Give back the domains a test reserved once it has finished."""
    yield
    while _held:
        os.close(_held.pop())


@pytest.fixture
def ros_context():
    """An initialised rclpy context on a domain of its own, shut down after the test."""
    rclpy = pytest.importorskip('rclpy')
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=next_domain_id())
    yield context
    context.try_shutdown()


@pytest.fixture(scope='module')
def engine():
    """A small randomly initialised LMA-ERFNet on the CPU (64x128 input), for node tests."""
    from lma_perception.models import create_model
    from lma_perception.runtime.engine import EngineConfig, SegmentationEngine

    return SegmentationEngine(
        create_model('lma_erfnet').eval(), EngineConfig(device='cpu', input_size=(64, 128))
    )


@pytest.fixture
def graph(ros_context):
    """Start nodes (`graph(*nodes)`) spinning in the background; destroy them after the test."""
    from lma_perception.ros.spinning import BackgroundSpinner

    spinner = BackgroundSpinner(ros_context)
    nodes = []

    def start(*new_nodes):
        for node in new_nodes:
            spinner.add(node)
            nodes.append(node)

    yield start
    spinner.stop()
    for node in nodes:
        node.destroy_node()
