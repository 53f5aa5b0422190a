"""The training loop shared by both stages: epochs, validation mIoU, checkpoints, resume.

Outputs in ``config.output``:
    config.yaml          the resolved configuration
    best.safetensors     the weights with the best validation mIoU (a loadable checkpoint)
    last.safetensors     the weights after the last finished epoch
    last_state.pt        optimiser, schedule and progress (tensors and numbers only, so it
                         loads with ``torch.load(weights_only=True)``) for ``--resume``
    history.json         loss, learning rate, validation mIoU and time per epoch

Under ``torchrun`` every process trains its share of each global batch (``batch_size`` is the
global batch) and DistributedDataParallel averages the gradients; rank 0 alone writes these
outputs and shows the progress. The loss of a step is normalised over the whole global batch,
so N processes (or ``accumulate`` micro-batches) take the step one process takes on the same
batch: up to float rounding, and to BatchNorm, which normalises each process's (and each
micro-batch's) samples with their own statistics, as the upstream DataParallel training did.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from lma_perception.data.cityscapes import CityscapesTree
from lma_perception.eval.metrics import ConfusionMatrix
from lma_perception.labels import IGNORE_INDEX
from lma_perception.models import create_model, load_checkpoint, load_pretrained, save_checkpoint
from lma_perception.models.checkpoint import load_state_dict_into
from lma_perception.models.prediction import logits_to_labels
from lma_perception.runtime.device import resolve_device
from lma_perception.train.config import TrainConfig
from lma_perception.train.distributed import (
    Processes,
    per_process_batch,
    process_device,
    processes_from_environment,
    start_process_group,
    training_sampler,
    validation_shard,
)
from lma_perception.train.forward import (
    TrainingForward,
    keep_batchnorm_statistics,
    last_frame_logits,
)
from lma_perception.train.samples import (
    SegmentationSamples,
    class_weights,
    degraded_targets,
)

MEMORY_MODULES = ('memory_kv', 'query_kv', 'fusion', 'slot_gate')


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced."""

    best_checkpoint: Path
    best_miou: float
    epochs_run: int
    history: list[dict]


