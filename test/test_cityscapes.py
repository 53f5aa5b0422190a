"""The Cityscapes-style reader on a synthetic tree and on a hand-made real-layout tree."""

import json
import shutil

import cv2
import numpy as np
import pytest

from lma_perception.cli import log_to_stderr, main
from lma_perception.data.cityscapes import CityscapesError, CityscapesTree, ClipDataset
from lma_perception.labels import ID_TO_TRAIN_ID
from lma_perception.synthetic.generator import SynthConfig, write_dataset

CONFIG = SynthConfig(width=96, height=48, frames=5, annotated_frame=3,
                     cameras=('front', 'front_right'), degradation_rate=0.5)


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic')
    return write_dataset(root, CONFIG, 'val', 2)


def _real_tree(root, with_sequence=True):
    """Real Cityscapes naming: a hyphenated city, frame numbers not starting at 0, two
    snippets under one sequence number, label ids only (no train-id files)."""
    rng = np.random.default_rng(0)
    city = 'bad-honnef'
    images = root / ('leftImg8bit_sequence' if with_sequence else 'leftImg8bit') / 'val' / city
    labels = root / 'gtFine' / 'val' / city
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    snippets = {275: 278, 500: 503}  # first frame: annotated frame
    for first, annotated in snippets.items():
        frames = range(first, first + 5) if with_sequence else (annotated,)
        for frame in frames:
            image = rng.integers(0, 255, (32, 64, 3), np.uint8)
            cv2.imwrite(str(images / f'{city}_000000_{frame:06d}_leftImg8bit.png'), image)
        ids = np.full((32, 64), 7, np.uint8)  # road
        ids[:8] = 23    # sky
        ids[8:12] = 1   # ego vehicle: ignored
        ids[12:16] = 26  # car
        cv2.imwrite(str(labels / f'{city}_000000_{annotated:06d}_gtFine_labelIds.png'), ids)
    return root


def test_synthetic_cameras_sequences_and_annotated_frames(synthetic):
    tree = CityscapesTree(synthetic, 'val')
    assert tree.cameras == ('front', 'front_right')
    assert [s.name for s in tree.sequences('front')] == ['synthcity_000000_000000',
                                                        'synthcity_000001_000000']
    annotated = tree.annotated()
    assert [(f.camera, f.sequence, f.frame) for f in annotated] == [
        ('front', 0, 3), ('front', 1, 3), ('front_right', 0, 3), ('front_right', 1, 3)]
    frame = tree.load(annotated[0])
    assert frame.image.shape == (48, 96, 3) and frame.image.dtype == np.uint8
    assert frame.labels.shape == (48, 96) and np.array_equal(frame.labels, frame.dense_labels)
    assert frame.name == 'synthcity_000000_000003'


def test_degradation_flags_come_from_the_sidecar(synthetic):
    tree = CityscapesTree(synthetic, 'val', cameras=['front'])
    info = json.loads((synthetic / 'front/sequenceInfo/val/synthcity'
                       / 'synthcity_000001_sequenceInfo.json').read_text())
    expected = [f['degradation'] is not None for f in info['frames']]
    frames = [f for f in tree.stream() if f.sequence == 1]
    assert [f.degraded for f in frames] == expected
    assert frames[3].degraded  # sequence 1 of rate 0.5: the annotated frame is degraded
    assert frames[3].degradation['kind'] in ('noise', 'motion_blur', 'glare', 'occluder',
                                             'dropped_rows')


def test_resizing_is_bilinear_for_images_and_nearest_for_labels(synthetic):
    full = CityscapesTree(synthetic, 'val')
    small = CityscapesTree(synthetic, 'val', size=(24, 48))
    big, little = full.load(full.annotated()[0]), small.load(small.annotated()[0])
    assert little.image.shape == (24, 48, 3) and little.labels.shape == (24, 48)
    assert set(np.unique(little.labels)) <= set(np.unique(big.labels))
    assert np.array_equal(little.labels, big.labels[::2, ::2])
    area = cv2.resize(big.image, (48, 24), interpolation=cv2.INTER_AREA)
    assert np.array_equal(little.image, area)


