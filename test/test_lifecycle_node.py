"""The lifecycle segmentation node, driven through its real lifecycle services."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import next_domain_id
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from test_segment_node import wait_until

from lma_perception.continuity import stamp_to_ns
from lma_perception.ros.lifecycle_node import LifecycleSegmentNode
from lma_perception.ros.messages import array_to_image_msg
from lma_perception.ros.spinning import BackgroundSpinner

TIMEOUT_S = 30.0
QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class Manager(Node):
    """A lifecycle manager and camera in one: drives transitions, sends images, counts labels."""

    def __init__(self, context):
        super().__init__('manager', context=context)
        self.labels = []
        self.images = self.create_publisher(Image, 'front/image', QOS)
        self.label_subscription = self.create_subscription(
            Image, 'front/labels', self.labels.append, QOS)
        self._change = self.create_client(ChangeState, '/segment_node/change_state')
        self._get = self.create_client(GetState, '/segment_node/get_state')
        self._stamp_ns = 10**9

    def _call(self, client, request):
        assert client.wait_for_service(timeout_sec=TIMEOUT_S)
        future = client.call_async(request)
        assert wait_until(future.done), f'{client.srv_name} did not answer'
        return future.result()

    def transition(self, transition_id):
        request = ChangeState.Request()
        request.transition.id = transition_id
        return self._call(self._change, request).success

    def state(self):
        return self._call(self._get, GetState.Request()).current_state.id

    def send_image(self):
        self._stamp_ns += 10**8
        msg = array_to_image_msg(np.full((64, 128, 3), 90, np.uint8), Image().header)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(self._stamp_ns, 10**9)
        self.images.publish(msg)
        return self._stamp_ns

    def labelled(self):
        """Send frames until one comes back labelled; False if none does."""
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            stamp = self.send_image()
            if wait_until(lambda stamp=stamp: any(stamp_to_ns(m.header.stamp) == stamp
                                                  for m in self.labels), 1.0):
                return True
        return False


@pytest.fixture
def managed(engine, ros_context):
    node = LifecycleSegmentNode(
        engine=engine, context=ros_context,
        parameter_overrides=[Parameter('cameras', value=['front']),
                             Parameter('autostart', value=False)],
    )
    manager = Manager(ros_context)
    spinner = BackgroundSpinner(ros_context, node, manager)
    yield node, manager
    spinner.stop()
    manager.destroy_node()
    node.destroy_node()


def test_transitions_over_the_lifecycle_services(managed):
    node, manager = managed
    assert manager.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert manager.images.get_subscription_count() == 0

    assert manager.transition(Transition.TRANSITION_CONFIGURE)
    assert manager.state() == State.PRIMARY_STATE_INACTIVE
    # Publishers exist, but nobody listens to the camera and no model is loaded.
    assert wait_until(lambda: manager.label_subscription.get_publisher_count() == 1)
    assert manager.images.get_subscription_count() == 0
    assert node.get_parameter('class_names').value[0] == 'road'

    assert manager.transition(Transition.TRANSITION_ACTIVATE)
    assert manager.state() == State.PRIMARY_STATE_ACTIVE
    assert node.active
    assert manager.labelled()

    assert manager.transition(Transition.TRANSITION_DEACTIVATE)
    assert manager.state() == State.PRIMARY_STATE_INACTIVE
    assert wait_until(lambda: manager.images.get_subscription_count() == 0)
    assert node.camera_snapshots() == [] and node.idle
    count = len(manager.labels)
    for _ in range(10):
        manager.send_image()
        time.sleep(0.05)
    assert len(manager.labels) == count  # inactive: nothing is labelled

    assert manager.transition(Transition.TRANSITION_ACTIVATE)
    assert manager.labelled()

    assert manager.transition(Transition.TRANSITION_DEACTIVATE)
    assert manager.transition(Transition.TRANSITION_CLEANUP)
    assert manager.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert wait_until(lambda: manager.label_subscription.get_publisher_count() == 0)

    # Configured again after a cleanup (the parameters stay declared), then shut down.
    assert manager.transition(Transition.TRANSITION_CONFIGURE)
    assert manager.transition(Transition.TRANSITION_ACTIVATE)
    assert manager.labelled()
    assert manager.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert manager.state() == State.PRIMARY_STATE_FINALIZED
    assert wait_until(lambda: manager.images.get_subscription_count() == 0)


def test_a_failed_activation_leaves_the_node_inactive(ros_context):
    node = LifecycleSegmentNode(
        context=ros_context,
        parameter_overrides=[Parameter('weights', value='/nonexistent.safetensors'),
                             Parameter('autostart', value=False)],
    )
    manager = Manager(ros_context)
    with BackgroundSpinner(ros_context, node, manager):
        assert manager.transition(Transition.TRANSITION_CONFIGURE)
        assert not manager.transition(Transition.TRANSITION_ACTIVATE)
        assert manager.state() == State.PRIMARY_STATE_INACTIVE
    manager.destroy_node()
    node.destroy_node()


def test_bad_parameters_fail_the_configure_transition(ros_context):
    node = LifecycleSegmentNode(
        context=ros_context,
        parameter_overrides=[Parameter('device', value='gpu'),
                             Parameter('autostart', value=False)],
    )
    manager = Manager(ros_context)
    with BackgroundSpinner(ros_context, node, manager):
        assert not manager.transition(Transition.TRANSITION_CONFIGURE)
        assert manager.state() == State.PRIMARY_STATE_UNCONFIGURED
    manager.destroy_node()
    node.destroy_node()


def test_the_executable_activates_itself():
    """`ros2 run ... segment_lifecycle_node` with no manager: labels come, Ctrl-C exits 0."""
    domain = next_domain_id()
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    process = subprocess.Popen(
        [sys.executable, '-m', 'lma_perception.ros.lifecycle_node', '--ros-args',
         '-p', 'device:=cpu', '-p', 'cameras:=[front]'],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    context = Context()
    import rclpy

    rclpy.init(context=context, domain_id=domain)
    manager = Manager(context)
    try:
        with BackgroundSpinner(context, manager):
            assert manager.labelled(), ''.join(lines)
            assert manager.state() == State.PRIMARY_STATE_ACTIVE
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=TIMEOUT_S) == 0, ''.join(lines)
    finally:
        process.kill()
        manager.destroy_node()
        context.try_shutdown()
