"""launch_testing: `rig.launch.py` serves the three cameras of `config/rig_front3.yaml`."""

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
CAMERAS = ('front', 'front_left', 'front_right')


@pytest.mark.launch_test
def generate_test_description():
    use_own_domain()
    rig = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH / 'rig.launch.py')),
        launch_arguments={'device': 'cpu'}.items(),
    )
    return LaunchDescription([rig, launch_testing.actions.ReadyToTest()])


class TestRigLaunch(unittest.TestCase):
    def test_every_camera_gets_labels(self):
        topics = {f'/{camera}/labels': f'/{camera}/image_raw' for camera in CAMERAS}
        received = labels_for(topics)
        self.assertEqual(sorted(received), sorted(topics))
