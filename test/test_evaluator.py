"""The offline evaluator on a tiny synthetic tree (and the same data as a bag), real model."""

import copy
import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from lma_perception.cli import main
from lma_perception.data.cityscapes import CityscapesTree
from lma_perception.data.rosbag import tree_frames, write_bag
from lma_perception.eval.evaluator import LMA, SINGLE_FRAME, evaluate
from lma_perception.eval.metrics import ConfusionMatrix
from lma_perception.eval.report import write_report
from lma_perception.eval.sources import DatasetError, open_dataset
from lma_perception.labels import CLASS_NAMES, ID_TO_TRAIN_ID
from lma_perception.models import create_model
from lma_perception.models.checkpoint import save_checkpoint
from lma_perception.runtime.engine import EngineConfig, SegmentationEngine
from lma_perception.synthetic.generator import SynthConfig, write_dataset

CAMERAS = ('front', 'front_left')
SYNTH = SynthConfig(width=64, height=32, frames=5, annotated_frame=3, cameras=CAMERAS,
                    degradation_rate=0.5)
SEQUENCES = 2
NETWORK_SIZE = (16, 32)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model('lma_erfnet')


def _engine() -> SegmentationEngine:
    return SegmentationEngine(
        _model(), EngineConfig(device='cpu', input_size=NETWORK_SIZE, memory_length=2)
    )


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp('synth'), SYNTH, 'val', SEQUENCES)


@pytest.fixture(scope='module')
def run(tree, tmp_path_factory):
    """One evaluation of both paths, predictions dumped."""
    dump = tmp_path_factory.mktemp('dump')
    frames, dataset = open_dataset(tree)
    result = evaluate(_engine(), frames, dataset, compare_single_frame=True,
                      dump_predictions=dump)
    return result, dump


@pytest.fixture(scope='module')
def bag_run(tree, tmp_path_factory):
    """One evaluation (LMA only) of a bag written from the tree."""
    bag = tmp_path_factory.mktemp('bag') / 'bag'
    write_bag(bag, tree_frames(CityscapesTree(tree, 'val')))
    frames, dataset = open_dataset(bag)
    return evaluate(_engine(), frames, dataset)


def _sidecar_degraded_frames(tree) -> int:
    return sum(
        frame['degradation'] is not None
        for path in tree.glob('*/sequenceInfo/val/*/*_sequenceInfo.json')
        for frame in json.loads(path.read_text())['frames']
    )


def _prediction(dump, path, camera, stem):
    file = dump / path / camera / 'synthcity' / f'{stem}_pred_labelIds.png'
    return ID_TO_TRAIN_ID[cv2.imread(str(file), cv2.IMREAD_UNCHANGED)]


def test_counts_and_both_paths_reported(run, tree):
    result, _ = run
    metrics = result.to_dict()
    frames = SEQUENCES * SYNTH.frames * len(CAMERAS)
    assert metrics['dataset'] | {'path': None, 'reading': None} == {
        'path': None, 'reading': None, 'kind': 'Cityscapes-style tree, split val',
        'cameras': list(CAMERAS),
        'sequences': SEQUENCES, 'frames': frames, 'annotated_frames': SEQUENCES * len(CAMERAS),
        'dense_frames': frames, 'degraded_frames': _sidecar_degraded_frames(tree),
    }
    assert 0 < metrics['dataset']['degraded_frames'] < frames
    assert set(metrics['paths']) == {LMA, SINGLE_FRAME}
    for name, path in metrics['paths'].items():
        assert path['frames'] == frames
        assert path['annotated']['frames'] == SEQUENCES * len(CAMERAS)
        assert path['dense']['frames'] == frames
        assert path['clean']['frames'] + path['degraded']['frames'] == frames
        assert 0.0 <= path['dense']['miou'] <= 1.0
        assert len(path['dense']['iou']) == len(CLASS_NAMES)
        assert path['temporal_consistency']['stable_pixels'] > 0
        assert path['latency_ms']['model']['count'] == frames
        assert path['memory_writes'] == (frames if name == LMA else 0)
    assert metrics['engine']['model'] == 'lma_erfnet'


@pytest.fixture(scope='module')
def every_frame_run(tree, tmp_path_factory):
    """Both paths on a copy of the tree whose every frame is annotated, predictions dumped."""
    root = tmp_path_factory.mktemp('annotated') / 'tree'
    shutil.copytree(tree, root)
    for dense in root.glob('*/gtFineDense/val/*/*.png'):
        shutil.copy(dense, root / dense.parts[-5] / 'gtFine' / 'val' / dense.parent.name)
    dump = tmp_path_factory.mktemp('dump_all')
    frames, dataset = open_dataset(root)
    evaluate(_engine(), frames, dataset, compare_single_frame=True, dump_predictions=dump)
    return dump


