"""The package's scores equal cityscapesScripts' own on the predictions it dumps, end to end.

A real-layout tree, unpacked as the download's zips come (each zip in its own folder), with
label ids and instance ids, some annotated frames without a snippet, a class the model predicts
but the ground truth lacks and a class absent from both; scored with the shipped weights by
`lma-perception eval`, on the tree and on a bag written from it by `lma-perception bag write`.
"""

import copy
import json
import shutil

import cv2
import numpy as np
import pytest

from lma_perception.cli import main
from lma_perception.data.cityscapes import CityscapesTree
from lma_perception.eval.evaluator import LMA, evaluate
from lma_perception.eval.sources import open_dataset
from lma_perception.labels import CATEGORY_NAMES, CLASS_NAMES, ID_TO_TRAIN_ID, LABELS
from lma_perception.runtime.engine import EngineConfig, SegmentationEngine
from lma_perception.synthetic.generator import SynthConfig, write_dataset

cityscapes_eval = pytest.importorskip(
    'cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling'
)

CITY = 'lindau'
CAMERA = 'cityscapes'
SYNTH = SynthConfig(width=128, height=64, frames=4, annotated_frame=3, cameras=('front',),
                    city=CITY, degradation_rate=0.0)
SEQUENCES = 3
WITHOUT_SNIPPET = 2  # this sequence's annotated frame is only in leftImg8bit
ZIPS = {'leftImg8bit_sequence': 'leftImg8bit_sequence_trainvaltest',
        'leftImg8bit': 'leftImg8bit_trainvaltest', 'gtFine': 'gtFine_trainvaltest'}
INSTANCE_IDS = [label.id for label in LABELS if label.has_instances and label.id >= 0]
TOLERANCE = 1e-4  # 0.01 in percent


def _part(root, name):
    return root / ZIPS[name] / name / 'val' / CITY


def _unpack_like_the_download(synthetic, root):
    """The synthetic camera tree rewritten in the nested zip layout, real Cityscapes files."""
    source = synthetic / 'front'
    for image in sorted((source / 'leftImg8bit_sequence' / 'val' / CITY).glob('*.png')):
        sequence, frame = int(image.name.split('_')[1]), int(image.name.split('_')[2])
        targets = [] if sequence == WITHOUT_SNIPPET else ['leftImg8bit_sequence']
        if frame == SYNTH.annotated_frame:
            targets.append('leftImg8bit')
        for name in targets:
            _part(root, name).mkdir(parents=True, exist_ok=True)
            shutil.copy(image, _part(root, name))
    _part(root, 'gtFine').mkdir(parents=True)
    for labels in sorted((source / 'gtFine' / 'val' / CITY).glob('*_gtFine_labelIds.png')):
        shutil.copy(labels, _part(root, 'gtFine'))
    return root


def _predictions(root):
    """Train ids the shipped model predicts for each annotated frame (they ignore the labels)."""
    engine = SegmentationEngine.from_checkpoint(None, EngineConfig(device='cpu'))
    predicted = {}
    dump = root.parent / 'first_dump'
    frames, dataset = open_dataset(root)
    evaluate(engine, frames, dataset, dump_predictions=dump)
    for path in (dump / LMA / CAMERA / CITY).glob('*_pred_labelIds.png'):
        stem = path.name.removesuffix('_pred_labelIds.png')
        predicted[stem] = ID_TO_TRAIN_ID[cv2.imread(str(path), cv2.IMREAD_UNCHANGED)]
    return predicted


def _instances(label_ids):
    """Cityscapes instance ids: each connected region of a class with instances is one instance,
    except regions under 8 pixels, which stay a group (plain label id, as crowds are)."""
    instances = label_ids.astype(np.uint16)
    for label_id in INSTANCE_IDS:
        count, regions = cv2.connectedComponents((label_ids == label_id).astype(np.uint8))
        for index in range(1, count):
            region = regions == index
            if region.sum() >= 8:
                instances[region] = label_id * 1000 + index
    return instances


