"""`lma-perception eval PATH`: score recorded video offline, LMA against the single-frame model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lma_perception.arguments import network_size, positive_int
from lma_perception.commands import add_backend_argument, add_precision_argument, fail


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'eval',
        help='score a Cityscapes-style tree or a rosbag2 offline: mIoU, flicker, latency',
        description='Streams every sequence through the segmentation engine in time order, one '
        'memory per camera reset between sequences (as the ROS node runs), and reports the '
        "scores of cityscapesScripts' evalPixelLevelSemanticLabeling: class mIoU (19 classes, "
        '255 ignored, mean over every class whose union is not empty, so a class predicted but '
        'absent from the ground truth counts as 0), category mIoU (7 categories) and, where '
        '_gtFine_instanceIds.png exist, instance-weighted iIoU; also per-class IoU, pixel '
        'accuracy, clean vs degraded frames, temporal consistency and per-stage latency. '
        'Annotated frames without a leftImg8bit_sequence snippet are scored as single frames.',
    )
    parser.add_argument('path', type=Path,
                        help='Cityscapes-style folder tree (real or synthetic) or rosbag2')
    parser.add_argument('--weights', type=Path,
                        help='checkpoint file (default: the weights shipped with the package)')
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    add_precision_argument(parser)
    add_backend_argument(parser)
    parser.add_argument('--input-size', type=network_size, metavar='WxH',
                        help="network input size (default: the checkpoint's training size)")
    parser.add_argument('--memory-length', type=positive_int, metavar='T',
                        help="frames held in each camera memory (default: the engine's, 4)")
    parser.add_argument('--write-policy', choices=('always', 'adaptive'),
                        help='memory write policy (default: always)')
    parser.add_argument('--write-threshold', type=float, metavar='D',
                        help='adaptive policy: write a frame whose key differs from the newest '
                        'memory slot by more than this 1 - cosine distance (default: 0.02)')
    parser.add_argument('--compare-single-frame', action='store_true',
                        help='also segment every frame without memory and report both')
    parser.add_argument('--dump-predictions', type=Path, metavar='DIR',
                        help='write the annotated frames\' predictions as label-id PNGs, '
                        'DIR/<lma|single_frame>/<camera>/<city>/<stem>_pred_labelIds.png, as '
                        'cityscapesScripts reads them (CITYSCAPES_RESULTS=DIR/lma/<camera>)')
    parser.add_argument('--report', type=Path, metavar='DIR',
                        help='write metrics.json, report.md and plots here')
    parser.add_argument('--max-sequences', type=positive_int, metavar='N',
                        help='evaluate only the first N sequences')
    parser.add_argument('--split', default='val', help='split of a folder tree (default val)')
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.path.exists():
        return fail(f'{args.path} does not exist')
    if args.weights is not None and not args.weights.is_file():
        return fail(f'no checkpoint file {args.weights}')

    from tqdm import tqdm

    from lma_perception.eval.evaluator import evaluate
    from lma_perception.eval.report import (
        describe_dataset,
        format_table,
        summary_rows,
        write_report,
    )
    from lma_perception.eval.sources import DatasetError, open_dataset
    from lma_perception.runtime.engine import EngineConfig, SegmentationEngine

    try:
        frames, dataset = open_dataset(args.path, split=args.split,
                                       max_sequences=args.max_sequences)
        chosen = {'memory_length': args.memory_length, 'write_policy': args.write_policy,
                  'write_threshold': args.write_threshold}
        config = EngineConfig(
            device=args.device, precision=args.precision, backend=args.backend,
            input_size=args.input_size,
            **{name: value for name, value in chosen.items() if value is not None},
        )
        engine = SegmentationEngine.from_checkpoint(args.weights, config)
    except (DatasetError, ValueError, RuntimeError) as error:
        return fail(str(error))
    if not engine.uses_memory:
        print('note: the checkpoint has no memory module; the LMA path is single-frame too',
              file=sys.stderr)

    with tqdm(unit='frame', desc='eval', disable=not sys.stderr.isatty()) as bar:
        try:
            result = evaluate(
                engine, frames, dataset, compare_single_frame=args.compare_single_frame,
                dump_predictions=args.dump_predictions, progress=lambda _: bar.update(),
            )
        except (DatasetError, OSError) as error:
            return fail(str(error))
    result.engine['weights'] = str(args.weights) if args.weights else 'shipped'
    metrics = result.to_dict()
    if not any(metrics['paths']['lma'][key] for key in ('annotated', 'dense')):
        return fail(f'nothing scored: no evaluated frame has ground truth '
                    f'({describe_dataset(metrics["dataset"])})')
    print(describe_dataset(metrics['dataset']))
    print(format_table(summary_rows(metrics)))
    if args.dump_predictions is not None:
        print(f'predictions written to {args.dump_predictions}')
    if args.report is not None:
        write_report(metrics, args.report, result.samples)
        print(f'report written to {args.report / "report.md"}')
    return 0
