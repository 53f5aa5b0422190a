"""`lma-perception rig RIG.yaml`: run a camera rig without launch_ros (pip installs).

The same rig as `ros2 launch lma_perception rig.launch.py`: by default one node serves every
camera of the rig file with one model; `--per-camera` starts one node process per camera.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from lma_perception.commands import fail


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'rig', help='run a multi-camera rig from its YAML file (no launch_ros needed)',
        description=__doc__.split('\n\n', 1)[1],
    )
    parser.add_argument('rig_file', type=Path, help='rig file, e.g. config/rig_front3.yaml')
    parser.add_argument('--per-camera', action='store_true',
                        help='one node process per camera instead of one for all')
    parser.add_argument('--use-sim-time', action='store_true', help='run on /clock')
    parser.add_argument('--device', help='auto, cpu, cuda or cuda:N (overrides the rig file)')
    parser.set_defaults(run=run, stops_on_signal=True)


def _overrides(args: argparse.Namespace) -> list[str]:
    ros_args = []
    if args.use_sim_time:
        ros_args += ['-p', 'use_sim_time:=true']
    if args.device:
        ros_args += ['-p', f'device:={args.device}']
    return ros_args


def run(args: argparse.Namespace) -> int:
    from lma_perception.rig import RigError, camera_parameters, load_rig
    from lma_perception.ros.signals import StopOnSignal
    from lma_perception.ros.transport_profile import use_loopback_profile

    try:
        rig = load_rig(args.rig_file)
    except RigError as error:
        return fail(str(error))
    use_loopback_profile()  # also for the node processes of --per-camera, which inherit it
    if not args.per_camera:
        with StopOnSignal() as stop:
            from lma_perception.ros.segment_node import main

            return main(['lma-perception rig', '--ros-args', '--params-file',
                         str(args.rig_file), *_overrides(args)], stop)
    with tempfile.TemporaryDirectory(prefix='lma_rig_') as folder:
        processes = []
        for camera in rig['cameras']:
            name = f'segment_node_{camera}'
            params_file = Path(folder) / f'{name}.yaml'
            sections = {name: {'ros__parameters': camera_parameters(rig, camera)}}
            params_file.write_text(yaml.safe_dump(sections))
            processes.append(subprocess.Popen([
                sys.executable, '-m', 'lma_perception.ros.segment_node', '--ros-args',
                '-r', f'__node:={name}', '--params-file', str(params_file), *_overrides(args),
            ]))
        # Stop every camera's node when this command is stopped, then wait for all of them.
        def stop(signum: int, _frame) -> None:
            for process in processes:
                process.send_signal(signum)
        signal.signal(signal.SIGTERM, stop)
        try:
            codes = [process.wait() for process in processes]
        except KeyboardInterrupt:
            stop(signal.SIGINT, None)
            codes = [process.wait() for process in processes]
    return max(codes)
