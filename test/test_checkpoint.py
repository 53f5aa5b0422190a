"""Checkpoints: safetensors round trip, published ERFNet and LMANet files, and every refusal."""

import json
import pickle

import pytest
import torch
from model_tester import randomize_batchnorm
from safetensors.torch import save_file

from lma_perception.models import (
    CheckpointError,
    checkpoint_filter_fn,
    create_model,
    load_checkpoint,
    load_pretrained,
    save_checkpoint,
)
from lma_perception.models.checkpoint import LMANET_RENAMES

MEMORY_PARTS = ('memory_kv', 'query_kv', 'fusion')


def trained_like(name: str, **overrides):
    torch.manual_seed(0)
    model = create_model(name, **overrides)
    randomize_batchnorm(model, torch.Generator().manual_seed(3))
    return model.eval()


def outputs(model, seed: int = 5):
    images = torch.rand(2, 3, 64, 128, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(images)


def published_erfnet_state_dict(model):
    """The package's ERFNet weights as erfnet_pytorch saved them from DataParallel."""
    state = {f'module.{k}': v for k, v in model.state_dict().items()
             if not k.endswith('num_batches_tracked')}
    # The published file also holds the encoder-only head.
    state['module.encoder.output_conv.weight'] = torch.randn(20, 128, 1, 1)
    state['module.encoder.output_conv.bias'] = torch.randn(20)
    return state


def published_lmanet_state_dict(model):
    """The package's LMA-ERFNet weights in LMANet's names (DataParallel, training checkpoint)."""
    renames = [(ours, theirs) for theirs, ours in LMANET_RENAMES]
    state = {}
    for key, tensor in model.state_dict().items():
        for ours, theirs in renames:
            if key.startswith(ours):
                key = theirs + key[len(ours):]
                break
        state[f'module.{key}'] = tensor
    return {'epoch': 50, 'state_dict': state}


def test_safetensors_round_trip_keeps_outputs_and_config(tmp_path):
    model = trained_like('lma_erfnet', num_classes=20, window=21)
    path = tmp_path / 'lma.safetensors'
    save_checkpoint(path, model, input_size=(256, 512))
    loaded, info = load_checkpoint(path)
    assert torch.equal(outputs(loaded), outputs(model))
    assert info.config == model.model_config and info.config.variant == 'lma_erfnet'
    assert info.input_size == (256, 512) and info.source == 'lma_perception'
    assert not loaded.training


def test_published_erfnet_pth_loads_without_edits(tmp_path):
    model = trained_like('erfnet')
    path = tmp_path / 'erfnet_pretrained.pth'
    torch.save(published_erfnet_state_dict(model), path)
    loaded, info = load_checkpoint(path)
    assert info.source == 'erfnet' and info.config.lma is None
    assert info.input_size == (512, 1024)
    assert torch.equal(outputs(loaded), outputs(model))


def test_erfnet_weights_start_an_lma_model(tmp_path):
    erfnet = trained_like('erfnet')
    path = tmp_path / 'erfnet_pretrained.pth'
    torch.save(published_erfnet_state_dict(erfnet), path)
    lma = create_model('lma_erfnet').eval()
    report = load_pretrained(lma, path, allow_missing=MEMORY_PARTS)
    assert report.dropped == [
        'module.encoder.output_conv.weight', 'module.encoder.output_conv.bias',
    ]
    assert report.missing and all(k.startswith(MEMORY_PARTS) for k in report.missing)
    assert report.filled and all(k.endswith('num_batches_tracked') for k in report.filled)
    assert torch.equal(outputs(lma), outputs(erfnet))  # empty memory: the ERFNet path
    with pytest.raises(CheckpointError, match='lacks 28 weights'):
        load_pretrained(create_model('lma_erfnet'), path)


def test_published_lmanet_checkpoint_loads(tmp_path):
    model = trained_like('lma_erfnet')
    path = tmp_path / 'lmanet_erf_best.pth'
    torch.save(published_lmanet_state_dict(model), path)
    loaded, info = load_checkpoint(path)
    assert info.source == 'lmanet' and info.config == model.model_config
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_filter_reports_instead_of_hiding():
    model = create_model('erfnet')
    state = published_erfnet_state_dict(model)
    del state['module.decoder.output_conv.bias']
    state['module.decoder.extra.weight'] = torch.zeros(1)
    report = checkpoint_filter_fn(state, model)
    assert report.missing == ['decoder.output_conv.bias']
    assert report.unexpected == ['module.decoder.extra.weight']
    assert len(report.dropped) == 2
    assert 'encoder.initial_block.conv.weight' in report.state_dict


def test_missing_unexpected_and_misshapen_weights_are_refused(tmp_path):
    state = published_erfnet_state_dict(trained_like('erfnet'))
    cases = {
        'lacks 1 weights: encoder.layers.3.bn1.weight': lambda s: s.pop(
            'module.encoder.layers.3.bn1.weight'),
        'does not: module.decoder.layers.9.conv.weight': lambda s: s.update(
            {'module.decoder.layers.9.conv.weight': torch.zeros(1)}),
        'wrong shape: decoder.layers.1.bn1.weight': lambda s: s.update(
            {'module.decoder.layers.1.bn1.weight': torch.zeros(65)}),
    }
    for message, damage in cases.items():
        damaged = dict(state)
        damage(damaged)
        torch.save(damaged, tmp_path / 'damaged.pth')
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(tmp_path / 'damaged.pth')


def test_wrong_class_count_is_refused(tmp_path):
    path = tmp_path / 'erfnet.pth'
    torch.save(published_erfnet_state_dict(trained_like('erfnet')), path)
    with pytest.raises(CheckpointError, match='predicts 20 classes, the model 12'):
        load_pretrained(create_model('erfnet', num_classes=12), path)


@pytest.mark.parametrize('content', [b'', b'hello, not weights\n', bytes(range(256)) * 40,
                                     b'PK\x03\x04 truncated zip'])
def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path, content):
    path = tmp_path / 'model.pth'
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match='not a checkpoint'):
        load_checkpoint(path)


