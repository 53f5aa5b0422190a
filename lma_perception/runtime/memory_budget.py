"""Whether a node's memories and forward pass fit the memory of the device they run on.

The fixed bounds (`MAX_MEMORY_LENGTH`, `MAX_INPUT_SIDE`, the node's `MAX_CAMERAS` and
`MAX_BATCH_SIZE`) stop typos on any machine; what fits within them depends on the device. The
node checks once its model is loaded, before the first forward pass, so that a memory too
large for the device stops it at start-up with one message naming the parameter, instead of an
allocation failure in the middle of a stream (a bank allocates all of its T slots on its first
write, a forward pass all of its activations at once).

- Memories: cameras × memory_length × one frame's entry, (key_dim + value_dim) × h/8 × w/8
  values of the compute dtype: 2.6 MB (2,621,440 bytes) at 512×1024 in fp32.
- A forward pass: FORWARD_BYTES_PER_PIXEL per network input pixel and image of a batch.
- Available: free CUDA memory of the model's GPU (`torch.cuda.mem_get_info`, the weights
  already loaded), or the host's available memory (MemAvailable) on the CPU.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

# Peak resident memory of one forward pass on the CPU in fp32, less the model, measured with
# getrusage at 256×512 and 512×1024, batches of 1 and 2: 250 to 380 bytes per input pixel and
# image (input, activations, full-size logits, oneDNN workspace). Rounded up.
FORWARD_BYTES_PER_PIXEL = 400
_MEMINFO = Path('/proc/meminfo')


class MemoryBudgetError(ValueError):
    """The configured memories or forward pass need more memory than the device has free."""


def available_bytes(device: torch.device) -> tuple[int, str]:
    """Return the bytes free for the model's tensors on `device`, and what they are."""
    if device.type == 'cuda':
        free, _total = torch.cuda.mem_get_info(device)
        return free, f'the free memory of {device}'
    return _host_available_bytes(), "the host's available memory"


def _host_available_bytes() -> int:
    # MemAvailable counts the page cache the kernel would give back; the free pages alone
    # (SC_AVPHYS_PAGES) would understate it on any machine that has run for a while.
    if _MEMINFO.is_file():
        for line in _MEMINFO.read_text().splitlines():
            if line.startswith('MemAvailable:'):
                return int(line.split()[1]) * 1024
    return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')


def memory_entry_bytes(
    key_dim: int, value_dim: int, stride: int, input_size: tuple[int, int], dtype: torch.dtype
) -> int:
    """Return the bytes of one frame in a memory bank: its key and value maps."""
    height, width = (-(-side // stride) for side in input_size)
    return (key_dim + value_dim) * height * width * torch.empty((), dtype=dtype).element_size()


def forward_bytes(input_size: tuple[int, int], batch_size: int) -> int:
    """Return the working memory of one forward pass of `batch_size` images."""
    return FORWARD_BYTES_PER_PIXEL * input_size[0] * input_size[1] * batch_size


def check_budget(
    *, cameras: int, memory_length: int, entry_bytes: int, input_size: tuple[int, int],
    batch_size: int, available: int, what: str, input_size_name: str,
) -> None:
    """Raise a MemoryBudgetError naming the parameter whose value does not fit in `available`.

    The forward pass is checked first, on its own: it is what `input_size` costs. The memories
    come on top of it and are `memory_length`'s.
    """
    height, width = input_size
    forward = forward_bytes(input_size, batch_size)
    if forward > available:
        raise MemoryBudgetError(
            f'parameter {input_size_name} = [{height}, {width}]: a forward pass of {batch_size} '
            f'image(s) at {width}×{height} needs {_size(forward)}, but {what} is '
            f'{_size(available)}'
        )
    memories = cameras * memory_length * entry_bytes
    if forward + memories > available:
        raise MemoryBudgetError(
            f'parameter \'memory_length\' = {memory_length}: {cameras} camera(s) × '
            f'{memory_length} frames × {_size(entry_bytes)} a frame (network input '
            f'{width}×{height}) need {_size(memories)} beside the {_size(forward)} of a forward '
            f'pass, but {what} is {_size(available)}'
        )


def _size(count: int) -> str:
    for unit, scale in (('TiB', 2**40), ('GiB', 2**30), ('MiB', 2**20), ('KiB', 2**10)):
        if count >= scale:
            return f'{count:,} bytes ({count / scale:.1f} {unit})'
    return f'{count:,} bytes'
