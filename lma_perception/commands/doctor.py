"""`lma-perception doctor`: check that PyTorch and a real ROS 2 graph work here."""

from __future__ import annotations

import argparse
import os
import platform


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'doctor',
        help='check the installation: PyTorch, devices, and a real ROS 2 image round trip',
        description='Prints the versions in use and sends one sensor_msgs/Image through a '
        'publisher and a subscriber on the loopback interface.',
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    print(f'python      {platform.python_version()}')
    print(f'torch       {torch.__version__} (cuda available: {torch.cuda.is_available()})')
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    from lma_perception.ros.transport_check import round_trip_image

    seconds = round_trip_image(height=480, width=640)
    print(f'ros 2       image round trip ok ({seconds * 1e3:.1f} ms, 640x480 rgb8)')
    return 0
