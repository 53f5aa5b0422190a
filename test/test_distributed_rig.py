"""A rig spread over hosts, on loopback: two node processes stand in for two hosts.

Each "host" runs its own segmentation node for its own cameras under its own namespace, on the
shared ROS domain; this test process plays the cameras and, as a third host would, subscribes
to every host's labels.
"""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from lma_perception.ros.messages import array_to_image_msg
from lma_perception.ros.spinning import BackgroundSpinner

TIMEOUT_S = 180.0  # two processes loading the model on a loaded 2-core machine
QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
HOSTS = {'host_a': ['front', 'front_left'], 'host_b': ['rear']}


@pytest.fixture
def hosts(ros_context, tmp_path):
    env = dict(os.environ, ROS_DOMAIN_ID=str(ros_context.get_domain_id()),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    processes = {}
    for host, cameras in HOSTS.items():
        log = (tmp_path / f'{host}.log').open('w')
        processes[host] = (subprocess.Popen(
            [sys.executable, '-m', 'lma_perception.ros.segment_node', '--ros-args',
             '-r', f'__ns:=/{host}', '-p', f'cameras:=[{",".join(cameras)}]',
             '-p', 'device:=cpu'],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        ), tmp_path / f'{host}.log')
    yield processes
    for process, _ in processes.values():
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_a_third_process_hears_every_host(ros_context, hosts):
    listener = Node('rig_listener', context=ros_context)
    received = {}
    publishers = []
    for host, cameras in HOSTS.items():
        for camera in cameras:
            topic = f'/{host}/{camera}/labels'
            listener.create_subscription(
                Image, topic, lambda msg, topic=topic: received.setdefault(topic, msg), QOS)
            publishers.append(listener.create_publisher(Image, f'/{host}/{camera}/image', QOS))
    image = array_to_image_msg(np.full((64, 128, 3), 100, np.uint8), Image().header)
    image.header.frame_id = 'rig_test'
    with BackgroundSpinner(ros_context, listener):
        deadline = time.monotonic() + TIMEOUT_S
        while len(received) < 3 and time.monotonic() < deadline:
            assert all(p.poll() is None for p, _ in hosts.values()), \
                {h: log.read_text()[-2000:] for h, (_, log) in hosts.items()}
            for publisher in publishers:
                publisher.publish(image)
            time.sleep(0.2)
        nodes = set(listener.get_node_names_and_namespaces())
    logs = {host: log.read_text()[-2000:] for host, (_, log) in hosts.items()}
    assert set(received) == {f'/{host}/{camera}/labels' for host, cameras in HOSTS.items()
                             for camera in cameras}, logs
    assert all(msg.header.frame_id == 'rig_test' for msg in received.values())
    assert {('segment_node', '/host_a'), ('segment_node', '/host_b')} <= nodes
    listener.destroy_node()
