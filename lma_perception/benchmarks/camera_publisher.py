"""Cameras for the transport benchmark: a process of its own publishing rgb8 frames at a rate.

    python -m lma_perception.benchmarks.camera_publisher --cameras 3 --size 2048x1024 \
        --hz 17 --seconds 60 --domain-id 42

Publishes `cam<i>/image` best effort with depth 1, as camera drivers do, on a fixed schedule
(a late frame is sent at once, never skipped). Once every topic has a subscriber it prints
`ready` and waits for a line on stdin: discovery is not symmetric, and a reader that has not
matched the writer yet drops its samples without counting them, so the reading side says when
it sees the writer (`CameraPublisher.start`). Prints one JSON line with the frames published
per camera when done.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

from lma_perception.arguments import positive_float, positive_int, width_by_height

MATCH_TIMEOUT_S = 30.0
SETTLE_S = 0.5  # after the last frame: a writer destroyed at once can take it with it


def camera_topic(index: int) -> str:
    """Return the input topic of benchmark camera `index`."""
    return f'cam{index}/image'


def main(argv: list[str] | None = None) -> int:
    """Publish until the time is up; exit 1 when no subscriber turns up."""
    parser = argparse.ArgumentParser(prog='camera_publisher', description=__doc__)
    parser.add_argument('--cameras', type=positive_int, default=3)
    parser.add_argument('--size', type=width_by_height, default=(2048, 1024), metavar='WxH')
    parser.add_argument('--hz', type=positive_float, default=17.0)
    parser.add_argument('--seconds', type=positive_float, default=60.0)
    parser.add_argument('--domain-id', type=int, required=True)
    args = parser.parse_args(argv)

    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from lma_perception.ros.segment_node import INPUT_QOS

    width, height = args.size
    with rclpy.init(domain_id=args.domain_id):
        node = Node('bench_cameras')
        publishers = [node.create_publisher(Image, camera_topic(index), INPUT_QOS)
                      for index in range(args.cameras)]
        pixels = np.random.default_rng(0).integers(0, 256, height * width * 3, dtype=np.uint8)
        msg = Image(height=height, width=width, encoding='rgb8', step=width * 3)
        msg.header.frame_id = 'bench_camera'
        msg.data = pixels.tobytes()
        deadline = time.monotonic() + MATCH_TIMEOUT_S
        while any(p.get_subscription_count() == 0 for p in publishers):
            if time.monotonic() > deadline:
                print('camera_publisher: no subscriber within '
                      f'{MATCH_TIMEOUT_S:.0f} s', file=sys.stderr)
                return 1
            time.sleep(0.05)
        print('ready', flush=True)
        sys.stdin.readline()
        published = [0] * args.cameras
        started = time.monotonic()
        frames = int(args.seconds * args.hz)
        for frame in range(frames):
            msg.header.stamp = node.get_clock().now().to_msg()
            for index, publisher in enumerate(publishers):
                publisher.publish(msg)
                published[index] += 1
            time.sleep(max(started + (frame + 1) / args.hz - time.monotonic(), 0.0))
        elapsed = time.monotonic() - started
        time.sleep(SETTLE_S)
        node.destroy_node()
        print(json.dumps({'published': published, 'seconds': elapsed}))
    return 0


class CameraPublisher:
    """The publisher process, started once the reading side sees its writers."""

    def __init__(self, domain_id: int, *, cameras: int, size: tuple[int, int], hz: float,
                 seconds: float, env: dict[str, str] | None = None) -> None:
        width, height = size
        self._process = subprocess.Popen(
            [sys.executable, '-m', 'lma_perception.benchmarks.camera_publisher',
             '--cameras', str(cameras), '--size', f'{width}x{height}', '--hz', str(hz),
             '--seconds', str(seconds), '--domain-id', str(domain_id)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=os.environ if env is None else env,
        )

    def start(self, readers_matched: Callable[[], bool]) -> None:
        """Let it publish once it has its subscribers and `readers_matched()` holds.

        Raises:
            TimeoutError: the two sides did not match within MATCH_TIMEOUT_S.
        """
        if self._process.stdout.readline().strip() != 'ready':
            raise TimeoutError(f'the camera publisher found no subscriber (exit '
                               f'{self._process.wait()})')
        deadline = time.monotonic() + MATCH_TIMEOUT_S
        while not readers_matched():
            if time.monotonic() > deadline:
                self._process.kill()
                raise TimeoutError('the readers did not see the camera publisher')
            time.sleep(0.05)
        self._process.stdin.write('go\n')
        self._process.stdin.flush()

    @property
    def running(self) -> bool:
        """Whether it is still publishing."""
        return self._process.poll() is None

    def wait(self, timeout_s: float | None = None) -> None:
        """Wait up to `timeout_s` for it to end (subprocess.TimeoutExpired after that)."""
        self._process.wait(timeout_s)

    def published(self) -> list[int]:
        """Wait for the end; return the frames published per camera.

        Raises:
            RuntimeError: the process failed.
        """
        output, _ = self._process.communicate()
        if self._process.returncode != 0:
            raise RuntimeError(f'the camera publisher failed (exit {self._process.returncode})')
        return json.loads(output.strip().splitlines()[-1])['published']


if __name__ == '__main__':
    sys.exit(main())
