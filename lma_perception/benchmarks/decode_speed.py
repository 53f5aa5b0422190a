"""Input decoding in the node's image callback: raw against compressed frames, beside the model.

One synthetic driving frame at the given size is offered the way each transport carries it:
raw `rgb8` (read in place), raw `bgr8` (one colour conversion: the baseline), JPEG (quality 95,
as image_transport's default) and PNG (level 3), decoded by the same functions the node calls,
in turns within one process, median of the repeats, wall time. The shipped model's engine call
on the same frame (resize, forward pass at its input size, label upsampling) is timed in the same
turns, so the last column says how much of one frame's work decoding is.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from lma_perception.arguments import positive_int, width_by_height
from lma_perception.codecs import (
    compressed_format,
    compressed_to_rgb,
    image_to_rgb,
    rgb_to_compressed,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register this benchmark's options."""
    parser.add_argument('--size', type=width_by_height, default=(2048, 1024), metavar='WxH',
                        help='frame size (default: 2048x1024, a Cityscapes camera)')
    parser.add_argument('--repeats', type=positive_int, default=20,
                        help='turns over all decoders (default: 20)')


def _frame(width: int, height: int) -> np.ndarray:
    from lma_perception.synthetic.generator import SynthConfig, generate_sequence

    config = SynthConfig(width=width, height=height, frames=1, annotated_frame=0,
                         cameras=('front',), degradation_rate=0.0)
    return next(generate_sequence(config, 'bench', 0)).image


def main(args: argparse.Namespace) -> int:
    """Time every decoder and the engine in turns; print medians and ratios."""
    from lma_perception.runtime.engine import EngineConfig, SegmentationEngine

    width, height = args.size
    rgb = _frame(width, height)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    jpeg, png = rgb_to_compressed(rgb, 'jpeg'), rgb_to_compressed(rgb, 'png')
    engine = SegmentationEngine.from_checkpoint(None, EngineConfig(device='cpu'))

    cases: dict[str, Callable[[], object]] = {
        'raw rgb8': lambda: image_to_rgb('rgb8', height, width, width * 3, False, rgb),
        'raw bgr8': lambda: image_to_rgb('bgr8', height, width, width * 3, False, bgr),
        'jpeg': lambda: compressed_to_rgb(compressed_format('jpeg'), jpeg),
        'png': lambda: compressed_to_rgb(compressed_format('png'), png),
        'engine': lambda: engine.segment([rgb], [None]),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for case in cases.values():  # one untimed pass: allocations, OpenCV and torch set-up
        case()
    for _ in range(args.repeats):
        for name, case in cases.items():
            start = time.perf_counter()
            case()
            times[name].append((time.perf_counter() - start) * 1e3)
    median = {name: statistics.median(values) for name, values in times.items()}
    sizes = {'raw rgb8': rgb.nbytes, 'raw bgr8': bgr.nbytes, 'jpeg': len(jpeg), 'png': len(png)}
    net_h, net_w = engine.input_size
    print(f'decoding a {width}x{height} frame in the image callback, {args.repeats} turns, '
          f'median wall time; engine: shipped model at {net_w}x{net_h} on cpu')
    print(f'{"input":10} {"bytes":>10} {"ms":>8} {"vs bgr8":>8} {"of engine":>10}')
    for name, size in sizes.items():
        print(f'{name:10} {size:10d} {median[name]:8.2f} '
              f'{median[name] / median["raw bgr8"]:7.2f}× '
              f'{100 * median[name] / median["engine"]:9.1f}%')
    print(f'{"engine":10} {"":>10} {median["engine"]:8.2f}')
    return 0
