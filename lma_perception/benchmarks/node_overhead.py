"""What the segmentation node adds to plain rclpy image transport, and how it scales.

One process, the same 2048×1024 rgb8 frames for every case:

(a) transport: source → relay → source. The relay answers each image with a preallocated
    mono8 image of the same size (what a label image weighs) carrying the input header, so
    (a) holds both Python image hops and no work in between.
(b) node: source → segmentation node with a trivial model (one 1×1 convolution) → labels →
    source. Decoding, the engine's resize, the forward pass, argmax, upsampling the labels
    to the input size and building the message are all in (b).
(c) engine: `SegmentationEngine.segment` on the same frame, no ROS: the part of (b) that any
    model pays for its input and output, whatever carries the frames.

The three are measured in turns, frame after frame, so that they share whatever else the
machine is doing; a frame goes out only when the previous answer is back, so latencies hold no
queueing. Added latency = p50(b) − p50(a); of that, p50(b) − p50(a) − p50(c) is the node's own
work around the engine (decoding, the hand-over to the worker, building messages).

Throughput: with 1, 3 and 8 cameras, each camera sends its next frame as soon as its labels
return, so the node always has a frame waiting per camera and batches them; frames/s are
summed over the cameras.
"""

from __future__ import annotations

import argparse
import array
import os
import threading
import time

import numpy as np
import torch
from torch import nn

from lma_perception.arguments import network_size, positive_int, width_by_height
from lma_perception.models.prediction import classifier_labels
from lma_perception.runtime.backend_names import BACKENDS, DEFAULT_BACKEND
from lma_perception.runtime.latency import summarize_latency

GOAL_MS = 5.0
WARMUP_FRAMES = 5
STALL_S = 1.0  # a camera without an answer for this long gets its frame again
ANSWER_TIMEOUT_S = 5.0


