"""Channels-last classifier labels equal the argmax of the layer's logits."""

import pytest
import torch
from torch import nn

from lma_perception.labels import IGNORE_INDEX, NUM_CLASSES
from lma_perception.models import ERFNet
from lma_perception.models.prediction import classifier_labels, logits_to_labels, predict_labels

CLASSIFIERS = {
    'conv 1x1': lambda: nn.Conv2d(16, NUM_CLASSES + 1, 1),
    'conv 1x1 without bias': lambda: nn.Conv2d(16, NUM_CLASSES + 1, 1, bias=False),
    'transposed 2x2 stride 2': lambda: nn.ConvTranspose2d(16, NUM_CLASSES + 1, 2, stride=2),
    'transposed 3x3 stride 3': lambda: nn.ConvTranspose2d(16, NUM_CLASSES + 1, 3, stride=3),
    # Not per-pixel classifiers: these run as they are.
    'conv 3x3': lambda: nn.Conv2d(16, NUM_CLASSES + 1, 3, padding=1),
    'transposed 3x3 stride 2': lambda: nn.ConvTranspose2d(
        16, NUM_CLASSES + 1, 3, stride=2, padding=1, output_padding=1
    ),
}


@pytest.mark.parametrize('name', CLASSIFIERS)
def test_classifier_labels_equal_the_logits_argmax(name):
    torch.manual_seed(0)
    layer = CLASSIFIERS[name]().eval()
    features = torch.randn(2, 16, 7, 11)
    with torch.no_grad():
        expected, expected_scores = logits_to_labels(layer(features), confidence=True)
        labels, scores = classifier_labels(layer, features, confidence=True)
        plain, none = classifier_labels(layer, features)
    assert labels.dtype == scores.dtype == torch.uint8
    assert labels.shape == expected.shape
    assert len(labels.unique()) > 5 and (labels == IGNORE_INDEX).any()  # void is remapped
    assert (labels == expected).float().mean() >= 0.999  # summation order may differ
    assert (scores.int() - expected_scores.int()).abs().max() <= 1
    assert torch.equal(plain, labels) and none is None


def test_erfnet_labels_equal_its_logits_argmax():
    torch.manual_seed(1)
    model = ERFNet().eval()
    images = torch.rand(2, 3, 64, 128)
    with torch.no_grad():
        expected, _ = logits_to_labels(model(images))
        labels, _ = predict_labels(model, images)
    assert labels.shape == (2, 64, 128)
    assert (labels == expected).float().mean() >= 0.999
