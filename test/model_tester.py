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


GOLDEN_FRAMES = 3
GOLDEN_SIZE = (16, 32)


def golden_inputs() -> torch.Tensor:
    """The frames of the stored golden pair: smooth random images, T×1×3×H×W in [0, 1]."""
    generator = torch.Generator().manual_seed(2021)
    coarse = torch.rand(GOLDEN_FRAMES, 3, 4, 4, generator=generator)
    frames = torch.nn.functional.interpolate(coarse, size=GOLDEN_SIZE, mode='bilinear')
    return frames.unsqueeze(1)


def golden_outputs(model: nn.Module) -> torch.Tensor:
    """Logits of every frame, each read through the memory of the frames before it."""
    from lma_perception.memory import MemoryBank, MemoryBatch

    model.eval()
    memory = MemoryBank(GOLDEN_FRAMES)
    outputs = []
    with torch.no_grad():
        for frame in golden_inputs():
            output = model.step(frame, MemoryBatch.from_banks([memory]))
            memory.write(output.memory_key[0], output.memory_value[0])
            outputs.append(output.logits[0])
    return torch.stack(outputs)


def check_golden(model: nn.Module, path: Path) -> None:
    """The memory path reproduces the stored logits of the golden frames.

    The file holds the logits the shipped weights gave when it was made (`python
    test/model_tester.py` writes it); any change to the model, the memory or the read that
    alters results shows here.
    """
    from safetensors.torch import load_file

    expected = load_file(str(path))['logits']
    got = golden_outputs(model)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # The memory matters: later frames differ from reading them with an empty memory.
    assert not torch.allclose(got[-1], golden_outputs_without_memory(model), atol=1e-3)


def golden_outputs_without_memory(model: nn.Module) -> torch.Tensor:
    """Logits of the last golden frame read with an empty memory."""
    model.eval()
    with torch.no_grad():
        return model.step(golden_inputs()[-1]).logits[0]


GOLDEN_FILE = Path(__file__).parent / 'data' / 'golden_lma_step.safetensors'

if __name__ == '__main__':
    from safetensors.torch import save_file

    from lma_perception.models.checkpoint import DEFAULT_WEIGHTS

    save_file({'logits': golden_outputs(load_checkpoint(DEFAULT_WEIGHTS)[0])}, str(GOLDEN_FILE))
    print(f'wrote {GOLDEN_FILE}')
