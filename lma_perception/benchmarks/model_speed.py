"""ERFNet vs LMA-ERFNet in every installed backend: per-step time, ratios, share of fp32 peak.

For each input size, batch size and model (random weights, fp32, on the CPU), every backend
runs the same step as the engine: ERFNet a forward pass, LMA-ERFNet a streaming step that reads
a full memory of T frames per stream and writes the new frame into it; both end in uint8 labels
(argmax on the backend's side). The backends take turns, one step each, in an order that
rotates every round, so that a machine shared with other work slows them alike and the ratios
hold. Reduced precisions the CPU runs (bf16 in OpenVINO on CPUs with AVX-512 BF16 or AMX) are
further rows, ``openvino/bf16``. Reported per row: min and median ms, torch eager's median over
this one's, LMA/ERFNet (medians, same backend, size and batch), and the share of the CPU's
fp32 peak reached, from the multiply-adds counted on the torch model (convolutions and matrix
products as PyTorch's FlopCounterMode counts them, with the memory read at its useful
T·P²·(Dk+Dv) per pixel) and the peak measured by a short fp32 matrix-product probe at start.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from lma_perception.arguments import network_size, positive_int
from lma_perception.memory import MemoryBank, MemoryBatch
from lma_perception.models import create_model
from lma_perception.runtime.backend_names import CPU_RUNTIMES, precision_problem
from lma_perception.runtime.backends import BackendError, create_backend, runtime_version
from lma_perception.runtime.device import prepare_model

DEFAULT_SIZES = ('512x256', '1024x512')
DEFAULT_BATCHES = (1, 3)
MODELS = ('erfnet', 'lma_erfnet')
PROBE_SIDE = 1024  # fp32 matrix products of this side: large enough to run at peak
PROBE_SECONDS = 1.0


def installed_backends() -> list[str]:
    """Return torch and every CPU runtime whose package is installed here."""
    return ['torch'] + [name for name in CPU_RUNTIMES if importlib.util.find_spec(name)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this benchmark's options."""
    parser.add_argument(
        '--sizes', nargs='+', type=network_size,
        default=[network_size(s) for s in DEFAULT_SIZES], metavar='WxH',
        help=f'input sizes (default: {" ".join(DEFAULT_SIZES)})',
    )
    parser.add_argument('--batches', nargs='+', type=positive_int, default=list(DEFAULT_BATCHES),
                        help='batch sizes (default: 1 3)')
    parser.add_argument('--backends', nargs='+', choices=('torch', *CPU_RUNTIMES),
                        help='backends to compare (default: every one installed)')
    parser.add_argument('--precisions', nargs='+', choices=('fp32', 'bf16'),
                        default=['fp32', 'bf16'],
                        help='precisions to run, each by the backends that run it on the CPU '
                        '(default: fp32 bf16)')
    parser.add_argument('--memory-length', type=positive_int, default=4,
                        help='T, frames in memory')
    parser.add_argument(
        '--repeats', type=positive_int, default=None,
        help='timed steps per backend and case (default: 10 up to 512x256 × 1, else 5)',
    )
    parser.add_argument('--threads', type=positive_int, default=None,
                        help='CPU threads for every backend (default: each its own)')


def peak_gflops(threads: int | None) -> float:
    """Best fp32 GFLOP/s of square matrix products over about PROBE_SECONDS."""
    a = torch.rand(PROBE_SIDE, PROBE_SIDE)
    b = torch.rand(PROBE_SIDE, PROBE_SIDE)
    out = torch.empty(PROBE_SIDE, PROBE_SIDE)
    best, deadline = 0.0, time.perf_counter() + PROBE_SECONDS
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best = max(best, 2 * PROBE_SIDE**3 / (time.perf_counter() - start) / 1e9)
    return best


def counted_macs(model: torch.nn.Module, size: tuple[int, int], memory_length: int) -> float:
    """Multiply-adds of one frame (see the module notes)."""
    # Imported here: flop_counter imports Triton where it is installed, and Triton must not be
    # imported as a side effect of importing the package (its interpreter mode is chosen then).
    from torch.utils.flop_counter import FlopCounterMode

    frame = torch.rand(1, 3, *size)
    with torch.inference_mode():
        if model.model_config.lma is None:
            with FlopCounterMode(display=False) as counter:
                model(frame)
            return counter.get_total_flops() / 2
        step = model.step(frame)
        keys = step.memory_key.unsqueeze(1).expand(-1, memory_length, -1, -1, -1)
        values = step.memory_value.unsqueeze(1).expand(-1, memory_length, -1, -1, -1)
        memory = MemoryBatch.from_frames(keys.contiguous(), values.contiguous())
        with FlopCounterMode(display=False) as counter:
            model.step(frame, memory)
        total = counter.get_total_flops()
        query_key = model.query_kv(model.encode(frame))[0]
        with FlopCounterMode(display=False) as counter:
            model.read_memory(query_key, memory)
        config, (height, width) = model.config, query_key.shape[-2:]
        useful_read = height * width * memory_length * config.window**2 * (
            config.key_dim + config.value_dim
        )
        return (total - counter.get_total_flops()) / 2 + useful_read


