"""The training configuration: one dataclass, filled from defaults, a YAML file and flags."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lma_perception.memory import MAX_MEMORY_LENGTH
from lma_perception.models.erfnet import input_size_problem

STAGES = ('single', 'lma')


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on; saved as ``config.yaml`` beside its outputs.

    The defaults follow the papers' recipes: stage ``single`` trains ERFNet with Adam 5e-4 and a
    poly schedule; stage ``lma`` starts from a stage-1 checkpoint, freezes the encoder and the
    decoder and trains the memory modules with Adam 2e-4 and a plateau schedule on clips of
    ``memory_length`` + 1 frames (loss on the last frame).
    """

    stage: str
    data: str
    output: str
    init: str | None = None               # stage-1 checkpoint (required for stage 'lma')
    train_split: str = 'train'
    val_split: str = 'val'
    cameras: tuple[str, ...] | None = None
    input_size: tuple[int, int] = (512, 1024)
    dense_labels: bool = False            # also train on unannotated frames with dense labels
    epochs: int = 150
    steps_per_epoch: int | None = None    # cap on optimiser steps per epoch
    batch_size: int = 6                   # the global batch: summed over every process
    accumulate: int = 1                   # micro-batches per process and step (gradients summed)
    lr: float | None = None               # default: 5e-4 (single) or 2e-4 (lma)
    weight_decay: float = 1e-4
    memory_length: int = 3
    train_all: bool = False               # stage 'lma': also fine-tune encoder and decoder
    backbone_bn_eval: bool = True         # stage 'lma': encoder/decoder BN keep stage-1 stats
    slot_gate: bool = False
    class_weights: str = 'computed'       # 'computed' (ENet-style from label frequencies) | 'none'
    translate_px: int = 2
    degraded_weight: float = 1.0         # sampling weight of samples ending on a degraded frame
    val_samples: int | None = None        # cap on validation samples
    seed: int = 0
    device: str = 'auto'
    amp: bool = True                      # bf16 autocast on CUDA; ignored on CPU
    compile: bool = False                 # torch.compile the training forward pass
    dropout: bool = True                  # False: dropout layers stay off while training
    workers: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.stage not in STAGES:
            problems.append(f'stage must be one of {", ".join(STAGES)}, got {self.stage!r}')
        if self.stage == 'lma' and not self.init:
            problems.append("stage 'lma' needs init: a stage-1 checkpoint to start from")
        size_problem = input_size_problem(self.input_size)
        if size_problem is not None:
            problems.append(f'input_size: {size_problem}')
        if self.degraded_weight <= 0:
            problems.append(f'degraded_weight must be > 0, got {self.degraded_weight}')
        if not 1 <= self.memory_length <= MAX_MEMORY_LENGTH:
            problems.append(f'memory_length must be in [1, {MAX_MEMORY_LENGTH}], got '
                            f'{self.memory_length}')
        if self.class_weights not in ('computed', 'none'):
            problems.append(f"class_weights must be 'computed' or 'none', got "
                            f'{self.class_weights!r}')
        for name in ('epochs', 'batch_size', 'accumulate'):
            if getattr(self, name) < 1:
                problems.append(f'{name} must be >= 1, got {getattr(self, name)}')
        if problems:
            raise ValueError('; '.join(problems))

    @property
    def learning_rate(self) -> float:
        """The base learning rate, with the stage's default when none was given."""
        if self.lr is not None:
            return self.lr
        return 5e-4 if self.stage == 'single' else 2e-4

    @classmethod
    def from_sources(cls, yaml_path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
        """Defaults, then the YAML file's values, then ``overrides`` (flags that were given)."""
        values: dict[str, Any] = {}
        if yaml_path is not None:
            loaded = yaml.safe_load(Path(yaml_path).read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f'{yaml_path}: expected a mapping of training options')
            values.update(loaded)
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f'unknown training option(s): {", ".join(unknown)}')
        for name in ('input_size', 'cameras'):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return cls(**values)

    def save(self, path: str | Path) -> None:
        """Write the resolved configuration as YAML."""
        values = dataclasses.asdict(self)
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
        Path(path).write_text(yaml.safe_dump(values, sort_keys=False))
