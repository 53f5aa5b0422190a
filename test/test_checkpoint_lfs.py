"""A Git LFS pointer in place of the weights is named as such, by the loader and the commands."""

import pytest

from lma_perception.cli import main
from lma_perception.models import CheckpointError, load_checkpoint
from lma_perception.synthetic.generator import SynthConfig, write_dataset

POINTER = (
    'version https://git-lfs.github.com/spec/v1\n'
    'oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n'
    'size 10826360\n'
)


@pytest.fixture
def pointer(tmp_path):
    path = tmp_path / 'lma_erfnet.safetensors'
    path.write_text(POINTER)
    return path


def test_loader_says_it_is_an_lfs_pointer(pointer):
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(pointer)
    message = str(error.value)
    assert 'Git LFS pointer' in message and str(pointer) in message
    assert 'sha256:4d7a2146' in message and '10826360 bytes' in message
    assert 'git lfs pull' in message
    assert 'Unsupported operand' not in message


def test_eval_stops_with_the_lfs_message(pointer, tmp_path, capsys):
    config = SynthConfig(width=32, height=16, frames=2, annotated_frame=1, cameras=('front',))
    tree = write_dataset(tmp_path / 'tree', config, 'val', 1)
    assert main(['eval', str(tree), '--weights', str(pointer), '--device', 'cpu']) == 1
    error = capsys.readouterr().err
    assert error.startswith('lma-perception: error: ') and 'Git LFS pointer' in error
    assert 'Traceback' not in error