def test_clip_is_the_annotated_frame_and_the_frames_before_it(synthetic):
    tree = CityscapesTree(synthetic, 'val')
    target = tree.annotated('front_right')[1]
    clip = tree.clip(target, 3)
    assert [(f.camera, f.sequence, f.frame) for f in clip] == [
        ('front_right', 1, 0), ('front_right', 1, 1), ('front_right', 1, 2),
        ('front_right', 1, 3)]
    assert clip[-1].labels is not None and all(f.labels is None for f in clip[:-1])
    with pytest.raises(CityscapesError, match='3 earlier frame'):
        tree.clip(target, 4)


def test_clip_dataset_stacks_frames(synthetic):
    dataset = ClipDataset(CityscapesTree(synthetic, 'val', size=(24, 48)), 2)
    assert len(dataset) == 4
    clip = dataset[3]
    assert clip.images.shape == (3, 24, 48, 3) and clip.labels.shape == (24, 48)
    assert clip.dense_labels.shape == (3, 24, 48)
    assert np.array_equal(clip.dense_labels[-1], clip.labels)
    assert (clip.camera, clip.name) == ('front_right', 'synthcity_000001_000003')


def test_stream_is_in_time_order_with_cameras_interleaved(synthetic):
    order = [(f.sequence, f.frame, f.camera) for f in CityscapesTree(synthetic, 'val').stream()]
    assert order == [(s, f, c) for s in range(2) for f in range(5)
                     for c in ('front', 'front_right')]


def test_single_camera_root_is_named_after_its_folder_or_as_given(synthetic):
    assert CityscapesTree(synthetic / 'front', 'val').cameras == ('front',)
    assert CityscapesTree(synthetic / 'front', 'val', camera_name='cam0').cameras == ('cam0',)


def test_real_layout_label_ids_snippets_and_hyphenated_city(tmp_path):
    tree = CityscapesTree(_real_tree(tmp_path / 'cityscapes'), 'val')
    assert tree.cameras == ('cityscapes',)
    assert [s.name for s in tree.sequences()] == ['bad-honnef_000000_000275',
                                                 'bad-honnef_000000_000500']
    annotated = tree.annotated()
    assert [f.frame for f in annotated] == [278, 503]
    frame = tree.load(annotated[1])
    assert frame.degraded is None and frame.dense_labels is None
    expected = np.full((32, 64), 0, np.uint8)
    expected[:8], expected[8:12], expected[12:16] = 10, 255, 13
    assert np.array_equal(frame.labels, expected)
    assert np.array_equal(frame.labels, ID_TO_TRAIN_ID[cv2.imread(
        str(annotated[1].labels), cv2.IMREAD_UNCHANGED)])
    assert [f.frame for f in tree.clip(annotated[0], 3)] == [275, 276, 277, 278]


def test_tree_without_sequence_folder_gives_single_frames_only(tmp_path):
    tree = CityscapesTree(_real_tree(tmp_path / 'cs', with_sequence=False), 'val')
    annotated = tree.annotated()
    assert tree.load(annotated[0]).labels is not None
    with pytest.raises(CityscapesError, match='leftImg8bit_sequence'):
        tree.clip(annotated[0], 2)


