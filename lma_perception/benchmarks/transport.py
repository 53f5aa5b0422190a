"""Frames lost between camera publishers and the segmentation node on one machine; memory.

A load, not a timing. A separate process (`camera_publisher`) publishes N cameras of WxH rgb8
at a fixed rate, best effort with depth 1 as camera drivers do; the segmentation node in this
process segments them. `--transport profile` runs both with the shipped Fast DDS profile
(`config/fastdds_loopback.xml`), `--transport default` with Fast DDS's built-in transports.

Per camera: frames published; received by the node; lost in transport as DDS reports them
(`message_lost`) and as missing publication sequence numbers; dropped by the node (a newer
frame replaced one not yet segmented: the node's CPU limit, not the transport); labelled.
Memory: this process's resident anonymous memory (heap, tensors, messages: what a leak would
grow) sampled every second; the shared-memory pages it has mapped (the publisher's segment,
fixed in size) are shown apart. Any one sample also holds the frames in flight at that moment
(6 MB each, the decoded and resized copies on top): with three 2048×1024 cameras they swing the
samples by some ±60 MB, so a least-squares slope of the samples is ±several MB/min over a few
minutes, far coarser than a 0.1 MB/min goal. What a leak grows is the floor, the memory held
when the fewest frames are in flight: the slope that counts is that of the lowest sample of
each FLOOR_WINDOW_S window after the warm-up. Some windows' lowest sample still holds memory the
C allocator kept after freeing a frame's buffers, tens of MB above the floor, and a least-squares
line follows those spikes; the goal is judged on the median of the pairwise slopes of the floor
samples (the Theil–Sen estimator), which up to 29 % of such windows do not move. The
least-squares slopes of the floor and of all samples (with its standard error) are shown too.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lma_perception.arguments import network_size, positive_float, positive_int, width_by_height
from lma_perception.benchmarks.camera_publisher import CameraPublisher, camera_topic

MEMORY_SAMPLE_S = 1.0
WARMUP_FRACTION = 0.2  # memory samples of the first part of the run are left out of the slope
FLOOR_WINDOW_S = 30.0  # the floor is the lowest sample of each window this long
DRAIN_S = 5.0  # after the publisher ends, for the node to finish what it received
LOSS_GOAL = 0
SLOPE_GOAL_MB_PER_MIN = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's options."""
    parser.add_argument('--cameras', type=positive_int, default=3)
    parser.add_argument('--size', type=width_by_height, default=(2048, 1024), metavar='WxH',
                        help='camera image size (default 2048x1024)')
    parser.add_argument('--hz', type=positive_float, default=17.0, help='frames/s per camera')
    parser.add_argument('--seconds', type=positive_float, default=60.0, help='publishing time')
    parser.add_argument('--transport', choices=('profile', 'default'), default='profile',
                        help='the shipped Fast DDS profile, or Fast DDS built-in transports')
    parser.add_argument('--model', choices=('trivial', 'shipped'), default='trivial',
                        help='a 1x1 convolution (transport-bound) or the shipped LMA model')
    parser.add_argument('--network-size', type=network_size, default=(512, 1024),
                        metavar='WxH', help='network input size of the trivial model')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')


def main(args: argparse.Namespace) -> int:
    """Run the load and print the table; 0 when it ran (goals met or not)."""
    from lma_perception.ros.domains import reserve_domain
    from lma_perception.ros.transport_profile import use_default_transport, use_loopback_profile

    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if args.transport == 'profile':
        transport = f'profile {use_loopback_profile()}'
    else:
        use_default_transport()
        transport = 'Fast DDS built-in transports'
    domain, lock = reserve_domain()
    try:
        return _run(args, domain, transport)
    finally:
        os.close(lock)


