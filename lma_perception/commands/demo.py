"""`lma-perception demo`: the whole pipeline on built-in synthetic data, in a few minutes.

1. Renders a small three-camera synthetic test set (cached after the first run).
2. Records it as a rosbag2 (mcap), as a car's cameras would.
3. Plays the bag through the segmentation node over real ROS 2 topics and scores the labels
   live against the ground truth topic: mIoU, frames dropped, end-to-end latency.
4. Scores the same frames offline, LMA against the single-frame model, and writes a report
   folder with plots and an overlay strip.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from lma_perception.arguments import positive_float, positive_int
from lma_perception.commands import add_backend_argument, add_precision_argument, fail

DEFAULT_WORKDIR = Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / (
    'lma_perception/demo'
)
SPLIT = 'test'  # never seen in training nor in model selection


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'demo', help='synthetic bag → ROS node → live and offline evaluation, with a report',
        description=__doc__.split('\n\n', 1)[1], formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument('--workdir', type=Path, default=DEFAULT_WORKDIR,
                        help='cache for the data and the bag (default %(default)s)')
    parser.add_argument('--report', type=Path, default=Path('reports/demo'),
                        help='report folder (default %(default)s)')
    parser.add_argument('--sequences', type=positive_int, default=3,
                        help='30-frame sequences per camera (default %(default)s)')
    parser.add_argument('--weights', help='checkpoint (default: the shipped weights)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    add_backend_argument(parser)
    add_precision_argument(parser)
    parser.add_argument('--rate', type=positive_float, default=1.0, help='playback speed factor')
    parser.set_defaults(run=run)


def prepare_bag(workdir: Path, sequences: int) -> tuple[Path, Path]:
    """Render the synthetic test set and record it as a bag, unless already cached."""
    from lma_perception.data.cityscapes import CityscapesTree
    from lma_perception.data.rosbag import tree_frames, write_bag
    from lma_perception.synthetic.generator import SynthConfig, write_dataset

    tree = workdir / f'synth_{sequences}'
    bag = workdir / f'synth_{sequences}.bag'
    if not (tree / 'synth.json').exists():
        print(f'rendering {sequences} synthetic sequences × 3 cameras to {tree}')
        write_dataset(tree, SynthConfig(), SPLIT, sequences, jobs=min(2, os.cpu_count() or 1))
    if not (bag / 'metadata.yaml').exists():
        print(f'recording {bag}')
        write_bag(bag, tree_frames(CityscapesTree(tree, SPLIT)))
    return tree, bag


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    from rclpy.parameter import Parameter

    from lma_perception.eval.evaluator import evaluate
    from lma_perception.eval.report import format_table, summary_rows, write_report
    from lma_perception.eval.sources import open_dataset
    from lma_perception.ros.bag_player import ReplayError
    from lma_perception.ros.live_eval import LiveEvalOptions, run_live_eval
    from lma_perception.ros.segment_node import SetupError
    from lma_perception.ros.transport_profile import use_loopback_profile
    from lma_perception.runtime.engine import EngineConfig, SegmentationEngine

    use_loopback_profile()

    tree, bag = prepare_bag(args.workdir, args.sequences)

    print('\n== live: bag → segmentation node → labels, over ROS 2 topics ==')
    parameters = [Parameter('device', value=args.device),
                  Parameter('backend', value=args.backend),
                  Parameter('precision', value=args.precision)]
    if args.weights:
        parameters.append(Parameter('weights', value=args.weights))
    try:
        live = run_live_eval(bag, LiveEvalOptions(rate=args.rate, use_sim_time=True,
                                                  parameters=tuple(parameters)))
    except (ReplayError, SetupError) as error:
        return fail(str(error))
    print(live.summary())

    print('\n== offline: the same frames, LMA against the single-frame model ==')
    try:
        engine = SegmentationEngine.from_checkpoint(
            args.weights,
            EngineConfig(device=args.device, backend=args.backend, precision=args.precision),
        )
    except (ValueError, RuntimeError) as error:
        return fail(str(error))
    frames, dataset = open_dataset(tree, split=SPLIT)
    result = evaluate(engine, frames, dataset, compare_single_frame=True)
    result.engine['weights'] = args.weights or 'shipped'
    metrics = result.to_dict()
    metrics['live'] = live.as_dict()
    print(format_table(summary_rows(metrics)))
    write_report(metrics, args.report, result.samples)
    (args.report / 'live.json').write_text(json.dumps(live.as_dict(), indent=2) + '\n')

    dropped = sum(camera.frames_dropped for camera in live.cameras)
    published = sum(camera.images_published for camera in live.cameras)
    lma, single = metrics['paths']['lma'], metrics['paths']['single_frame']
    print('\n== summary ==')
    for key, what in (('dense', 'all frames'), ('degraded', 'degraded frames')):
        print(f'mIoU offline, {what}: LMA {_percent(lma, key)} vs single frame '
              f'{_percent(single, key)}')
    print(f'live: mIoU {100 * live.miou:.1f} %, latency p50 {live.latency_ms.p50:.1f} ms, '
          f'p95 {live.latency_ms.p95:.1f} ms, frames dropped {dropped} of {published}')
    print(f'report: {args.report / "report.md"} (overlay strip: '
          f'{args.report / "overlays.png"})')
    return 0


def _percent(path_metrics: dict, key: str) -> str:
    miou = (path_metrics.get(key) or {}).get('miou')
    return 'n/a' if miou is None else f'{100 * miou:.1f} %'
