"""Logits to label maps: the one definition the engine, training validation and export share."""

from __future__ import annotations

from functools import cache

import torch
from torch import nn
from torch.nn.functional import linear

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
    return _labels_along(logits, 1, confidence)


def _labels_along(
    logits: torch.Tensor, dim: int, confidence: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`logits_to_labels` of logits whose classes are axis ``dim``."""
    if confidence:
        probability, labels = logits.float().softmax(dim).max(dim)
        scores = probability.mul_(255.0).round_().to(torch.uint8)
    else:
        labels, scores = logits.argmax(dim), None
    return _train_ids(logits.shape[dim], labels.device)[labels], scores


@cache
def _train_ids(channels: int, device: torch.device) -> torch.Tensor:
    """Return each output channel's uint8 label: its train id, or 255 from the void channel on."""
    # One lookup (an ONNX Gather) gives uint8 labels with the void rule applied, where a
    # comparison and a select would each take another pass over the int64 argmax. Built once
    # per size and device, and as a normal tensor (not an inference-mode one), so that calls
    # inside and outside inference mode can share it.
    with torch.inference_mode(False):
        ids = torch.full((channels,), IGNORE_INDEX, dtype=torch.uint8)
        ids[:NUM_CLASSES] = torch.arange(min(channels, NUM_CLASSES), dtype=torch.uint8)
        return ids.to(device)


def _is_pixel_classifier(layer: nn.Module) -> bool:
    """Tell whether ``layer`` maps each input pixel alone to a k×k block of output logits."""
    if not isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)) or layer.groups != 1:
        return False
    size, stride = layer.kernel_size, layer.stride
    if isinstance(layer, nn.Conv2d):
        return size == (1, 1) and stride == (1, 1) and layer.padding == (0, 0)
    return (size == stride and size[0] == size[1] and layer.padding == (0, 0)
            and layer.output_padding == (0, 0) and layer.dilation == (1, 1))


def classifier_labels(
    classifier: nn.Module, features: torch.Tensor, *, confidence: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`logits_to_labels` of ``classifier(features)``, without its channels-first logits.

    A 1×1 convolution, or a transposed convolution whose kernel equals its stride (ERFNet's
    last layer), maps each feature pixel alone to the logits of a k×k block of output pixels.
    Run as one matrix product on channels-last features, the argmax then reads each pixel's
    classes from consecutive memory and only the uint8 labels are shuffled into place: the
    same labels (up to the summation order of the logits) for a fraction of the memory
    traffic of an argmax across the channel planes. Any other layer runs as it is.
    """
    if not _is_pixel_classifier(classifier):
        return logits_to_labels(classifier(features), confidence=confidence)
    batch, _, height, width = features.shape
    weight = classifier.weight
    if isinstance(classifier, nn.Conv2d):
        block, weight = 1, weight.flatten(1)  # classes × channels
    else:  # channels × classes × k × k → (k · k · classes) × channels, classes fastest
        block = classifier.kernel_size[0]
        weight = weight.permute(2, 3, 1, 0).flatten(0, 2)
    bias = None if classifier.bias is None else classifier.bias.repeat(block * block)
    # Pixels as rows of one matrix: the bias is added inside the product (an ONNX Gemm), not
    # in a pass of its own over the logits.
    pixels = features.permute(0, 2, 3, 1).reshape(batch * height * width, -1)
    logits = linear(pixels, weight, bias).view(batch, height, width, block, block, -1)
    labels, scores = _labels_along(logits, -1, confidence)

    def place(blocks: torch.Tensor) -> torch.Tensor:  # B×h×w×k×k → B×(h·k)×(w·k)
        return blocks.permute(0, 1, 3, 2, 4).reshape(batch, height * block, width * block)

    return place(labels), None if scores is None else place(scores)


def predict_labels(
    module: nn.Module, inputs: torch.Tensor, *, confidence: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Labels of ``module(inputs)``: through its own ``labels`` where it has one, else logits."""
    labels = getattr(module, 'labels', None)
    if labels is not None:
        return labels(inputs, confidence=confidence)
    return logits_to_labels(module(inputs), confidence=confidence)
