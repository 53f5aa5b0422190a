"""ERFNet vs LMA-ERFNet on a CUDA GPU: latency, multi-camera throughput and memory, in one run.

Random weights (speed does not depend on them), eval mode, channels-last, as the engine runs
them. ERFNet is the baseline that every LMA number is divided by, measured in the same
process, for each precision asked for (fp32, fp16/bf16 autocast):

1. *model*: one frame per step at the network size (default 1024x512), batch 1: ERFNet's
   forward pass vs LMA-ERFNet's streaming step, which reads a full memory of T frames and
   writes the new frame into it. GPU time per frame from CUDA events, p50 and p99; the LMA
   overhead in ms and the ratio LMA/ERFNet.
2. *read*: the local memory read of that step alone, on the same tensors: the blocked
   PyTorch read vs the fused Triton kernel, one line per kernel tile asked for, with the
   largest difference between the two reads.
3. *engine*: ``SegmentationEngine.segment`` with 1, 4 and 8 cameras in one batch (uint8
   images at the network size in, label maps on the host out, memories full): wall-clock
   p50/p99 per call, aggregate frames/s, and GPU memory: the peak allocated above the
   model's weights (``torch.cuda.max_memory_allocated``) per camera stream, and the bytes
   each stream's memory bank holds.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import torch

from lma_perception.arguments import positive_int
from lma_perception.benchmarks.model_speed import network_size
from lma_perception.memory import DEFAULT_MEMORY_LENGTH, MemoryBank, MemoryBatch
from lma_perception.models import create_model
from lma_perception.models.memory_read import local_memory_read_blocked
from lma_perception.runtime.device import (
    PRECISIONS,
    autocast,
    prepare_model,
    resolve_device,
)
from lma_perception.runtime.engine import EngineConfig, SegmentationEngine

DEFAULT_SIZE = '1024x512'
DEFAULT_STREAMS = (1, 4, 8)
MIB = 2.0**20


def _tile(text: str) -> tuple[int, int]:
    """'ROWSxCOLUMNS' → (rows, columns) of query pixels per kernel program."""
    try:
        rows, columns = (int(side) for side in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected ROWSxCOLUMNS, got {text!r}') from None
    if rows < 1 or columns < 1 or rows & (rows - 1) or columns & (columns - 1) or (
        rows * columns < 16
    ):
        raise argparse.ArgumentTypeError(
            f'tile sides must be powers of two with at least 16 pixels, got {text!r}'
        )
    return rows, columns


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this benchmark's options."""
    parser.add_argument('--size', type=network_size, default=network_size(DEFAULT_SIZE),
                        metavar='WxH', help=f'network input size (default: {DEFAULT_SIZE})')
    parser.add_argument('--memory-length', type=positive_int, default=DEFAULT_MEMORY_LENGTH,
                        help=f'T, frames in memory (default: {DEFAULT_MEMORY_LENGTH})')
    parser.add_argument('--streams', type=positive_int, nargs='+', default=list(DEFAULT_STREAMS),
                        help='camera counts batched through the engine (default: 1 4 8)')
    parser.add_argument('--precisions', nargs='+', choices=list(PRECISIONS),
                        default=['fp32', 'fp16'], help='precisions to run (default: fp32 fp16)')
    parser.add_argument('--repeats', type=positive_int, default=100,
                        help='timed frames or calls per measurement (default: 100)')
    parser.add_argument('--warmup', type=positive_int, default=10,
                        help='untimed calls before each measurement (default: 10)')
    parser.add_argument('--tiles', type=_tile, nargs='+', default=None, metavar='RxC',
                        help="the Triton kernel's query tiles to time (default: its own)")
    parser.add_argument('--device', default='cuda', help='CUDA device (default: cuda)')


@dataclass(frozen=True)
class Timing:
    """Percentiles of one measurement, in milliseconds."""

    p50: float
    p99: float
    mean: float

    @classmethod
    def of(cls, times_ms: list[float]) -> Timing:
        """Summarise a list of times."""
        p50, p99 = np.percentile(times_ms, [50, 99])
        return cls(float(p50), float(p99), float(np.mean(times_ms)))


