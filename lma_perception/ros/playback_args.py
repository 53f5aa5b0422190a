"""Command-line options of bag playback, shared by `lma-perception replay` and `bag_player`.

Only argparse at import time: the `lma-perception` command line registers these options without
loading rclpy.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lma_perception.ros.bag_player import PlaybackOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the playback arguments."""
    parser.add_argument('bag', type=Path, help='rosbag2 directory')
    parser.add_argument('--rate', type=float, default=1.0,
                        help='speed factor: 2 plays twice as fast as recorded (default 1)')
    parser.add_argument('--loop', action='store_true', help='start again at the end')
    parser.add_argument('--clock', action='store_true',
                        help='publish /clock with the bag time (for use_sim_time)')
    parser.add_argument('--topics', nargs='+', default=(), metavar='TOPIC',
                        help='play only these topics (default: all)')
    parser.add_argument('--wait-for-subscribers', type=float, default=0.0, metavar='SECONDS',
                        help='wait up to this long for a subscriber on every topic first')


def playback_options(args: argparse.Namespace) -> PlaybackOptions:
    """Return the playback options the parsed arguments describe.

    Raises:
        ValueError: a value the player cannot use.
    """
    from lma_perception.ros.bag_player import PlaybackOptions

    return PlaybackOptions(
        rate=args.rate,
        loop=args.loop,
        clock=args.clock,
        topics=tuple(args.topics),
        wait_for_subscribers_s=args.wait_for_subscribers,
    )
