"""The training loop shared by both stages: epochs, validation mIoU, checkpoints, resume.

Outputs in ``config.output``:
    config.yaml          the resolved configuration
    best.safetensors     the weights with the best validation mIoU (a loadable checkpoint)
    last.safetensors     the weights after the last finished epoch
    last_state.pt        optimiser, schedule and progress (tensors and numbers only, so it
                         loads with ``torch.load(weights_only=True)``) for ``--resume``
    history.json         loss, learning rate, validation mIoU and time per epoch
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, WeightedRandomSampler
from tqdm import tqdm

from lma_perception.data.cityscapes import CityscapesTree
from lma_perception.eval.metrics import ConfusionMatrix
from lma_perception.labels import IGNORE_INDEX
from lma_perception.memory import MemoryBatch
from lma_perception.models import create_model, load_checkpoint, load_pretrained, save_checkpoint
from lma_perception.models.checkpoint import load_state_dict_into
from lma_perception.models.prediction import logits_to_labels
from lma_perception.runtime.device import resolve_device
from lma_perception.train.config import TrainConfig
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

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.output = Path(config.output)
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        self.memory_length = config.memory_length if config.stage == 'lma' else 0
        self.model = self._build_model()
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
        self.steps_per_epoch = math.ceil(len(self.train_samples) / config.batch_size)
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
            for part in (self.model.encoder, self.model.decoder):
                for module in part.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.eval()

    def _logits(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of the last frame of each B×(T+1)×3×H×W sample."""
        if self.memory_length == 0:
            return self.model(images[:, 0])
        return self.model.forward_clip(images)

    def _training_logits(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Return the logits the training loss is taken over (their losses are averaged).

        Fine-tuning everything in stage 2 (`train_all`) would otherwise adapt the decoder to
        fused features only and spoil the memory-less path, which the node still runs on the
        first frame of every stream: so the last frame is decoded both with and without
        memory. The memory frames' encoder passes run without gradients (truncated back-
        propagation), which keeps a step about as cheap as two single-frame steps.
        """
        if self.memory_length == 0 or not self.config.train_all:
            return [self._logits(images)]
        model = self.model
        batch, length = images.shape[:2]
        with torch.no_grad():
            past = model.encode(images[:, :-1].flatten(0, 1))
        keys, values = model.memorize(past)
        memory = MemoryBatch.from_frames(keys.unflatten(0, (batch, length - 1)),
                                         values.unflatten(0, (batch, length - 1)))
        current = model.encode(images[:, -1])
        return [model.decode(model.attend(current, memory)), model.decode(current)]

    def _autocast(self):
        enabled = self.config.amp and self.device.type == 'cuda'
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def train_epoch(self) -> float:
        """One epoch of optimiser steps; returns the mean loss."""
        config = self.config
        self.train_samples.epoch = self.epoch
        generator = torch.Generator().manual_seed(config.seed * 1000 + self.epoch)
        sampler = None
        if self.sample_weights is not None:
            sampler = WeightedRandomSampler(self.sample_weights, len(self.sample_weights),
                                            generator=generator)
        loader = DataLoader(self.train_samples, batch_size=config.batch_size,
                            shuffle=sampler is None, sampler=sampler, generator=generator,
                            num_workers=config.workers, drop_last=True)
        self._set_train_mode()
        losses = []
        progress = tqdm(total=self.steps_per_epoch, desc=f'epoch {self.epoch + 1}',
                        unit='step', dynamic_ncols=True, leave=False)
        start = time.monotonic()
        for step, (images, labels) in enumerate(loader):
            if step == self.steps_per_epoch:
                break
            images, labels = images.to(self.device), labels.to(self.device)
            with self._autocast():
                outputs = self._training_logits(images)
            loss = sum(
                F.cross_entropy(logits.float(), labels, weight=self.class_weights,
                                ignore_index=IGNORE_INDEX)
                for logits in outputs
            ) / len(outputs)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            losses.append(loss.item())
            rate = (step + 1) * config.batch_size / (time.monotonic() - start)
            progress.set_postfix(loss=f'{loss.item():.3f}', img_s=f'{rate:.1f}')
            progress.update()
        progress.close()
        return sum(losses) / max(len(losses), 1)

    @torch.inference_mode()
    def validate(self) -> float:
        """Return the mIoU of the last frame of every validation sample."""
        self.model.eval()
        matrix = ConfusionMatrix()
        loader = DataLoader(self.val_samples, batch_size=self.config.batch_size,
                            num_workers=self.config.workers)
        for images, labels in loader:
            with self._autocast():
                logits = self._logits(images.to(self.device))
            predictions = logits_to_labels(logits)[0].cpu().numpy()
            for prediction, truth in zip(predictions, labels.numpy(), strict=True):
                matrix.update(prediction, truth.astype('uint8'))
        return matrix.miou()

    def fit(self, *, resume: bool = False) -> TrainResult:
        """Train for the configured epochs (from the last saved epoch when ``resume``)."""
        self.output.mkdir(parents=True, exist_ok=True)
        if resume:
            self._resume()
        self.config.save(self.output / 'config.yaml')
        while self.epoch < self.config.epochs:
            started = time.monotonic()
            loss = self.train_epoch()
            miou = self.validate()
            if self.plateau is not None:
                self.plateau.step(loss)
            record = {
                'epoch': self.epoch + 1, 'loss': loss, 'val_miou': miou,
                'lr': self.optimizer.param_groups[0]['lr'],
                'seconds': time.monotonic() - started,
            }
            self.history.append(record)
            self.epoch += 1
            improved = miou > self.best_miou
            if improved:
                self.best_miou = miou
                self._save_weights('best.safetensors')
            self._save_progress()
            tqdm.write(f'epoch {record["epoch"]}/{self.config.epochs}: loss {loss:.4f}, '
                       f'val mIoU {100 * miou:.2f}{" (best)" if improved else ""}, '
                       f'{record["seconds"]:.0f} s')
        return TrainResult(self.output / 'best.safetensors', self.best_miou, self.epoch,
                           self.history)

    def _save_weights(self, name: str) -> None:
        save_checkpoint(self.output / name, self.model, input_size=self.config.input_size)

    def _save_progress(self) -> None:
        self._save_weights('last.safetensors')
        state = {
            'epoch': self.epoch,
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
        history = self.output / 'history.json'
        self.history = json.loads(history.read_text()) if history.exists() else []
