"""`lma-perception export OUT.onnx`: the model as an ONNX file for deployment runtimes."""

from __future__ import annotations

import argparse
from pathlib import Path

from lma_perception.arguments import network_size
from lma_perception.commands import fail


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'export',
        help='write the model as an ONNX file (uint8 images in, uint8 labels out)',
        description='Exports one streaming step of a model with memory (inputs: uint8 NHWC '
        'images, the stacked memory keys and values of each stream and how many frames each '
        'holds; outputs: uint8 labels, optionally uint8 confidence, and the frame\'s memory key '
        'and value), or the single-frame model. Dynamic batch; the model config, input size, '
        'class names and palette are in the file\'s metadata; the file is checked with '
        'onnx.checker.',
    )
    parser.add_argument('out', type=Path, help='ONNX file to write')
    parser.add_argument('--weights', type=Path,
                        help='checkpoint file (default: the weights shipped with the package)')
    parser.add_argument('--input-size', type=network_size, metavar='WxH',
                        help="network input size (default: the checkpoint's training size)")
    parser.add_argument('--single-frame', action='store_true',
                        help='export the single-frame path (encoder → decoder) of the model')
    parser.add_argument('--confidence', action='store_true',
                        help='add the uint8 confidence output (max softmax probability × 255)')
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from lma_perception.models.checkpoint import DEFAULT_WEIGHTS, CheckpointError, load_checkpoint
    from lma_perception.runtime.onnx_export import export_onnx, graph_kind

    weights = args.weights or DEFAULT_WEIGHTS
    if not weights.is_file():
        return fail(f'no checkpoint file {weights}')
    try:
        model, info = load_checkpoint(weights)
    except CheckpointError as error:
        return fail(str(error))
    if not args.out.parent.is_dir():
        return fail(f'no folder {args.out.parent} to write {args.out.name} into')
    input_size = args.input_size or info.input_size
    graph = 'frame' if args.single_frame else graph_kind(model)
    export_onnx(model.eval(), args.out, input_size, confidence=args.confidence, graph=graph)
    height, width = input_size
    print(f'{args.out}: {graph} graph of {weights.name} at {width}x{height}, dynamic batch, '
          f'checked with onnx.checker')
    return 0
