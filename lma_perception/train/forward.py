"""The training forward pass as one module, so that DistributedDataParallel can wrap it."""

from __future__ import annotations

import torch
from torch import nn

from lma_perception.memory import MemoryBatch


def keep_batchnorm_statistics(*parts: nn.Module) -> None:
    """Put the BatchNorm layers of ``parts`` in eval mode, the rest training around them.

    They then normalise with their stored statistics and stop updating them.
    """
    for part in parts:
        for module in part.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


def last_frame_logits(model: nn.Module, images: torch.Tensor, memory_length: int) -> torch.Tensor:
    """Logits of the last frame of each B×(T+1)×3×H×W sample."""
    if memory_length == 0:
        return model(images[:, 0])
    return model.forward_clip(images)


class TrainingForward(nn.Module):
    """Returns the logits the training loss is taken over (their losses are averaged).

    Fine-tuning everything in stage 2 (``joint``) would otherwise adapt the decoder to fused
    features only and spoil the memory-less path, which the node still runs on the first frame
    of every stream: so the last frame is decoded both with and without memory. The memory
    frames' encoder passes run without gradients (truncated back-propagation), which keeps a
    step about as cheap as two single-frame steps.

    DistributedDataParallel synchronises gradients only through its wrapped module's
    ``forward``; this module is that forward for both stages, whatever methods of the model
    it calls.
    """

    def __init__(self, model: nn.Module, memory_length: int, *, joint: bool) -> None:
        super().__init__()
        self.model, self.memory_length, self.joint = model, memory_length, joint

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return the loss's logits for B×(T+1)×3×H×W samples."""
        if self.memory_length == 0 or not self.joint:
            return (last_frame_logits(self.model, images, self.memory_length),)
        model = self.model
        batch, length = images.shape[:2]
        with torch.no_grad():
            past = model.encode(images[:, :-1].flatten(0, 1))
        keys, values = model.memorize(past)
        memory = MemoryBatch.from_frames(keys.unflatten(0, (batch, length - 1)),
                                         values.unflatten(0, (batch, length - 1)))
        current = model.encode(images[:, -1])
        return model.decode(model.attend(current, memory)), model.decode(current)