def _run(args: argparse.Namespace, domain: int, transport: str) -> int:
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from lma_perception.ros.segment_node import SegmentNode
    from lma_perception.ros.spinning import BackgroundSpinner

    engine = _engine(args)
    cameras = [f'cam{index}' for index in range(args.cameras)]
    context = Context()
    rclpy.init(context=context, domain_id=domain)
    try:
        node = SegmentNode(engine=engine, context=context, parameter_overrides=[
            Parameter('cameras', value=cameras),
            *(Parameter(f'{camera}.image_topic', value=camera_topic(index))
              for index, camera in enumerate(cameras)),
            Parameter('max_batch_size', value=len(cameras)),
            *([Parameter('memory_length', value=0)] if args.model == 'trivial' else []),
        ])
        publisher = CameraPublisher(domain, cameras=args.cameras, size=args.size, hz=args.hz,
                                    seconds=args.seconds)
        with BackgroundSpinner(context, node):
            try:
                # The image inputs only: nobody publishes the cameras' camera_info here.
                images = {f'/{camera_topic(index)}' for index in range(args.cameras)}
                publisher.start(lambda: all(subscription.get_publisher_count() > 0
                                            for subscription in node.subscriptions
                                            if subscription.topic_name in images))
                memory = _sample_memory(publisher)
                published = publisher.published()
            except (TimeoutError, RuntimeError) as error:
                print(f'lma-perception bench transport: {error}', file=sys.stderr)
                return 1
            deadline = time.monotonic() + DRAIN_S
            while not node.idle and time.monotonic() < deadline:
                time.sleep(0.1)
            snapshots = node.camera_snapshots()
        node.destroy_node()
    finally:
        context.try_shutdown()
    _print(args, transport, engine.device, published, snapshots, memory)
    return 0


def _engine(args: argparse.Namespace):
    from lma_perception.runtime.engine import EngineConfig, SegmentationEngine

    if args.model == 'shipped':
        return SegmentationEngine.from_checkpoint(None, EngineConfig(device=args.device))
    from lma_perception.benchmarks.node_overhead import TrivialSegmenter

    return SegmentationEngine(
        TrivialSegmenter(), EngineConfig(device=args.device, input_size=tuple(args.network_size))
    )


def _resident_mb() -> dict[str, float]:
    """Return this process's resident memory by kind (Linux /proc), in MB."""
    fields = dict(line.split(':', 1) for line in
                  Path('/proc/self/status').read_text().splitlines() if ':' in line)
    return {key: int(fields[key].split()[0]) / 1e3 for key in ('RssAnon', 'RssShmem')}


def _sample_memory(publisher: CameraPublisher) -> list[tuple[float, dict[str, float]]]:
    """Sample the resident memory while the publisher runs: (seconds since start, MB by kind)."""
    started = time.monotonic()
    samples = []
    while publisher.running:
        samples.append((time.monotonic() - started, _resident_mb()))
        with contextlib.suppress(subprocess.TimeoutExpired):
            publisher.wait(MEMORY_SAMPLE_S)
    return samples


def memory_slope_mb_per_min(samples: list[tuple[float, float]], warmup_s: float) -> float:
    """Least-squares slope of the samples after `warmup_s`, in MB per minute (nan: too few)."""
    return _slope(samples, warmup_s)[0]


def robust_slope_mb_per_min(samples: list[tuple[float, float]]) -> float:
    """Theil–Sen slope in MB per minute: the median slope over all pairs of samples (nan: < 2)."""
    if len(samples) < 2:
        return float('nan')
    minutes, sizes = np.array(samples).T
    minutes = minutes / 60.0
    first, second = np.triu_indices(len(samples), k=1)
    return float(np.median((sizes[second] - sizes[first]) / (minutes[second] - minutes[first])))


def slope_with_error(
    samples: list[tuple[float, float]], warmup_s: float
) -> tuple[float, float]:
    """Least-squares slope after `warmup_s` and its standard error, in MB per minute."""
    return _slope(samples, warmup_s)


