"""The synthetic driving video generator: determinism, labels, layout, degradations, CLI."""

import json

import numpy as np
import pytest

from lma_perception.cli import main
from lma_perception.labels import LABELS, NUM_CLASSES
from lma_perception.synthetic.degrade import KINDS, Degradation, DegradationPlan, degrade
from lma_perception.synthetic.generator import (
    SynthConfig,
    annotated_degraded,
    generate_sequence,
    write_dataset,
)

TINY = SynthConfig(width=96, height=48, frames=4, annotated_frame=2,
                   cameras=('front', 'front_left'))
VALID_IDS = {label.id for label in LABELS if label.id >= 0}


def _frames(config, split='train', index=0):
    return list(generate_sequence(config, split, index))


def test_same_seed_gives_identical_frames_and_files(tmp_path):
    first, second = _frames(TINY), _frames(TINY)
    assert len(first) == TINY.frames * len(TINY.cameras)
    for a, b in zip(first, second, strict=True):
        assert (a.camera, a.frame, a.degradation) == (b.camera, b.frame, b.degradation)
        assert np.array_equal(a.image, b.image) and np.array_equal(a.label_ids, b.label_ids)
    write_dataset(tmp_path / 'a', TINY, 'train', 1)
    write_dataset(tmp_path / 'b', TINY, 'train', 1)
    files = sorted(p.relative_to(tmp_path / 'a') for p in (tmp_path / 'a').rglob('*.*'))
    assert len(files) > 20
    for name in files:
        assert (tmp_path / 'a' / name).read_bytes() == (tmp_path / 'b' / name).read_bytes(), name


def test_other_seed_index_or_split_gives_other_scenes():
    reference = _frames(TINY)[0].image
    for config, split, index in ((SynthConfig(**{**TINY.to_dict(), 'seed': 1}), 'train', 0),
                                 (TINY, 'train', 1), (TINY, 'val', 0)):
        assert not np.array_equal(_frames(config, split, index)[0].image, reference)


def test_labels_are_valid_cityscapes_ids_and_train_ids():
    for item in _frames(TINY):
        assert item.image.shape == (48, 96, 3) and item.image.dtype == np.uint8
        assert set(np.unique(item.label_ids)) <= VALID_IDS
        assert set(np.unique(item.train_ids)) <= set(range(NUM_CLASSES)) | {255}


def test_most_classes_appear_over_a_few_sequences():
    config = SynthConfig(width=192, height=96, frames=1, annotated_frame=0)
    seen = set()
    for index in range(4):
        for item in generate_sequence(config, 'train', index):
            seen |= set(np.unique(item.train_ids).tolist())
    seen.discard(255)
    assert len(seen) >= 15, sorted(seen)
    # road sidewalk building pole sign vegetation sky person car
    assert {0, 1, 2, 5, 7, 8, 10, 11, 13} <= seen


def test_ground_truth_is_the_clean_scene_on_degraded_frames():
    clean = _frames(SynthConfig(**{**TINY.to_dict(), 'degradation_rate': 0.0}))
    noisy = _frames(SynthConfig(**{**TINY.to_dict(), 'degradation_rate': 0.6}), index=0)
    assert any(item.degradation for item in noisy)
    for a, b in zip(clean, noisy, strict=True):
        assert np.array_equal(a.label_ids, b.label_ids)
        assert np.array_equal(a.image, b.image) == (b.degradation is None)


def test_folder_and_file_names_follow_cityscapes(tmp_path):
    write_dataset(tmp_path, TINY, 'val', 2)
    for camera in TINY.cameras:
        tree = tmp_path / camera
        images = sorted(p.name for p in (tree / 'leftImg8bit_sequence/val/synthcity').iterdir())
        assert images == [f'synthcity_{s:06d}_{f:06d}_leftImg8bit.png'
                          for s in range(2) for f in range(4)]
        gt = sorted(p.name for p in (tree / 'gtFine/val/synthcity').iterdir())
        assert gt == sorted(f'synthcity_{s:06d}_000002_gtFine_{kind}.png' for s in range(2)
                            for kind in ('labelIds', 'labelTrainIds', 'color'))
        dense = sorted(p.name for p in (tree / 'gtFineDense/val/synthcity').iterdir())
        assert dense == [f'synthcity_{s:06d}_{f:06d}_gtFine_labelTrainIds.png'
                         for s in range(2) for f in range(4)]
        info = json.loads((tree / 'sequenceInfo/val/synthcity'
                           / 'synthcity_000001_sequenceInfo.json').read_text())
        assert (info['camera'], info['sequence'], info['annotated_frame']) == (camera, 1, 2)
        assert [f['frame'] for f in info['frames']] == [0, 1, 2, 3]
        assert info['intrinsics']['width'] == 96
        travelled = [f['ego']['s'] for f in info['frames']]
        assert travelled == sorted(travelled) and travelled[-1] > travelled[0]  # forward
    record = json.loads((tmp_path / 'synth.json').read_text())
    assert record['config']['cameras'] == list(TINY.cameras)
    assert record['splits'] == {'val': [0, 1]}


