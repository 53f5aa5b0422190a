"""`lma-perception replay BAG`: publish a rosbag2's topics live, as `ros2 bag play` would."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the ROS side is imported only when the command runs
    from lma_perception.ros.bag_player import PlaybackOptions


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'replay',
        help='publish the topics of a rosbag2 in real time (or faster), optionally with /clock',
        description='Publishes the recorded messages of a rosbag2 (sqlite3 or mcap) with their '
        'recorded timing and headers, for machines without `ros2 bag play`.',
    )
    add_arguments(parser)
    parser.set_defaults(run=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the playback arguments (shared with the `bag_player` executable)."""
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
    parser.add_argument('--wait-topics', nargs='+', default=(), metavar='TOPIC',
                        help='wait only for subscribers on these topics (those in the bag)')


def playback_options(args: argparse.Namespace) -> PlaybackOptions:
    """Return the playback options the parsed arguments describe."""
    from lma_perception.ros.bag_player import PlaybackOptions

    return PlaybackOptions(
        rate=args.rate,
        loop=args.loop,
        clock=args.clock,
        topics=tuple(args.topics),
        wait_for_subscribers_s=args.wait_for_subscribers,
        wait_topics=tuple(args.wait_topics),
    )


def run(args: argparse.Namespace) -> int:
    from lma_perception.ros.bag_player import play_bag

    try:
        options = playback_options(args)
    except ValueError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    return play_bag(args.bag, options)
