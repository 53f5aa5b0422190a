"""Value parsers shared by the command-line options of the commands and benchmarks."""

from __future__ import annotations

import argparse


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
