"""The label table against the official cityscapesScripts table, and the lookup tables."""

import numpy as np
import pytest

from lma_perception import labels

official = pytest.importorskip('cityscapesscripts.helpers.labels')


def test_table_matches_cityscapesscripts_field_by_field():
    assert len(labels.LABELS) == len(official.labels) == 35
    for ours, theirs in zip(labels.LABELS, official.labels, strict=True):
        assert (ours.name, ours.id, ours.train_id, ours.category, ours.category_id,
                ours.has_instances, ours.ignore_in_eval, ours.color) == tuple(theirs)


def test_nineteen_train_classes_in_train_id_order():
    assert labels.NUM_CLASSES == 19
    assert tuple(official.trainId2label[t].name for t in range(19)) == labels.CLASS_NAMES
    assert labels.CLASS_NAMES[0] == 'road' and labels.CLASS_NAMES[18] == 'bicycle'


def test_id_to_train_id_lookup():
    lut = labels.ID_TO_TRAIN_ID
    assert lut.shape == (256,) and lut.dtype == np.uint8
    for label in official.labels:
        if label.id >= 0:
            expected = label.trainId if 0 <= label.trainId < 255 else 255
            assert lut[label.id] == expected, label.name
    assert (lut[34:] == labels.IGNORE_INDEX).all()  # ids beyond the table are ignored


def test_train_id_to_id_round_trips_and_unknown_is_unlabeled():
    train_ids = np.arange(19, dtype=np.uint8)
    ids = labels.TRAIN_ID_TO_ID[train_ids]
    assert (labels.ID_TO_TRAIN_ID[ids] == train_ids).all()
    assert ids[0] == 7 and ids[18] == 33  # road, bicycle
    assert labels.TRAIN_ID_TO_ID[255] == 0


def test_colorize_uses_official_colours_and_black_for_ignore():
    train_ids = np.array([[0, 10], [13, 255]], np.uint8)
    rgb = labels.colorize(train_ids)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == official.trainId2label[0].color
    assert tuple(rgb[0, 1]) == official.trainId2label[10].color
    assert tuple(rgb[1, 0]) == official.trainId2label[13].color
    assert tuple(rgb[1, 1]) == (0, 0, 0)
    ids = np.array([[1, 26]], np.uint8)
    assert tuple(labels.colorize_ids(ids)[0, 1]) == official.id2label[26].color


def test_colorize_rejects_other_dtypes():
    with pytest.raises(TypeError, match='uint8'):
        labels.colorize(np.zeros((2, 2), np.int64))


def test_lookup_tables_are_read_only():
    for table in (labels.ID_TO_TRAIN_ID, labels.TRAIN_ID_TO_ID, labels.PALETTE,
                  labels.ID_PALETTE):
        with pytest.raises(ValueError):
            table[0] = 1
