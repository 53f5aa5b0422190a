"""`lma-perception bag write|info`: Cityscapes-style trees to rosbag2, and what a bag holds."""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from lma_perception.arguments import width_by_height
from lma_perception.commands import fail


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'bag',
        help='convert a Cityscapes-style tree into a rosbag2, or summarise a bag',
        description='`bag write` records a tree (real Cityscapes or `synth` output) as a rosbag2 '
        'with /<camera>/image_raw (rgb8; with --compressed, /<camera>/image_raw/compressed), '
        '/<camera>/semantic/ground_truth (mono8 train ids), '
        '/<camera>/cityscapes/stem (std_msgs/String, each frame\'s Cityscapes file-name stem), '
        '/<camera>/semantic/instance_ids (mono16, where the tree has _gtFine_instanceIds.png) '
        'and, for trees that record degradations, /<camera>/synthetic/degradation '
        '(std_msgs/String); '
        '`bag info` lists the cameras, frames, ground truth, degraded frames and sequences of a '
        'bag.',
    )
    actions = parser.add_subparsers(dest='action', metavar='ACTION', required=True)
    write = actions.add_parser('write', help='write a tree into a new bag')
    write.add_argument('tree', type=Path, help='Cityscapes root, synthetic root or camera tree')
    write.add_argument('out', type=Path, help='new bag folder')
    write.add_argument('--split', default='val', help='split to record (default: val)')
    write.add_argument('--cameras', nargs='+', help='cameras to record (default: all)')
    write.add_argument('--camera-name',
                       help='camera name for a single-camera tree (default: its folder name)')
    write.add_argument('--size', type=width_by_height, metavar='WxH',
                       help='resize images and ground truth (default: as stored)')
    write.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap',
                       help='storage format (default: mcap)')
    write.add_argument('--fps', type=float,
                       help="frame rate (default: a synthetic tree's own, else 17)")
    write.add_argument('--gap', type=float, default=1.0,
                       help='seconds between sequences (default: 1)')
    write.add_argument('--compressed', nargs='?', const='jpeg', choices=('jpeg', 'png'),
                       metavar='{jpeg,png}',
                       help='record images as sensor_msgs/CompressedImage on '
                       '/<camera>/image_raw/compressed, as image_transport publishes them '
                       '(default codec when given without one: jpeg, quality 95)')
    write.add_argument('--annotated-only', action='store_true',
                       help='ground truth for annotated frames only, even if dense labels exist')
    info = actions.add_parser('info', help='summarise a bag')
    info.add_argument('bag', type=Path, help='bag folder or storage file')
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from lma_perception.data.cityscapes import CityscapesError
    from lma_perception.data.rosbag import BagError

    try:
        return _write(args) if args.action == 'write' else _info(args)
    except (BagError, CityscapesError) as error:
        return fail(str(error))


def _write(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lma_perception.data.cityscapes import CityscapesTree
    from lma_perception.data.rosbag import FPS, tree_frames, write_bag
    from lma_perception.synthetic.generator import load_config

    tree = CityscapesTree(args.tree, args.split, cameras=args.cameras,
                          camera_name=args.camera_name,
                          size=None if args.size is None else args.size[::-1])
    total = sum(len(s.frames) for s in tree.sequences())
    print(tree.describe())
    # A synthetic root (or one of its camera trees) records the rate it was rendered at.
    synthetic = load_config(args.tree) or load_config(args.tree.parent)
    fps = args.fps or (synthetic.fps if synthetic else FPS)
    frames = tree_frames(tree, fps=fps, gap_s=args.gap, dense=not args.annotated_only)
    with tqdm(total=total, unit='frame', disable=None) as bar:
        summary = write_bag(args.out, _counted(frames, bar), storage=args.storage,
                            compression=args.compressed)
    degraded = '' if summary.degraded is None else f', {summary.degraded} degraded'
    print(f'wrote {summary.frames} frames ({summary.ground_truth} with ground truth{degraded}) of '
          f'{", ".join(summary.cameras)} to {summary.path} '
          f'({(summary.end_ns - summary.start_ns) / 1e9:.1f} s of recording)')
    return 0


def _counted(frames, bar):
    for frame in frames:
        bar.update()
        yield frame


def _info(args: argparse.Namespace) -> int:
    from lma_perception.continuity import SEQUENCE_BOUNDARY_S
    from lma_perception.data.rosbag import (
        camera_image_topics,
        degradation_topic,
        ground_truth_topic,
        read_bag,
    )

    counts: dict[str, dict] = defaultdict(lambda: {'frames': 0, 'truth': 0, 'recorded': 0,
                                                   'degraded': 0, 'sequences': 0,
                                                   'sizes': set(), 'frame_ids': set()})
    first = last = None
    for frame in read_bag(args.bag):
        entry = counts[frame.camera]
        entry['frames'] += 1
        entry['truth'] += frame.ground_truth is not None
        entry['recorded'] += frame.degradation is not None
        entry['degraded'] += bool(frame.degradation)  # '' is a frame recorded as clean
        entry['sequences'] += frame.sequence_start
        entry['sizes'].add(f'{frame.image.shape[1]}x{frame.image.shape[0]}')
        entry['frame_ids'].add(frame.frame_id)
        first = frame.stamp_ns if first is None else min(first, frame.stamp_ns)
        last = frame.stamp_ns if last is None else max(last, frame.stamp_ns)
    image_topics = camera_image_topics(args.bag)
    print(f'bag        {args.bag}')
    print(f'duration   {(last - first) / 1e9:.2f} s '
          f'(sequences split at gaps > {SEQUENCE_BOUNDARY_S} s)')
    for camera, entry in counts.items():
        degraded = (f'{entry["degraded"]} of {entry["recorded"]} degraded on '
                    f'{degradation_topic(camera)}, ' if entry['recorded'] else '')
        print(f'camera     {camera}: {entry["frames"]} frames on {image_topics[camera]}, '
              f'{entry["truth"]} with ground truth on {ground_truth_topic(camera)}, {degraded}'
              f'{entry["sequences"]} sequence(s), {" ".join(sorted(entry["sizes"]))}, '
              f'frame_id {" ".join(sorted(entry["frame_ids"]))}')
    return 0
