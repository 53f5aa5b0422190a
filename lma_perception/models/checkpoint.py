"""Checkpoints: safetensors files that carry their model config, and the published weights.

Files read (the format is recognised from the content, not the file name):

- Our own: safetensors, with the JSON metadata entry ``lma_perception`` holding the model
  config (variant, classes, LMA settings) and the training input size (height, width).
- The published ERFNet weights (erfnet_pytorch ``trained_models/erfnet_pretrained.pth``): a
  state dict saved from ``DataParallel``, so every key starts with ``module.``, possibly
  without the BatchNorm ``num_batches_tracked`` counters. Its encoder-only head
  ``encoder.output_conv`` is dropped unless the model has that head.
- The published LMANet weights (mattpfr/lmanet, names as in ``models/lmanet.py`` and
  ``models/fusion.py`` at commit 3526d88): ``module.`` prefix, the key/value convs
  ``kv_M_r4.{Key,Value}`` and ``kv_Q_r4.{Key,Value}``, the fusion ``memory_fusion.{bn1, bn2,
  conv_layer_1..4, bn}``, ERFNet names for the rest; training checkpoints wrap the state dict
  in ``{'state_dict': ...}``. Assumed from that code: ``bn1``/``conv_layer_1``/``conv_layer_3``
  act on the query value, ``bn2``/``conv_layer_2``/``conv_layer_4`` on the memory read.

Pickled ``.pth`` files are only opened with ``torch.load(weights_only=True)``, which refuses
anything but tensors and plain containers, so loading a file never runs code from it.
Every problem (missing file, not a checkpoint, refused pickle, missing or unexpected keys,
wrong shapes, wrong number of classes) raises :class:`CheckpointError` with one clear message.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from lma_perception.models.erfnet import ERFNetConfig, input_size_problem
from lma_perception.models.factory import ModelConfig, build_model
from lma_perception.models.lma import LMAConfig

METADATA_KEY = 'lma_perception'
FORMAT_VERSION = 1
# The working resolution of ERFNet and LMA on Cityscapes (height, width); the input size
# assumed for published weights, which do not record one.
DEFAULT_INPUT_SIZE = (512, 1024)
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / 'weights' / (
    'lma_erfnet_synthetic.safetensors'
)

# Published LMANet name → ours (after the `module.` prefix is stripped).
LMANET_RENAMES = (
    ('kv_M_r4.Key.', 'memory_kv.key.'),
    ('kv_M_r4.Value.', 'memory_kv.value.'),
    ('kv_Q_r4.Key.', 'query_kv.key.'),
    ('kv_Q_r4.Value.', 'query_kv.value.'),
    ('memory_fusion.bn1.', 'fusion.bn_query.'),
    ('memory_fusion.bn2.', 'fusion.bn_memory.'),
    ('memory_fusion.conv_layer_1.', 'fusion.conv_query.'),
    ('memory_fusion.conv_layer_2.', 'fusion.conv_memory.'),
    ('memory_fusion.conv_layer_3.', 'fusion.gate_query.'),
    ('memory_fusion.conv_layer_4.', 'fusion.gate_memory.'),
    ('memory_fusion.bn.', 'fusion.bn_out.'),
)
ENCODER_HEAD_PREFIX = 'encoder.output_conv.'
MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors format's own limit
LFS_POINTER_START = b'version https://git-lfs.github.com/spec/'
CLASSIFIER_WEIGHT = 'decoder.output_conv.weight'


class CheckpointError(ValueError):
    """A weights file that cannot be loaded, with the reason."""


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about the model it holds."""

    config: ModelConfig
    input_size: tuple[int, int]
    source: str  # 'lma_perception', 'erfnet' (published ERFNet) or 'lmanet' (published LMANet)


@dataclass
class FilteredStateDict:
    """A state dict in this package's names, with a report of how it matched the model."""

    state_dict: dict[str, torch.Tensor]
    missing: list[str] = field(default_factory=list)  # model keys the file lacks
    unexpected: list[str] = field(default_factory=list)  # file keys the model lacks
    dropped: list[str] = field(default_factory=list)  # known file keys not used (encoder head)
    filled: list[str] = field(default_factory=list)  # BatchNorm counters the file lacks, set to 0


def _rename(key: str) -> str:
    while key.startswith('module.'):
        key = key[len('module.'):]
    for old, new in LMANET_RENAMES:
        if key.startswith(old):
            return new + key[len(old):]
    return key


