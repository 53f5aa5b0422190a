"""Training steps per second of both stages, eager and compiled, in one process.

Stage 1 trains ERFNet, stage 2 the LMA modules with the backbone frozen. Each step is the
trainer's: its forward module (`TrainingForward`), class-weighted cross-entropy, backward and
an Adam step, on random images and labels, channels-last, in training mode (stage 2 with the
encoder and decoder BatchNorm in eval mode, on clips of T + 1 frames). With `--compile` the
same step also runs with the forward module under `torch.compile`; eager and compiled steps
alternate after warm-up steps that also absorb the compilation, and the median step time is
reported.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from lma_perception.arguments import network_size, positive_int
from lma_perception.labels import IGNORE_INDEX, NUM_CLASSES
from lma_perception.models import create_model
from lma_perception.runtime.device import resolve_device, synchronize
from lma_perception.train.forward import TrainingForward, keep_batchnorm_statistics

DEFAULT_SIZES = ('512x256',)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this benchmark's options."""
    parser.add_argument('--sizes', nargs='+', type=network_size,
                        default=[network_size(s) for s in DEFAULT_SIZES], metavar='WxH',
                        help=f'input sizes (default: {" ".join(DEFAULT_SIZES)})')
    parser.add_argument('--stages', nargs='+', choices=('single', 'lma'),
                        default=['single', 'lma'])
    parser.add_argument('--batch-size', type=positive_int, default=2,
                        help='samples per step (per process)')
    parser.add_argument('--memory-length', type=positive_int, default=3,
                        help="T memory frames per clip of stage 'lma'")
    parser.add_argument('--steps', type=positive_int, default=5, help='timed steps per variant')
    parser.add_argument('--warmup', type=positive_int, default=2,
                        help='untimed steps per variant first (compilation happens here)')
    parser.add_argument('--compile', action='store_true',
                        help='also time the step with torch.compile')
    parser.add_argument('--device', default='auto')
    parser.add_argument('--threads', type=positive_int, default=None,
                        help='CPU threads for PyTorch')


def training_step(stage: str, device: torch.device, size: tuple[int, int], batch: int,
                  memory_length: int, compiled: bool) -> Callable[[], None]:
    """Return one optimiser step of ``stage`` on fixed random data."""
    torch.manual_seed(0)
    if stage == 'single':
        model, frames = create_model('erfnet'), 1
    else:
        model, frames = create_model('lma_erfnet'), memory_length + 1
        for part in (model.encoder, model.decoder):
            part.requires_grad_(False)
    model = model.to(device, memory_format=torch.channels_last).train()
    if stage == 'lma':
        keep_batchnorm_statistics(model.encoder, model.decoder)
    forward: nn.Module = TrainingForward(model, frames - 1, joint=False)
    if compiled:
        forward = torch.compile(forward, dynamic=False)  # as the trainer compiles it
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    images = torch.rand(batch, frames, 3, *size, device=device)
    labels = torch.randint(0, NUM_CLASSES, (batch, *size), device=device)
    weights = torch.ones(NUM_CLASSES + 1, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == 'cuda')

    def step() -> None:
        with autocast:
            (logits,) = forward(images)
        loss = F.cross_entropy(logits.float(), labels, weight=weights, ignore_index=IGNORE_INDEX)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def measure(steps: dict[str, Callable[[], None]], device: torch.device, timed: int,
            warmup: int) -> dict[str, float]:
    """Median seconds per step of each variant, the variants alternating step by step."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for repeat in range(warmup + timed):
        for name, step in steps.items():
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            if repeat >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main(args: argparse.Namespace) -> int:
    """Run the benchmark and print one line per stage, size and variant."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f'training steps, batch {args.batch_size}, channels-last, '
          f'{"bf16 autocast" if device.type == "cuda" else "fp32"}, Adam; median of '
          f'{args.steps} steps after {args.warmup} warm-up; torch {torch.__version__}, '
          f'{device}, {torch.get_num_threads()} CPU threads')
    print(f'{"stage":<8}{"size":>11}{"variant":>10}{"s/step":>9}{"steps/s":>9}'
          f'{"samples/s":>11}{"vs eager":>10}')
    for stage in args.stages:
        for height, width in args.sizes:
            variants = {'eager': False, **({'compiled': True} if args.compile else {})}
            steps = {name: training_step(stage, device, (height, width), args.batch_size,
                                         args.memory_length, compiled)
                     for name, compiled in variants.items()}
            seconds = measure(steps, device, args.steps, args.warmup)
            for name, value in seconds.items():
                print(f'{stage:<8}{f"{width}x{height}":>11}{name:>10}{value:>9.3f}'
                      f'{1 / value:>9.2f}{args.batch_size / value:>11.2f}'
                      f'{seconds["eager"] / value:>10.2f}')
    return 0
