"""Named model variants and :func:`create_model`.

Each variant is a :class:`ModelConfig`; keyword overrides replace fields of the backbone
config (``num_classes``, ``encoder_dropout``, ``encoder_head``) or, for variants with memory,
of the LMA config (``key_dim``, ``value_dim``, ``window``, ``fusion_dropout``, ``slot_gate``).
Every model built here carries its resolved config as ``model.model_config``, which is what
checkpoints store.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from lma_perception.models.erfnet import ERFNet, ERFNetConfig
from lma_perception.models.lma import LMAConfig, LMASegmenter

# The largest count a config field may hold (classes, key and value channels, window): far above
# any model of this family, far below what would exhaust memory when the layers are built.
MAX_CONFIG_COUNT = 4096


@dataclass(frozen=True)
class ModelConfig:
    """A complete model description: the backbone and, for video models, the memory module."""

    backbone: ERFNetConfig = field(default_factory=ERFNetConfig)
    lma: LMAConfig | None = None

    @property
    def variant(self) -> str:
        """The variant family name: 'lma_erfnet' with memory, 'erfnet' without."""
        return 'erfnet' if self.lma is None else 'lma_erfnet'

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (the checkpoint metadata)."""
        return {'variant': self.variant, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; raises ValueError naming an unknown or bad field."""
        try:
            backbone = dict(data['backbone'])
            if 'encoder_dropout' in backbone:
                backbone['encoder_dropout'] = tuple(backbone['encoder_dropout'])
            lma = data.get('lma')
            config = cls(ERFNetConfig(**backbone), None if lma is None else LMAConfig(**lma))
        except (KeyError, TypeError) as error:
            raise ValueError(f'not a valid model config ({error}): {data!r}') from None
        for part in (config.backbone, config.lma):
            if part is not None:
                _check_field_types(part)
        return config


def _check_field_types(config: Any) -> None:
    """Raise a ValueError naming the first field whose value has not its default's type.

    Stored configs come from files: `num_classes: "20"` must stop here, not in a layer.
    """
    for item in dataclasses.fields(config):
        value, default = getattr(config, item.name), item.default
        name = f'{type(config).__name__}.{item.name} = {value!r}'
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f'{name}: expected true or false')
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or not (
                1 <= value <= MAX_CONFIG_COUNT
            ):
                raise ValueError(f'{name}: expected a whole number in [1, {MAX_CONFIG_COUNT}]')
        elif isinstance(default, float):
            if not _is_unit_fraction(value):
                raise ValueError(f'{name}: expected a number in [0, 1]')
        elif isinstance(default, tuple) and (
            len(value) != len(default) or not all(_is_unit_fraction(v) for v in value)
        ):
            raise ValueError(f'{name}: expected {len(default)} numbers in [0, 1]')


def _is_unit_fraction(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and 0 <= value <= 1)


MODEL_CONFIGS: dict[str, ModelConfig] = {
    'erfnet': ModelConfig(),
    'lma_erfnet': ModelConfig(lma=LMAConfig()),
}


def resolve_config(name: str, **overrides: Any) -> ModelConfig:
    """Return the config of variant ``name`` with ``overrides`` applied."""
    if name not in MODEL_CONFIGS:
        raise KeyError(f'unknown model {name!r}; available: {", ".join(MODEL_CONFIGS)}')
    config = MODEL_CONFIGS[name]
    backbone_fields = {f.name for f in dataclasses.fields(ERFNetConfig)}
    lma_fields = {f.name for f in dataclasses.fields(LMAConfig)} if config.lma else set()
    unknown = set(overrides) - backbone_fields - lma_fields
    if unknown:
        raise TypeError(
            f'model {name!r} has no option {", ".join(sorted(unknown))}; options: '
            f'{", ".join(sorted(backbone_fields | lma_fields))}'
        )
    backbone = dataclasses.replace(
        config.backbone, **{k: v for k, v in overrides.items() if k in backbone_fields}
    )
    lma = config.lma and dataclasses.replace(
        config.lma, **{k: v for k, v in overrides.items() if k in lma_fields}
    )
    return ModelConfig(backbone, lma)


def build_model(config: ModelConfig) -> nn.Module:
    """Build the model a config describes, with ``model.model_config`` set."""
    erfnet = ERFNet(config.backbone)
    model = erfnet if config.lma is None else LMASegmenter(
        erfnet.encoder, erfnet.decoder, config.lma
    )
    model.model_config = config
    return model


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build variant ``name`` ('erfnet' or 'lma_erfnet') with randomly initialised weights.

    Raises:
        KeyError: unknown name (the message lists the variants).
        TypeError: an override that is not an option of this variant.
    """
    return build_model(resolve_config(name, **overrides))