def _gpu_times(function: Callable[[], object], repeats: int, warmup: int) -> Timing:
    """GPU time of each call from CUDA events around it (the call's queued work included)."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        function()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return Timing.of(times)


def _wall_times(function: Callable[[], object], repeats: int, warmup: int) -> Timing:
    """Wall-clock time of calls that return results on the host (they synchronise)."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1e3)
    return Timing.of(times)


def _triton_read() -> ModuleType | None:
    """Return the module of the fused Triton read, or None without Triton."""
    try:
        return importlib.import_module('lma_perception.models.triton_memory_read')
    except ImportError:
        return None


def measure_models(
    device: torch.device, args: argparse.Namespace, precision: str
) -> tuple[dict[str, Timing], list[tuple[str, Timing, float]]]:
    """Per-frame times of both models, and of the memory read alone per implementation.

    Returns the model timings ('erfnet', 'lma') and (name, timing, largest difference from
    the blocked read) per memory read.
    """
    torch.manual_seed(0)
    erfnet = prepare_model(create_model('erfnet'), device)
    lma = prepare_model(create_model('lma_erfnet'), device)
    frame = torch.rand(1, 3, *args.size, device=device).contiguous(
        memory_format=torch.channels_last
    )
    bank = MemoryBank(args.memory_length)
    with torch.inference_mode(), autocast(device, PRECISIONS[precision]):
        for _ in range(args.memory_length):
            step = lma.step(torch.rand_like(frame), MemoryBatch.from_banks([bank]))
            bank.write(step.memory_key[0], step.memory_value[0])

        def lma_frame() -> None:
            output = lma.step(frame, MemoryBatch.from_banks([bank]))
            bank.write(output.memory_key[0], output.memory_value[0])

        models = {
            'erfnet': _gpu_times(lambda: erfnet(frame), args.repeats, args.warmup),
            'lma': _gpu_times(lma_frame, args.repeats, args.warmup),
        }

        query_key = lma.query_kv(lma.encode(frame))[0]
        memory = MemoryBatch.from_banks([bank])
        blocked = local_memory_read_blocked(query_key, memory.keys, memory.values)
        reads = [('blocked PyTorch', _gpu_times(
            lambda: local_memory_read_blocked(query_key, memory.keys, memory.values),
            args.repeats, args.warmup,
        ), 0.0)]
        triton_read = _triton_read()
        if triton_read is not None:
            fused = triton_read.triton_local_memory_read
            for tile in args.tiles or [triton_read.TILE]:
                out = fused(query_key, memory.keys, memory.values, tile=tile)
                difference = (out.float() - blocked.float()).abs().max().item()
                timing = _gpu_times(
                    lambda tile=tile: fused(query_key, memory.keys, memory.values, tile=tile),
                    args.repeats, args.warmup,
                )
                reads.append((f'Triton {tile[0]}x{tile[1]}', timing, difference))
    return models, reads


@dataclass(frozen=True)
class EngineRun:
    """One engine configuration: call times and GPU memory."""

    timing: Timing
    frames_per_second: float
    peak_mib_per_stream: float
    bank_mib_per_stream: float


def measure_engine(
    device: torch.device, args: argparse.Namespace, precision: str, model_name: str,
    streams: int,
) -> EngineRun:
    """Time ``segment`` for ``streams`` cameras in one batch, memories full."""
    # Tensors of the previous configuration go first, so that its peak does not count here.
    gc.collect()
    torch.cuda.empty_cache()
    torch.manual_seed(0)
    config = EngineConfig(device=str(device), precision=precision, input_size=args.size,
                          memory_length=args.memory_length)
    engine = SegmentationEngine(create_model(model_name), config)
    resident = torch.cuda.memory_allocated(device)  # the model's weights
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (*args.size, 3), dtype=np.uint8) for _ in range(streams)]
    memories = [engine.new_memory() for _ in range(streams)]
    torch.cuda.reset_peak_memory_stats(device)
    # The warm-up also fills the memories, so every timed call reads T frames per camera.
    timing = _wall_times(
        lambda: engine.segment(images, memories), args.repeats,
        max(args.warmup, args.memory_length),
    )
    peak = torch.cuda.max_memory_allocated(device) - resident
    banks = sum(memory.nbytes for memory in memories if memory is not None)
    return EngineRun(
        timing, streams * 1e3 / timing.mean, peak / streams / MIB, banks / streams / MIB
    )


