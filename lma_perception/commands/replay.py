"""`lma-perception replay BAG`: publish a rosbag2's topics live, as `ros2 bag play` would."""

from __future__ import annotations

import argparse

from lma_perception.commands import USAGE_ERROR, fail
from lma_perception.ros.playback_options import add_arguments, playback_options


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'replay',
        help='publish the topics of a rosbag2 in real time (or faster), optionally with /clock',
        description='Publishes the recorded messages of a rosbag2 (sqlite3 or mcap) with their '
        'recorded timing and headers, for machines without `ros2 bag play`.',
    )
    add_arguments(parser)
    parser.set_defaults(run=run, stops_on_signal=True)


def run(args: argparse.Namespace) -> int:
    try:
        options = playback_options(args)
    except ValueError as error:
        return fail(str(error), USAGE_ERROR)
    from lma_perception.ros.signals import StopOnSignal
    from lma_perception.ros.transport_profile import use_loopback_profile

    use_loopback_profile()
    with StopOnSignal() as stop:
        from lma_perception.ros.bag_player import play_bag

        return play_bag(args.bag, options, stop=stop)
