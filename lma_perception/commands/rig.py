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
import time
from pathlib import Path

import yaml

from lma_perception.arguments import positive_float
from lma_perception.commands import USER_ERROR, fail
from lma_perception.ros.signals import StopOnSignal

POLL_S = 0.2  # how often the rig looks at its node processes while nothing happens
# Above the nodes' own bound (segment_node.SHUTDOWN_TIMEOUT_S plus the watchdog's backstop), so
# that a node normally ends itself and says where it was stuck.
STOP_TIMEOUT_S = 30.0


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
    parser.add_argument('--stop-timeout', type=positive_float, default=STOP_TIMEOUT_S,
                        metavar='SECONDS',
                        help='with --per-camera: how long the node processes may take to exit '
                        'after SIGINT or SIGTERM before they are killed (default '
                        f'{STOP_TIMEOUT_S:g})')
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
    with StopOnSignal() as stop, tempfile.TemporaryDirectory(prefix='lma_rig_') as folder:
        processes = {}
        for camera in rig['cameras']:
            name = f'segment_node_{camera}'
            params_file = Path(folder) / f'{name}.yaml'
            sections = {name: {'ros__parameters': camera_parameters(rig, camera)}}
            params_file.write_text(yaml.safe_dump(sections))
            # Through `lma-perception node`, which handles a signal that lands during start-up.
            processes[name] = subprocess.Popen([
                sys.executable, '-m', 'lma_perception.cli', 'node', '--params-file',
                str(params_file), '--ros-args', '-r', f'__node:={name}', *_overrides(args),
            ])
        return _wait_for_nodes(processes, stop, args.stop_timeout)


def _wait_for_nodes(
    processes: dict[str, subprocess.Popen], stop: StopOnSignal, stop_timeout_s: float
) -> int:
    """Wait for every node process; on a signal, pass it on and bound how long they may take.

    A node that has not exited `stop_timeout_s` after the signal is killed and named: a
    shutdown stuck in the DDS layer must not keep the rig (and whoever waits for it) forever.
    Returns 0 when every node exited 0, else 1.
    """
    while not stop.stop.wait(POLL_S):
        if all(process.poll() is not None for process in processes.values()):
            break
    killed = []
    if stop.received is not None:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(stop.received)
        deadline = time.monotonic() + stop_timeout_s
        for name, process in processes.items():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                # A second SIGINT or SIGTERM would only repeat the stop request it ignores.
                process.kill()
                process.wait()
                killed.append(name)
                fail(f'{name} (pid {process.pid}) did not exit within {stop_timeout_s:g} s of '
                     f'{stop.received.name}; killed it')
    failed = [name for name, process in processes.items()
              if process.returncode != 0 and name not in killed]
    for name in failed:
        fail(f'{name} exited with status {_status(processes[name].returncode)}')
    return USER_ERROR if killed or failed else 0


def _status(returncode: int) -> str:
    """Return an exit status as a shell shows it (128 + N for a process killed by signal N)."""
    if returncode < 0:
        return f'{128 - returncode} ({signal.Signals(-returncode).name})'
    return str(returncode)
