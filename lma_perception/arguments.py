"""Value parsers shared by the command-line options of the commands and benchmarks.

Every image size on a command line is written the way people write them, ``WIDTHxHEIGHT``
(``2048x1024``); network sizes are given back as (height, width), the order models take.
"""

from __future__ import annotations

import argparse
import math

from lma_perception.models.erfnet import input_size_problem


def positive_int(text: str) -> int:
    """Parse a count that must be at least 1: frames, epochs, repeats, cameras."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f'expected a positive whole number, got {text!r}')
    return value


def width_by_height(text: str) -> tuple[int, int]:
    """Parse an image size as people write it: 'WIDTHxHEIGHT' → (width, height), both ≥ 1."""
    try:
        width, height = (int(side) for side in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected WIDTHxHEIGHT, got {text!r}') from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f'sides must be positive, got {text!r}')
    return width, height


def network_size(text: str) -> tuple[int, int]:
    """Parse a network input size 'WIDTHxHEIGHT' → (height, width), the order models take."""
    width, height = width_by_height(text)
    problem = input_size_problem((height, width))
    if problem is not None:
        raise argparse.ArgumentTypeError(f'{problem} (from {text!r})')
    return height, width


def positive_float(text: str) -> float:
    """Parse a finite number greater than 0: rates, durations."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f'expected a number > 0, got {text!r}')
    return value