def test_dump_holds_the_annotated_frames_and_rescores_to_the_same_matrix(run, tree):
    """The dump is one label-id PNG per gtFine frame, named as cityscapesScripts pairs them."""
    result, dump = run
    for name in (LMA, SINGLE_FRAME):
        matrix = ConfusionMatrix()
        dumped = sorted(p.name for p in (dump / name).glob('*/synthcity/*.png'))
        truths = sorted(tree.glob('*/gtFine/val/*/*_gtFine_labelTrainIds.png'))
        assert dumped == sorted(t.name.replace('_gtFine_labelTrainIds', '_pred_labelIds')
                                for t in truths)
        for truth in truths:
            stem = truth.name.removesuffix('_gtFine_labelTrainIds.png')
            matrix.update(_prediction(dump, name, truth.parts[-5], stem),
                          cv2.imread(str(truth), cv2.IMREAD_UNCHANGED))
        np.testing.assert_array_equal(matrix.counts, result.paths[name].annotated.counts)


def test_annotated_scores_agree_with_cityscapesscripts(run, tree):
    cityscapes_eval = pytest.importorskip(
        'cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling'
    )
    result, dump = run
    args = copy.copy(cityscapes_eval.args)
    args.evalInstLevelScore = False
    args.evalPixelAccuracy = False
    args.JSONOutput = False
    args.quiet = True
    ground_truth = sorted(tree.glob('*/gtFine/val/*/*_gtFine_labelIds.png'))
    predictions = [
        dump / LMA / path.parts[-5] / path.parent.name /
        path.name.replace('_gtFine_labelIds', '_pred_labelIds')
        for path in ground_truth
    ]
    reference = cityscapes_eval.evaluateImgLists(
        [str(p) for p in predictions], [str(p) for p in ground_truth], args
    )
    theirs = np.array([reference['classScores'][name] for name in CLASS_NAMES], dtype=float)
    ours = result.paths[LMA].annotated.iou()
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12, equal_nan=True)
    assert np.nanmean(ours) == pytest.approx(reference['averageScoreClasses'], abs=1e-12)


def test_same_input_same_weights_same_metrics(run, tree):
    frames, dataset = open_dataset(tree)
    again = evaluate(_engine(), frames, dataset)
    first, second = run[0].paths[LMA], again.paths[LMA]
    for name in ('annotated', 'dense', 'clean', 'degraded'):
        np.testing.assert_array_equal(getattr(first, name).counts, getattr(second, name).counts)
    assert first.temporal.flipped_pixels == second.temporal.flipped_pixels
    assert set(again.paths) == {LMA}


def test_a_bag_of_the_same_frames_scores_the_same(run, bag_run):
    metrics = bag_run.to_dict()
    assert metrics['dataset']['kind'] == 'rosbag2'
    assert metrics['dataset']['sequences'] == SEQUENCES
    frames = SEQUENCES * SYNTH.frames * len(CAMERAS)
    assert metrics['dataset']['frames'] == metrics['dataset']['annotated_frames'] == frames
    # Bag ground truth is the tree's dense ground truth, scored as annotated frames; the
    # sequence gaps in the bag reset the memory as the tree's sequence boundaries do.
    np.testing.assert_array_equal(bag_run.paths[LMA].annotated.counts,
                                  run[0].paths[LMA].dense.counts)
    assert bag_run.paths[LMA].temporal.stable_pixels == run[0].paths[LMA].temporal.stable_pixels


def test_a_bag_splits_clean_and_degraded_frames_as_the_tree_does(run, bag_run, tree):
    tree_metrics, bag_metrics = run[0].to_dict(), bag_run.to_dict()
    degraded = _sidecar_degraded_frames(tree)
    assert bag_metrics['dataset']['degraded_frames'] == degraded
    assert tree_metrics['dataset']['degraded_frames'] == degraded
    for split in ('clean', 'degraded'):
        assert (bag_metrics['paths'][LMA][split]['frames']
                == tree_metrics['paths'][LMA][split]['frames'] > 0)
        np.testing.assert_array_equal(getattr(bag_run.paths[LMA], split).counts,
                                      getattr(run[0].paths[LMA], split).counts)
    assert bag_metrics['paths'][LMA]['degraded']['frames'] == degraded


def test_report_of_an_evaluation(run, tmp_path):
    result, _ = run
    written = write_report(result.to_dict(), tmp_path, result.samples)
    assert {path.name for path in written} >= {'metrics.json', 'report.md', 'overlays.png',
                                               'class_iou.png', 'latency.png'}
    assert result.samples and result.samples[0].degraded
    assert all(set(sample.predictions) == {LMA, SINGLE_FRAME} for sample in result.samples)
    report = (tmp_path / 'report.md').read_text()
    assert '| mIoU, degraded frames' in report and 'single frame' in report


