"""Checks every segmentation model must pass: forward/backward at several sizes, save/load."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lma_perception.models import load_checkpoint, save_checkpoint

# (height, width): multiples of 8 giving even and odd feature maps, portrait and landscape.
SIZES = ((64, 128), (72, 136), (120, 40))


def check_forward_backward(model: nn.Module, sizes=SIZES, batch: int = 2) -> None:
    """Logits are B×classes×H×W and finite; every trainable parameter gets a finite gradient."""
    model.train()
    for height, width in sizes:
        model.zero_grad()
        images = torch.rand(batch, 3, height, width)
        logits = model(images)
        assert logits.shape == (batch, model.num_classes, height, width)
        assert torch.isfinite(logits).all()
        logits.logsumexp(1).mean().backward()
        for name, parameter in model.named_parameters():
            if parameter.requires_grad and parameter.grad is not None:
                assert torch.isfinite(parameter.grad).all(), name


def check_save_load_round_trip(model: nn.Module, directory: Path) -> nn.Module:
    """Saved and reloaded, the model gives bit-identical outputs in eval mode."""
    model.eval()
    path = directory / 'model.safetensors'
    save_checkpoint(path, model, input_size=(64, 128))
    loaded, info = load_checkpoint(path)
    assert info.config == model.model_config
    assert info.input_size == (64, 128)
    images = torch.rand(2, 3, 64, 128)
    with torch.no_grad():
        assert torch.equal(model(images), loaded(images))
    return loaded


def randomize_batchnorm(model: nn.Module, generator: torch.Generator) -> None:
    """Give BatchNorm running statistics non-trivial values, so that loading them is tested."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            count = module.num_features
            module.running_mean.copy_(torch.randn(count, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(count, generator=generator) + 0.5)
