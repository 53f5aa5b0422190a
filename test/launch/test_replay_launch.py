"""launch_testing: `replay.launch.py` plays a synthetic bag through the node."""

import tempfile
import unittest
from pathlib import Path

import pytest

launch_testing = pytest.importorskip('launch_testing', reason='launch_testing is not installed')
pytest.importorskip('launch_ros', reason='launch_ros is not installed')

from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from launch_probe import labels_for  # noqa: E402

from lma_perception.data.cityscapes import CityscapesTree  # noqa: E402
from lma_perception.data.rosbag import tree_frames, write_bag  # noqa: E402
from lma_perception.synthetic.generator import SynthConfig, write_dataset  # noqa: E402

LAUNCH = Path(__file__).resolve().parents[2] / 'launch'


def synthetic_bag() -> Path:
    folder = Path(tempfile.mkdtemp(prefix='lma_replay_launch_'))
    write_dataset(folder / 'tree', SynthConfig(width=256, height=128, frames=10,
                                               annotated_frame=5), 'val', 1)
    bag = folder / 'synth.bag'
    write_bag(bag, tree_frames(CityscapesTree(folder / 'tree', 'val')))
    return bag


@pytest.mark.launch_test
def generate_test_description():
    replay = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(LAUNCH / 'replay.launch.py')),
        launch_arguments={'bag': str(synthetic_bag()), 'loop': 'true'}.items(),
    )
    return LaunchDescription([replay, launch_testing.actions.ReadyToTest()])


class TestReplayLaunch(unittest.TestCase):
    def test_bag_frames_come_back_as_labels(self):
        topics = {f'/{camera}/labels': '' for camera in ('front', 'front_left', 'front_right')}
        received = labels_for(topics, publish=False)
        self.assertEqual(sorted(received), sorted(topics))
