"""Replays a rosbag2 on live topics, for machines without `ros2 bag play` and for tests.

The stored CDR bytes are published as they are (rclpy publishes `bytes` through the
serialized-message path), so headers, stamps and every field arrive exactly as recorded and no
time is spent deserialising. Messages are paced by their recorded receive times, scaled by a
rate factor; `/clock` can carry the bag's time for nodes with `use_sim_time`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rclpy.utilities import remove_ros_args
from rosbags.rosbag2 import Reader, ReaderError
from rosgraph_msgs.msg import Clock

from lma_perception.data.rosbag import BagError, open_reader
from lma_perception.ros.playback_options import PlaybackOptions, add_arguments, playback_options
from lma_perception.ros.signals import StopOnSignal

CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
# What a best-effort reader on this machine needs at most to take a sample already written.
DELIVERY_GRACE_S = 0.5
# A writer can see its reader before the reader sees the writer, and a best-effort, volatile
# reader loses what comes in between: after the last subscriber appears, this much more time.
MATCH_SETTLE_S = 0.5


class ReplayError(RuntimeError):
    """The bag cannot be played: unreadable, or the topics asked for are not in it."""


@dataclass
class PlaybackStats:
    """What one `play()` published."""

    messages: Counter[str] = field(default_factory=Counter)  # per topic
    passes: int = 0  # complete passes over the bag
    wall_s: float = 0.0


class BagPlayer(Node):
    """Publishes the recorded messages of a bag with their recorded timing."""

    def __init__(
        self, bag: str | Path, options: PlaybackOptions | None = None, **node_kwargs
    ) -> None:
        """Open the bag and create a publisher per selected topic.

        Raises:
            ReplayError: the bag cannot be read, a selected topic is not in it, or its message
                type is not installed here.
        """
        super().__init__('bag_player', **node_kwargs)
        self._bag = Path(bag)
        self._options = options or PlaybackOptions()
        with _open(self._bag) as reader:
            connections = list(reader.connections)
            self._start_ns = reader.start_time
            self._message_count = reader.message_count
        types = {c.topic: c.msgtype for c in connections}
        selected = self._options.topics or tuple(sorted(types))
        missing = [topic for topic in selected if topic not in types]
        if missing:
            raise ReplayError(
                f'{self._bag}: no topic {", ".join(missing)}; the bag has '
                f'{", ".join(sorted(types)) or "no topics"}'
            )
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=self._options.qos_depth,
            reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.VOLATILE,
        )
        self._topic_publishers: dict[str, Publisher] = {
            topic: self.create_publisher(_message_class(topic, types[topic]), topic, qos)
            for topic in selected
        }
        self._connections = [c for c in connections if c.topic in self._topic_publishers]
        self._clock_publisher = self.create_publisher(Clock, '/clock', CLOCK_QOS) if (
            self._options.clock
        ) else None

    @property
    def topics(self) -> dict[str, str]:
        """The topics played, with their message types (`sensor_msgs/msg/Image`)."""
        return {c.topic: c.msgtype for c in self._connections}

    def wait_for_subscribers(self, timeout_s: float) -> list[str]:
        """Wait until every played topic (of `wait_topics`, if given) has a subscriber.

        Returns the topics still without one.
        """
        waited = {topic: publisher for topic, publisher in self._topic_publishers.items()
                  if not self._options.wait_topics or topic in self._options.wait_topics}
        deadline = time.monotonic() + timeout_s
        while True:
            lonely = [topic for topic, publisher in waited.items()
                      if publisher.get_subscription_count() == 0]
            if not lonely:
                time.sleep(MATCH_SETTLE_S)
                return lonely
            if time.monotonic() >= deadline:
                return lonely
            time.sleep(0.02)

    def play(self, stop: threading.Event | None = None) -> PlaybackStats:
        """Publish the bag (again and again when looping) until it ends or `stop` is set.

        Raises:
            ReplayError: the bag turns out unreadable part way through.
        """
        stop = stop or threading.Event()
        if self._options.wait_for_subscribers_s > 0:
            lonely = self.wait_for_subscribers(self._options.wait_for_subscribers_s)
            if lonely:
                self.get_logger().warning(f'no subscriber yet on {", ".join(lonely)}')
        stats = PlaybackStats()
        started = time.monotonic()
        while self._play_once(stop, stats):
            stats.passes += 1
            if not self._options.loop:
                break
        stats.wall_s = time.monotonic() - started
        return stats

    def let_deliver(self, timeout_s: float = 2.0) -> None:
        """Wait for the last messages to reach their readers before the player goes away.

        A writer destroyed right after its last `publish` can take that message with it:
        reliable readers are waited for until they acknowledge, best-effort ones (the
        segmentation node's inputs) get a short grace period, since they never acknowledge.
        """
        for publisher in self._topic_publishers.values():
            publisher.wait_for_all_acked(Duration(seconds=timeout_s))
        time.sleep(DELIVERY_GRACE_S)

    def _play_once(self, stop: threading.Event, stats: PlaybackStats) -> bool:
        """Play the bag once; False if stopped (or shut down) before its end."""
        pass_started = time.monotonic()
        clock_period_s = 1.0 / self._options.clock_hz
        next_clock_s = pass_started
        for topic, bag_ns, data in self._messages():
            due_s = pass_started + (bag_ns - self._start_ns) / 1e9 / self._options.rate
            # Sleep until the message is due, ticking /clock on the way.
            while (now_s := time.monotonic()) < due_s:
                if self._clock_publisher is not None and now_s >= next_clock_s:
                    self._publish_clock(self._bag_time_ns(pass_started, now_s))
                    next_clock_s = now_s + clock_period_s
                wake_s = min(due_s, next_clock_s) if self._clock_publisher is not None else due_s
                if stop.wait(max(wake_s - time.monotonic(), 0.0)):
                    return False
            if stop.is_set() or not self.context.ok():
                return False
            if self._clock_publisher is not None:
                self._publish_clock(bag_ns)
            self._topic_publishers[topic].publish(data)
            stats.messages[topic] += 1
        return True

    def _messages(self) -> Iterator[tuple[str, int, bytes]]:
        with _open(self._bag) as reader:
            for connection, bag_ns, data in reader.messages(connections=self._connections):
                # rclpy publishes serialized messages given as bytes, not memoryviews.
                yield connection.topic, bag_ns, data if isinstance(data, bytes) else bytes(data)

    def _bag_time_ns(self, pass_started_s: float, now_s: float) -> int:
        return self._start_ns + int((now_s - pass_started_s) * self._options.rate * 1e9)

    def _publish_clock(self, bag_ns: int) -> None:
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(bag_ns, 10**9)
        self._clock_publisher.publish(msg)


@contextmanager
def _open(bag: Path) -> Iterator[Reader]:
    """Open a bag for reading; any failure to read it becomes a `ReplayError`."""
    try:
        reader = open_reader(bag)
    except BagError as error:
        raise ReplayError(str(error)) from None
    try:
        yield reader
    except ReaderError as error:
        raise ReplayError(f'cannot read bag {bag}: {error}') from None
    finally:
        reader.close()


def _message_class(topic: str, msgtype: str) -> type:
    package, _, name = msgtype.rpartition('/msg/')
    try:
        return getattr(importlib.import_module(f'{package}.msg'), name)
    except (ImportError, AttributeError, ValueError):
        raise ReplayError(
            f'topic {topic} has type {msgtype}, whose Python message package is not installed'
        ) from None


def play_bag(
    bag: str | Path, options: PlaybackOptions, args: list[str] | None = None,
    stop: StopOnSignal | None = None,
) -> int:
    """Play `bag` on a node of its own until it ends or SIGINT/SIGTERM (exit 0).

    Returns 1 when the bag cannot be played. `stop`: signal handling the caller installed.
    """
    with contextlib.ExitStack() as stack:
        if stop is None:
            stop = stack.enter_context(StopOnSignal())
        try:
            with rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO):
                with BagPlayer(bag, options) as player:
                    stats = player.play(stop.stop)
                    player.let_deliver()
                player.get_logger().info(
                    f'published {sum(stats.messages.values())} messages in {stats.wall_s:.1f} s'
                )
        except ReplayError as error:
            print(f'error: {error}', file=sys.stderr)
            return 1
    return 0


def main(args: list[str] | None = None) -> int:
    """`bag_player BAG [options] [--ros-args ...]`, the executable for launch files."""
    argv = sys.argv if args is None else args
    parser = argparse.ArgumentParser(prog='bag_player', description=__doc__.splitlines()[0])
    add_arguments(parser)
    parsed = parser.parse_args(remove_ros_args(argv)[1:])
    try:
        options = playback_options(parsed)
    except ValueError as error:
        parser.error(str(error))
    return play_bag(parsed.bag, options, argv)


if __name__ == '__main__':
    sys.exit(main())