def floor_samples(
    samples: list[tuple[float, float]], warmup_s: float, window_s: float = FLOOR_WINDOW_S
) -> list[tuple[float, float]]:
    """Return the lowest sample of each whole `window_s` window after `warmup_s`."""
    windows: dict[int, list[tuple[float, float]]] = {}
    for t, mb in samples:
        if t >= warmup_s:
            windows.setdefault(int((t - warmup_s) // window_s), []).append((t, mb))
    last = max((t for t, _ in samples), default=0.0)
    return [min(kept, key=lambda sample: sample[1]) for index, kept in sorted(windows.items())
            if warmup_s + (index + 1) * window_s <= last]


def _slope(samples: list[tuple[float, float]], warmup_s: float) -> tuple[float, float]:
    kept = [(t, mb) for t, mb in samples if t >= warmup_s]
    if len(kept) < 3:
        return float('nan'), float('nan')
    times, sizes = np.array(kept).T
    minutes = times / 60.0
    (slope, _), residuals = np.polyfit(minutes, sizes, 1, full=True)[:2]
    spread = minutes - minutes.mean()
    variance = residuals[0] / (len(kept) - 2) if len(residuals) else 0.0
    return float(slope), float(np.sqrt(variance / np.sum(spread ** 2)))


def _print(args, transport, device, published, snapshots, memory) -> None:
    width, height = args.size
    print(f'transport: {args.cameras} cameras of {width}x{height} rgb8 at {args.hz:g} Hz for '
          f'{args.seconds:g} s, {transport}; {args.model} model on {device}; '
          f'{os.cpu_count()} CPUs, load average {", ".join(f"{v:.2f}" for v in os.getloadavg())}')
    header = ('camera', 'published', 'received', 'lost (DDS)', 'unaccounted', 'replaced',
              'dropped', 'labelled')
    print(''.join(f'{h:>12}' for h in header))
    transport_lost = unaccounted_total = 0
    for count, snapshot in zip(published, snapshots, strict=True):
        # A frame lost on the wire also leaves a gap in the sequence numbers: the gaps beyond
        # the reported losses are frames the depth-1 input queue replaced before the executor
        # took them (CPU), and what neither explains is lost too.
        missing = max(snapshot.missed_in_sequence, snapshot.lost_in_transport)
        replaced = missing - snapshot.lost_in_transport
        unaccounted = count - snapshot.received - missing
        transport_lost += snapshot.lost_in_transport
        unaccounted_total += unaccounted
        row = (snapshot.name, count, snapshot.received, snapshot.lost_in_transport, unaccounted,
               replaced, snapshot.dropped, snapshot.published)
        print(''.join(f'{value:>12}' for value in row))
    print('lost (DDS): reported by message_lost; unaccounted: published, neither received nor '
          'in a sequence gap (the last frames, which no later one reveals); replaced: taken '
          'over by a newer frame in the input queue before the executor read it; dropped: '
          'received, replaced by a newer frame before the worker segmented it. Replaced and '
          'dropped are the node\'s CPU limit.')
    anonymous = [(t, sizes['RssAnon']) for t, sizes in memory]
    warmup_s = WARMUP_FRACTION * args.seconds
    samples_slope, samples_error = slope_with_error(anonymous, warmup_s)
    floors = floor_samples(anonymous, warmup_s)
    slope = robust_slope_mb_per_min(floors)
    floor_least_squares = memory_slope_mb_per_min(floors, 0.0)
    first, last = anonymous[0][1], anonymous[-1][1]
    print(f'frames lost in transport (DDS): {transport_lost} '
          f'(goal {LOSS_GOAL}: {"met" if transport_lost <= LOSS_GOAL else "not met"}); '
          f'unaccounted: {unaccounted_total}')
    print(f'resident anonymous memory: {first:.0f} MB at start, {last:.0f} MB at the end; floor '
          f'(lowest of each {FLOOR_WINDOW_S:.0f} s) {", ".join(f"{mb:.0f}" for _, mb in floors)} '
          f'MB, slope (Theil–Sen) {slope:+.3f} MB/min after {warmup_s:.0f} s of warm-up '
          f'(goal <= {SLOPE_GOAL_MB_PER_MIN} MB/min: '
          f'{"met" if slope <= SLOPE_GOAL_MB_PER_MIN else "not met"}), least squares '
          f'{floor_least_squares:+.3f} MB/min; slope of all samples '
          f'{samples_slope:+.2f} ± {samples_error:.2f} MB/min; shared memory mapped: '
          f'{memory[-1][1]["RssShmem"]:.0f} MB at the end')