def _rewrite_ground_truth(root, predicted):
    """Drop one predicted class and one never-predicted class from the ground truth; write
    instance ids. Returns the two classes (train ids)."""
    files = sorted(_part(root, 'gtFine').glob('*_gtFine_labelIds.png'))
    truths = {f.name.removesuffix('_gtFine_labelIds.png'): cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
              for f in files}
    predicted_anywhere = np.zeros(19, bool)
    wrong_on_other_classes = np.zeros(19, np.int64)
    in_truth = np.zeros(19, bool)
    for stem, label_ids in truths.items():
        train_ids = ID_TO_TRAIN_ID[label_ids]
        in_truth[np.unique(train_ids[train_ids < 19])] = True
        for train_id in range(19):
            mine = predicted[stem] == train_id
            predicted_anywhere[train_id] |= mine.any()
            wrong_on_other_classes[train_id] += np.count_nonzero(
                mine & (train_ids != train_id) & (train_ids < 19))
    # Predicted on pixels of other classes, and present in the ground truth before: after it is
    # removed there, it is a class predicted but absent from the ground truth.
    candidates = np.flatnonzero(in_truth & (wrong_on_other_classes > 0))
    assert candidates.size, 'the model predicts no class wrongly: no such case to build'
    predicted_absent = int(candidates[np.argmax(wrong_on_other_classes[candidates])])
    never_predicted = np.flatnonzero(~predicted_anywhere & in_truth)
    never_predicted = int(never_predicted[0]) if never_predicted.size else int(
        np.flatnonzero(~predicted_anywhere)[0])
    removed_ids = [label.id for label in LABELS
                   if label.train_id in (predicted_absent, never_predicted)]
    for stem, label_ids in truths.items():
        label_ids = np.where(np.isin(label_ids, removed_ids), 0, label_ids).astype(np.uint8)
        folder = _part(root, 'gtFine')
        assert cv2.imwrite(str(folder / f'{stem}_gtFine_labelIds.png'), label_ids)
        assert cv2.imwrite(str(folder / f'{stem}_gtFine_instanceIds.png'), _instances(label_ids))
    return predicted_absent, never_predicted


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    base = tmp_path_factory.mktemp('official')
    synthetic = write_dataset(base / 'synthetic', SYNTH, 'val', SEQUENCES)
    root = _unpack_like_the_download(synthetic, base / CAMERA)
    predicted_absent, never_predicted = _rewrite_ground_truth(root, _predictions(root))
    return root, predicted_absent, never_predicted


@pytest.fixture
def official(monkeypatch):
    """cityscapesScripts' scores; it pairs each ground truth with its prediction by name.

    Its instance-level code (2.3.0, the newest) calls `np.in1d`, which NumPy 2.4 removed;
    `np.isin(...).ravel()` is what `in1d` returned, so it is lent to NumPy for the call.
    """
    if not hasattr(np, 'in1d'):
        monkeypatch.setattr(np, 'in1d', lambda values, test, invert=False: np.isin(
            values, test, invert=invert).ravel(), raising=False)
    return _official


def _official(ground_truth_root, predictions):
    args = copy.copy(cityscapes_eval.args)
    args.predictionPath = str(predictions)
    args.predictionWalk = None
    args.evalInstLevelScore = True
    args.evalPixelAccuracy = False
    args.JSONOutput = False
    args.quiet = True
    ground_truth = sorted(str(p) for p in ground_truth_root.glob('*_gtFine_labelIds.png'))
    assert len(ground_truth) == SEQUENCES
    found = [cityscapes_eval.getPrediction(args, gt) for gt in ground_truth]
    return cityscapes_eval.evaluateImgLists(found, ground_truth, args)


