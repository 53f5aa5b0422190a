import math

import numpy as np
import pytest

from lma_perception.eval.metrics import ConfusionMatrix, TemporalConsistency
from lma_perception.labels import CATEGORY_NAMES

# Ground truth and prediction of a 2×4 frame, classes 0, 1 and 2 with one ignored pixel.
GT = np.array([[0, 0, 1, 1], [2, 2, 255, 1]], dtype=np.uint8)
PRED = np.array([[0, 1, 1, 1], [2, 0, 5, 255]], dtype=np.uint8)


def test_confusion_matrix_counts_by_hand():
    matrix = ConfusionMatrix()
    matrix.update(PRED, GT)
    expected = np.zeros((19, 20), dtype=np.int64)
    expected[0, 0] = 1
    expected[0, 1] = 1
    expected[1, 1] = 2
    expected[1, 19] = 1  # predicted void on a labelled pixel: a miss, no false positive
    expected[2, 2] = 1
    expected[2, 0] = 1
    np.testing.assert_array_equal(matrix.counts, expected)
    assert matrix.total == 7  # the pixel with ground truth 255 is not counted


def test_iou_miou_and_accuracy_by_hand():
    matrix = ConfusionMatrix()
    matrix.update(PRED, GT)
    iou = matrix.iou()
    # class 0: tp 1, gt 2, predicted 2 → 1 / 3; class 1: tp 2, gt 3, predicted 3 → 2 / 4;
    # class 2: tp 1, gt 2, predicted 1 → 1 / 2.
    np.testing.assert_allclose(iou[:3], [1 / 3, 2 / 4, 1 / 2])
    # Class 5 was predicted only on an ignored pixel: neither true nor predicted → NaN.
    assert np.isnan(iou[3:]).all()
    assert matrix.miou() == pytest.approx((1 / 3 + 1 / 2 + 1 / 2) / 3)
    assert matrix.pixel_accuracy() == pytest.approx(4 / 7)


def test_miou_counts_a_class_predicted_but_absent_from_ground_truth_as_zero():
    gt = np.zeros((2, 2), dtype=np.uint8)
    pred = np.array([[0, 0], [0, 7]], dtype=np.uint8)
    matrix = ConfusionMatrix()
    matrix.update(pred, gt)
    iou = matrix.iou()
    assert iou[7] == 0.0  # predicted but absent: its union is one pixel, IoU 0...
    assert iou[0] == pytest.approx(3 / 4)
    assert matrix.miou() == pytest.approx((3 / 4 + 0) / 2)  # ...and part of the mean
    assert np.isnan(np.delete(iou, [0, 7])).all()  # neither present nor predicted: no IoU
    np.testing.assert_array_equal(np.flatnonzero(matrix.present), [0])


def test_category_iou_folds_classes_by_hand():
    # road (flat) predicted as sidewalk (flat): a category hit; car (vehicle) as person (human).
    gt = np.array([[0, 0, 13, 13], [11, 11, 255, 8]], dtype=np.uint8)
    pred = np.array([[1, 0, 11, 13], [11, 255, 13, 8]], dtype=np.uint8)
    matrix = ConfusionMatrix()
    matrix.update(pred, gt)
    categories = dict(zip(CATEGORY_NAMES, matrix.category_iou(), strict=True))
    assert categories['flat'] == 1.0
    assert categories['nature'] == 1.0
    # vehicle: tp 1 (car → car), fn 1 (car → person), no fp (the car on 255 is ignored).
    assert categories['vehicle'] == pytest.approx(1 / 2)
    # human: tp 1, fn 1 (void), fp 1 (car → person) → 1 / 3.
    assert categories['human'] == pytest.approx(1 / 3)
    assert np.isnan([categories[c] for c in ('construction', 'object', 'sky')]).all()
    assert matrix.category_miou() == pytest.approx((1 + 1 + 1 / 2 + 1 / 3) / 4)


def test_everything_ignored_gives_nan_not_zero():
    matrix = ConfusionMatrix()
    matrix.update(np.zeros((3, 3), np.uint8), np.full((3, 3), 255, np.uint8))
    assert matrix.total == 0
    assert math.isnan(matrix.miou())
    assert math.isnan(matrix.pixel_accuracy())
    assert np.isnan(matrix.iou()).all()