class _Case:
    """One backend's step of one model at one size and batch, memory kept full."""

    def __init__(self, backend_name: str, precision: str, model: torch.nn.Module,
                 size: tuple[int, int], batch: int, memory_length: int,
                 threads: int | None) -> None:
        device = torch.device('cpu')
        self.backend = create_backend(backend_name, model, device, size, threads, precision)
        generator = np.random.default_rng(0)
        images = generator.integers(0, 256, (batch, *size, 3), dtype=np.uint8)
        if backend_name == 'torch':
            self.inputs = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
            self.inputs = self.inputs.contiguous(memory_format=torch.channels_last)
        else:
            self.inputs = images
        self.banks = [MemoryBank(memory_length) for _ in range(batch)]
        if self.backend.uses_memory:
            for _ in range(memory_length):
                self.step()

    def step(self) -> None:
        with torch.inference_mode():
            memory = MemoryBatch.from_banks(self.banks) if self.backend.uses_memory else None
            result = self.backend.run(self.inputs, memory, False)
            if self.backend.uses_memory:
                for i, bank in enumerate(self.banks):
                    bank.write(result.memory_key[i], result.memory_value[i])


def _timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return (time.perf_counter() - start) * 1e3


def measure(cases: dict[str, _Case], repeats: int) -> dict[str, list[float]]:
    """Milliseconds per step of each case, the cases taking turns in a rotating order."""
    names = list(cases)
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up, not counted
        cases[name].step()
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(_timed(cases[name].step))
    return times


def main(args: argparse.Namespace) -> int:
    """Run every case and print one line per backend, model, size and batch."""
    if args.threads:
        torch.set_num_threads(args.threads)
    backends = args.backends or installed_backends()
    if 'torch' not in backends:
        backends = ['torch', *backends]  # the baseline of the ratios
    variants = {  # row label → (backend, precision)
        name if precision == 'fp32' else f'{name}/{precision}': (name, precision)
        for precision in dict.fromkeys(['fp32', *args.precisions]) for name in backends
        if precision_problem(name, precision, 'cpu') is None
    }
    peak = peak_gflops(args.threads)
    versions = ', '.join(
        f'{name} {torch.__version__ if name == "torch" else runtime_version(name)}'
        for name in backends
    )
    print(f'ERFNet vs LMA-ERFNet per step (LMA: memory T={args.memory_length}, full), CPU, '
          f'{torch.get_num_threads()} torch threads; {versions}; backends interleaved '
          f'round-robin; fp32 peak probe {peak:.0f} GFLOP/s ("of peak": of that fp32 peak)')
    print(f'{"backend":<17}{"model":<12}{"size":>9}{"batch":>6}{"min ms":>9}{"median ms":>11}'
          f'{"vs torch":>10}{"LMA/ERFNet":>12}{"GMAC":>7}{"of peak":>9}')
    torch.manual_seed(0)
    models = {name: prepare_model(create_model(name), torch.device('cpu')) for name in MODELS}
    for size in args.sizes:
        macs = {name: counted_macs(model, size, args.memory_length)
                for name, model in models.items()}
        for batch in args.batches:
            repeats = args.repeats or (10 if size[0] * size[1] * batch <= 2**17 else 5)
            medians: dict[tuple[str, str], float] = {}
            for model_name, model in models.items():
                cases = {}
                for label, (name, precision) in list(variants.items()):
                    try:
                        cases[label] = _Case(name, precision, model, size, batch,
                                             args.memory_length, args.threads)
                    except BackendError as error:  # e.g. bf16 on a CPU without it
                        print(f'{label}: not run: {error}')
                        del variants[label]
                times = measure(cases, repeats)
                for name in cases:
                    medians[name, model_name] = statistics.median(times[name])
                    _print_row(name, model_name, size, batch, times[name], medians,
                               macs[model_name], peak)
    return 0


def _print_row(backend: str, model: str, size: tuple[int, int], batch: int,
               times: list[float], medians: dict[tuple[str, str], float], macs: float,
               peak: float) -> None:
    median = medians[backend, model]
    versus_torch = medians['torch', model] / median
    erfnet = medians.get((backend, 'erfnet'))
    lma_ratio = f'{median / erfnet:.2f}' if model == 'lma_erfnet' and erfnet else '-'
    share = 2 * macs * batch / (median / 1e3) / (peak * 1e9)
    print(f'{backend:<17}{model:<12}{f"{size[1]}x{size[0]}":>9}{batch:>6}{min(times):>9.1f}'
          f'{median:>11.1f}{versus_torch:>9.2f}×{lma_ratio:>12}{macs / 1e9:>7.2f}{share:>9.0%}')