def test_damaged_and_foreign_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match='no such checkpoint file'):
        load_checkpoint(tmp_path / 'absent.safetensors')
    path = tmp_path / 'model.safetensors'
    save_checkpoint(path, create_model('erfnet'), input_size=(64, 128))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match='damaged safetensors'):
        load_checkpoint(path)
    torch.save([torch.zeros(3)], tmp_path / 'list.pth')
    with pytest.raises(CheckpointError, match='no state dict of named tensors'):
        load_checkpoint(tmp_path / 'list.pth')
    save_file({'weight': torch.zeros(2)}, tmp_path / 'other.safetensors')
    with pytest.raises(CheckpointError, match='not an ERFNet checkpoint'):
        load_checkpoint(tmp_path / 'other.safetensors')
    save_file({'weight': torch.zeros(2)}, tmp_path / 'bad_meta.safetensors',
              metadata={'lma_perception': json.dumps({'model': {'backbone': {'depth': 3}}})})
    with pytest.raises(CheckpointError, match='unreadable model config'):
        load_checkpoint(tmp_path / 'bad_meta.safetensors')


class Payload:
    """Pickles to a call of `open(marker, 'w')`: loading it with plain pickle creates a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, 'w')


def test_a_pickle_that_would_run_code_is_refused_and_does_not_run(tmp_path):
    marker = tmp_path / 'code_ran'
    # The payload is real: an unrestricted unpickler runs it.
    pickle.loads(pickle.dumps(Payload(marker))).close()
    assert marker.exists()
    marker.unlink()

    path = tmp_path / 'malicious.pth'
    state = published_erfnet_state_dict(create_model('erfnet'))
    state['module.payload'] = Payload(marker)
    torch.save(state, path)
    with pytest.raises(CheckpointError, match='refused'):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match='refused'):
        load_pretrained(create_model('erfnet'), path)
    assert not marker.exists()


def test_save_needs_a_valid_input_size_and_a_config(tmp_path):
    with pytest.raises(ValueError, match='multiples of 8'):
        save_checkpoint(tmp_path / 'm.safetensors', create_model('erfnet'), input_size=(100, 64))
    bare = torch.nn.Conv2d(1, 1, 1)
    with pytest.raises(ValueError, match='model_config'):
        save_checkpoint(tmp_path / 'm.safetensors', bare, input_size=(64, 64))
