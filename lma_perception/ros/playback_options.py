"""How a bag is played, and the command-line options that say so.

Shared by `lma-perception replay`, the `bag_player` executable and live evaluation. No rclpy
here: the `lma-perception` command line registers these options without loading ROS.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from lma_perception.arguments import positive_float


@dataclass(frozen=True)
class PlaybackOptions:
    """How to play a bag."""

    rate: float = 1.0  # playback speed factor: 2.0 plays twice as fast as recorded
    loop: bool = False
    clock: bool = False  # publish /clock with the bag's time
    clock_hz: float = 40.0  # /clock messages per second of wall time, between messages too
    topics: tuple[str, ...] = ()  # empty: every topic
    wait_for_subscribers_s: float = 0.0  # before starting, wait for a subscriber on each topic
    wait_topics: tuple[str, ...] = ()  # the topics waited for, if played; empty: every one
    qos_depth: int = 10

    def __post_init__(self) -> None:
        """Reject values that cannot be played."""
        if not self.rate > 0:
            raise ValueError(f'rate must be > 0, got {self.rate}')
        if not self.clock_hz > 0:
            raise ValueError(f'clock_hz must be > 0, got {self.clock_hz}')
        if self.qos_depth < 1:
            raise ValueError(f'qos_depth must be ≥ 1, got {self.qos_depth}')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the playback arguments."""
    parser.add_argument('bag', type=Path, help='rosbag2 directory')
    parser.add_argument('--rate', type=positive_float, default=1.0,
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
    """Return the playback options the parsed arguments describe.

    Raises:
        ValueError: a value the player cannot use.
    """
    return PlaybackOptions(
        rate=args.rate,
        loop=args.loop,
        clock=args.clock,
        topics=tuple(args.topics),
        wait_for_subscribers_s=args.wait_for_subscribers,
        wait_topics=tuple(args.wait_topics),
    )
