"""The sub-commands of `lma-perception`: each module has `add_parser(subparsers)` and `run(args)`.

Exit status: 0 success, 1 for a user error (a missing file, data or weights that cannot be used),
2 for a usage error (an option value that makes no sense; argparse exits 2 for its own as well).
Every error is one line on stderr.
"""

from __future__ import annotations

import argparse
import sys

from lma_perception.runtime.backend_names import BACKENDS, DEFAULT_BACKEND

USER_ERROR = 1
USAGE_ERROR = 2


def fail(message: str, status: int = USER_ERROR) -> int:
    """Print one error line on stderr and return the exit status to end with."""
    print(f'lma-perception: error: {message}', file=sys.stderr)
    return status


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """Add the `--backend` option that every command running the model shares."""
    parser.add_argument(
        '--backend', choices=BACKENDS, default=DEFAULT_BACKEND,
        help=f'inference backend (default: {DEFAULT_BACKEND}); auto takes the first of '
        'onnxruntime, openvino, torch on the CPU (tensorrt, torch on CUDA) that runs here',
    )


def add_precision_argument(parser: argparse.ArgumentParser, default: str | None = 'fp32') -> None:
    """Add the `--precision` option; a ``None`` default leaves it to the node's parameters."""
    parser.add_argument(
        '--precision', default=default, choices=('fp32', 'fp16', 'bf16'),
        help='fp32 (the default); bf16: OpenVINO on CPUs with AVX-512 BF16 or AMX, or torch '
        'on CUDA; fp16: torch on CUDA',
    )
