"""The memory read used at run time: the best implementation for the tensors' device.

The blocked read (`lma_perception.models.memory_read`) serves every device. A fused kernel plugs
in with :func:`register_kernel` and is then used for tensors on that device type; the Triton
kernel of ``triton_memory_read.py`` is registered for CUDA on the first CUDA read when Triton
imports.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import torch

from lma_perception.models.memory_read import DEFAULT_WINDOW, local_memory_read_blocked

MemoryReadFn = Callable[..., torch.Tensor]

_KERNELS: dict[str, MemoryReadFn] = {}


def register_kernel(device_type: str, kernel: MemoryReadFn) -> None:
    """Use ``kernel`` for tensors on ``device_type`` (e.g. a fused Triton kernel for 'cuda').

    The kernel takes the arguments of `memory_read.local_memory_read_reference` and must give the
    same result; ``test/test_memory_read.py`` is the check to run against it.
    """
    _KERNELS[device_type] = kernel


@cache
def _register_fused_kernel(device_type: str) -> None:
    """Register the fused Triton read the first time tensors on CUDA are read."""
    if device_type != 'cuda' or device_type in _KERNELS:
        return
    try:
        from lma_perception.models.triton_memory_read import triton_local_memory_read
    except ImportError:  # without Triton the blocked read serves CUDA as well
        return
    register_kernel('cuda', triton_local_memory_read)


def select_kernel(device: torch.device) -> MemoryReadFn:
    """Return the implementation :func:`local_memory_read` uses for ``device``."""
    _register_fused_kernel(device.type)
    return _KERNELS.get(device.type, local_memory_read_blocked)


def local_memory_read(
    query_key: torch.Tensor, memory_keys: torch.Tensor, memory_values: torch.Tensor, *,
    valid: torch.Tensor | None = None, slot_bias: torch.Tensor | None = None,
    window: int = DEFAULT_WINDOW,
) -> torch.Tensor:
    """Read the memory with the best implementation for the tensors' device (B×Dv×H×W).

    Arguments as for `memory_read.local_memory_read_reference`.
    """
    kernel = select_kernel(query_key.device)
    return kernel(
        query_key, memory_keys, memory_values, valid=valid, slot_bias=slot_bias, window=window
    )
