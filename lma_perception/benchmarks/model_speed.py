"""ERFNet vs LMA-ERFNet: per-frame streaming time with a full memory, in one process.

For each device and input size, both models (random weights, eval mode, channels-last, as
the engine runs them) process one frame at a time: ERFNet a plain forward pass, LMA-ERFNet a
streaming step that reads a memory holding T frames and writes the new frame into it. The
runs alternate between the two models and the median of the repeats is reported, with the
ratio LMA/ERFNet and the share of the LMA time spent in the local memory read (timed on its
own, on the same tensors).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from lma_perception.arguments import network_size, positive_int
from lma_perception.memory import MemoryBank, MemoryBatch
from lma_perception.models import create_model
from lma_perception.runtime.device import prepare_model, resolve_device, synchronize

DEFAULT_SIZES = ('512x256', '1024x512')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this benchmark's options."""
    parser.add_argument(
        '--sizes', nargs='+', type=network_size,
        default=[network_size(s) for s in DEFAULT_SIZES], metavar='WxH',
        help=f'input sizes (default: {" ".join(DEFAULT_SIZES)})',
    )
    parser.add_argument('--memory-length', type=positive_int, default=4,
                        help='T, frames in memory')
    parser.add_argument(
        '--repeats', type=positive_int, default=None,
        help='timed frames per model (default: 20 up to 512x512, 10 above)',
    )
    parser.add_argument(
        '--devices', nargs='+', default=None,
        help="devices to run on (default: cpu, and cuda when available)",
    )
    parser.add_argument('--threads', type=positive_int, default=None,
                        help='CPU threads for PyTorch')


def _timed(function: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return (time.perf_counter() - start) * 1e3


def measure(
    device: torch.device, size: tuple[int, int], memory_length: int, repeats: int
) -> dict[str, float]:
    """Median ms per frame of ERFNet, LMA-ERFNet and the memory read alone."""
    torch.manual_seed(0)
    erfnet = prepare_model(create_model('erfnet'), device)
    lma = prepare_model(create_model('lma_erfnet'), device)
    frame = torch.rand(1, 3, *size, device=device).contiguous(memory_format=torch.channels_last)
    bank = MemoryBank(memory_length)
    with torch.inference_mode():
        for _ in range(memory_length):
            step = lma.step(torch.rand_like(frame), MemoryBatch.from_banks([bank]))
            bank.write(step.memory_key[0], step.memory_value[0])
        query_key = lma.query_kv(lma.encode(frame))[0]

        def erfnet_frame() -> None:
            erfnet(frame)

        def lma_frame() -> None:
            output = lma.step(frame, MemoryBatch.from_banks([bank]))
            bank.write(output.memory_key[0], output.memory_value[0])

        def memory_read() -> None:
            lma.read_memory(query_key, MemoryBatch.from_banks([bank]))

        runs: dict[str, list[float]] = {'erfnet': [], 'lma': [], 'read': []}
        for repeat in range(repeats + 1):  # the first round warms up and is not counted
            for name, function in (('erfnet', erfnet_frame), ('lma', lma_frame),
                                   ('read', memory_read)):
                elapsed = _timed(function, device)
                if repeat:
                    runs[name].append(elapsed)
    return {name: statistics.median(times) for name, times in runs.items()}


def main(args: argparse.Namespace) -> int:
    """Run the benchmark and print one line per device and size."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_length < 1:
        raise SystemExit(f'--memory-length must be at least 1, got {args.memory_length}')
    devices = args.devices or ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    print(f'ERFNet vs LMA-ERFNet, one frame per step, memory T={args.memory_length} (full), '
          f'batch 1, fp32, channels-last; median of the repeats; torch {torch.__version__}, '
          f'{torch.get_num_threads()} CPU threads')
    print(f'{"device":<8}{"size":>11}{"ERFNet ms":>11}{"LMA ms":>9}{"LMA/ERFNet":>12}'
          f'{"read ms":>9}{"read share":>12}')
    for spec in devices:
        device = resolve_device(spec)
        for height, width in args.sizes:
            repeats = args.repeats or (20 if height * width <= 2**18 else 10)
            ms = measure(device, (height, width), args.memory_length, repeats)
            print(f'{device!s:<8}{f"{width}x{height}":>11}{ms["erfnet"]:>11.1f}'
                  f'{ms["lma"]:>9.1f}{ms["lma"] / ms["erfnet"]:>12.2f}{ms["read"]:>9.1f}'
                  f'{ms["read"] / ms["lma"]:>12.0%}')
    return 0
