"""Training: stage 1 the single-frame ERFNet, stage 2 the Local Memory Attention on top of it."""

from lma_perception.train.config import TrainConfig
from lma_perception.train.trainer import Trainer, TrainResult

__all__ = ['TrainConfig', 'TrainResult', 'Trainer']
