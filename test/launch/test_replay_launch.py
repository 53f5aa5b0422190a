"""launch_testing: `replay.launch.py` plays a short bag once, and every frame is labelled.

The bag is played without `loop`: frames published before the node listens would be lost, so
the test fails unless the player waits for the node. It plays slowly, so that the node (which
keeps only each camera's newest frame) has time for every frame even on a loaded machine.
"""

import tempfile
import unittest
from pathlib import Path

import pytest

launch_testing = pytest.importorskip('launch_testing', reason='launch_testing is not installed')
pytest.importorskip('launch_ros', reason='launch_ros is not installed')

from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from launch_probe import LabelRecorder, short_bag, use_own_domain  # noqa: E402

LAUNCH = Path(__file__).resolve().parents[2] / 'launch'
RATE = '0.05'  # 4 frames at 17 Hz take about 3.5 s


@pytest.mark.launch_test
def generate_test_description():
    use_own_domain()
    bag, stamps = short_bag(Path(tempfile.mkdtemp(prefix='lma_replay_launch_')))
    recorder = LabelRecorder(sorted(stamps))
    replay = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH / 'replay.launch.py')),
        launch_arguments={'bag': str(bag), 'rate': RATE}.items(),
    )
    description = LaunchDescription([replay, launch_testing.actions.ReadyToTest()])
    return description, {'recorder': recorder, 'stamps': stamps}


class TestReplayLaunch(unittest.TestCase):
    def test_every_frame_of_the_bag_is_labelled(self, recorder, stamps):
        try:
            recorder.wait_for(stamps)
            self.assertEqual(len(stamps), 3)
            for topic, expected in stamps.items():
                self.assertEqual(len(expected), 4)
                self.assertEqual(sorted(recorder.stamps[topic]), sorted(expected), topic)
        finally:
            recorder.close()
