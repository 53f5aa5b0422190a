"""What the segmentation node adds to plain rclpy image transport, and how it scales.

One process, the same 2048×1024 rgb8 frames for every case:

(a) transport: source → relay → source. The relay answers each image with a preallocated
    mono8 image of the same size (what a label image weighs) carrying the input header, so
    (a) holds both Python image hops and no work in between.
(b) node: source → segmentation node with a trivial model (one 1×1 convolution) → labels →
    source. Decoding, the engine's resize, the forward pass, argmax, upsampling the labels
    to the input size and building the message are all in (b).
(c) engine: `SegmentationEngine.segment` on the same frame, no ROS: the part of (b) that any
    model pays for its input and output, whatever transport carries the frames.

Frames go one at a time (the next leaves when the previous answer is back), so latencies hold
no queueing. Added latency = p50(b) − p50(a); of that, p50(b) − p50(a) − p50(c) is the node's
own work around the engine (decoding, the hand-over to the worker, building messages).
Throughput: with 1, 3 and 8 cameras, each camera
sends its next frame as soon as its labels return, so the node always has a frame waiting per
camera and batches them; frames/s are summed over the cameras.
"""

from __future__ import annotations

import argparse
import array
import os
import threading
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from lma_perception.eval.metrics import summarize_latency

GOAL_MS = 5.0
STALL_S = 1.0  # a camera without an answer for this long gets its frame again