def test_accumulating_frames_equals_one_concatenated_frame():
    rng = np.random.default_rng(0)
    gts = [rng.choice([*range(19), 255], size=(6, 5)).astype(np.uint8) for _ in range(4)]
    preds = [rng.integers(0, 20, size=(6, 5)).astype(np.uint8) for _ in range(4)]
    per_frame = ConfusionMatrix()
    for pred, gt in zip(preds, gts, strict=True):
        per_frame.update(pred, gt)
    whole = ConfusionMatrix()
    whole.update(np.concatenate(preds), np.concatenate(gts))
    np.testing.assert_array_equal(per_frame.counts, whole.counts)

    first, second = ConfusionMatrix(), ConfusionMatrix()
    first.update(preds[0], gts[0])
    for pred, gt in zip(preds[1:], gts[1:], strict=True):
        second.update(pred, gt)
    np.testing.assert_array_equal(first.merge(second).counts, whole.counts)
    assert first.merge(second).miou() == whole.miou()


def test_perfect_prediction_scores_one():
    gt = np.array([[3, 4], [255, 18]], dtype=np.uint8)
    matrix = ConfusionMatrix()
    matrix.update(gt, gt)
    assert matrix.miou() == 1.0
    assert matrix.pixel_accuracy() == 1.0


def test_bad_inputs_are_rejected_with_clear_messages():
    matrix = ConfusionMatrix()
    with pytest.raises(ValueError, match='same size'):
        matrix.update(np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8))
    with pytest.raises(ValueError, match=r'outside 0\.\.18'):
        matrix.update(np.zeros((1, 2), np.uint8), np.array([[0, 40]], np.uint8))
    with pytest.raises(ValueError, match='different class sets'):
        matrix.merge(ConfusionMatrix(num_classes=5))


def test_temporal_consistency_by_hand():
    tracker = TemporalConsistency()
    gt0 = np.array([[0, 0, 1, 255]], dtype=np.uint8)
    gt1 = np.array([[0, 0, 2, 255]], dtype=np.uint8)  # pixel 2 changes class, pixel 3 ignored
    tracker.update(np.array([[0, 0, 1, 4]], np.uint8), gt0)
    assert math.isnan(tracker.flip_rate())  # one frame: nothing to compare yet
    tracker.update(np.array([[0, 3, 2, 7]], np.uint8), gt1)
    # Stable pixels: 0 and 1; pixel 1 flipped (0 → 3). Pixels 2 and 3 do not count.
    assert (tracker.stable_pixels, tracker.flipped_pixels) == (2, 1)
    assert tracker.flip_rate() == pytest.approx(0.5)
    assert tracker.consistency() == pytest.approx(0.5)


def test_temporal_consistency_resets_between_sequences_but_keeps_counts():
    tracker = TemporalConsistency()
    gt = np.zeros((2, 2), np.uint8)
    tracker.update(np.zeros((2, 2), np.uint8), gt)
    tracker.update(np.zeros((2, 2), np.uint8), gt)
    tracker.reset()
    # A new sequence, all labels different from the last frame of the old one: no flips counted,
    # and a different frame size is fine.
    tracker.update(np.ones((3, 3), np.uint8), np.zeros((3, 3), np.uint8))
    assert (tracker.stable_pixels, tracker.flipped_pixels) == (4, 0)
    tracker.update(np.full((3, 3), 2, np.uint8), np.zeros((3, 3), np.uint8))
    assert (tracker.stable_pixels, tracker.flipped_pixels) == (13, 9)
    with pytest.raises(ValueError, match='frame size changed'):
        tracker.update(np.zeros((2, 2), np.uint8), gt)

    other = TemporalConsistency()
    other.update(np.zeros((1, 2), np.uint8), np.zeros((1, 2), np.uint8))
    other.update(np.array([[0, 1]], np.uint8), np.zeros((1, 2), np.uint8))
    merged = tracker.merge(other)
    assert (merged.stable_pixels, merged.flipped_pixels) == (15, 10)