def _print_models(models: dict[str, Timing], reads: list[tuple[str, Timing, float]]) -> None:
    erfnet, lma = models['erfnet'], models['lma']
    print(f'  {"model":<16}{"p50 ms":>9}{"p99 ms":>9}')
    print(f'  {"ERFNet":<16}{erfnet.p50:>9.2f}{erfnet.p99:>9.2f}')
    print(f'  {"LMA-ERFNet":<16}{lma.p50:>9.2f}{lma.p99:>9.2f}')
    print(f'  LMA overhead {lma.p50 - erfnet.p50:.2f} ms per frame (p50), '
          f'LMA/ERFNet {lma.p50 / erfnet.p50:.2f}')
    baseline = reads[0][1]
    print(f'  {"memory read":<16}{"p50 ms":>9}{"p99 ms":>9}{"vs blocked":>12}'
          f'{"max |diff|":>12}')
    for name, timing, difference in reads:
        print(f'  {name:<16}{timing.p50:>9.3f}{timing.p99:>9.3f}'
              f'{baseline.p50 / timing.p50:>11.1f}x{difference:>12.2e}')
    if len(reads) == 1:
        print('  (Triton is not installed: no fused read to time)')


def _print_engine(runs: dict[tuple[int, str], EngineRun], streams: list[int]) -> None:
    print(f'  {"cameras":>7}  {"model":<11}{"p50 ms":>9}{"p99 ms":>9}{"frames/s":>10}'
          f'{"vs ERFNet":>11}{"peak MiB/cam":>14}{"bank MiB/cam":>14}')
    for count in streams:
        baseline = runs[count, 'erfnet']
        for name, label in (('erfnet', 'ERFNet'), ('lma_erfnet', 'LMA-ERFNet')):
            run = runs[count, name]
            print(f'  {count:>7}  {label:<11}{run.timing.p50:>9.2f}{run.timing.p99:>9.2f}'
                  f'{run.frames_per_second:>10.1f}'
                  f'{run.frames_per_second / baseline.frames_per_second:>11.2f}'
                  f'{run.peak_mib_per_stream:>14.2f}{run.bank_mib_per_stream:>14.2f}')


def main(args: argparse.Namespace) -> int:
    """Run the three measurements per precision and print them with their ratios."""
    if not torch.cuda.is_available():
        print(f'bench gpu needs a CUDA GPU, and torch {torch.__version__} finds none '
              f'(CUDA build: {torch.version.cuda or "no"})', file=sys.stderr)
        return 1
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        print(f'bench gpu: {error}', file=sys.stderr)
        return 1
    if device.type != 'cuda':
        print(f'bench gpu measures CUDA devices, not {args.device!r}', file=sys.stderr)
        return 1
    torch.cuda.set_device(device)
    height, width = args.size
    print(f'GPU: {torch.cuda.get_device_name(device)}; torch {torch.__version__}, '
          f'CUDA {torch.version.cuda}; {width}x{height}, memory T={args.memory_length}, '
          f'{args.repeats} timed runs after {args.warmup} warm-up')
    for precision in args.precisions:
        label = 'fp32' if precision == 'fp32' else f'{precision} autocast'
        print(f'\n[{label}] one frame per step, batch 1 (CUDA events)')
        _print_models(*measure_models(device, args, precision))
        print(f'[{label}] SegmentationEngine.segment, all cameras in one batch (wall clock)')
        runs = {
            (count, name): measure_engine(device, args, precision, name, count)
            for count in args.streams for name in ('erfnet', 'lma_erfnet')
        }
        _print_engine(runs, args.streams)
    return 0