class Trainer:
    """Trains one stage as its config says; ``fit()`` runs (or resumes) the epochs."""

    def __init__(self, config: TrainConfig, processes: Processes | None = None) -> None:
        self.config = config
        self.output = Path(config.output)
        self.processes = processes or processes_from_environment()
        self.device = resolve_device(process_device(config.device, self.processes))
        self.batch_per_process = per_process_batch(config.batch_size, self.processes)
        if self.batch_per_process % config.accumulate:
            raise ValueError(
                f'accumulate {config.accumulate} does not divide the batch of '
                f'{self.batch_per_process} per process (batch_size {config.batch_size} over '
                f'{self.processes.world_size} process(es))'
            )
        start_process_group(self.processes, self.device)
        torch.manual_seed(config.seed)
        self.memory_length = config.memory_length if config.stage == 'lma' else 0
        self.model = self._build_model()
        self.forward = self._wrap_forward()
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(
            self.trainable, lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.train_samples = self._samples(config.train_split, augment=True)
        self.val_samples = self._samples(config.val_split, augment=False,
                                         limit=config.val_samples)
        weights = None
        if config.class_weights == 'computed':
            weights = class_weights(self.train_samples).to(self.device)
        self.class_weights = weights
        # Degraded frames are where the memory matters; drawing them more often shows the
        # fusion more cases where the current frame should be trusted less.
        self.sample_weights = None
        if config.degraded_weight != 1.0:
            degraded = degraded_targets(self.train_samples.tree, self.train_samples.samples)
            self.sample_weights = [config.degraded_weight if flag else 1.0 for flag in degraded]
        self.steps_per_epoch = len(self.train_samples) // config.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f'{len(self.train_samples)} training samples are fewer than one '
                             f'batch of {config.batch_size}')
        if config.steps_per_epoch is not None:
            self.steps_per_epoch = min(self.steps_per_epoch, config.steps_per_epoch)
        # Stage 1: poly decay per step (ERFNet). Stage 2: plateau on the epoch's mean loss (LMA).
        self.plateau = None
        if config.stage == 'single':
            total = config.epochs * self.steps_per_epoch
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lambda step: (1 - min(step, total - 1) / total) ** 0.9
            )
        else:
            self.scheduler = None
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, factor=0.8, min_lr=1e-9
            )
        self.epoch = 0
        self.step = 0
        self.best_miou = -1.0
        self.history: list[dict] = []

    def _build_model(self) -> nn.Module:
        # Channels-last weights make convolutions (and their gradients) run channels-last too,
        # several times faster on CPU; the model's outputs are the same.
        config = self.config
        if config.stage == 'single':
            return create_model('erfnet').to(self.device, memory_format=torch.channels_last)
        init, _ = load_checkpoint(config.init)
        model = create_model('lma_erfnet', num_classes=init.decoder.num_classes,
                             slot_gate=config.slot_gate)
        # The stage-1 weights are ERFNet's encoder and decoder; the memory modules start fresh.
        load_state_dict_into(model, init.state_dict(), allow_missing=MEMORY_MODULES,
                             source=config.init)
        if not config.train_all:
            for part in (model.encoder, model.decoder):
                part.requires_grad_(False)
        return model.to(self.device, memory_format=torch.channels_last)

    def _wrap_forward(self) -> nn.Module:
        """Return the training forward: data-parallel across processes, compiled if asked."""
        forward: nn.Module = TrainingForward(
            self.model, self.memory_length,
            joint=self.config.stage == 'lma' and self.config.train_all,
        )
        if self.processes.distributed:
            # DDP also broadcasts rank 0's BatchNorm statistics at every forward, so every
            # process holds (and rank 0 saves) the same running statistics.
            forward = DistributedDataParallel(
                forward, device_ids=[self.device] if self.device.type == 'cuda' else None
            )
        self.data_parallel = forward if self.processes.distributed else None
        if self.config.compile:
            # Training shapes never change (full batches, one size); with symbolic shapes
            # inductor fails on the memory read's tiling (torch 2.13).
            forward = torch.compile(forward, dynamic=False)
        return forward

    def _samples(self, split: str, *, augment: bool, limit: int | None = None):
        config = self.config
        tree = CityscapesTree(config.data, split, cameras=config.cameras,
                              size=config.input_size)
        return SegmentationSamples(
            tree, self.memory_length, dense_labels=config.dense_labels and augment,
            augment=augment, translate_px=config.translate_px, seed=config.seed, limit=limit,
        )

    def _set_train_mode(self) -> None:
        self.model.train()
        if self.config.stage == 'lma' and self.config.backbone_bn_eval:
            # The decoder sees fused features with memory and raw features without: batch
            # statistics of either would not fit the other at inference. Kept in eval mode, its
            # BatchNorm layers normalise both with the stage-1 statistics, in training as at
            # inference, and the fusion learns to produce features those statistics fit.
            keep_batchnorm_statistics(self.model.encoder, self.model.decoder)
        if not self.config.dropout:
            for module in self.model.modules():
                if isinstance(module, nn.modules.dropout._DropoutNd):
                    module.eval()

    def _autocast(self):
        enabled = self.config.amp and self.device.type == 'cuda'
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def train_epoch(self) -> float:
        """One epoch of optimiser steps; returns the mean loss."""
        config, processes = self.config, self.processes
        self.train_samples.epoch = self.epoch
        sampler = training_sampler(self.train_samples, processes, seed=config.seed,
                                   weights=self.sample_weights)
        sampler.set_epoch(self.epoch)
        loader = DataLoader(self.train_samples, batch_size=self.batch_per_process,
                            sampler=sampler, num_workers=config.workers, drop_last=True)
        # Dropout draws from (seed, epoch, rank) alone, so a resumed run draws as an unbroken one.
        torch.manual_seed(int(np.random.SeedSequence(
            (config.seed, self.epoch, processes.rank)).generate_state(1)[0]))
        self._set_train_mode()
        losses = []
        progress = tqdm(total=self.steps_per_epoch, desc=f'epoch {self.epoch + 1}',
                        unit='step', dynamic_ncols=True, leave=False,
                        disable=not processes.is_main)
        start = time.monotonic()
        for step, (images, labels) in enumerate(loader):
            if step == self.steps_per_epoch:
                break
            loss = self._train_step(images.to(self.device), labels.to(self.device))
            losses.append(loss)
            rate = (step + 1) * config.batch_size / (time.monotonic() - start)
            progress.set_postfix(loss=f'{loss:.3f}', img_s=f'{rate:.1f}')
            progress.update()
        progress.close()
        return sum(losses) / max(len(losses), 1)

    def _train_step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """One optimiser step on this process's share of a global batch; returns its loss.

        The loss is the class-weighted cross-entropy averaged over every counted pixel of the
        global batch: each share's summed loss is divided by the global weight total, and
        scaled by the number of processes, whose gradients DDP averages.
        """
        processes, parts = self.processes, self.config.accumulate
        total = processes.all_reduce_sum(self._weight_total(labels)).clamp_min(1e-12)
        self.optimizer.zero_grad(set_to_none=True)
        step_loss = torch.zeros((), device=self.device)
        for part in range(parts):
            # Micro-batch j takes every parts-th sample, as process j of `parts` would.
            syncs = part == parts - 1 or self.data_parallel is None
            with contextlib.nullcontext() if syncs else self.data_parallel.no_sync():
                with self._autocast():
                    outputs = self.forward(images[part::parts])
                loss = sum(
                    F.cross_entropy(logits.float(), labels[part::parts],
                                    weight=self.class_weights, ignore_index=IGNORE_INDEX,
                                    reduction='sum')
                    for logits in outputs
                ) / (len(outputs) * total)
                (loss * processes.world_size).backward()
            step_loss += loss.detach()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1
        return processes.all_reduce_sum(step_loss).item()

    def _weight_total(self, labels: torch.Tensor) -> torch.Tensor:
        """Return the class weights summed over counted pixels: cross-entropy's divisor."""
        counted = labels[labels != IGNORE_INDEX]
        if self.class_weights is None:
            return torch.tensor(float(counted.numel()), device=self.device)
        return self.class_weights[counted].sum()

    @torch.inference_mode()
    def validate(self) -> float:
        """Return the mIoU of the last frame of every validation sample.

        Each process scores its own shard; the confusion matrices are summed over the
        processes before the mIoU is taken, so every sample counts once.
        """
        # Each process's BatchNorm statistics moved with its own last batch; all validate (and
        # rank 0 saves) rank 0's.
        self.processes.broadcast_from_main(self.model.buffers())
        self.model.eval()
        matrix = ConfusionMatrix()
        loader = DataLoader(validation_shard(self.val_samples, self.processes),
                            batch_size=self.batch_per_process, num_workers=self.config.workers)
        for images, labels in loader:
            with self._autocast():
                logits = last_frame_logits(self.model, images.to(self.device),
                                           self.memory_length)
            predictions = logits_to_labels(logits)[0].cpu().numpy()
            for prediction, truth in zip(predictions, labels.numpy(), strict=True):
                matrix.update(prediction, truth.astype('uint8'))
        counts = torch.from_numpy(matrix.counts).to(self.device)
        matrix.counts = self.processes.all_reduce_sum(counts).cpu().numpy()
        return matrix.miou()

    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train for the configured epochs (from the last saved epoch when ``resume``).

        Every process reads a resumed run's files: with several hosts, ``output`` must be a
        folder they share.
        """
        main = self.processes.is_main
        if resume:
            self._resume()
        if main:
            self.output.mkdir(parents=True, exist_ok=True)
            self.config.save(self.output / 'config.yaml')
        while self.epoch < self.config.epochs:
            started = time.monotonic()
            loss = self.train_epoch()
            miou = self.validate()
            if self.plateau is not None:
                self.plateau.step(loss)
            record = {
                'epoch': self.epoch + 1, 'step': self.step, 'loss': loss, 'val_miou': miou,
                'lr': self.optimizer.param_groups[0]['lr'],
                'seconds': time.monotonic() - started,
            }
            self.history.append(record)
            self.epoch += 1
            improved = miou > self.best_miou
            if improved:
                self.best_miou = miou
            if main:
                if improved:
                    self._save_weights('best.safetensors')
                self._save_progress()
                tqdm.write(f'epoch {record["epoch"]}/{self.config.epochs}: loss {loss:.4f}, '
                           f'val mIoU {100 * miou:.2f}{" (best)" if improved else ""}, '
                           f'{record["seconds"]:.0f} s')
        # The other processes end only once rank 0 has written the last epoch's files.
        self.processes.barrier()
        return TrainResult(self.output / 'best.safetensors', self.best_miou, self.epoch,
                           self.history)

    def _save_weights(self, name: str) -> None:
        save_checkpoint(self.output / name, self.model, input_size=self.config.input_size)

    def _save_progress(self) -> None:
        self._save_weights('last.safetensors')
        state = {
            'epoch': self.epoch,
            'step': self.step,
            'best_miou': self.best_miou,
            'optimizer': self.optimizer.state_dict(),
            'scheduler': (self.scheduler or self.plateau).state_dict(),
        }
        torch.save(state, self.output / 'last_state.pt')
        (self.output / 'history.json').write_text(json.dumps(self.history, indent=1))

    def _resume(self) -> None:
        state_path = self.output / 'last_state.pt'
        if not state_path.exists():
            raise FileNotFoundError(f'nothing to resume: {state_path} does not exist')
        load_pretrained(self.model, self.output / 'last.safetensors')
        state = torch.load(state_path, map_location='cpu', weights_only=True)
        self.optimizer.load_state_dict(state['optimizer'])
        (self.scheduler or self.plateau).load_state_dict(state['scheduler'])
        self.epoch, self.best_miou = int(state['epoch']), float(state['best_miou'])
        self.step = int(state.get('step', self.epoch * self.steps_per_epoch))
        history = self.output / 'history.json'
        self.history = json.loads(history.read_text()) if history.exists() else []
