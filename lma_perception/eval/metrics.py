"""Segmentation metrics: the official Cityscapes scores and temporal consistency.

The definitions are those of cityscapesScripts' ``evalPixelLevelSemanticLabeling``: one
confusion matrix over every scored frame; the IoU of a class is TP / (TP + FP + FN), with false
positives counted only on pixels whose ground truth is evaluated; a class (or category) whose
union is empty has no IoU (NaN) and the mean runs over the others, so a class that is predicted
but absent from the ground truth counts as 0. Category IoU does the same for the 7 categories
(a prediction anywhere in the category is a hit). The instance-weighted iIoU is in
`lma_perception.eval.instances`.

Everything here works on plain numpy arrays of train ids (0..18, 255 = ignored), so offline,
live and training validation scores share one implementation. Latency statistics live in
`lma_perception.runtime.latency`.
"""

from __future__ import annotations

import numpy as np

from lma_perception.labels import CATEGORY_NAMES, IGNORE_INDEX, NUM_CLASSES, TRAIN_LABELS


def nanmean(scores: np.ndarray) -> float:
    """Mean of the scores that exist (not NaN), NaN when none does: cityscapesScripts' average."""
    valid = ~np.isnan(scores)
    return float(scores[valid].mean()) if valid.any() else float('nan')


