"""Synthetic video generator speed: frames/s on one core, without and with degradations.

Renders whole sequences (world building included) of one camera at the given size, in one
thread (OpenCV set to one thread; the renderer uses no BLAS), timed in CPU time of this process
so that other load on the machine does not count. Three runs on the same sequences:

- *clean*: rendering only, no degradations (the baseline);
- *degraded*: every frame degraded, the five kinds in turn at full strength (the worst case);
- *written*: the default data set settings (15 % of frames degraded) written as PNG files with
  their label images, as ``lma-perception synth`` does.

Each is reported in frames/s and as a ratio to the baseline measured in the same process.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

import cv2

from lma_perception.arguments import positive_int, width_by_height
from lma_perception.synthetic.degrade import KINDS, Degradation, degrade
from lma_perception.synthetic.generator import SynthConfig, generate_sequence, write_sequence
from lma_perception.synthetic.textures import texture_bank

TARGET_FPS = 50.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this benchmark's options."""
    parser.add_argument('--size', type=width_by_height, default=(512, 256), metavar='WxH',
                        help='image size (default: 512x256)')
    parser.add_argument('--sequences', type=positive_int, default=4,
                        help='sequences per run (default: 4)')
    parser.add_argument('--frames', type=positive_int, default=30, help='frames per sequence (30)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')


def _rate(frames: int, seconds: float) -> str:
    return f'{frames / seconds:7.1f} frames/s ({seconds / frames * 1e3:5.1f} ms/frame)'


def main(args: argparse.Namespace) -> int:
    """Run the three timings and print them."""
    cv2.setNumThreads(1)
    width, height = args.size
    config = SynthConfig(width=width, height=height, frames=args.frames,
                         annotated_frame=min(19, args.frames - 1), cameras=('front',),
                         seed=args.seed, degradation_rate=0.0)
    texture_bank(config.seed)  # built once per process; not part of a frame's cost
    indices = range(args.sequences)
    frames = args.sequences * args.frames

    start = time.process_time()
    for index in indices:
        for _ in generate_sequence(config, 'bench', index):
            pass
    clean = time.process_time() - start

    start = time.process_time()
    count = 0
    for index in indices:
        for item in generate_sequence(config, 'bench', index):
            degrade(item.image, Degradation(KINDS[count % len(KINDS)], 1.0, count))
            count += 1
    degraded = time.process_time() - start

    written_config = replace(config, degradation_rate=SynthConfig.degradation_rate)
    with tempfile.TemporaryDirectory() as folder:
        start = time.process_time()
        for index in indices:
            write_sequence(folder, written_config, 'bench', index)
        written = time.process_time() - start

    print(f'synthetic video, {width}x{height}, {args.sequences} sequences × {args.frames} frames,'
          f' one camera, one thread (CPU time)')
    print(f'clean     {_rate(frames, clean)}   1.00× (baseline)')
    print(f'degraded  {_rate(frames, degraded)}   {clean / degraded:.2f}× '
          '(every frame degraded)')
    print(f'written   {_rate(frames, written)}   {clean / written:.2f}× '
          f'(PNG files, {written_config.degradation_rate:.0%} degraded)')
    verdict = 'meets' if frames / degraded >= TARGET_FPS else 'misses'
    print(f'worst case {verdict} the target of {TARGET_FPS:.0f} frames/s')
    return 0
