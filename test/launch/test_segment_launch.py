"""launch_testing: `segment.launch.py` with its defaults segments an image topic."""

import unittest
from pathlib import Path

import pytest

launch_testing = pytest.importorskip('launch_testing', reason='launch_testing is not installed')
pytest.importorskip('launch_ros', reason='launch_ros is not installed')

from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from launch_probe import labels_for, use_own_domain  # noqa: E402

LAUNCH = Path(__file__).resolve().parents[2] / 'launch'


@pytest.mark.launch_test
def generate_test_description():
    use_own_domain()
    segment = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH / 'segment.launch.py')),
        launch_arguments={'device': 'cpu'}.items(),
    )
    return LaunchDescription([segment, launch_testing.actions.ReadyToTest()])


class TestSegmentLaunch(unittest.TestCase):
    def test_labels_answer_the_default_image_topic(self):
        received = labels_for({'/camera/labels': '/camera/image'})
        labels = received.get('/camera/labels')
        self.assertIsNotNone(labels, 'no labels on /camera/labels')
        self.assertEqual((labels.height, labels.width, labels.encoding), (96, 160, 'mono8'))
        self.assertEqual(labels.header.frame_id, 'launch_test_frame')
