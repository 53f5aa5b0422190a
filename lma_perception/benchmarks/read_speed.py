"""The exported memory read alone, per tile shape: wasted work against halo copies.

A tile of h×w query pixels reads one (h + P − 1)×(w + P − 1) halo region of every memory frame
(P = 21, the window side). Each pixel then computes the whole region where its window needs
P², the wasted work; and the regions of neighbouring tiles overlap, so gathering them copies
each memory value region/(h·w) times. Smaller tiles waste less and copy more. For each shape,
and for the shipped 8×8 tile with the whole map in one step, the read
(`memory_read.local_memory_read_gathered`) is exported alone to ONNX and run by ONNX Runtime
on a full memory of T frames; the cases take turns, one read each, in a rotating order.
Reported: min and median ms, the shipped setting's median over this one's, positions computed
per useful one, and copies of the memory's values.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

import torch

from lma_perception.arguments import network_size, positive_int
from lma_perception.models.memory_read import (
    DEFAULT_WINDOW,
    TILE,
    TILES_PER_STEP,
    local_memory_read_gathered,
)

# (tile, tiles per step): steps of 256 query pixels, as the shipped 4 tiles of 8×8.
TILINGS = (((4, 4), 16), ((4, 8), 8), ((8, 8), 4), ((8, 16), 2), ((16, 16), 1))
SHIPPED = f'{TILE[0]}x{TILE[1]}/{TILES_PER_STEP}'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this benchmark's options."""
    parser.add_argument('--map', type=network_size, default=(32, 64), metavar='WxH',
                        help='key map size (default 64x32: a 512x256 input at stride 8)')
    parser.add_argument('--memory-length', type=positive_int, default=4, help='T')
    parser.add_argument('--repeats', type=positive_int, default=30, help='reads per case')


class _Read(torch.nn.Module):
    """The read between the graph's inputs (values channels-last, as the banks hold them)."""

    def __init__(self, tile: tuple[int, int], tiles_per_step: int) -> None:
        super().__init__()
        self.read = partial(local_memory_read_gathered, tile=tile, tiles_per_step=tiles_per_step)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                fill: torch.Tensor) -> torch.Tensor:
        valid = torch.arange(keys.shape[1]).view(1, -1) < fill.view(-1, 1)
        return self.read(query, keys, values.permute(0, 1, 4, 2, 3), valid=valid)


def _session(module: torch.nn.Module, inputs: dict[str, torch.Tensor], folder: Path,
             name: str) -> object:
    import onnxruntime

    path = folder / f'{name.replace("/", "_")}.onnx'
    with warnings.catch_warnings():  # the TorchScript exporter's notices, as in onnx_export
        warnings.simplefilter('ignore')
        torch.onnx.export(module, tuple(inputs.values()), str(path), dynamo=False,
                          opset_version=17, input_names=list(inputs), output_names=['read'])
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    return onnxruntime.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])


def main(args: argparse.Namespace) -> int:
    """Run every tiling and print one row each."""
    height, width = args.map
    slots, window = args.memory_length, DEFAULT_WINDOW
    torch.manual_seed(0)
    inputs = {'query': torch.randn(1, 16, height, width),
              'keys': torch.randn(1, slots, 16, height, width),
              'values': torch.randn(1, slots, height, width, 64),
              'fill': torch.tensor([slots])}
    whole_map = -(-height // TILE[0]) * -(-width // TILE[1])
    cases = {f'{t[0]}x{t[1]}/{n}': (t, n) for t, n in TILINGS}
    cases[f'{TILE[0]}x{TILE[1]}/{whole_map}'] = (TILE, whole_map)
    feeds = {name: tensor.numpy() for name, tensor in inputs.items()}
    with tempfile.TemporaryDirectory() as folder:
        sessions = {name: _session(_Read(*tiling), inputs, Path(folder), name)
                    for name, tiling in cases.items()}
        names = list(sessions)
        times: dict[str, list[float]] = {name: [] for name in names}
        for name in names:  # warm-up, not counted
            sessions[name].run(None, feeds)
        for round_ in range(args.repeats):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                start = time.perf_counter()
                sessions[name].run(None, feeds)
                times[name].append((time.perf_counter() - start) * 1e3)
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f'memory read alone (ONNX Runtime), key map {width}x{height}, T={slots}, window '
          f'{window}; cases interleaved round-robin; tile/tiles per step')
    print(f'{"tiling":<12}{"min ms":>9}{"median ms":>11}{"vs shipped":>12}{"computed/useful":>17}'
          f'{"value copies":>14}')
    for name, ((tile_h, tile_w), _) in cases.items():
        region = (tile_h + window - 1) * (tile_w + window - 1)
        print(f'{name:<12}{min(times[name]):>9.2f}{medians[name]:>11.2f}'
              f'{medians[SHIPPED] / medians[name]:>11.2f}×{region / window**2:>17.2f}'
              f'{region / (tile_h * tile_w):>14.1f}')
    return 0