def checkpoint_filter_fn(
    state_dict: Mapping[str, torch.Tensor], model: nn.Module
) -> FilteredStateDict:
    """Map a published or own state dict onto ``model``'s names and report the differences.

    Strips ``module.`` prefixes, renames LMANet keys, drops the encoder-only head when the
    model has none, and sets missing BatchNorm ``num_batches_tracked`` counters to 0. Missing
    and unexpected keys are reported, never silently ignored; the caller decides.
    """
    expected = model.state_dict()
    result = FilteredStateDict({})
    for key, tensor in state_dict.items():
        name = _rename(key)
        if name.startswith(ENCODER_HEAD_PREFIX) and name not in expected:
            result.dropped.append(key)
        elif name in expected:
            result.state_dict[name] = tensor
        else:
            result.unexpected.append(key)
    for name, tensor in expected.items():
        if name in result.state_dict:
            continue
        if name.endswith('num_batches_tracked'):
            result.state_dict[name] = torch.zeros_like(tensor)
            result.filled.append(name)
        else:
            result.missing.append(name)
    return result


def _names(keys: Sequence[str], limit: int = 6) -> str:
    shown = ', '.join(keys[:limit])
    return shown + (f' and {len(keys) - limit} more' if len(keys) > limit else '')


def load_state_dict_into(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *,
    allow_missing: Sequence[str] = (), source: str = 'the checkpoint',
) -> FilteredStateDict:
    """Load a (published or own) state dict into ``model``; CheckpointError on any mismatch.

    Args:
        model: the model to fill.
        state_dict: tensors by name, in any naming :func:`checkpoint_filter_fn` understands.
        allow_missing: name prefixes the file may lack (e.g. ``('memory_kv', 'query_kv',
            'fusion')`` to start an LMA model from ERFNet weights); those keep their values.
        source: how to name the file in error messages.
    """
    filtered = checkpoint_filter_fn(state_dict, model)
    missing = [k for k in filtered.missing if not k.startswith(tuple(allow_missing))]
    if missing:
        raise CheckpointError(f'{source} lacks {len(missing)} weights: {_names(missing)}')
    if filtered.unexpected:
        raise CheckpointError(
            f'{source} has {len(filtered.unexpected)} weights the model does not: '
            f'{_names(filtered.unexpected)}'
        )
    expected = model.state_dict()
    if CLASSIFIER_WEIGHT in filtered.state_dict:
        classes = filtered.state_dict[CLASSIFIER_WEIGHT].shape[1]
        model_classes = expected[CLASSIFIER_WEIGHT].shape[1]
        if classes != model_classes:
            raise CheckpointError(
                f'{source} predicts {classes} classes, the model {model_classes}'
            )
    wrong = [
        f'{name} {tuple(tensor.shape)} (model {tuple(expected[name].shape)})'
        for name, tensor in filtered.state_dict.items() if tensor.shape != expected[name].shape
    ]
    if wrong:
        raise CheckpointError(f'{source} has weights of the wrong shape: {_names(wrong)}')
    broken = [name for name, tensor in filtered.state_dict.items()
              if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if broken:
        raise CheckpointError(f'{source} has weights that are NaN or infinite: {_names(broken)}')
    model.load_state_dict(filtered.state_dict, strict=False)
    return filtered


def _is_safetensors(path: Path) -> bool:
    """Whether the file starts like safetensors: a little-endian u64 size, then a JSON header."""
    with path.open('rb') as file:
        head = file.read(9)
    if len(head) < 9:
        return False
    (header_size,) = struct.unpack('<Q', head[:8])
    return 0 < header_size <= MAX_SAFETENSORS_HEADER and head[8:9] == b'{'


def _lfs_pointer_problem(path: Path) -> str | None:
    """Describe a Git LFS pointer file (weights never fetched); None for any other file."""
    with path.open('rb') as file:
        head = file.read(1024)
    if not head.startswith(LFS_POINTER_START):
        return None
    fields = dict(line.split(' ', 1) for line in head.decode('ascii', 'replace').splitlines()
                  if ' ' in line)
    return (f'{path}: a Git LFS pointer file, not the weights themselves (object '
            f'{fields.get("oid", "unknown")}, {fields.get("size", "unknown")} bytes); fetch it '
            f'with `git lfs pull` in its repository')


def _unpickling_reason(message: str) -> str:
    """Extract the cause from a ``torch.load(weights_only=True)`` error, without its advice.

    torch's message starts with advice to load the file with ``weights_only=False``, which is
    exactly what must not be done with a file that failed; the cause is on a later line.
    """
    called = re.search(r'GLOBAL\s+([\w.]+)', message)  # "unsupported GLOBAL posix.system"
    if called is not None:
        return f'it calls {called[1]}'
    lines = (line.strip().removeprefix('WeightsUnpickler error:').strip()
             for line in message.splitlines())
    causes = [line for line in lines if line and not any(
        advice in line for advice in ('weights_only', 'Weights only load failed', 'torch.load')
    )]
    return causes[0] if causes else 'the safe loader cannot read it'


def read_state_dict(
    path: str | Path,
) -> tuple[dict[str, torch.Tensor], dict[str, str] | None]:
    """Read the tensors of a weights file and its safetensors metadata (None for .pth)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'{path}: no such checkpoint file')
    lfs_problem = _lfs_pointer_problem(path)
    if lfs_problem is not None:
        raise CheckpointError(lfs_problem)
    if _is_safetensors(path):
        try:
            with safe_open(str(path), framework='pt') as file:
                tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118
                return tensors, file.metadata()
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f'{path}: damaged safetensors file ({error})') from None
    try:
        loaded = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _unpickling_reason(str(error))
        if reason.startswith('it calls'):
            raise CheckpointError(
                f'{path}: refused: loading this file would run code ({reason}); only tensors '
                'and plain containers are read from pickles'
            ) from None
        raise CheckpointError(f'{path}: not a checkpoint (unreadable pickle: {reason})') from None
    except Exception as error:  # torch.load raises many types for files that are not pickles
        raise CheckpointError(
            f'{path}: not a checkpoint (neither safetensors nor a PyTorch file; '
            f'{type(error).__name__}: {error})'
        ) from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get('state_dict'), Mapping):
        loaded = loaded['state_dict']
    if not isinstance(loaded, Mapping) or not loaded or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise CheckpointError(f'{path}: not a checkpoint (no state dict of named tensors)')
    return dict(loaded), None


def _infer_published_config(state_dict: Mapping[str, torch.Tensor], path: Path) -> ModelConfig:
    """Describe the model a published ERFNet or LMANet state dict holds."""
    renamed = {_rename(key): tensor for key, tensor in state_dict.items()}
    if CLASSIFIER_WEIGHT not in renamed:
        raise CheckpointError(f'{path}: not an ERFNet checkpoint (no {CLASSIFIER_WEIGHT})')
    backbone = ERFNetConfig(num_classes=renamed[CLASSIFIER_WEIGHT].shape[1])
    if 'memory_kv.key.weight' not in renamed or 'memory_kv.value.weight' not in renamed:
        return ModelConfig(backbone)
    lma = LMAConfig(
        key_dim=renamed['memory_kv.key.weight'].shape[0],
        value_dim=renamed['memory_kv.value.weight'].shape[0],
    )
    return ModelConfig(backbone, lma)


def load_checkpoint(
    path: str | Path, *, device: str | torch.device = 'cpu'
) -> tuple[nn.Module, CheckpointInfo]:
    """Build the model a checkpoint describes and load its weights (in eval mode).

    Reads our safetensors files and the published ERFNet and LMANet ``.pth`` files; for the
    latter the config is inferred from the tensors and the input size is 512×1024.
    """
    path = Path(path)
    state_dict, metadata = read_state_dict(path)
    if metadata and METADATA_KEY in metadata:
        try:
            info = json.loads(metadata[METADATA_KEY])
            config = ModelConfig.from_dict(info['model'])
            height, width = info['input_size']
        except (ValueError, KeyError, TypeError) as error:
            raise CheckpointError(f'{path}: unreadable model config ({error})') from None
        problem = input_size_problem((height, width))
        if problem is not None:
            raise CheckpointError(f'{path}: input_size {info["input_size"]!r}: {problem}')
        source = METADATA_KEY
    else:
        config = _infer_published_config(state_dict, path)
        height, width = DEFAULT_INPUT_SIZE
        source = 'erfnet' if config.lma is None else 'lmanet'
    model = build_model(config)
    load_state_dict_into(model, state_dict, source=str(path))
    return model.to(device).eval(), CheckpointInfo(config, (height, width), source)


def load_pretrained(
    model: nn.Module, path: str | Path, *, allow_missing: Sequence[str] = ()
) -> FilteredStateDict:
    """Load the weights of a file (any format above) into an existing ``model``.

    Example: ``load_pretrained(create_model('lma_erfnet'), 'erfnet_pretrained.pth',
    allow_missing=('memory_kv', 'query_kv', 'fusion'))`` starts LMA training from ERFNet.
    """
    state_dict, _ = read_state_dict(path)
    return load_state_dict_into(model, state_dict, allow_missing=allow_missing, source=str(path))


def save_checkpoint(
    path: str | Path, model: nn.Module, *, input_size: tuple[int, int],
    config: ModelConfig | None = None,
) -> None:
    """Write ``model``'s weights and config to a safetensors file.

    Args:
        path: the file to write.
        model: a model from :func:`~lma_perception.models.create_model` (or pass ``config``).
        input_size: the (height, width) the model was trained at, multiples of 8.
        config: the model's config, when the model does not carry ``model_config``.
    """
    config = config or getattr(model, 'model_config', None)
    if config is None:
        raise ValueError('the model carries no model_config: pass config=')
    problem = input_size_problem(input_size)
    if problem is not None:
        raise ValueError(f'input_size: {problem}')
    height, width = input_size
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        METADATA_KEY: json.dumps({
            'format_version': FORMAT_VERSION,
            'model': config.to_dict(),
            'input_size': [height, width],
        }),
    }
    save_file(tensors, str(path), metadata=metadata)
