"""Shared fixtures: real rclpy contexts isolated on loopback with their own ROS domain."""

from __future__ import annotations

import itertools
import os

import pytest

# Before any rclpy import: DDS discovery stays on this machine.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'

# Domains 0..232 are valid for Fast DDS; spread runs by pid so parallel test runs do not meet.
_domain_ids = itertools.count(100 + os.getpid() % 60 * 2)


def next_domain_id() -> int:
    """A ROS domain id no other test of this run uses."""
    return next(_domain_ids) % 233


@pytest.fixture
def ros_context():
    """An initialised rclpy context on a domain of its own, shut down after the test."""
    rclpy = pytest.importorskip('rclpy')
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context, domain_id=next_domain_id())
    yield context
    context.try_shutdown()
