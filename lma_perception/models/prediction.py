"""Logits to label maps: the one definition the engine, training validation and export share."""

from __future__ import annotations

import torch

from lma_perception.labels import IGNORE_INDEX, NUM_CLASSES


def logits_to_labels(
    logits: torch.Tensor, *, confidence: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """B×C×h×w logits to B×h×w uint8 train ids, and optionally uint8 confidence.

    The argmax runs over every output channel; a pixel won by a channel at or above the 19
    train ids (the Cityscapes model's "void" output) is 255, unlabeled, so a prediction never
    claims a class the network ranked below void. Confidence is the max softmax probability
    × 255, rounded.
    """
    if confidence:
        probability, labels = logits.float().softmax(1).max(1)
        scores = probability.mul_(255.0).round_().to(torch.uint8)
    else:
        labels, scores = logits.argmax(1), None
    labels = labels.masked_fill_(labels >= NUM_CLASSES, IGNORE_INDEX).to(torch.uint8)
    return labels, scores
