"""Camera rigs: the rig file split per camera, and `lma-perception rig` on a real ROS graph."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
import yaml
from conftest import next_domain_id
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from lma_perception.rig import RigError, camera_parameters, input_topics, load_rig

RIG_FRONT3 = os.path.join(os.path.dirname(__file__), '..', 'config', 'rig_front3.yaml')
QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
EXIT_TIMEOUT_S = 60  # above the rig's own bound on its nodes' shutdown (30 s by default)


def test_shipped_rig_lists_three_cameras_with_topics():
    rig = load_rig(RIG_FRONT3)
    assert rig['cameras'] == ['front', 'front_left', 'front_right']
    assert all(rig[camera]['image_topic'] for camera in rig['cameras'])


def test_camera_parameters_keep_only_that_camera():
    rig = load_rig(RIG_FRONT3)
    front = camera_parameters(rig, 'front')
    assert front['cameras'] == ['front']
    assert front['front'] == rig['front']
    assert 'front_left' not in front and 'front_right' not in front
    assert front['weights'] == rig['weights']
    with pytest.raises(RigError, match="camera 'rear' is not in the rig"):
        camera_parameters(rig, 'rear')


def test_input_topics_follow_each_cameras_transport():
    rig = {'cameras': ['front', 'rear', 'side'],
           'front': {'image_topic': 'front/image_raw', 'transport': 'compressed'},
           'rear': {'image_topic': '/rear/image_raw', 'transport': 'raw'}}
    assert input_topics(rig) == ['/front/image_raw/compressed', '/rear/image_raw',
                                 '/side/image']


@pytest.mark.parametrize('text', ['', 'a: [', 'node:\n  ros__parameters:\n    device: cpu\n'])
def test_unusable_rig_files_get_one_clear_error(tmp_path, text):
    path = tmp_path / 'rig.yaml'
    path.write_text(text)
    with pytest.raises(RigError, match=r'rig\.yaml'):
        load_rig(path)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    from lma_perception.models import create_model, save_checkpoint

    path = tmp_path_factory.mktemp('weights') / 'tiny.safetensors'
    save_checkpoint(path, create_model('lma_erfnet'), input_size=(64, 128))
    return path


def test_rig_command_runs_one_node_per_camera(tmp_path, checkpoint):
    cameras = ['left', 'right']
    parameters = {'cameras': cameras, 'weights': str(checkpoint), 'device': 'cpu',
                  **{camera: {'image_topic': f'{camera}/image_raw'} for camera in cameras}}
    rig_file = tmp_path / 'rig.yaml'
    rig_file.write_text(yaml.safe_dump({'/**/segment_node': {'ros__parameters': parameters}}))
    domain_id = next_domain_id()
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    process = subprocess.Popen(
        [sys.executable, '-m', 'lma_perception.cli', 'rig', str(rig_file), '--per-camera'],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout))
    reader.start()
    context = Context()
    rclpy.init(context=context, domain_id=domain_id)
    try:
        node = Node('rig_probe', context=context)
        received: dict[str, Image] = {}
        publishers = {}
        for camera in cameras:
            node.create_subscription(Image, f'/{camera}/labels',
                                     lambda msg, c=camera: received.setdefault(c, msg), QOS)
            publishers[camera] = node.create_publisher(Image, f'/{camera}/image_raw', QOS)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        image = Image(height=48, width=80, encoding='rgb8', step=240)
        image.data = np.full((48, 80, 3), 90, np.uint8).tobytes()
        deadline = time.monotonic() + 60
        while len(received) < len(cameras) and time.monotonic() < deadline:
            for index, camera in enumerate(cameras):
                image.header.frame_id = f'{camera}_optical_frame'
                image.header.stamp.sec = 10 + index
                publishers[camera].publish(image)
            executor.spin_once(timeout_sec=0.2)
        assert sorted(received) == cameras, ''.join(output)
        for index, camera in enumerate(cameras):
            labels = received[camera]
            assert (labels.height, labels.width, labels.encoding) == (48, 80, 'mono8')
            assert labels.header.frame_id == f'{camera}_optical_frame'
            assert labels.header.stamp.sec == 10 + index
        executor.shutdown()
        node.destroy_node()
    finally:
        context.try_shutdown()
        process.send_signal(signal.SIGINT)
        status = process.wait(timeout=EXIT_TIMEOUT_S)
        reader.join(timeout=10)
    assert status == 0, ''.join(output)
    assert sum('segmenting 1 camera' in line for line in output) == 2, ''.join(output)


def _children(pid: int) -> dict[str, int]:
    """The node processes of a rig command, by node name (from their command lines)."""
    children = Path(f'/proc/{pid}/task/{pid}/children').read_text().split()
    nodes = {}
    for child in map(int, children):
        arguments = Path(f'/proc/{child}/cmdline').read_bytes().decode().split('\0')
        name = next(a.split(':=', 1)[1] for a in arguments if a.startswith('__node:='))
        nodes[name] = child
    return nodes


def test_rig_kills_and_names_a_node_that_does_not_exit(tmp_path, checkpoint):
    # A node stuck in its shutdown, as one was in the DDS participant's teardown, is here a
    # stopped process: it gets the SIGINT and cannot act on it. The rig must not wait forever.
    cameras = ['left', 'right']
    parameters = {'cameras': cameras, 'weights': str(checkpoint), 'device': 'cpu'}
    rig_file = tmp_path / 'rig.yaml'
    rig_file.write_text(yaml.safe_dump({'/**/segment_node': {'ros__parameters': parameters}}))
    env = dict(os.environ, ROS_DOMAIN_ID=str(next_domain_id()),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    process = subprocess.Popen(
        [sys.executable, '-m', 'lma_perception.cli', 'rig', str(rig_file), '--per-camera',
         '--stop-timeout', '3'],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout))
    reader.start()
    try:
        deadline = time.monotonic() + EXIT_TIMEOUT_S
        while sum('segmenting 1 camera' in line for line in output) < 2:
            assert time.monotonic() < deadline and process.poll() is None, ''.join(output)
            time.sleep(0.1)
        nodes = _children(process.pid)
        assert sorted(nodes) == ['segment_node_left', 'segment_node_right'], nodes
        os.kill(nodes['segment_node_left'], signal.SIGSTOP)
        process.send_signal(signal.SIGINT)
        status = process.wait(timeout=EXIT_TIMEOUT_S)
    finally:
        process.kill()
        reader.join(timeout=10)
    text = ''.join(output)
    assert status == 1, text
    pid = nodes['segment_node_left']
    assert (f'lma-perception: error: segment_node_left (pid {pid}) did not exit within 3 s of '
            'SIGINT; killed it') in text, text
    # The other node stopped cleanly: the rig names every node that exited otherwise.
    assert 'segment_node_right exited' not in text and 'segment_node_right (pid' not in text
    assert 'Traceback' not in text, text
