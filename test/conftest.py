"""Shared fixtures: real rclpy contexts isolated on loopback with their own ROS domain."""

from __future__ import annotations

import fcntl
import os
import sys
import tempfile
from pathlib import Path

import pytest

# Before any rclpy import: DDS discovery stays on this machine.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'


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

# Domains 1..232 are valid for Fast DDS. Test runs on one machine (several checkouts, CI next to
# a developer) must never share one: each id is reserved with an exclusive lock on a file, held
# until the test that asked for it ends.
_LOCK_DIR = Path(tempfile.gettempdir()) / 'lma_perception_ros_domains'
_FIRST_DOMAIN, _LAST_DOMAIN = 1, 232
_held: list[int] = []  # lock file descriptors of the running test
_next = _FIRST_DOMAIN + os.getpid() % (_LAST_DOMAIN - _FIRST_DOMAIN)


def next_domain_id() -> int:
    """A ROS domain id that no other test, in this run or another one, uses now."""
    global _next
    _LOCK_DIR.mkdir(exist_ok=True)
    span = _LAST_DOMAIN - _FIRST_DOMAIN + 1
    for _ in range(span):
        domain = _next
        _next = _FIRST_DOMAIN + (_next - _FIRST_DOMAIN + 1) % span
        descriptor = os.open(_LOCK_DIR / f'{domain}.lock', os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            continue
        _held.append(descriptor)
        return domain
    raise RuntimeError(f'every ROS domain {_FIRST_DOMAIN}..{_LAST_DOMAIN} is in use')


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
