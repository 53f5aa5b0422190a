"""`lma-perception synth OUT`: write synthetic Cityscapes-style driving video with ground truth."""

from __future__ import annotations

import argparse
import time
from dataclasses import fields
from pathlib import Path

from lma_perception.arguments import width_by_height
from lma_perception.commands import USAGE_ERROR, fail


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'synth',
        help='generate synthetic driving video with dense ground truth (Cityscapes layout)',
        description='Renders random street scenes driven through by a camera rig: 30-frame '
        'snippets at 17 Hz, labels for every frame, transient degradations on a few frames. '
        'Settings come from --config (YAML with the option names, underscores for dashes), '
        'then the flags; the resolved settings are saved as OUT/synth.json.',
    )
    parser.add_argument('out', type=Path, help='output folder (one sub-folder per camera)')
    parser.add_argument('--split', default='train', help='split name (default: train)')
    parser.add_argument('--sequences', type=int, default=10,
                        help='number of sequences (default: 10)')
    parser.add_argument('--start', type=int, default=0,
                        help='index of the first sequence, to extend a data set (default: 0)')
    parser.add_argument('--jobs', type=int, default=1, help='parallel processes (default: 1)')
    parser.add_argument('--config', type=Path, help='YAML file with settings')
    settings = parser.add_argument_group('settings (default: the config file, else as shown)')
    settings.add_argument('--size', type=width_by_height, metavar='WxH',
                          help='image size (512x256)')
    settings.add_argument('--frames', type=int, help='frames per sequence (30)')
    settings.add_argument('--annotated-frame', type=int,
                          help='index of the frame with gtFine labels (19)')
    settings.add_argument('--fps', type=float, help='frame rate (17)')
    settings.add_argument('--cameras', nargs='+',
                          help='cameras of the rig (front front_left front_right)')
    settings.add_argument('--seed', type=int, help='random seed (0)')
    settings.add_argument('--city', help='city name in file names (synthcity)')
    settings.add_argument('--degradation-rate', type=float,
                          help='expected fraction of degraded frames (0.15)')
    settings.add_argument('--degradation-strength', type=float,
                          help='scale of degradation strength, 0 disables (1.0)')
    settings.add_argument('--degradations', nargs='+',
                          help='kinds of degradation (noise motion_blur glare occluder '
                          'dropped_rows)')
    settings.add_argument('--max-burst', type=int, help='longest burst of degraded frames (3)')
    parser.set_defaults(run=run)


def resolve_config(args: argparse.Namespace):
    """Defaults, then the YAML file, then the flags given."""
    import yaml

    from lma_perception.synthetic.generator import SynthConfig

    values: dict = {}
    if args.config is not None:
        try:
            loaded = yaml.safe_load(args.config.read_text())
        except (OSError, yaml.YAMLError) as error:
            raise ValueError(f'cannot read {args.config}: {error}') from None
        if not isinstance(loaded, dict):
            raise ValueError(f'{args.config} must hold a mapping of settings')
        values.update(loaded)
    if 'size' in values:
        values['width'], values['height'] = width_by_height(str(values.pop('size')))
    if args.size is not None:
        values['width'], values['height'] = args.size
    for field in fields(SynthConfig):
        flag = getattr(args, field.name, None)
        if flag is not None:
            values[field.name] = flag
    return SynthConfig.from_dict(values)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from lma_perception.synthetic.generator import write_dataset

    try:
        config = resolve_config(args)
        if args.sequences < 1 or args.jobs < 1:
            raise ValueError('--sequences and --jobs must be >= 1')
    except (ValueError, argparse.ArgumentTypeError) as error:
        return fail(str(error), USAGE_ERROR)
    started = time.perf_counter()
    with tqdm(total=args.sequences, unit='seq', disable=None) as bar:
        try:
            write_dataset(args.out, config, args.split, args.sequences, start=args.start,
                          jobs=args.jobs, progress=bar.update)
        except (ValueError, OSError) as error:
            return fail(str(error))
    seconds = time.perf_counter() - started
    frames = args.sequences * config.frames * len(config.cameras)
    print(f'wrote {args.sequences} sequences × {config.frames} frames × {len(config.cameras)} '
          f'camera(s) = {frames} frames of {config.width}x{config.height} to {args.out} '
          f'({args.split}) in {seconds:.1f} s ({frames / seconds:.1f} frames/s)')
    return 0
