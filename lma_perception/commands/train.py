"""`lma-perception train`: stage 1 (single-frame ERFNet) or stage 2 (LMA) training."""

from __future__ import annotations

import argparse

from lma_perception.arguments import network_size, positive_int
from lma_perception.commands import USAGE_ERROR, fail

EPILOG = """examples:
  # stage 1: ERFNet on a Cityscapes-style tree (real or `lma-perception synth` output)
  lma-perception train --stage single --data data/synth --output runs/erfnet
  # stage 2: LMA on clips, encoder and decoder frozen, starting from stage 1
  lma-perception train --stage lma --init runs/erfnet/best.safetensors \\
      --data data/synth --output runs/lma
  # stage 1 on the 8 GPUs of one host (the global batch is divided among the processes)
  torchrun --nproc_per_node 8 --no-python lma-perception train --stage single \\
      --data /data/cityscapes --output runs/erfnet --batch-size 48
A YAML file (--config) may set any option; flags given on the command line override it, and the
resolved configuration is saved as <output>/config.yaml."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        'train', help='train the single-frame model (stage 1) or the LMA stage (stage 2)',
        description='Train ERFNet (stage single) or its Local Memory Attention (stage lma) on a '
        'Cityscapes-style tree. Keeps the best checkpoint by validation mIoU.',
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument('--config', help='YAML file of training options')
    parser.add_argument('--stage', choices=('single', 'lma'))
    parser.add_argument('--data', help='root of the Cityscapes-style tree')
    parser.add_argument('--output', help='folder for checkpoints, config and history')
    parser.add_argument('--init', help="stage-1 checkpoint to start stage 'lma' from")
    parser.add_argument('--train-split', dest='train_split')
    parser.add_argument('--val-split', dest='val_split')
    parser.add_argument('--cameras', nargs='+', help='cameras of a multi-camera tree to use')
    parser.add_argument('--input-size', dest='input_size', type=network_size, metavar='WxH',
                        help='working resolution (default 1024x512)')
    parser.add_argument('--dense-labels', dest='dense_labels', action='store_true', default=None,
                        help='also train on every frame that has dense ground truth')
    parser.add_argument('--epochs', type=positive_int)
    parser.add_argument('--steps-per-epoch', dest='steps_per_epoch', type=positive_int)
    parser.add_argument('--batch-size', dest='batch_size', type=positive_int,
                        help='the global batch (default 6): under torchrun each of N processes '
                        'takes batch-size / N samples')
    parser.add_argument('--accumulate', type=positive_int,
                        help='split each process batch into this many micro-batches whose '
                        'gradients are summed into one step (default 1)')
    parser.add_argument('--lr', type=float, help='default 5e-4 (single) or 2e-4 (lma)')
    parser.add_argument('--weight-decay', dest='weight_decay', type=float)
    parser.add_argument('--memory-length', dest='memory_length', type=positive_int,
                        help='T memory frames per training clip (default 3)')
    parser.add_argument('--train-all', dest='train_all', action='store_true', default=None,
                        help="stage 'lma': fine-tune encoder and decoder as well")
    parser.add_argument('--slot-gate', dest='slot_gate', action='store_true', default=None,
                        help='learn a soft gate per memory slot')
    parser.add_argument('--degraded-weight', dest='degraded_weight', type=float,
                        help='sampling weight of samples ending on a degraded frame (default 1)')
    parser.add_argument('--class-weights', dest='class_weights', choices=('computed', 'none'))
    parser.add_argument('--val-samples', dest='val_samples', type=positive_int)
    parser.add_argument('--seed', type=int)
    parser.add_argument('--device', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--workers', type=int, help='data loader processes (default 0)')
    parser.add_argument('--no-amp', dest='amp', action='store_false', default=None,
                        help='train in fp32 on CUDA too (default: bf16 autocast on CUDA)')
    parser.add_argument('--compile', action='store_true', default=None,
                        help='torch.compile the training forward pass')
    parser.add_argument('--no-dropout', dest='dropout', action='store_false', default=None,
                        help='keep dropout off (training then depends only on the data order)')
    parser.add_argument('--resume', action='store_true', help='continue from <output>/last_*')
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from lma_perception.data.cityscapes import CityscapesError
    from lma_perception.models import CheckpointError
    from lma_perception.train import TrainConfig, Trainer
    from lma_perception.train.distributed import (
        per_process_batch,
        processes_from_environment,
        stop_process_group,
    )

    options = {k: v for k, v in vars(args).items() if k not in ('config', 'resume', 'run',
                                                                   'command')}
    try:
        config = TrainConfig.from_sources(args.config, options)
    except (ValueError, FileNotFoundError) as error:
        return fail(str(error), USAGE_ERROR)
    except TypeError as error:  # a required option missing from both YAML and flags
        return fail(f'missing training option: {error}', USAGE_ERROR)
    try:
        per_process_batch(config.batch_size, processes_from_environment())
    except ValueError as error:
        return fail(str(error), USAGE_ERROR)
    try:
        trainer = Trainer(config)
        result = trainer.fit(resume=args.resume)
    except (ValueError, FileNotFoundError, CityscapesError, CheckpointError) as error:
        return fail(str(error))
    finally:
        stop_process_group()
    if not trainer.processes.is_main:
        return 0
    print(f'best validation mIoU {100 * result.best_miou:.2f} after {result.epochs_run} epochs: '
          f'{result.best_checkpoint}')
    return 0
