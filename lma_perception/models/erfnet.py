"""ERFNet (Romera et al., T-ITS 2018): efficient residual factorized ConvNet.

Layers, hyper-parameters and module names follow the published PyTorch model, so a state dict
saved from it (keys ``encoder.initial_block.conv.weight`` … ``decoder.output_conv.bias``) loads
into :class:`ERFNet` unchanged once the ``module.`` prefix of ``DataParallel`` is stripped (see
``checkpoint.py``).

The input is RGB in [0, 1] without mean/std normalisation, as the model was trained. The encoder
output (stride 8, 128 channels) is the feature map that Local Memory Attention reads and writes.

Parameter count: 2,064,256 (encoder 1,874,044 + decoder 190,212). The encoder-only
classification head ``encoder.output_conv`` (1×1, 128 → classes) of the published code is used
only when the encoder is trained alone; it is left out by default and built with
``encoder_head=True`` (2,066,836 parameters with 20 classes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.functional import relu

from lma_perception.models.prediction import classifier_labels

BN_EPS = 1e-3
STRIDE = 8
# The longest side a network input may have: twice a 4K camera's width. One 8192×8192 frame
# already needs some 50 GB of activations in the first encoder stage.
MAX_INPUT_SIDE = 8192


def input_size_problem(size: Sequence[int], stride: int = STRIDE) -> str | None:
    """Say why `size` is no network input (height, width); None when both sides fit the stride.

    The one statement of the rule: every size setting (engine, node, training, checkpoints,
    command lines) is checked here.
    """
    if len(size) != 2 or any(
        isinstance(side, bool) or not isinstance(side, (int, float))
        or not 0 < side <= MAX_INPUT_SIDE or int(side) != side or side % stride
        for side in size
    ):
        return (f'a network input size is (height, width), each side at most {MAX_INPUT_SIDE} '
                f'and both positive multiples of {stride}; got {tuple(size)}')
    return None


def check_input_size(height: int, width: int, stride: int = STRIDE) -> None:
    """Raise a ValueError unless both sides are positive multiples of the network stride."""
    if torch.jit.is_tracing():  # the sides are traced tensors; an export checks its size first
        return
    problem = input_size_problem((height, width), stride)
    if problem is not None:
        raise ValueError(f'{problem}: resize or pad the image first')


class DownsamplerBlock(nn.Module):
    """Stride-2 3×3 conv concatenated with a 2×2 max-pool of the input, then BN and ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(2, stride=2)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Halve the height and width."""
        return relu(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))


class NonBottleneck1d(nn.Module):
    """Residual block of two factorised (3×1, 1×3) conv pairs; the second pair is dilated."""

    def __init__(self, channels: int, dropout: float, dilation: int) -> None:
        super().__init__()
        self.conv3x1_1 = nn.Conv2d(channels, channels, (3, 1), padding=(1, 0))
        self.conv1x3_1 = nn.Conv2d(channels, channels, (1, 3), padding=(0, 1))
        self.bn1 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.conv3x1_2 = nn.Conv2d(
            channels, channels, (3, 1), padding=(dilation, 0), dilation=(dilation, 1)
        )
        self.conv1x3_2 = nn.Conv2d(
            channels, channels, (1, 3), padding=(0, dilation), dilation=(1, dilation)
        )
        self.bn2 = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add the residual to the input."""
        y = relu(self.conv3x1_1(x))
        y = relu(self.bn1(self.conv1x3_1(y)))
        y = relu(self.conv3x1_2(y))
        y = self.dropout(self.bn2(self.conv1x3_2(y)))
        return relu(y + x)


class UpsamplerBlock(nn.Module):
    """Stride-2 3×3 transposed conv (doubles height and width), then BN and ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(
            in_channels, out_channels, 3, stride=2, padding=1, output_padding=1
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Double the height and width."""
        return relu(self.bn(self.conv(x)))


class Encoder(nn.Module):
    """ERFNet encoder: RGB at full size to 128 channels at stride 8."""

    out_channels = 128
    stride = STRIDE

    def __init__(
        self, num_classes: int = 20, dropout: tuple[float, float] = (0.03, 0.3),
        head: bool = False,
    ) -> None:
        super().__init__()
        self.initial_block = DownsamplerBlock(3, 16)
        layers: list[nn.Module] = [DownsamplerBlock(16, 64)]
        layers += [NonBottleneck1d(64, dropout[0], 1) for _ in range(5)]
        layers.append(DownsamplerBlock(64, 128))
        for _ in range(2):
            layers += [NonBottleneck1d(128, dropout[1], d) for d in (2, 4, 8, 16)]
        self.layers = nn.ModuleList(layers)
        # Only used when the encoder is trained on its own against 1/8-scale labels.
        self.output_conv = nn.Conv2d(128, num_classes, 1) if head else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the stride-8 features of RGB images."""
        x = self.initial_block(x)
        for layer in self.layers:
            x = layer(x)
        return x

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits at stride 8 from the encoder-only head."""
        if self.output_conv is None:
            raise RuntimeError('this encoder was built without its head (encoder_head=False)')
        return self.output_conv(self(x))


class Decoder(nn.Module):
    """ERFNet decoder: 128 channels at stride 8 to class logits at full size."""

    def __init__(self, num_classes: int = 20, in_channels: int = 128) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.layers = nn.ModuleList([
            UpsamplerBlock(in_channels, 64),
            NonBottleneck1d(64, 0.0, 1),
            NonBottleneck1d(64, 0.0, 1),
            UpsamplerBlock(64, 16),
            NonBottleneck1d(16, 0.0, 1),
            NonBottleneck1d(16, 0.0, 1),
        ])
        self.output_conv = nn.ConvTranspose2d(16, num_classes, 2, stride=2)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Return the 16-channel map at half the output size that ``output_conv`` classifies."""
        for layer in self.layers:
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits at 8 times the feature size."""
        return self.output_conv(self.hidden(x))

    def labels(
        self, x: torch.Tensor, *, confidence: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return uint8 labels (and confidence) at 8 times the feature size; see `prediction`."""
        return classifier_labels(self.output_conv, self.hidden(x), confidence=confidence)


@dataclass(frozen=True)
class ERFNetConfig:
    """Hyper-parameters of ERFNet.

    ``num_classes`` counts every output channel: 20 for Cityscapes, the 19 train ids plus the
    void channel 19 that the published model was trained with (at loss weight 0).
    """

    num_classes: int = 20
    encoder_dropout: tuple[float, float] = (0.03, 0.3)
    encoder_head: bool = False


class ERFNet(nn.Module):
    """Single-frame ERFNet with the stages ``encode`` and ``decode``."""

    def __init__(self, config: ERFNetConfig = ERFNetConfig()) -> None:
        super().__init__()
        self.config = config
        self.num_classes = config.num_classes
        self.encoder = Encoder(config.num_classes, config.encoder_dropout, config.encoder_head)
        self.decoder = Decoder(config.num_classes, self.encoder.out_channels)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Return stride-8 features of B×3×H×W RGB images in [0, 1] (H, W multiples of 8)."""
        check_input_size(images.shape[-2], images.shape[-1])
        return self.encoder(images)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        """Return full-size class logits from stride-8 features."""
        return self.decoder(features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return class logits of B×3×H×W RGB images in [0, 1]."""
        return self.decode(self.encode(images))

    def labels(
        self, images: torch.Tensor, *, confidence: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return B×H×W uint8 labels (and confidence) of B×3×H×W RGB images in [0, 1]."""
        return self.decoder.labels(self.encode(images), confidence=confidence)
