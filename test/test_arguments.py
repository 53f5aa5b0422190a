"""The shared option parsers, through the real command line: bad values are argparse errors."""

import argparse

import pytest

from lma_perception.arguments import network_size, positive_float
from lma_perception.cli import build_parser


@pytest.mark.parametrize(('argv', 'message'), [
    (['train', '--epochs', '0'], "argument --epochs: expected a positive whole number, got '0'"),
    (['train', '--steps-per-epoch', '-3'], "expected a positive whole number, got '-3'"),
    (['train', '--input-size', '512x0'], "sides must be positive, got '512x0'"),
    (['eval', 'video', '--input-size', '500x256'], 'both positive multiples of 8'),
    (['train', '--batch-size', 'six'], "expected a positive whole number, got 'six'"),
    (['eval', 'video', '--memory-length', '0'],
     "argument --memory-length: expected a positive whole number, got '0'"),
    (['synth', 'out', '--size', '0x256'], "argument --size: sides must be positive, got '0x256'"),
    (['synth', 'out', '--size', '512by256'], "expected WIDTHxHEIGHT, got '512by256'"),
])
def test_bad_values_exit_with_one_argparse_error(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert message in error
    assert 'Traceback' not in error


def test_valid_values_parse_to_numbers_and_sizes():
    parser = build_parser()
    train = parser.parse_args(['train', '--epochs', '3', '--steps-per-epoch', '2',
                               '--batch-size', '4', '--memory-length', '1',
                               '--val-samples', '5', '--input-size', '512x256',
                               '--workers', '0'])
    assert (train.epochs, train.steps_per_epoch, train.batch_size) == (3, 2, 4)
    assert (train.memory_length, train.val_samples, train.workers) == (1, 5, 0)
    assert train.input_size == (256, 512)
    assert parser.parse_args(['eval', 'video', '--memory-length', '2']).memory_length == 2
    assert parser.parse_args(['synth', 'out', '--size', '640X480']).size == (640, 480)


@pytest.mark.parametrize(('text', 'message'), [
    ('1000x500', r"both positive multiples of 8; got \(500, 1000\) \(from '1000x500'\)"),
    ('0x256', "sides must be positive, got '0x256'"),
    ('64', "expected WIDTHxHEIGHT, got '64'"),
])
def test_network_sizes_are_multiples_of_8(text, message):
    assert network_size('64x32') == (32, 64)
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        network_size(text)


@pytest.mark.parametrize('text', ['0', '-1', 'nan', 'inf', 'soon'])
def test_positive_floats_refuse_what_is_not_a_finite_positive_number(text):
    assert positive_float('0.5') == 0.5
    with pytest.raises(argparse.ArgumentTypeError, match=f"expected a number > 0, got '{text}'"):
        positive_float(text)