def category_members(num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Boolean matrix (category × train id): which evaluated classes form each category."""
    names = [label.category for label in TRAIN_LABELS[:num_classes]]
    return np.array([[name == category for name in names] for category in CATEGORY_NAMES])


def _check_pair(prediction: np.ndarray, ground_truth: np.ndarray) -> None:
    if prediction.shape != ground_truth.shape or prediction.ndim != 2:
        raise ValueError(
            f'prediction {prediction.shape} and ground truth {ground_truth.shape} must be '
            'label images (H×W) of the same size'
        )


class ConfusionMatrix:
    """Pixel counts of (ground-truth class, predicted class), scored as cityscapesScripts does.

    Rows are the ground-truth train ids; pixels whose ground truth is the ignore index are not
    counted. Columns are the predicted train ids plus one last *void* column for any other
    prediction (255, or a value out of range): a void prediction is a miss for the row's class
    and a false positive for no class, which is how cityscapesScripts scores a prediction of a
    label id that is ignored in evaluation.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.counts = np.zeros((num_classes, num_classes + 1), dtype=np.int64)
        self.frames = 0

    def update(self, prediction: np.ndarray, ground_truth: np.ndarray) -> None:
        """Add one frame: two H×W integer label images of the same size."""
        _check_pair(prediction, ground_truth)
        gt = ground_truth.ravel()
        valid = gt != self.ignore_index
        gt = gt[valid].astype(np.intp)
        if gt.size and (gt.min() < 0 or gt.max() >= self.num_classes):
            raise ValueError(
                f'ground truth holds values outside 0..{self.num_classes - 1} and '
                f'{self.ignore_index}: {sorted(set(np.unique(gt).tolist()))}'
            )
        pred = prediction.ravel()[valid].astype(np.intp)
        pred[(pred < 0) | (pred > self.num_classes)] = self.num_classes
        columns = self.num_classes + 1
        self.counts += np.bincount(
            gt * columns + pred, minlength=self.num_classes * columns
        ).reshape(self.num_classes, columns)
        self.frames += 1

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Return a new matrix holding the counts of both (e.g. of two data splits)."""
        if other.counts.shape != self.counts.shape or other.ignore_index != self.ignore_index:
            raise ValueError('cannot merge confusion matrices of different class sets')
        merged = ConfusionMatrix(self.num_classes, self.ignore_index)
        merged.counts = self.counts + other.counts
        merged.frames = self.frames + other.frames
        return merged

    @property
    def total(self) -> int:
        """Number of counted (not ignored) pixels."""
        return int(self.counts.sum())

    @property
    def present(self) -> np.ndarray:
        """Boolean mask of the classes that occur in the ground truth."""
        return self.counts.sum(axis=1) > 0

    def false_positives(self) -> np.ndarray:
        """Per class, the pixels predicted as it whose (evaluated) ground truth is another."""
        predictions = self.counts[:, : self.num_classes]
        return predictions.sum(axis=0) - np.diag(predictions)

    def iou(self) -> np.ndarray:
        """Intersection over union per class; NaN where the union is empty."""
        true_positives = np.diag(self.counts[:, : self.num_classes]).astype(np.float64)
        union = self.counts.sum(axis=1) + self.false_positives()
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(union > 0, true_positives / union, np.nan)

    def miou(self) -> float:
        """Mean IoU over the classes whose union is not empty (NaN when there is none)."""
        return nanmean(self.iou())

    def category_counts(self) -> np.ndarray:
        """Return the matrix folded to categories: (ground-truth, predicted category + void)."""
        members = category_members(self.num_classes).astype(np.int64)
        folded = members @ self.counts[:, : self.num_classes] @ members.T
        return np.concatenate([folded, members @ self.counts[:, self.num_classes:]], axis=1)

    def category_iou(self) -> np.ndarray:
        """IoU per category (order of `CATEGORY_NAMES`); NaN where the union is empty."""
        counts = self.category_counts()
        true_positives = np.diag(counts[:, :-1]).astype(np.float64)
        union = counts.sum(axis=1) + counts[:, :-1].sum(axis=0) - true_positives
        with np.errstate(invalid='ignore', divide='ignore'):
            return np.where(union > 0, true_positives / union, np.nan)

    def category_miou(self) -> float:
        """Mean category IoU over the categories whose union is not empty."""
        return nanmean(self.category_iou())

    def pixel_accuracy(self) -> float:
        """Fraction of counted pixels whose prediction is right (NaN when nothing counted)."""
        total = self.total
        if total == 0:
            return float('nan')
        return float(np.trace(self.counts[:, : self.num_classes]) / total)


class TemporalConsistency:
    """How often predictions flicker where the scene does not change.

    A pixel is *stable* between two consecutive frames of one stream when its dense ground truth
    is the same class in both (and not ignored); it *flips* when its predicted label differs.
    Counts add up over every stream fed in; `reset()` starts a new sequence, so the first frame
    after it is compared with nothing.
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX) -> None:
        self.ignore_index = ignore_index
        self.stable_pixels = 0
        self.flipped_pixels = 0
        self._previous: tuple[np.ndarray, np.ndarray] | None = None

    def reset(self) -> None:
        """Forget the previous frame (a new sequence starts); the counts are kept."""
        self._previous = None

    def update(self, prediction: np.ndarray, ground_truth: np.ndarray) -> None:
        """Add the next frame of the current sequence with its dense ground truth."""
        _check_pair(prediction, ground_truth)
        previous = self._previous
        if previous is not None and previous[0].shape != prediction.shape:
            raise ValueError(
                f'frame size changed within a sequence: {previous[0].shape} → '
                f'{prediction.shape}'
            )
        self._previous = (prediction.copy(), ground_truth.copy())
        if previous is None:
            return
        previous_prediction, previous_ground_truth = previous
        stable = (ground_truth == previous_ground_truth) & (ground_truth != self.ignore_index)
        self.stable_pixels += int(np.count_nonzero(stable))
        self.flipped_pixels += int(np.count_nonzero(stable & (prediction != previous_prediction)))

    def merge(self, other: TemporalConsistency) -> TemporalConsistency:
        """Return a new tracker holding the counts of both (with no previous frame)."""
        merged = TemporalConsistency(self.ignore_index)
        merged.stable_pixels = self.stable_pixels + other.stable_pixels
        merged.flipped_pixels = self.flipped_pixels + other.flipped_pixels
        return merged

    def flip_rate(self) -> float:
        """Fraction of stable pixels whose label flipped (NaN before any comparison)."""
        if self.stable_pixels == 0:
            return float('nan')
        return self.flipped_pixels / self.stable_pixels

    def consistency(self) -> float:
        """One minus the flip rate: 1.0 means no flicker at all."""
        return 1.0 - self.flip_rate()