def test_existing_root_with_other_settings_is_refused(tmp_path):
    write_dataset(tmp_path, TINY, 'train', 1)
    with pytest.raises(ValueError, match='other settings'):
        write_dataset(tmp_path, SynthConfig(**{**TINY.to_dict(), 'seed': 5}), 'train', 1)


def test_annotated_frame_is_degraded_in_exactly_the_rate_of_sequences(tmp_path):
    assert sum(annotated_degraded(i, 0.15) for i in range(100)) == 15
    assert sum(annotated_degraded(i, 0.25) for i in range(8)) == 2
    config = SynthConfig(**{**TINY.to_dict(), 'degradation_rate': 0.5, 'cameras': ('front',)})
    write_dataset(tmp_path, config, 'val', 4)
    folder = tmp_path / 'front/sequenceInfo/val/synthcity'
    flags = [json.loads((folder / f'synthcity_{i:06d}_sequenceInfo.json').read_text())
             ['frames'][2]['degradation'] is not None for i in range(4)]
    assert flags == [annotated_degraded(i, 0.5) for i in range(4)] == [False, True, False, True]


def test_degradation_schedule_rate_and_bursts():
    plan = DegradationPlan(rate=0.15, max_burst=3)
    schedule = plan.schedule(np.random.default_rng(0), 20000)
    degraded = np.array([d is not None for d in schedule])
    assert 0.13 < degraded.mean() < 0.17
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, degraded.astype(int), 0])))[::2]
    assert runs.max() <= 3 and {d.kind for d in schedule if d} == set(KINDS)
    assert DegradationPlan(rate=0.0).schedule(np.random.default_rng(0), 50) == [None] * 50


@pytest.mark.parametrize('kind', KINDS)
def test_each_degradation_changes_the_image_deterministically(kind):
    image = _frames(TINY)[0].image
    first = degrade(image, Degradation(kind, 0.8, 3))
    assert first.shape == image.shape and first.dtype == np.uint8
    assert not np.array_equal(first, image)
    assert np.array_equal(first, degrade(image, Degradation(kind, 0.8, 3)))


@pytest.mark.parametrize('settings, message', [
    ({'cameras': ('rear',)}, 'front, front_left, front_right'),
    ({'annotated_frame': 30}, 'annotated_frame'),
    ({'degradation_rate': 1.5}, 'rate'),
    ({'degradations': ('rain',)}, 'noise'),
    ({'city': 'Bad_City'}, 'city'),
])
def test_bad_settings_are_named(settings, message):
    with pytest.raises(ValueError, match=message):
        SynthConfig(**settings)


def test_cli_synth_writes_a_tiny_data_set(tmp_path, capsys):
    config = tmp_path / 'synth.yaml'
    config.write_text('frames: 3\nannotated_frame: 1\nsize: 64x32\ncameras: [front]\n')
    code = main(['synth', str(tmp_path / 'out'), '--config', str(config), '--sequences', '2',
                 '--split', 'val', '--seed', '7'])
    assert code == 0
    assert 'wrote 2 sequences × 3 frames × 1 camera(s)' in capsys.readouterr().out
    images = sorted((tmp_path / 'out/front/leftImg8bit_sequence/val/synthcity').iterdir())
    assert len(images) == 6
    saved = json.loads((tmp_path / 'out/synth.json').read_text())['config']
    assert (saved['seed'], saved['width'], saved['frames']) == (7, 64, 3)


def test_cli_synth_reports_bad_settings(tmp_path, capsys):
    assert main(['synth', str(tmp_path), '--cameras', 'rear']) == 2
    assert 'cameras must be some of' in capsys.readouterr().err