def _assert_same_scores(ours, theirs):
    assert ours['miou'] == pytest.approx(theirs['averageScoreClasses'], abs=TOLERANCE)
    assert ours['category_miou'] == pytest.approx(theirs['averageScoreCategories'], abs=TOLERANCE)
    assert ours['iiou'] == pytest.approx(theirs['averageScoreInstClasses'], abs=TOLERANCE)
    assert ours['category_iiou'] == pytest.approx(theirs['averageScoreInstCategories'],
                                                  abs=TOLERANCE)
    for mine, key, names in (('iou', 'classScores', CLASS_NAMES),
                             ('iiou_per_class', 'classInstScores', CLASS_NAMES),
                             ('category_iou', 'categoryScores', CATEGORY_NAMES),
                             ('iiou_per_category', 'categoryInstScores', CATEGORY_NAMES)):
        expected = [theirs[key][name] for name in names]
        np.testing.assert_allclose(np.array(ours[mine], dtype=float), expected, rtol=0,
                                   atol=TOLERANCE, equal_nan=True)


def _eval(source, out, capsys):
    code = main(['eval', str(source), '--device', 'cpu', '--dump-predictions',
                 str(out / 'dump'), '--report', str(out / 'report')])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    metrics = json.loads((out / 'report' / 'metrics.json').read_text())
    return metrics['paths'][LMA]['annotated'], printed.out


def test_tree_scores_equal_cityscapesscripts(tree, official, tmp_path, capsys):
    root, predicted_absent, never_predicted = tree
    ours, printed = _eval(root, tmp_path, capsys)
    theirs = official(_part(root, 'gtFine'), tmp_path / 'dump' / LMA / CAMERA)
    _assert_same_scores(ours, theirs)
    # The cases the definitions differ on are really there: IoU 0 counted, n/a not counted.
    assert ours['iou'][predicted_absent] == 0.0 and not ours['present'][predicted_absent]
    assert ours['iou'][never_predicted] is None  # NaN in metrics.json
    counted = [value for value in ours['iou'] if value is not None]
    assert ours['miou'] == pytest.approx(np.mean(counted), abs=1e-12)
    assert ours['iiou'] is not None and 0 < ours['iiou'] < 1
    # Every annotated frame is scored, the one without a snippet as a single frame.
    assert ours['frames'] == SEQUENCES
    assert '3 annotated frames: 2 with earlier frames of their snippet, 1 as single frames' \
        in printed
    report = (tmp_path / 'report' / 'report.md').read_text()
    row = next(line for line in report.splitlines()
               if line.startswith(f'| {CLASS_NAMES[never_predicted]} '))
    assert 'n/a' in row and '0.00' not in row
    assert 'iIoU (classes), annotated frames' in printed


def test_bag_of_the_tree_scores_equal_cityscapesscripts(tree, official, tmp_path, capsys):
    root = tree[0]
    bag = tmp_path / 'recording'
    assert main(['bag', 'write', str(root), str(bag)]) == 0
    assert '2 with earlier frames of their snippet, 1 as single frames' in capsys.readouterr().out
    ours, _ = _eval(bag, tmp_path / 'bag_eval', capsys)
    dump = tmp_path / 'bag_eval' / 'dump' / LMA / CAMERA
    names = sorted(p.name for p in (dump / CITY).glob('*.png'))
    assert names == [f'{CITY}_{s:06d}_{SYNTH.annotated_frame:06d}_pred_labelIds.png'
                     for s in range(SEQUENCES)]
    _assert_same_scores(ours, official(_part(root, 'gtFine'), dump))
    # The bag holds the same frames, stems and instance ids: the very same scores as the tree.
    tree_scores, _ = _eval(root, tmp_path / 'tree_eval', capsys)
    for key in ('miou', 'category_miou', 'iiou', 'category_iiou'):
        assert ours[key] == pytest.approx(tree_scores[key], abs=1e-12)


def test_the_nested_layout_is_one_camera_with_every_part(tree):
    root = tree[0]
    reader = CityscapesTree(root, 'val')
    assert reader.cameras == (CAMERA,)
    assert reader.annotated_counts() == (2, 1)
    single = [s for s in reader.sequences() if s.sequence == WITHOUT_SNIPPET]
    assert [len(s.frames) for s in single] == [1]
    assert single[0].frames[0].image.parent == _part(root, 'leftImg8bit')
    frame = reader.load(single[0].frames[0])
    assert frame.labels is not None and frame.instances.dtype == np.uint16
    assert (frame.instances > 1000).any()
