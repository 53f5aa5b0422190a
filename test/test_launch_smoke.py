"""`ros2 launch` of every launch file, as a user runs it from a shell.

Each launch runs as a process group of its own on a ROS domain of its own; a probe node in this
process feeds it images (or a bag does) and waits for labels on the expected topics. Ctrl-C is
what a terminal sends, SIGINT to the whole group; the launch must then exit with status 0 and
leave no process of the group running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from launch_probe import short_bag
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_tools import ROS2, needs_ros2_launch
from sensor_msgs.msg import Image

from lma_perception.ros.spinning import BackgroundSpinner

pytestmark = needs_ros2_launch

LABELS_TIMEOUT_S = 180.0  # model loading on a loaded 2-core machine
EXIT_TIMEOUT_S = 60.0
QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
RIG_CAMERAS = ('front', 'front_left', 'front_right')


def group_processes(pgid: int) -> list:
    """The live (not zombie) processes of a process group."""
    import psutil

    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


class Launch:
    """`ros2 launch lma_perception ARGS` in a process group of its own, output to a file."""

    def __init__(self, domain: int, log: Path, *arguments: str) -> None:
        self._log_path = log
        self._log = log.open('w')
        env = {**os.environ, 'ROS_DOMAIN_ID': str(domain), 'PYTHONUNBUFFERED': '1'}
        self.process = subprocess.Popen(
            [ROS2, 'launch', 'lma_perception', *arguments], env=env, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pgid = self.process.pid  # the leader of its new session and process group
        self._seen: dict[int, object] = {}

    @property
    def output(self) -> str:
        return self._log_path.read_text()

    def note_processes(self) -> None:
        """Remember the group's processes, to check each of them after the launch has ended."""
        for process in group_processes(self.pgid):
            self._seen[process.pid] = process

    def interrupt(self) -> int:
        """Ctrl-C in the launch's terminal; return its exit status."""
        self.note_processes()
        os.killpg(self.pgid, signal.SIGINT)
        return self.process.wait(EXIT_TIMEOUT_S)

    def left_running(self) -> list[str]:
        """Command lines of the group's processes that still run, and of those seen before."""
        import psutil

        running = {process.pid: process for process in group_processes(self.pgid)}
        for pid, process in self._seen.items():
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    running[pid] = process
            except psutil.Error:
                continue
        commands = []
        for process in running.values():
            try:
                commands.append(' '.join(process.cmdline()))
            except psutil.Error:
                continue
        return commands

    def close(self) -> None:
        for process in group_processes(self.pgid):
            process.kill()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture
def launch(ros_context, tmp_path):
    """Start launches on the probe's domain; whatever is left is killed afterwards."""
    launches = []

    def start(*arguments: str) -> Launch:
        started = Launch(ros_context.get_domain_id(), tmp_path / f'launch_{len(launches)}.log',
                         *arguments)
        launches.append(started)
        return started

    yield start
    for started in launches:
        started.close()


@pytest.fixture
def probe(ros_context):
    node = Node('launch_smoke_probe', context=ros_context)
    with BackgroundSpinner(ros_context, node):
        yield node
    node.destroy_node()


def labels_arrive(probe: Node, launched: Launch, topics: dict[str, str | None]) -> set[str]:
    """Feed each image topic (None: a bag does) until each labels topic answers; return those."""
    received: set[str] = set()
    publishers = []
    for labels_topic, image_topic in topics.items():
        probe.create_subscription(Image, labels_topic,
                                  lambda msg, t=labels_topic: received.add(t), QOS)
        if image_topic is not None:
            publishers.append(probe.create_publisher(Image, image_topic, QOS))
    image = Image(height=96, width=160, encoding='rgb8', step=480)
    image.header.frame_id = 'smoke_test_frame'
    image.data = np.full((96, 160, 3), 120, np.uint8).tobytes()
    deadline = time.monotonic() + LABELS_TIMEOUT_S
    while (len(received) < len(topics) and time.monotonic() < deadline
           and launched.process.poll() is None):
        for publisher in publishers:
            publisher.publish(image)
        time.sleep(0.2)
    launched.note_processes()
    return received


