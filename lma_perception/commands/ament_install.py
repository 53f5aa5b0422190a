"""`lma-perception ament-install`: make a pip install visible to `ros2 run` and `ros2 launch`.

ROS tools look for a package's executables in `<prefix>/lib/<package>/` and for its files
through the ament index under `<prefix>/share/`. pip puts console scripts in `<prefix>/bin/`;
this command links them into place and checks that the ament index marker was installed.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points
from pathlib import Path

PACKAGE = 'lma_perception'


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'ament-install',
        help='link the executables of a pip install where ros2 run/launch look for them',
        description='Links <prefix>/bin/<executable> to <prefix>/lib/lma_perception/ for every '
        'executable of the package and prints the AMENT_PREFIX_PATH to export.',
    )
    parser.add_argument(
        '--prefix', type=Path, default=Path(sys.prefix),
        help='installation prefix (default: the running environment, %(default)s)',
    )
    parser.set_defaults(run=run)


def link_executables(prefix: Path) -> list[Path]:
    """Link each console script of the package into `<prefix>/lib/lma_perception/`."""
    target_dir = prefix / 'lib' / PACKAGE
    target_dir.mkdir(parents=True, exist_ok=True)
    links = []
    for script in entry_points(group='console_scripts'):
        if not script.value.startswith(f'{PACKAGE}.'):
            continue
        source = prefix / 'bin' / script.name
        if not source.exists():
            raise FileNotFoundError(f'{source} is missing: is the package installed in {prefix}?')
        link = target_dir / script.name
        link.unlink(missing_ok=True)
        link.symlink_to(source)
        links.append(link)
    return links


def run(args: argparse.Namespace) -> int:
    prefix = args.prefix.resolve()
    marker = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE
    if not marker.exists():
        print(f'error: {marker} is missing; reinstall with `pip install .` (not editable)',
              file=sys.stderr)
        return 1
    for link in link_executables(prefix):
        print(f'linked {link}')
    print(f'ready: export AMENT_PREFIX_PATH={prefix}${{AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}}')
    return 0
