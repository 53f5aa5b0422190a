"""The `lma-perception` command: one entry point, one small module per sub-command."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from lma_perception import __version__
from lma_perception.ros.signals import StopOnSignal

# Each name is a module in lma_perception.commands with `add_parser(subparsers)` and `run(args)`.
COMMANDS = (
    'demo', 'synth', 'bag', 'train', 'eval', 'export', 'node', 'rig', 'replay', 'live_eval',
    'bench', 'doctor', 'ament_install',
)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog='lma-perception',
        description='Video semantic segmentation with temporal memory for ROS 2 cameras.',
    )
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    subparsers = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for name in COMMANDS:
        importlib.import_module(f'lma_perception.commands.{name}').add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen sub-command."""
    # Building the parser imports PyTorch (seconds): a signal meanwhile ends the command before
    # it starts, quietly. Commands that stop in order on a signal (`stops_on_signal`) exit 0 as
    # they would a moment later; the others with the shell's 128 + signal number.
    with StopOnSignal() as startup:
        args = build_parser().parse_args(argv)
    if startup.received is not None:
        return 0 if getattr(args, 'stops_on_signal', False) else 128 + startup.received
    log_to_stderr()
    return args.run(args) or 0


class _StderrHandler(logging.StreamHandler):
    """Writes each record to ``sys.stderr`` as it is at that moment, not as it was at start."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # under the handler's lock: `handle` holds it around `emit`
        super().emit(record)


def log_to_stderr() -> None:
    """Send the package's own notes (backend chosen, cache rebuilt, frames left out) to stderr.

    One handler per process however often a command runs in it; it follows ``sys.stderr``
    when that is replaced (as test runners do), so no record goes to a closed stream.
    """
    package_log = logging.getLogger('lma_perception')
    if not any(isinstance(handler, _StderrHandler) for handler in package_log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter('lma-perception: %(message)s'))
        package_log.addHandler(handler)
    package_log.setLevel(logging.INFO)


if __name__ == '__main__':
    sys.exit(main())
