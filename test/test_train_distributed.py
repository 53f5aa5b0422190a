"""Training under torchrun: two CPU processes (gloo) against one process on the same global batch.

The two-process runs are real `lma-perception train` commands started by torchrun. Each
worker records every file it opens for writing under the run's folder (a `sitecustomize`
audit hook on this test's PYTHONPATH; `safetensors.torch.save_file` and `torch.save` open
their files in native code, so they are wrapped too), which shows which rank wrote what.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import lma_perception
from lma_perception.cli import main
from lma_perception.models import load_pretrained
from lma_perception.synthetic.generator import SynthConfig, write_dataset
from lma_perception.train import TrainConfig, Trainer
from lma_perception.train.distributed import (
    Processes,
    per_process_batch,
    training_sampler,
    validation_shard,
)

SIZE = (64, 128)
OUTPUTS = {'config.yaml', 'best.safetensors', 'last.safetensors', 'last_state.pt',
           'history.json'}
# Tolerance of the weights after 4 Adam steps (learning rate 2e-3; the median weight moves
# by 3.5e-3): the processes sum losses and gradients in other orders, and Adam divides each
# gradient by its own running norm, which turns rounding into visible steps where the exact
# gradient is about zero (conv biases right before a BatchNorm). Measured here: median
# difference 1.6e-5, 99th percentile 1.6e-4, largest 9.1e-4. A batch drawn differently, or a
# step taken at another rate, moves most weights by about the learning rate.
MEDIAN_TOLERANCE = 1e-4
PERCENTILE_99_TOLERANCE = 1e-3

WRITE_RECORDER = '''
import os
import sys

if os.environ.get('RANK') is not None:
    _watched = os.environ['RECORD_WRITES_UNDER']
    _log = os.path.join(os.environ['RECORD_WRITES_TO'], 'rank' + os.environ['RANK'] + '.txt')
    _busy = []

    def _record(path):
        _busy.append(True)
        try:
            with open(_log, 'a') as log:
                log.write(path + '\\n')
        finally:
            _busy.pop()

    def _hook(event, args):
        if event != 'open' or _busy:
            return
        path, mode, flags = args
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        writing = (any(c in mode for c in 'wax+') if mode
                   else bool(flags & (os.O_WRONLY | os.O_RDWR)))
        if writing and isinstance(path, str) and os.path.abspath(path).startswith(_watched):
            _record(os.path.abspath(path))

    sys.addaudithook(_hook)
    import safetensors.torch
    import torch

    def _recorded(save):
        def recorded_save(what, path, *args, **kwargs):
            _record(os.path.abspath(os.fspath(path)))
            return save(what, path, *args, **kwargs)
        return recorded_save

    safetensors.torch.save_file = _recorded(safetensors.torch.save_file)
    torch.save = _recorded(torch.save)
'''


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp('synth')
    config = SynthConfig(width=128, height=64, frames=8, annotated_frame=6, cameras=('front',))
    write_dataset(root, config, 'train', 2)
    write_dataset(root, config, 'val', 3)  # 3 validation samples: shards of 2 and 1
    return root


def options(tree, output, epochs):
    return ['--stage', 'single', '--data', str(tree), '--output', str(output),
            '--input-size', f'{SIZE[1]}x{SIZE[0]}', '--dense-labels', '--epochs', str(epochs),
            '--steps-per-epoch', '2', '--batch-size', '4', '--lr', '2e-3', '--seed', '3',
            '--no-dropout']


def torchrun(tree, output, epochs, records, *extra):
    """Run `lma-perception train` in two gloo processes; returns the per-rank logs folder."""
    hooks = records / 'hooks'
    hooks.mkdir(parents=True, exist_ok=True)
    (hooks / 'sitecustomize.py').write_text(WRITE_RECORDER)
    package_root = Path(lma_perception.__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=f'{hooks}{os.pathsep}{package_root}', OMP_NUM_THREADS='1',
               RECORD_WRITES_UNDER=str(output.resolve()), RECORD_WRITES_TO=str(records))
    logs = records / 'logs'
    result = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
         '--log-dir', str(logs), '--redirects', '3',
         '-m', 'lma_perception.cli', 'train', *options(tree, output, epochs), *extra],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return logs


def rank_output(logs, rank):
    """Everything one rank printed (stdout and stderr) in the newest run under ``logs``."""
    files = sorted(logs.glob(f'**/attempt_*/{rank}/*.log'), key=lambda p: p.stat().st_mtime)
    return ''.join(path.read_text() for path in files[-2:])


def written(records, rank):
    log = records / f'rank{rank}.txt'
    return {Path(line).name for line in log.read_text().split()} if log.exists() else set()


@pytest.fixture(scope='module')
def runs(tree, tmp_path_factory):
    """Batch 4 on one process in 2 micro-batches and on two processes, each for one epoch and
    then resumed for a second; one process validating the two-process checkpoint."""
    base = tmp_path_factory.mktemp('runs')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun worker: the same kernels, the same rounding
    try:
        # Run as the two processes are: one epoch, then resumed for a second (the poly
        # schedule spans the epochs asked for, so a 2-epoch run would step other rates).
        for epochs in (1, 2):
            single = Trainer(TrainConfig(
                stage='single', data=str(tree), output=str(base / 'single'), input_size=SIZE,
                dense_labels=True, epochs=epochs, steps_per_epoch=2, batch_size=4,
                accumulate=2, lr=2e-3, seed=3, dropout=False,
            ))
            single.fit(resume=epochs > 1)
        output = base / 'distributed'
        first_logs = torchrun(tree, output, 1, base / 'first')
        second_logs = torchrun(tree, output, 2, base / 'second', '--resume')
        # The two-process run's last checkpoint, scored by one process.
        validator = Trainer(TrainConfig(
            stage='single', data=str(tree), output=str(base / 'validator'), input_size=SIZE,
            dense_labels=True, batch_size=4, seed=3,
        ))
        load_pretrained(validator.model, output / 'last.safetensors')
        single_process_miou = validator.validate()
    finally:
        torch.set_num_threads(threads)
    return {
        'single': single, 'output': output, 'base': base, 'first_logs': first_logs,
        'second_logs': second_logs, 'single_process_miou': single_process_miou,
    }


def test_rank_0_alone_writes_checkpoints_config_history_and_progress(runs):
    base = runs['base']
    assert written(base / 'first', 0) == OUTPUTS
    assert written(base / 'first', 1) == set()
    assert written(base / 'second', 0) >= OUTPUTS - {'best.safetensors'}
    assert written(base / 'second', 1) == set()
    main_output, other_output = (rank_output(runs['first_logs'], rank) for rank in (0, 1))
    assert 'epoch 1/1: loss' in main_output and 'best validation mIoU' in main_output
    assert 'step/s' in main_output  # the progress bar
    assert 'epoch' not in other_output and 'mIoU' not in other_output


def test_resume_continues_from_the_step_it_stopped_at(runs):
    history = json.loads((runs['output'] / 'history.json').read_text())
    assert [(record['epoch'], record['step']) for record in history] == [(1, 2), (2, 4)]
    state = torch.load(runs['output'] / 'last_state.pt', weights_only=True)
    assert state['step'] == 4
    assert state['scheduler']['last_epoch'] == 4  # the poly schedule advanced once per step
    assert 'epoch 2/2: loss' in rank_output(runs['second_logs'], 0)


def test_two_processes_train_as_one_process_on_the_same_global_batch(runs):
    single = runs['single']
    distributed = load_file(str(runs['output'] / 'last.safetensors'))
    names = [name for name, _ in single.model.named_parameters()]
    own = torch.cat([single.model.get_parameter(name).detach().flatten() for name in names])
    theirs = torch.cat([distributed[name].flatten() for name in names])
    difference = (own - theirs).abs()
    # The weights moved: the runs agree on training, not on doing nothing.
    initial = Trainer(TrainConfig(stage='single', data=single.config.data, output='unused',
                                  input_size=SIZE, dense_labels=True, batch_size=4, seed=3))
    start = torch.cat([initial.model.get_parameter(name).detach().flatten() for name in names])
    moved = (own - start).abs()
    print(f'weights moved by median {moved.median():.1e}; differences: median '
          f'{difference.median():.1e}, 99th percentile {difference.quantile(0.99):.1e}, '
          f'max {difference.max():.1e}')
    assert difference.median() < MEDIAN_TOLERANCE
    assert difference.quantile(0.99) < PERCENTILE_99_TOLERANCE
    assert moved.median() > 10 * MEDIAN_TOLERANCE
    history = json.loads((runs['output'] / 'history.json').read_text())
    for own_epoch, their_epoch in zip(single.history, history, strict=True):
        # Gradients summed across two processes in another order: losses agree to ~1e-5.
        assert their_epoch['loss'] == pytest.approx(own_epoch['loss'], rel=1e-4)
        assert their_epoch['lr'] == pytest.approx(own_epoch['lr'], rel=1e-9)


def test_distributed_validation_scores_as_one_process(runs):
    history = json.loads((runs['output'] / 'history.json').read_text())
    assert history[-1]['val_miou'] == pytest.approx(runs['single_process_miou'], abs=1e-12)


@pytest.mark.parametrize(('samples', 'world_size'), [(3, 2), (5, 3), (2, 4), (6, 2)])
def test_validation_shards_hold_every_sample_once(samples, world_size):
    shards = [list(validation_shard(list(range(samples)), Processes(rank, world_size)))
              for rank in range(world_size)]
    assert sorted(index for shard in shards for index in shard) == list(range(samples))


def test_a_global_batch_that_does_not_divide_among_the_processes_is_refused(
        tree, tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match=r'batch_size 6 .* does not divide among 4 processes'):
        per_process_batch(6, Processes(0, 4))
    assert per_process_batch(8, Processes(1, 4)) == 2
    monkeypatch.setenv('WORLD_SIZE', '4')
    monkeypatch.setenv('RANK', '0')
    assert main(['train', *options(tree, tmp_path / 'run', 1), '--batch-size', '6']) == 2
    assert 'does not divide among 4 processes; use a multiple of 4' in capsys.readouterr().err
    assert not (tmp_path / 'run').exists()


def test_weighted_draws_are_shared_out_as_one_process_draws_them():
    weights = [1.0, 4.0, 1.0, 1.0, 4.0, 1.0, 1.0]
    dataset = list(range(len(weights)))
    one = training_sampler(dataset, Processes(), seed=5, weights=weights)
    shares = [training_sampler(dataset, Processes(rank, 2), seed=5, weights=weights)
              for rank in range(2)]
    draws = []
    for epoch in (0, 1):
        for sampler in (one, *shares):
            sampler.set_epoch(epoch)
        draws.append(list(one))
        assert [list(share) for share in shares] == [draws[-1][0:6:2], draws[-1][1:6:2]]
    assert draws[0] != draws[1]


def test_stage_2_trains_the_memory_on_two_processes_with_the_backbone_frozen(tree, tmp_path):
    stage1 = Trainer(TrainConfig(stage='single', data=str(tree), output=str(tmp_path / 'erfnet'),
                                 input_size=SIZE, dense_labels=True, epochs=1, steps_per_epoch=1,
                                 batch_size=4))
    stage1.fit()
    output = tmp_path / 'lma'
    torchrun(tree, output, 1, tmp_path / 'records', '--stage', 'lma', '--memory-length', '2',
             '--init', str(tmp_path / 'erfnet' / 'best.safetensors'), '--degraded-weight', '3')

    before = load_file(str(tmp_path / 'erfnet' / 'best.safetensors'))
    after = load_file(str(output / 'last.safetensors'))
    assert all(torch.equal(before[name], after[name]) for name in before)
    fresh = Trainer(TrainConfig(stage='lma', init=str(tmp_path / 'erfnet' / 'best.safetensors'),
                                data=str(tree), output=str(tmp_path / 'unused'), input_size=SIZE,
                                dense_labels=True, batch_size=4, memory_length=2))
    memory = [name for name, _ in fresh.model.named_parameters() if name.startswith('fusion.')]
    assert any(not torch.equal(fresh.model.get_parameter(name).detach(), after[name])
               for name in memory)
    assert written(tmp_path / 'records', 1) == set()
