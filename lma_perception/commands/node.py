"""`lma-perception node`: run the segmentation node (every camera, one model)."""

from __future__ import annotations

import argparse
from pathlib import Path

from lma_perception.commands import fail


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'node',
        help='run the ROS 2 segmentation node for one or more cameras',
        description='Runs the segmentation node (the `segment_node` executable) until SIGINT or '
        'SIGTERM. Cameras, weights, device and outputs come from parameter files such as '
        'config/segment.yaml or config/rig_front3.yaml.',
    )
    parser.add_argument('--params-file', type=Path, action='append', default=[],
                        help='node parameter YAML; may be given more than once')
    parser.add_argument('--use-sim-time', action='store_true',
                        help='run on /clock (bag replay with --clock)')
    parser.add_argument('--ros-args', nargs=argparse.REMAINDER, default=[],
                        help='everything after is passed to ROS: remaps, -p name:=value, '
                        '--log-level')
    parser.set_defaults(run=run, stops_on_signal=True)


def run(args: argparse.Namespace) -> int:
    ros_args = []
    for params_file in args.params_file:
        if not params_file.is_file():
            return fail(f'no parameter file {params_file}')
        ros_args += ['--params-file', str(params_file)]
    if args.use_sim_time:
        ros_args += ['-p', 'use_sim_time:=true']
    ros_args += args.ros_args

    from lma_perception.ros.signals import StopOnSignal

    # Before the heavy imports, so that a signal during start-up stops the node quietly too.
    with StopOnSignal() as stop:
        from lma_perception.ros.segment_node import main

        return main(['lma-perception node', '--ros-args', *ros_args], stop)
