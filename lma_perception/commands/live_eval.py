"""`lma-perception live-eval BAG`: play a bag through the node and score its labels live."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

from lma_perception.arguments import positive_float
from lma_perception.commands import add_backend_argument, add_precision_argument, fail


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'live-eval',
        help='replay a bag through the segmentation node and report mIoU, drops and latency',
        description='Starts the segmentation node, a bag player and a listener in one process. '
        'The listener pairs each camera\'s labels with the bag\'s /<camera>/semantic/'
        'ground_truth of the same stamp, and reports mIoU, frames published, received and '
        'dropped, and end-to-end latency (image arrival to labels arrival).',
    )
    parser.add_argument('bag', type=Path, help='rosbag2 with /<camera>/image_raw and '
                        '/<camera>/semantic/ground_truth topics')
    parser.add_argument('--params-file', type=Path, action='append', default=[],
                        help='node parameter YAML (cameras and topics come from the bag)')
    parser.add_argument('--weights', help='checkpoint (default: the shipped weights)')
    parser.add_argument('--device', help='auto, cpu, cuda or cuda:N')
    add_backend_argument(parser)
    add_precision_argument(parser, default=None)
    parser.add_argument('--rate', type=positive_float, default=1.0, help='playback speed factor')
    parser.add_argument('--use-sim-time', action='store_true',
                        help='publish /clock from the bag and run the node on it')
    parser.add_argument('--json', type=Path, metavar='FILE', help='also write the report here')
    parser.set_defaults(run=run, stops_on_signal=True)


def run(args: argparse.Namespace) -> int:
    for params_file in args.params_file:
        if not params_file.is_file():
            return fail(f'no parameter file {params_file}')
    from lma_perception.ros.signals import StopOnSignal

    # Before the heavy imports: a signal at any time ends playback and leaves a partial report.
    with StopOnSignal() as stop:
        return _evaluate(args, stop.stop)


def _evaluate(args: argparse.Namespace, stop: threading.Event) -> int:
    from rclpy.parameter import Parameter

    from lma_perception.ros.bag_player import ReplayError
    from lma_perception.ros.live_eval import LiveEvalOptions, run_live_eval
    from lma_perception.ros.segment_node import SetupError
    from lma_perception.ros.transport_profile import use_loopback_profile

    parameters = []
    if args.weights is not None:
        parameters.append(Parameter('weights', value=args.weights))
    if args.device is not None:
        parameters.append(Parameter('device', value=args.device))
    if args.precision is not None:
        parameters.append(Parameter('precision', value=args.precision))
    parameters.append(Parameter('backend', value=args.backend))
    options = LiveEvalOptions(
        rate=args.rate,
        use_sim_time=args.use_sim_time,
        params_files=tuple(args.params_file),
        parameters=tuple(parameters),
    )
    use_loopback_profile()
    try:
        report = run_live_eval(args.bag, options, stop=stop)
    except (ReplayError, SetupError) as error:
        return fail(str(error))
    print(report.summary())
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.as_dict(), indent=2) + '\n')
        print(f'report written to {args.json}')
    return 0
