"""Live evaluation: a synthetic bag played through the real node, scored on a real graph."""

import json
import threading

import numpy as np
import pytest
from conftest import next_domain_id
from rclpy.parameter import Parameter

from lma_perception.data.rosbag import BagFrame, optical_frame, write_bag
from lma_perception.eval.metrics import ConfusionMatrix
from lma_perception.models import create_model, save_checkpoint
from lma_perception.ros.bag_player import ReplayError
from lma_perception.ros.live_eval import LiveEvalOptions, cameras_in, run_live_eval
from lma_perception.runtime.engine import EngineConfig, SegmentationEngine
from lma_perception.synthetic.generator import SynthConfig, generate_sequence

CAMERAS = ('front', 'front_left')
FRAMES = 5
PERIOD_NS = 10**9 // 17
START_NS = 1_600_000_000 * 10**9


@pytest.fixture(scope='module')
def frames():
    config = SynthConfig(width=128, height=64, frames=FRAMES, annotated_frame=FRAMES - 1,
                         cameras=CAMERAS)
    return [
        BagFrame(frame.camera, START_NS + frame.frame * PERIOD_NS, optical_frame(frame.camera),
                 frame.image, frame.train_ids)
        for frame in generate_sequence(config, 'val', 0)
    ]


@pytest.fixture(scope='module')
def bag(frames, tmp_path_factory):
    return write_bag(tmp_path_factory.mktemp('bags') / 'synthetic', frames).path


@pytest.fixture(scope='module')
def engine():
    return SegmentationEngine(
        create_model('lma_erfnet').eval(), EngineConfig(device='cpu', input_size=(64, 128))
    )


def test_cameras_in_a_bag():
    topics = {'/front/image_raw': 'sensor_msgs/msg/Image',
              '/front/semantic/ground_truth': 'sensor_msgs/msg/Image',
              '/rear/image_raw': 'sensor_msgs/msg/Image',
              '/tf': 'tf2_msgs/msg/TFMessage'}
    assert cameras_in(topics) == ['front']


def test_live_eval_scores_every_frame_like_the_offline_engine(bag, frames, engine):
    # Without memory each frame's labels depend on that frame alone, so the live score must
    # equal the engine's score on the same frames, computed here without ROS. At a tenth of the
    # recorded speed (0.6 s between frames) the node has ample time for every frame.
    options = LiveEvalOptions(rate=0.1, parameters=(Parameter('memory_length', value=0),))
    report = run_live_eval(bag, options, engine=engine, domain_id=next_domain_id())

    assert [camera.camera for camera in report.cameras] == list(CAMERAS)
    summary = report.summary()
    for camera in report.cameras:
        assert camera.images_published == FRAMES
        assert camera.images_received == FRAMES
        assert camera.node_received == FRAMES, camera
        # Every frame reached the node: nothing lost on the wire, no gap in the sequence.
        assert camera.frames_lost_in_transport == 0, camera
        assert camera.frames_missing_in_sequence == 0, camera
        assert camera.labels_received == FRAMES, camera
        assert camera.frames_scored == FRAMES and camera.frames_dropped == 0
        assert camera.latency_ms.count == FRAMES and camera.latency_ms.p50 > 0
        # published, received, lost, missing and labelled, in the table's row of the camera
        row = next(line.split() for line in summary.splitlines()
                   if line.startswith(camera.camera + ' '))
        assert row[1:6] == [str(FRAMES), str(FRAMES), '0', '0', str(FRAMES)], summary

    expected = ConfusionMatrix()
    for frame in frames:
        (result,) = engine.segment([frame.image], [None])
        expected.update(result.labels, frame.ground_truth)
    assert report.miou == pytest.approx(expected.miou(), abs=1e-12)
    assert report.pixel_accuracy == pytest.approx(expected.pixel_accuracy(), abs=1e-12)
    assert 0.0 <= report.miou <= 1.0
    assert 'mIoU' in report.summary()
    json.dumps(report.as_dict())
    assert not any(thread.name == 'segment_worker' for thread in threading.enumerate())


def test_cli_live_eval_with_sim_time_and_a_checkpoint(bag, tmp_path, monkeypatch, capsys):
    from lma_perception.cli import main

    weights = tmp_path / 'tiny.safetensors'
    save_checkpoint(weights, create_model('lma_erfnet'), input_size=(64, 128))
    monkeypatch.setenv('ROS_DOMAIN_ID', str(next_domain_id()))
    output = tmp_path / 'report' / 'live.json'
    assert main(['live-eval', str(bag), '--weights', str(weights), '--device', 'cpu',
                 '--rate', '0.5', '--use-sim-time', '--json', str(output)]) == 0
    printed = capsys.readouterr().out
    assert 'mIoU' in printed and 'front_left' in printed
    report = json.loads(output.read_text())
    assert [camera['camera'] for camera in report['cameras']] == list(CAMERAS)
    for camera in report['cameras']:
        assert camera['images_published'] == FRAMES, camera
        # One process: samples go from the player to the node without a wire to lose them on.
        # A frame the node missed shows as a gap (unless it was the last one).
        assert camera['frames_lost_in_transport'] == 0, camera
        assert camera['node_received'] + camera['frames_missing_in_sequence'] <= FRAMES, camera
        assert camera['labels_received'] <= camera['node_received'], camera
    assert sum(camera['frames_scored'] for camera in report['cameras']) > 0
    assert report['miou'] is None or 0.0 <= report['miou'] <= 1.0
    assert set(report['class_iou']) >= {'road', 'sky', 'car'}