def ros2(domain: int, *arguments: str) -> subprocess.CompletedProcess:
    env = {**os.environ, 'ROS_DOMAIN_ID': str(domain)}
    return subprocess.run([ROS2, *arguments], env=env, capture_output=True, text=True,
                          timeout=120)


def assert_stops_cleanly(launched: Launch) -> None:
    status = launched.interrupt()
    assert status == 0, f'exit status {status} after Ctrl-C:\n{launched.output[-3000:]}'
    assert launched.left_running() == [], launched.output[-3000:]


def test_segment_launch(launch, probe, ros_context):
    launched = launch('segment.launch.py', 'device:=cpu')
    topics = {'/camera/labels': '/camera/image'}  # the launch file's defaults
    assert labels_arrive(probe, launched, topics) == set(topics), launched.output[-3000:]

    # Every parameter is readable: an unset one would make rclpy answer with no values.
    # No ros2 daemon: it would outlive the test.
    dump = ros2(ros_context.get_domain_id(), 'param', 'dump', '--no-daemon', '--timeout', '60',
                '/segment_node')
    assert dump.returncode == 0, dump.stderr
    assert 'input_size:' in dump.stdout and 'memory_length: 4' in dump.stdout, dump.stdout
    assert_stops_cleanly(launched)


@pytest.mark.parametrize('per_camera', ['false', 'true'])
def test_rig_launch(launch, probe, per_camera):
    launched = launch('rig.launch.py', 'device:=cpu', f'per_camera:={per_camera}')
    topics = {f'/{camera}/labels': f'/{camera}/image_raw' for camera in RIG_CAMERAS}
    assert labels_arrive(probe, launched, topics) == set(topics), launched.output[-3000:]
    assert_stops_cleanly(launched)


def test_replay_launch(launch, probe, tmp_path):
    bag, stamps = short_bag(tmp_path)
    launched = launch('replay.launch.py', f'bag:={bag}', 'rate:=0.05')  # as the launch test
    topics = dict.fromkeys(stamps)
    assert labels_arrive(probe, launched, topics) == set(topics), launched.output[-3000:]
    assert_stops_cleanly(launched)


def rviz2_installed() -> bool:
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        get_package_prefix('rviz2')
    except PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(rviz2_installed(), reason='rviz2 is installed here')
@pytest.mark.parametrize('launch_file', ['segment.launch.py', 'rig.launch.py'])
def test_rviz_without_rviz2_is_one_message_and_starts_nothing(launch, launch_file):
    launched = launch(launch_file, 'rviz:=true', 'device:=cpu')
    status = launched.process.wait(EXIT_TIMEOUT_S)
    output = launched.output
    assert status != 0, output
    assert output.count('rviz:=true, but rviz2 is not installed here') == 1, output
    assert 'Traceback' not in output and 'process started' not in output, output
    assert launched.left_running() == [], output


@pytest.mark.parametrize('launch_file, topics', [
    ('segment.launch.py', {'/camera/labels': '/camera/image'}),
    ('rig.launch.py', {f'/{camera}/labels': f'/{camera}/image_raw' for camera in RIG_CAMERAS}),
], ids=['segment', 'rig'])
def test_lifecycle_launch_waits_for_a_manager(launch, probe, launch_file, topics):
    from lifecycle_msgs.msg import State, Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    launched = launch(launch_file, 'device:=cpu', 'lifecycle:=true')

    def call(service_type, name, request):
        client = probe.create_client(service_type, name)
        assert client.wait_for_service(timeout_sec=LABELS_TIMEOUT_S), launched.output[-3000:]
        future = client.call_async(request)
        deadline = time.monotonic() + LABELS_TIMEOUT_S
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        return future.result()

    state = call(GetState, '/segment_node/get_state', GetState.Request()).current_state.id
    assert state == State.PRIMARY_STATE_UNCONFIGURED
    for transition in (Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
        request = ChangeState.Request()
        request.transition.id = transition
        assert call(ChangeState, '/segment_node/change_state', request).success, \
            launched.output[-3000:]
    assert labels_arrive(probe, launched, topics) == set(topics), launched.output[-3000:]
    assert_stops_cleanly(launched)
