"""The package's scores against cityscapesScripts' own evaluation of the same PNG files."""

import copy
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from lma_perception.eval.evaluator import write_prediction
from lma_perception.eval.instances import AVERAGE_INSTANCE_SIZE
from lma_perception.eval.metrics import ConfusionMatrix
from lma_perception.labels import (
    CATEGORY_NAMES,
    CLASS_NAMES,
    ID_TO_TRAIN_ID,
    LABEL_BY_NAME,
    LABELS,
)

cityscapes_eval = pytest.importorskip(
    'cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling'
)

# Ground-truth label ids drawn from: every id of the table (ignored ones included) except
# those of the train ids 16 (train) and 17 (motorcycle), which stay absent from the ground truth.
ABSENT_TRAIN_IDS = (16, 17)
GT_IDS = [label.id for label in LABELS if label.id >= 0 and label.train_id not in ABSENT_TRAIN_IDS]
FRAMES = [('aachen', 0, 19), ('aachen', 1, 19), ('bochum', 7, 3)]


def _write_tree(root: Path, predict_absent: bool) -> list[np.ndarray]:
    """Write gtFine label-id PNGs and the package's prediction PNGs; return the predictions."""
    rng = np.random.default_rng(7)
    predictable = [t for t in range(19) if predict_absent or t not in ABSENT_TRAIN_IDS]
    predictions = []
    for city, sequence, frame in FRAMES:
        gt_ids = rng.choice(GT_IDS, size=(24, 40)).astype(np.uint8)
        folder = root / 'gtFine' / 'val' / city
        folder.mkdir(parents=True, exist_ok=True)
        name = f'{city}_{sequence:06d}_{frame:06d}'
        assert cv2.imwrite(str(folder / f'{name}_gtFine_labelIds.png'), gt_ids)
        # Mostly right, partly random, with some void (255) predictions.
        prediction = ID_TO_TRAIN_ID[gt_ids].copy()
        noise = rng.random(prediction.shape) < 0.4
        prediction[noise] = rng.choice([*predictable, 255], size=int(noise.sum()))
        write_prediction(root / 'results', city, name, prediction)
        predictions.append(prediction)
    return predictions


def _package_scores(root: Path, predictions: list[np.ndarray]) -> ConfusionMatrix:
    matrix = ConfusionMatrix()
    for (city, sequence, frame), prediction in zip(FRAMES, predictions, strict=True):
        path = root / 'gtFine' / 'val' / city / f'{city}_{sequence:06d}_{frame:06d}'
        gt_ids = cv2.imread(f'{path}_gtFine_labelIds.png', cv2.IMREAD_UNCHANGED)
        matrix.update(prediction, ID_TO_TRAIN_ID[gt_ids])
    return matrix


def _cityscapes_scores(root: Path) -> dict:
    args = copy.copy(cityscapes_eval.args)
    args.cityscapesPath = str(root)
    args.groundTruthSearch = str(root / 'gtFine' / 'val' / '*' / '*_gtFine_labelIds.png')
    args.predictionPath = str(root / 'results')
    args.predictionWalk = None
    args.evalInstLevelScore = False
    args.evalPixelAccuracy = False
    args.JSONOutput = False
    args.quiet = True
    ground_truth = sorted(str(p) for p in root.glob('gtFine/val/*/*_gtFine_labelIds.png'))
    predictions = [cityscapes_eval.getPrediction(args, gt) for gt in ground_truth]
    return cityscapes_eval.evaluateImgLists(predictions, ground_truth, args)


def _assert_same_class_iou(matrix: ConfusionMatrix, reference: dict) -> None:
    theirs = np.array([reference['classScores'][name] for name in CLASS_NAMES], dtype=float)
    np.testing.assert_allclose(matrix.iou(), theirs, rtol=0, atol=1e-12, equal_nan=True)


def test_dumped_predictions_use_cityscapes_names_and_label_ids(tmp_path):
    labels = np.array([[0, 13], [18, 255]], dtype=np.uint8)
    path = write_prediction(tmp_path, 'aachen', 'aachen_000001_000019', labels)
    assert path == tmp_path / 'aachen' / 'aachen_000001_000019_pred_labelIds.png'
    ids = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    road, car, bicycle = (next(x.id for x in LABELS if x.name == n) for n in
                          ('road', 'car', 'bicycle'))
    np.testing.assert_array_equal(ids, [[road, car], [bicycle, 0]])


def test_miou_equals_cityscapesscripts_when_both_average_the_same_classes(tmp_path):
    predictions = _write_tree(tmp_path, predict_absent=False)
    matrix = _package_scores(tmp_path, predictions)
    reference = _cityscapes_scores(tmp_path)
    _assert_same_class_iou(matrix, reference)
    # The classes absent from the ground truth are never predicted: NaN for both tools.
    assert np.isnan(matrix.iou()[list(ABSENT_TRAIN_IDS)]).all()
    assert matrix.miou() == pytest.approx(reference['averageScoreClasses'], abs=1e-12)
    assert 0.3 < matrix.miou() < 0.9  # a real mixture of hits and misses, not a trivial case


def test_predicting_a_class_absent_from_the_ground_truth(tmp_path):
    """A class predicted but absent from the ground truth counts as IoU 0 in both means."""
    predictions = _write_tree(tmp_path, predict_absent=True)
    matrix = _package_scores(tmp_path, predictions)
    reference = _cityscapes_scores(tmp_path)
    _assert_same_class_iou(matrix, reference)
    iou = matrix.iou()
    assert (iou[list(ABSENT_TRAIN_IDS)] == 0).all()
    assert not matrix.present[list(ABSENT_TRAIN_IDS)].any()
    assert matrix.miou() == pytest.approx(reference['averageScoreClasses'], abs=1e-12)
    assert matrix.category_miou() == pytest.approx(reference['averageScoreCategories'],
                                                   abs=1e-12)
    theirs = [reference['categoryScores'][name] for name in CATEGORY_NAMES]
    np.testing.assert_allclose(matrix.category_iou(), theirs, rtol=0, atol=1e-12)
    assert not math.isclose(matrix.miou(), iou[matrix.present].mean())


def test_average_instance_sizes_are_cityscapesscripts_own():
    theirs = {name: size for name, size in cityscapes_eval.args.avgClassSize.items()
              if not LABEL_BY_NAME[name].ignore_in_eval}
    assert theirs == AVERAGE_INSTANCE_SIZE