def test_problems_are_reported_by_name(tmp_path, synthetic):
    with pytest.raises(CityscapesError, match='no such folder'):
        CityscapesTree(tmp_path / 'missing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(CityscapesError, match='not a Cityscapes tree'):
        CityscapesTree(tmp_path / 'empty')
    with pytest.raises(CityscapesError, match="no images of split 'train'"):
        CityscapesTree(synthetic, 'train')
    with pytest.raises(CityscapesError, match=r'rear.*found: front, front_right'):
        CityscapesTree(synthetic, 'val', cameras=['rear'])
    root = _real_tree(tmp_path / 'broken')
    victim = next((root / 'leftImg8bit_sequence/val/bad-honnef').iterdir())
    victim.write_bytes(b'not a png')
    tree = CityscapesTree(root, 'val')
    files = next(f for s in tree.sequences() for f in s.frames if f.image == victim)
    with pytest.raises(CityscapesError, match='cannot read image .*' + victim.name):
        tree.load(files)


def test_annotated_frames_without_a_snippet_are_single_frames(tmp_path):
    """With leftImg8bit_sequence present, leftImg8bit still gives the frames it lacks."""
    root = _real_tree(tmp_path / 'cs')
    single = root / 'leftImg8bit' / 'val' / 'bad-honnef'
    single.mkdir(parents=True)
    for path in sorted((root / 'leftImg8bit_sequence/val/bad-honnef').glob('*_000503_*')):
        shutil.copy(path, single)  # leftImg8bit holds every annotated frame, as in the download
    for path in (root / 'leftImg8bit_sequence/val/bad-honnef').glob('*_0005??_*'):
        path.unlink()  # the second snippet is missing
    shutil.copy(root / 'leftImg8bit_sequence/val/bad-honnef' /
                'bad-honnef_000000_000278_leftImg8bit.png', single)
    tree = CityscapesTree(root, 'val')
    assert [f.frame for f in tree.annotated()] == [278, 503]
    assert [len(s.frames) for s in tree.sequences()] == [5, 1]
    assert tree.annotated()[0].image.parent.parent.parent.name == 'leftImg8bit_sequence'
    assert tree.annotated_counts() == (1, 1)
    assert '2 annotated frames: 1 with earlier frames of their snippet, 1 as single frames' \
        in tree.describe()
    assert tree.load(tree.annotated()[1]).labels is not None


def test_a_label_without_any_image_is_left_out_with_a_warning_naming_it(tmp_path, capsys):
    log_to_stderr()  # as every command does
    root = _real_tree(tmp_path / 'cs')
    labels = root / 'gtFine/val/bad-honnef'
    shutil.copy(labels / 'bad-honnef_000000_000278_gtFine_labelIds.png',
                labels / 'bad-honnef_000007_000019_gtFine_labelIds.png')
    tree = CityscapesTree(root, 'val')
    assert tree.skipped == ['bad-honnef_000007_000019']
    warning = capsys.readouterr().err  # what a user of the commands sees
    assert 'bad-honnef_000007_000019 (cs): left out' in warning and 'no image' in warning
    assert [f.frame for f in tree.annotated()] == [278, 503]
    assert '1 left out (no image)' in tree.describe()


def test_the_download_layout_unpacked_zip_by_zip_is_one_camera(tmp_path):
    flat = _real_tree(tmp_path / 'flat')
    nested = tmp_path / 'cityscapes'
    for part, zip_folder in (('leftImg8bit_sequence', 'leftImg8bit_sequence_trainvaltest'),
                             ('gtFine', 'gtFine_trainvaltest')):
        (nested / zip_folder).mkdir(parents=True)
        shutil.copytree(flat / part, nested / zip_folder / part)
        (nested / zip_folder / 'license.txt').write_text('terms')
    tree, reference = CityscapesTree(nested, 'val'), CityscapesTree(flat, 'val')
    assert tree.cameras == ('cityscapes',)
    assert [(f.name, f.labels.name) for f in tree.annotated()] == [
        (f.name, f.labels.name) for f in reference.annotated()]
    assert [len(s.frames) for s in tree.sequences()] == [5, 5]


def _unlabelled_tree(root):
    tree = _real_tree(root)
    shutil.rmtree(tree / 'gtFine')
    (tree / 'gtFine_trainvaltest').mkdir()  # an empty zip folder: looked in, nothing found
    return tree


def test_nothing_labelled_is_an_error_naming_the_folders(tmp_path):
    root = _unlabelled_tree(tmp_path / 'cs')
    with pytest.raises(CityscapesError) as error:
        CityscapesTree(root, 'val')
    message = str(error.value)
    assert message.startswith("nothing labelled in split 'val'")
    for folder in (root, root / 'leftImg8bit_sequence' / 'val', root / 'gtFine_trainvaltest'):
        assert str(folder) in message


@pytest.mark.parametrize('command', [
    ['eval', '{root}', '--device', 'cpu'],
    ['bag', 'write', '{root}', '{out}'],
    ['train', '--stage', 'single', '--data', '{root}', '--output', '{out}', '--device', 'cpu',
     '--epochs', '1', '--steps-per-epoch', '1', '--input-size', '64x32', '--train-split', 'val',
     '--val-split', 'val'],
])
def test_commands_stop_on_a_tree_with_nothing_labelled(tmp_path, capsys, command):
    root = _unlabelled_tree(tmp_path / 'cs')
    paths = {'root': root, 'out': tmp_path / 'out'}
    assert main([part.format(**paths) for part in command]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith('lma-perception: error: nothing labelled')
    assert str(root / 'leftImg8bit_sequence' / 'val') in captured.err
    assert 'mIoU' not in captured.out and not (tmp_path / 'out').exists()