def test_command_line(tree, tmp_path, capsys):
    weights = tmp_path / 'weights.safetensors'
    save_checkpoint(weights, _model(), input_size=NETWORK_SIZE)
    code = main([
        'eval', str(tree), '--weights', str(weights), '--device', 'cpu', '--memory-length', '2',
        '--compare-single-frame', '--max-sequences', '1', '--report', str(tmp_path / 'report'),
        '--dump-predictions', str(tmp_path / 'dump'), '--write-policy', 'adaptive',
        '--write-threshold', '0.5', '--input-size', '32x16',
    ])
    out = capsys.readouterr().out
    assert code == 0
    assert 'mIoU, annotated frames (2)' in out and 'single frame' in out
    metrics = json.loads((tmp_path / 'report' / 'metrics.json').read_text())
    assert metrics['dataset']['sequences'] == 1
    assert metrics['engine']['input_size'] == list(NETWORK_SIZE)
    assert metrics['engine']['write_policy'] == 'adaptive'
    assert metrics['engine']['write_threshold'] == 0.5
    writes = metrics['paths'][LMA]['memory_writes']
    assert 'memory writes' in out
    assert f'{writes} of {metrics["paths"][LMA]["frames"]}' in out
    assert metrics['engine']['memory_length'] == 2
    assert 0 < metrics['paths'][LMA]['memory_writes'] <= metrics['paths'][LMA]['frames']
    assert sorted(p.name for p in (tmp_path / 'dump' / LMA).glob('*/synthcity/*.png')) == [
        'synthcity_000000_000003_pred_labelIds.png'] * 2  # the annotated frame of each camera


@pytest.mark.parametrize(('arguments', 'code', 'message'), [
    (['{missing}'], 1, 'does not exist'),
    (['{tree}', '--weights', '{missing}'], 1, 'no checkpoint file'),
    (['{tree}', '--weights', '{corrupt}'], 1, 'corrupt.safetensors'),
    (['{tree}', '--split', 'test'], 1, "no images of split 'test'"),
    (['{empty}'], 1, 'not a Cityscapes tree'),
    (['{tree}', '--weights', '{weights}', '--device', 'tpu'], 1, 'unknown device'),
    (['{tree}', '--weights', '{weights}', '--write-threshold', '3'], 1, 'cosine distance'),
])
def test_command_line_errors(tree, tmp_path, capsys, arguments, code, message):
    corrupt = tmp_path / 'corrupt.safetensors'
    corrupt.write_bytes(b'not a checkpoint at all')
    (tmp_path / 'empty').mkdir()
    paths = {'tree': tree, 'missing': tmp_path / 'nothing', 'corrupt': corrupt,
             'empty': tmp_path / 'empty', 'weights': tmp_path / 'weights.safetensors'}
    if '{weights}' in arguments:
        save_checkpoint(paths['weights'], _model(), input_size=NETWORK_SIZE)
    assert main(['eval', *(a.format(**paths) for a in arguments)]) == code
    error = capsys.readouterr().err
    assert error.startswith('lma-perception: error: ') and message in error
    assert 'Traceback' not in error


def test_bad_numbers_are_argument_errors(tree, capsys):
    for arguments, message in ((['--input-size', '256xwide'], 'expected WIDTHxHEIGHT'),
                               (['--input-size', '30x20'], 'both positive multiples of 8'),
                               (['--max-sequences', '0'], 'expected a positive whole number')):
        with pytest.raises(SystemExit) as stop:
            main(['eval', str(tree), *arguments])
        assert stop.value.code == 2
        assert message in capsys.readouterr().err


def test_open_dataset_rejects_a_corrupt_bag(tmp_path):
    bag = tmp_path / 'bag'
    bag.mkdir()
    (bag / 'metadata.yaml').write_text('rosbag2_bagfile_information: [')
    with pytest.raises(DatasetError, match='cannot open the bag'):
        open_dataset(bag)


def test_a_png_compressed_bag_scores_as_the_raw_one(tree, bag_run, tmp_path):
    # PNG is lossless: the same pixels reach the model, so every count must agree.
    bag = tmp_path / 'png_bag'
    write_bag(bag, tree_frames(CityscapesTree(tree, 'val')), compression='png')
    frames, dataset = open_dataset(bag)
    compressed = evaluate(_engine(), frames, dataset)
    assert compressed.to_dict()['dataset']['frames'] == bag_run.to_dict()['dataset']['frames']
    np.testing.assert_array_equal(compressed.paths[LMA].annotated.counts,
                                  bag_run.paths[LMA].annotated.counts)
