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
    # The package's own notes (backend chosen, export cache rebuilt) go to stderr.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter('lma-perception: %(message)s'))
    package_log = logging.getLogger('lma_perception')
    package_log.addHandler(handler)
    package_log.setLevel(logging.INFO)
    return args.run(args) or 0


if __name__ == '__main__':
    sys.exit(main())
