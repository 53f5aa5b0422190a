"""Segmentation models: ERFNet, Local Memory Attention around it, and their checkpoints."""

from lma_perception.models.checkpoint import (
    CheckpointError,
    CheckpointInfo,
    FilteredStateDict,
    checkpoint_filter_fn,
    load_checkpoint,
    load_pretrained,
    save_checkpoint,
)
from lma_perception.models.erfnet import ERFNet, ERFNetConfig
from lma_perception.models.factory import (
    MODEL_CONFIGS,
    ModelConfig,
    build_model,
    create_model,
    resolve_config,
)
from lma_perception.models.lma import LabelStep, LMAConfig, LMASegmenter, StepOutput
from lma_perception.models.memory_kernels import local_memory_read

__all__ = [
    'MODEL_CONFIGS',
    'CheckpointError',
    'CheckpointInfo',
    'ERFNet',
    'ERFNetConfig',
    'FilteredStateDict',
    'LMAConfig',
    'LMASegmenter',
    'LabelStep',
    'ModelConfig',
    'StepOutput',
    'build_model',
    'checkpoint_filter_fn',
    'create_model',
    'load_checkpoint',
    'load_pretrained',
    'local_memory_read',
    'resolve_config',
    'save_checkpoint',
]
