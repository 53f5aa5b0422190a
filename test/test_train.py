"""Training end to end on a tiny synthetic tree: the loss falls, checkpoints load, resume works."""

import json

import pytest
import torch

from lma_perception.cli import main
from lma_perception.models import create_model, load_checkpoint
from lma_perception.synthetic.generator import SynthConfig, write_dataset
from lma_perception.train import TrainConfig, Trainer

SIZE = (64, 128)


@pytest.fixture(scope='module')
def tiny_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp('synth')
    config = SynthConfig(width=128, height=64, frames=8, annotated_frame=6, cameras=('front',))
    write_dataset(root, config, 'train', 2)
    write_dataset(root, config, 'val', 1)
    return root


def single_stage(tree, output, **overrides):
    options = dict(stage='single', data=str(tree), output=str(output), input_size=SIZE,
                   dense_labels=True, epochs=6, steps_per_epoch=2, batch_size=4, lr=2e-3)
    options.update(overrides)
    return TrainConfig(**options)


def test_single_frame_training_lowers_the_loss_and_saves_a_checkpoint(tiny_tree, tmp_path):
    result = Trainer(single_stage(tiny_tree, tmp_path / 'erfnet')).fit()

    losses = [epoch['loss'] for epoch in result.history]
    assert len(losses) == 6
    assert losses[-1] < losses[0]
    _, info = load_checkpoint(result.best_checkpoint)
    assert info.config.variant == 'erfnet'
    assert info.input_size == SIZE
    assert (tmp_path / 'erfnet' / 'config.yaml').exists()
    assert json.loads((tmp_path / 'erfnet' / 'history.json').read_text()) == result.history


def test_lma_stage_trains_only_the_memory_modules(tiny_tree, tmp_path):
    stage1 = Trainer(single_stage(tiny_tree, tmp_path / 'erfnet', epochs=1)).fit()
    config = TrainConfig(stage='lma', init=str(stage1.best_checkpoint), data=str(tiny_tree),
                         output=str(tmp_path / 'lma'), input_size=SIZE, dense_labels=True,
                         epochs=6, steps_per_epoch=2, batch_size=2, memory_length=2, lr=1e-3)
    trainer = Trainer(config)
    frozen_before = {k: v.clone() for k, v in trainer.model.state_dict().items()
                     if k.startswith(('encoder.', 'decoder.'))}
    result = trainer.fit()

    after = trainer.model.state_dict()
    assert all(torch.equal(frozen_before[k], after[k]) for k in frozen_before)
    _, info = load_checkpoint(result.best_checkpoint)
    assert info.config.variant == 'lma_erfnet'
    losses = [epoch['loss'] for epoch in result.history]
    assert losses[-1] < losses[0]


def test_resume_continues_from_the_last_epoch(tiny_tree, tmp_path):
    output = tmp_path / 'run'
    Trainer(single_stage(tiny_tree, output, epochs=1)).fit()
    resumed = Trainer(single_stage(tiny_tree, output, epochs=2)).fit(resume=True)

    assert [epoch['epoch'] for epoch in resumed.history] == [1, 2]


def test_training_is_deterministic_for_a_seed(tiny_tree, tmp_path):
    first = Trainer(single_stage(tiny_tree, tmp_path / 'a', epochs=1)).fit()
    second = Trainer(single_stage(tiny_tree, tmp_path / 'b', epochs=1)).fit()

    assert first.history[0]['loss'] == second.history[0]['loss']


def test_cli_reports_bad_options_in_one_line(tiny_tree, tmp_path, capsys):
    assert main(['train', '--stage', 'lma', '--data', str(tiny_tree),
                 '--output', str(tmp_path)]) == 2
    assert "stage 'lma' needs init" in capsys.readouterr().err
    assert main(['train', '--stage', 'single', '--data', str(tmp_path / 'missing'),
                 '--output', str(tmp_path)]) == 1
    assert capsys.readouterr().err.startswith('lma-perception: error: ')


def test_fine_tuning_everything_trains_both_paths(tiny_tree, tmp_path):
    stage1 = Trainer(single_stage(tiny_tree, tmp_path / 'erfnet', epochs=1)).fit()
    config = TrainConfig(stage='lma', init=str(stage1.best_checkpoint), data=str(tiny_tree),
                         output=str(tmp_path / 'lma'), input_size=SIZE, dense_labels=True,
                         epochs=1, steps_per_epoch=2, batch_size=2, memory_length=2,
                         train_all=True)
    trainer = Trainer(config)
    images, _ = next(iter(torch.utils.data.DataLoader(trainer.train_samples, batch_size=2)))
    with_memory, without_memory = trainer.forward(images)
    assert with_memory.shape == without_memory.shape == (2, 20, *SIZE)
    assert not torch.allclose(with_memory, without_memory)

    encoder_before = trainer.model.encoder.initial_block.conv.weight.detach().clone()
    trainer.fit()
    assert not torch.equal(encoder_before, trainer.model.encoder.initial_block.conv.weight)


def test_degraded_targets_follow_the_sequence_sidecars(tiny_tree):
    from lma_perception.data.cityscapes import CityscapesTree
    from lma_perception.train.samples import degraded_targets, sample_frames

    tree = CityscapesTree(tiny_tree, 'train')
    samples = sample_frames(tree, 0, dense_labels=True)
    flags = degraded_targets(tree, samples)
    loaded = [tree.load(files).degraded for files in samples]
    assert flags == loaded
    assert any(flags)


def test_degraded_frames_can_be_drawn_more_often(tiny_tree, tmp_path):
    trainer = Trainer(single_stage(tiny_tree, tmp_path / 'run', epochs=1, degraded_weight=4.0))
    flags = [weight == 4.0 for weight in trainer.sample_weights]
    assert any(flags) and not all(flags)
    assert len(trainer.fit().history) == 1


def test_lma_stage_starts_from_the_published_erfnet_weights(tiny_tree, tmp_path):
    # erfnet_pytorch's erfnet_pretrained.pth: a DataParallel state dict ('module.' prefix),
    # without BatchNorm counters, with the encoder-only head.
    published = {f'module.{name}': value for name, value in
                 create_model('erfnet').state_dict().items()
                 if not name.endswith('num_batches_tracked')}
    published['module.encoder.output_conv.weight'] = torch.randn(20, 128, 1, 1)
    published['module.encoder.output_conv.bias'] = torch.randn(20)
    torch.save(published, tmp_path / 'erfnet_pretrained.pth')
    config = TrainConfig(stage='lma', init=str(tmp_path / 'erfnet_pretrained.pth'),
                         data=str(tiny_tree), output=str(tmp_path / 'lma'), input_size=SIZE,
                         dense_labels=True, epochs=1, steps_per_epoch=1, batch_size=2,
                         memory_length=2)
    trainer = Trainer(config)
    encoder = trainer.model.encoder.state_dict()
    assert all(torch.equal(encoder[name], published[f'module.encoder.{name}'])
               for name in encoder if not name.endswith('num_batches_tracked'))
    assert trainer.fit().epochs_run == 1