class TrivialSegmenter(nn.Module):
    """A per-pixel linear classifier: the cheapest model with the real input and output."""

    def __init__(self, num_classes: int = 20) -> None:
        super().__init__()
        self.classify = nn.Conv2d(3, num_classes, kernel_size=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return B×classes×H×W logits for B×3×H×W images."""
        return self.classify(images)

    def labels(
        self, images: torch.Tensor, *, confidence: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return B×H×W uint8 labels (and confidence), as ERFNet's classifier gives them."""
        return classifier_labels(self.classify, images, confidence=confidence)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options."""
    parser.add_argument('--frames', type=positive_int, default=40,
                        help=f'frames timed per latency case (after {WARMUP_FRAMES} warm-up)')
    parser.add_argument('--seconds', type=float, default=6.0,
                        help='duration of each throughput case')
    parser.add_argument('--cameras', type=positive_int, nargs='+', default=[1, 3, 8],
                        help='camera counts for the throughput cases')
    parser.add_argument('--size', type=width_by_height, default=(2048, 1024), metavar='WxH',
                        help='camera image size (default 2048x1024)')
    parser.add_argument('--network-size', type=network_size, default=(512, 1024),
                        metavar='WxH', help='network input size (default 1024x512)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--backend', choices=BACKENDS, default=DEFAULT_BACKEND,
                        help='inference backend of the engine (default: %(default)s, as the '
                        'node)')


def main(args: argparse.Namespace) -> int:
    """Run every case and print the tables; 0 on success."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    import rclpy
    from rclpy.context import Context

    from lma_perception.runtime.engine import EngineConfig, SegmentationEngine

    width, height = args.size
    engine = SegmentationEngine(
        TrivialSegmenter(),
        EngineConfig(device=args.device, input_size=tuple(args.network_size),
                     backend=args.backend),
    )
    context = Context()
    rclpy.init(context=context)
    try:
        latencies, stages = _latencies(context, engine, args.frames, height, width)
        rates = {count: _throughput(context, engine, count, args.seconds, height, width)
                 for count in args.cameras}
    finally:
        context.try_shutdown()

    transport, through_node, engine_only = (summarize_latency(latencies[case])
                                            for case in ('relay', 'node', 'engine'))
    added = through_node.p50 - transport.p50
    print(f'node overhead: {width}x{height} rgb8 frames, trivial model (1x1 conv) at network '
          f'{args.network_size[1]}x{args.network_size[0]}, device {engine.device} '
          f'({engine.backend_name}), '
          f'torch {torch.__version__}, {os.cpu_count()} CPUs')
    print(f'{"latency (ms)":<34}{"p50":>8}{"p95":>8}{"max":>8}')
    for name, summary in (('(a) rclpy round trip via a relay', transport),
                          ('(b) round trip through the node', through_node),
                          ('(c) engine alone, no ROS', engine_only)):
        print(f'{name:<34}{summary.p50:>8.2f}{summary.p95:>8.2f}{summary.max:>8.2f}')
    print(f'added by the node, p50 (b) - (a): {added:.2f} ms (goal <= {GOAL_MS:.0f} ms: '
          f'{"met" if added <= GOAL_MS else "not met"})')
    print(f'node work around the engine, p50 (b) - (a) - (c): '
          f'{added - engine_only.p50:.2f} ms')
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

    msg = Image(height=height, width=width, encoding='rgb8', step=width * 3)
    msg.header.frame_id = 'camera_optical'
    msg.data = array.array('B', _pixels(height, width).tobytes())
    return msg


def _pixels(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


class _Source:
    """A node sending frames on `<target>/image` and timing the answers on `<target>/labels`."""

    def __init__(self, context, targets: list[str], on_answer=None) -> None:
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        qos = QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        self.node = Node('bench_source', context=context)
        self.publishers = {t: self.node.create_publisher(Image, f'{t}/image', qos)
                           for t in targets}
        self.arrived: dict[tuple[str, int], float] = {}
        self.answered = threading.Event()
        self._on_answer = on_answer
        for target in targets:
            self.node.create_subscription(
                Image, f'{target}/labels',
                lambda msg, target=target: self._answer(target, msg), qos,
            )

    def _answer(self, target: str, msg) -> None:
        self.arrived[(target, msg.header.stamp.nanosec)] = time.perf_counter()
        self.answered.set()
        if self._on_answer is not None:
            self._on_answer(target)

    def wait_for_match(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(publisher.get_subscription_count()
                   and self.node.count_publishers(f'{target}/labels')
                   for target, publisher in self.publishers.items()):
                # Discovery is symmetric but not simultaneous: give the far side a moment.
                time.sleep(0.5)
                return
            time.sleep(0.05)
        raise TimeoutError(f'the benchmark topics did not connect within {timeout_s} s')


def _make_relay(context, height: int, width: int):
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from lma_perception.ros.segment_node import INPUT_QOS

    relay = Node('bench_relay', context=context)
    answer = Image(height=height, width=width, encoding='mono8', step=width)
    answer.data = array.array('B', bytes(height * width))
    publisher = relay.create_publisher(
        Image, 'relay/labels', QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    )

    def on_image(msg: Image) -> None:
        answer.header = msg.header
        publisher.publish(answer)

    relay.create_subscription(Image, 'relay/image', on_image, INPUT_QOS)
    return relay


def _make_node(context, engine, cameras: list[str]):
    from rclpy.parameter import Parameter

    from lma_perception.ros.segment_node import SegmentNode

    return SegmentNode(engine=engine, context=context, parameter_overrides=[
        Parameter('cameras', value=cameras),
        Parameter('memory_length', value=0),
        Parameter('max_batch_size', value=len(cameras)),
    ])


def _latencies(context, engine, frames: int, height: int, width: int):
    """Round trips via the relay and via the node, and engine calls, taken in turns."""
    from lma_perception.ros.spinning import BackgroundSpinner

    source = _Source(context, ['relay', 'node'])
    relay = _make_relay(context, height, width)
    node = _make_node(context, engine, ['node'])
    msg = _image_msg(height, width)
    image = _pixels(height, width)
    latencies: dict[str, list[float]] = {'relay': [], 'node': [], 'engine': []}
    with BackgroundSpinner(context, source.node, relay, node):
        source.wait_for_match()
        for frame in range(frames + WARMUP_FRAMES):
            timed = frame >= WARMUP_FRAMES
            for target in ('relay', 'node'):
                msg.header.stamp.sec, msg.header.stamp.nanosec = 1, frame
                source.answered.clear()
                sent = time.perf_counter()
                source.publishers[target].publish(msg)
                # A frame lost on the best-effort input is left out, not waited for.
                if source.answered.wait(ANSWER_TIMEOUT_S) and timed and (
                    (target, frame) in source.arrived
                ):
                    latencies[target].append((source.arrived[(target, frame)] - sent) * 1e3)
            started = time.perf_counter()
            engine.segment([image], [None])
            if timed:
                latencies['engine'].append((time.perf_counter() - started) * 1e3)
        snapshot = node.camera_snapshots()[0]
    for ros_node in (node, relay, source.node):
        ros_node.destroy_node()
    return latencies, snapshot.latency


def _throughput(context, engine, cameras: int, seconds: float, height: int, width: int
                ) -> float:
    """Frames per second over all cameras when every camera resends on each answer."""
    from lma_perception.ros.spinning import BackgroundSpinner

    names = [f'cam{index}' for index in range(cameras)]
    msg = _image_msg(height, width)
    counts = dict.fromkeys(names, 0)
    last_answer = dict.fromkeys(names, time.monotonic())
    running = threading.Event()

    def on_answer(camera: str) -> None:
        counts[camera] += 1
        last_answer[camera] = time.monotonic()
        if running.is_set():
            source.publishers[camera].publish(msg)

    source = _Source(context, names, on_answer)
    node = _make_node(context, engine, names)
    with BackgroundSpinner(context, source.node, node):
        source.wait_for_match()
        running.set()
        for publisher in source.publishers.values():
            publisher.publish(msg)
        _keep_sending(source, msg, last_answer, 1.0)  # warm-up
        before, started = sum(counts.values()), time.perf_counter()
        _keep_sending(source, msg, last_answer, seconds)
        done, elapsed = sum(counts.values()), time.perf_counter() - started
        running.clear()
    node.destroy_node()
    source.node.destroy_node()
    return (done - before) / elapsed


def _keep_sending(source: _Source, msg, last_answer: dict[str, float], seconds: float) -> None:
    """Wait `seconds`, resending for any camera whose frame was lost (best-effort input)."""
    deadline = time.monotonic() + seconds
    while (now := time.monotonic()) < deadline:
        for camera, publisher in source.publishers.items():
            if now - last_answer[camera] > STALL_S:
                last_answer[camera] = now
                publisher.publish(msg)
        time.sleep(0.05)
