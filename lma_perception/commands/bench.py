"""`lma-perception bench NAME`: run one of the speed benchmarks in lma_perception/benchmarks."""

from __future__ import annotations

import argparse
import importlib

# Modules in lma_perception.benchmarks, each with `add_arguments(parser)` and `main(args)`.
# A name ending in `_speed` can also be called without that suffix (`bench model`).
BENCHMARKS = (
    'model_speed', 'synth_speed', 'gpu_speed', 'node_overhead', 'train_speed', 'transport',
    'decode_speed', 'read_speed',
)


def _aliases() -> dict[str, str]:
    names = {name: name for name in BENCHMARKS}
    names.update({name.removesuffix('_speed'): name for name in BENCHMARKS})
    return names


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'bench',
        help='run a speed benchmark (e.g. `bench model`)',
        description='Runs a benchmark from lma_perception/benchmarks; '
        '`lma-perception bench NAME --help` lists its options.',
    )
    parser.add_argument('name', choices=sorted(_aliases()), metavar='NAME',
                        help=f'one of: {", ".join(sorted(_aliases()))}')
    # The benchmark's own options are parsed by its module, imported only when it runs, so
    # that the rest of the command line does not pay for importing PyTorch.
    parser.add_argument('options', nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    module_name = _aliases()[args.name]
    module = importlib.import_module(f'lma_perception.benchmarks.{module_name}')
    parser = argparse.ArgumentParser(
        prog=f'lma-perception bench {args.name}', description=module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    return module.main(parser.parse_args(args.options))