def test_a_bag_without_ground_truth_is_refused(frames, tmp_path, engine):
    images_only = [BagFrame(f.camera, f.stamp_ns, f.frame_id, f.image, None) for f in frames]
    bag = write_bag(tmp_path / 'images_only', images_only).path
    with pytest.raises(ReplayError, match='no camera with both'):
        run_live_eval(bag, engine=engine, domain_id=next_domain_id())


def test_cli_reports_a_missing_bag(tmp_path, monkeypatch, capsys):
    from lma_perception.cli import main

    monkeypatch.setenv('ROS_DOMAIN_ID', str(next_domain_id()))
    assert main(['live-eval', str(tmp_path / 'nothing')]) == 1
    assert 'cannot open the bag' in capsys.readouterr().err


def test_frames_fixture_has_ground_truth_for_every_frame(frames):
    assert len(frames) == FRAMES * len(CAMERAS)
    assert all(f.ground_truth is not None and f.ground_truth.dtype == np.uint8 for f in frames)


def test_live_and_offline_evaluation_of_a_multi_sequence_bag_agree(tmp_path):
    """Memory on, three sequences per camera: live resets where offline does, same mIoU."""
    from lma_perception.data.cityscapes import CityscapesTree
    from lma_perception.data.rosbag import tree_frames
    from lma_perception.eval.evaluator import LMA, evaluate
    from lma_perception.eval.sources import open_dataset
    from lma_perception.synthetic.generator import write_dataset

    config = SynthConfig(width=128, height=64, frames=5, annotated_frame=4, cameras=CAMERAS,
                         degradation_rate=0.5)
    root = write_dataset(tmp_path / 'tree', config, 'val', 3)
    bag = write_bag(tmp_path / 'bag', tree_frames(CityscapesTree(root, 'val'))).path
    engine = SegmentationEngine.from_checkpoint(
        None, EngineConfig(device='cpu', input_size=(64, 128))
    )

    frames, counts = open_dataset(bag)
    offline = evaluate(engine, frames, counts).paths[LMA]
    assert offline.resets == {camera: {'gap': 2} for camera in CAMERAS}

    # A quarter of the recorded speed: 0.24 s between frames, time enough for every one.
    live = run_live_eval(bag, LiveEvalOptions(rate=0.25), engine=engine,
                         domain_id=next_domain_id())
    for camera in live.cameras:
        assert camera.frames_dropped == 0 and camera.node_dropped == 0, live.summary()
        assert camera.frames_scored == 15
        assert camera.memory_resets_by_reason == {'gap': 2}, live.summary()
    assert live.miou == pytest.approx(offline.annotated.miou(), abs=0.0005)


def test_live_eval_of_a_compressed_bag(frames, engine, tmp_path):
    from lma_perception.codecs import compressed_to_rgb, rgb_to_compressed

    bag = write_bag(tmp_path / 'png', frames, compression='png').path
    assert cameras_in({'/front/image_raw/compressed': 'sensor_msgs/msg/CompressedImage',
                       '/front/semantic/ground_truth': 'sensor_msgs/msg/Image'}) == ['front']
    options = LiveEvalOptions(rate=0.1, parameters=(Parameter('memory_length', value=0),))
    report = run_live_eval(bag, options, engine=engine, domain_id=next_domain_id())
    for camera in report.cameras:
        assert camera.images_published == camera.labels_received == FRAMES, camera
        assert camera.frames_scored == FRAMES
    expected = ConfusionMatrix()
    for frame in frames:
        decoded = compressed_to_rgb('png', rgb_to_compressed(frame.image, 'png'))
        (result,) = engine.segment([decoded], [None])
        expected.update(result.labels, frame.ground_truth)
    assert report.miou == pytest.approx(expected.miou(), abs=1e-12)


def test_cli_passes_the_precision_to_the_node(bag, monkeypatch, capsys):
    from lma_perception.cli import main

    monkeypatch.setenv('ROS_DOMAIN_ID', str(next_domain_id()))
    assert main(['live-eval', str(bag), '--device', 'cpu', '--precision', 'fp16']) == 1
    assert 'no backend runs fp16 on cpu' in capsys.readouterr().err