class TrivialSegmenter(nn.Module):
    """A per-pixel linear classifier: the cheapest model with the real input and output."""

    def __init__(self, num_classes: int = 20) -> None:
        super().__init__()
        self.classify = nn.Conv2d(3, num_classes, kernel_size=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return B×classes×H×W logits for B×3×H×W images."""
        return self.classify(images)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options."""
    parser.add_argument('--frames', type=int, default=40,
                        help='frames timed per latency case (after 5 warm-up frames)')
    parser.add_argument('--seconds', type=float, default=6.0,
                        help='duration of each throughput case')
    parser.add_argument('--cameras', type=int, nargs='+', default=[1, 3, 8],
                        help='camera counts for the throughput cases')
    parser.add_argument('--size', type=int, nargs=2, default=[1024, 2048],
                        metavar=('HEIGHT', 'WIDTH'), help='camera image size')
    parser.add_argument('--network-size', type=int, nargs=2, default=[512, 1024],
                        metavar=('HEIGHT', 'WIDTH'), help='network input size')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')


def main(args: argparse.Namespace) -> int:
    """Run every case and print the table; 0 on success."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    import rclpy
    from rclpy.context import Context

    from lma_perception.runtime.engine import EngineConfig, SegmentationEngine

    height, width = args.size
    engine = SegmentationEngine(
        TrivialSegmenter(),
        EngineConfig(device=args.device, input_size=tuple(args.network_size)),
    )
    context = Context()
    rclpy.init(context=context)
    try:
        transport, _ = _latency(context, args.frames, height, width, relay=None)
        through_node, stages = _latency(context, args.frames, height, width, relay=engine)
        engine_only = _engine_latency(engine, args.frames, height, width)
        rates = {count: _throughput(context, engine, count, args.seconds, height, width)
                 for count in args.cameras}
    finally:
        context.try_shutdown()

    added = through_node.p50 - transport.p50
    print(f'node overhead: {width}x{height} rgb8 frames, trivial model (1x1 conv) at network '
          f'{args.network_size[1]}x{args.network_size[0]}, device {engine.device}, '
          f'torch {torch.__version__}, {os.cpu_count()} CPUs')
    print(f'{"round trip (ms)":<34}{"p50":>8}{"p95":>8}{"max":>8}')
    for name, summary in (('(a) rclpy transport + relay', transport),
                          ('(b) through the node', through_node),
                          ('(c) engine alone, no ROS', engine_only)):
        print(f'{name:<34}{summary.p50:>8.2f}{summary.p95:>8.2f}{summary.max:>8.2f}')
    print(f'added by the node (p50 b - a): {added:.2f} ms (goal <= {GOAL_MS:.0f} ms: '
          f'{"met" if added <= GOAL_MS else "not met"}); node work around the engine '
          f'(p50 b - a - c): {added - engine_only.p50:.2f} ms')
    print('node stages p50 (ms): ' + ', '.join(
        f'{stage} {summary.p50:.2f}' for stage, summary in stages.items()
    ))
    single = rates[min(rates)] / min(rates)
    print(f'{"cameras":<10}{"frames/s":>10}{"per camera":>12}{"vs 1 camera":>14}')
    for count, rate in rates.items():
        print(f'{count:<10}{rate:>10.1f}{rate / count:>12.1f}{rate / single:>13.2f}x')
    return 0


def _image_msg(height: int, width: int):
    from sensor_msgs.msg import Image

    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    msg = Image(height=height, width=width, encoding='rgb8', step=width * 3)
    msg.header.frame_id = 'camera_optical'
    msg.data = array.array('B', pixels.tobytes())
    return msg


class _Spinner:
    """Spin some nodes in a background thread for the duration of a `with` block."""

    def __init__(self, context, *nodes) -> None:
        from rclpy.executors import MultiThreadedExecutor

        self._executor = MultiThreadedExecutor(num_threads=2, context=context)
        for node in nodes:
            self._executor.add_node(node)
        self._thread = threading.Thread(target=self._executor.spin)

    def __enter__(self) -> _Spinner:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._executor.shutdown()
        self._thread.join()


def _make_source(context, cameras: int, on_labels: Callable[[int, object], None]):
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    source = Node('bench_source', context=context)
    publishers = [source.create_publisher(Image, f'cam{i}/image', qos) for i in range(cameras)]
    for index in range(cameras):
        source.create_subscription(Image, f'cam{index}/labels',
                                   lambda msg, index=index: on_labels(index, msg), qos)
    return source, publishers


def _make_relay(context, height: int, width: int):
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from lma_perception.ros.segment_node import INPUT_QOS

    relay = Node('bench_relay', context=context)
    answer = Image(height=height, width=width, encoding='mono8', step=width)
    answer.data = array.array('B', bytes(height * width))
    publisher = relay.create_publisher(
        Image, 'cam0/labels', QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    )

    def on_image(msg: Image) -> None:
        answer.header = msg.header
        publisher.publish(answer)

    relay.create_subscription(Image, 'cam0/image', on_image, INPUT_QOS)
    return relay


def _make_node(context, engine, cameras: int):
    from rclpy.parameter import Parameter

    from lma_perception.ros.segment_node import SegmentNode

    return SegmentNode(engine=engine, context=context, parameter_overrides=[
        Parameter('cameras', value=[f'cam{i}' for i in range(cameras)]),
        Parameter('memory_length', value=0),
        Parameter('max_batch_size', value=cameras),
    ])


def _latency(context, frames: int, height: int, width: int, relay):
    """Time `frames` one-at-a-time round trips through the relay, or the node if an engine."""
    arrived: dict[int, float] = {}
    answered = threading.Event()

    def on_labels(index: int, msg) -> None:
        arrived[msg.header.stamp.nanosec] = time.perf_counter()
        answered.set()

    source, (publisher,) = _make_source(context, 1, on_labels)
    target = _make_node(context, relay, 1) if relay is not None else _make_relay(
        context, height, width
    )
    msg = _image_msg(height, width)
    latencies = []
    with _Spinner(context, source, target):
        _wait_for_match(publisher, source, 'cam0/labels')
        warmup = 5
        for frame in range(frames + warmup):
            msg.header.stamp.sec, msg.header.stamp.nanosec = 1, frame
            answered.clear()
            sent = time.perf_counter()
            publisher.publish(msg)
            if answered.wait(timeout=5.0) and frame >= warmup and frame in arrived:
                latencies.append((arrived[frame] - sent) * 1e3)
        stages = {}
        if relay is not None:
            snapshot = target.camera_snapshots()[0]
            stages = {stage: snapshot.latency[stage] for stage in snapshot.latency}
    target.destroy_node()
    source.destroy_node()
    return summarize_latency(latencies), stages


def _engine_latency(engine, frames: int, height: int, width: int):
    """Time `engine.segment` on the benchmark frame without ROS."""
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    latencies = []
    for frame in range(frames + 5):
        started = time.perf_counter()
        engine.segment([image], [None])
        if frame >= 5:
            latencies.append((time.perf_counter() - started) * 1e3)
    return summarize_latency(latencies)


def _throughput(context, engine, cameras: int, seconds: float, height: int, width: int
                ) -> float:
    """Frames per second over all cameras when every camera resends on each answer."""
    msg = _image_msg(height, width)
    counts = [0] * cameras
    last_answer = [time.monotonic()] * cameras
    running = threading.Event()
    publishers = []

    def on_labels(index: int, answer) -> None:
        counts[index] += 1
        last_answer[index] = time.monotonic()
        if running.is_set():
            publishers[index].publish(msg)

    source, source_publishers = _make_source(context, cameras, on_labels)
    publishers.extend(source_publishers)
    node = _make_node(context, engine, cameras)
    with _Spinner(context, source, node):
        for index, publisher in enumerate(publishers):
            _wait_for_match(publisher, source, f'cam{index}/labels')
        running.set()
        for publisher in publishers:
            publisher.publish(msg)
        _keep_sending(publishers, msg, last_answer, 1.0)  # warm-up
        before, started = sum(counts), time.perf_counter()
        _keep_sending(publishers, msg, last_answer, seconds)
        done, elapsed = sum(counts), time.perf_counter() - started
        running.clear()
    node.destroy_node()
    source.destroy_node()
    return (done - before) / elapsed


def _keep_sending(publishers, msg, last_answer: list[float], seconds: float) -> None:
    """Wait `seconds`, resending for any camera whose frame was lost (best-effort input)."""
    deadline = time.monotonic() + seconds
    while (now := time.monotonic()) < deadline:
        for index, publisher in enumerate(publishers):
            if now - last_answer[index] > STALL_S:
                last_answer[index] = now
                publisher.publish(msg)
        time.sleep(0.05)


def _wait_for_match(publisher, source, labels_topic: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if publisher.get_subscription_count() and source.count_publishers(labels_topic):
            # Discovery is symmetric but not simultaneous: give the far side a moment too.
            time.sleep(0.5)
            return
        time.sleep(0.05)
    raise TimeoutError(f'{publisher.topic_name} found no subscriber in {timeout_s} s')
