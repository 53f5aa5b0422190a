"""The GPU benchmark: its options are checked and, without CUDA, it says so and fails."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lma_perception.cli import main

SCRIPT = Path(__file__).resolve().parent.parent / 'benchmarks' / 'gpu_speed.py'
no_cuda_here = pytest.mark.skipif(torch.cuda.is_available(), reason='CUDA is present here')


@no_cuda_here
def test_without_cuda_the_benchmark_names_the_problem_and_fails(capsys):
    assert main(['bench', 'gpu', '--repeats', '1']) == 1
    captured = capsys.readouterr()
    assert 'needs a CUDA GPU' in captured.err
    assert captured.out == ''


@no_cuda_here
def test_the_script_in_benchmarks_behaves_the_same():
    run = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1
    assert 'needs a CUDA GPU' in run.stderr


@pytest.mark.parametrize(('option', 'message'), [
    (['--streams', '4', '0'], 'expected a positive whole number'),
    (['--repeats', 'many'], 'expected a positive whole number'),
    (['--tiles', '3x8'], 'powers of two'),
    (['--tiles', '2x4'], 'at least 16 pixels'),
    (['--size', '1000x500'], 'multiples of 8'),
    (['--precisions', 'fp8'], "invalid choice: 'fp8'"),
])
def test_bad_options_are_named(capsys, option, message):
    with pytest.raises(SystemExit) as exit_info:
        main(['bench', 'gpu', *option])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason='the benchmark needs a CUDA GPU')
def test_tiny_gpu_run_prints_every_section_with_ratios(capsys):
    assert main(['bench', 'gpu', '--size', '64x32', '--repeats', '2', '--warmup', '1',
                 '--streams', '1', '2', '--precisions', 'fp32', 'fp16',
                 '--memory-length', '2']) == 0
    out = capsys.readouterr().out
    assert out.startswith(f'GPU: {torch.cuda.get_device_name()}')
    assert out.count('LMA/ERFNet') == 2 and out.count('Triton 4x8') == 2
    engine_rows = [line.split() for line in out.splitlines() if 'LMA-ERFNet ' in line
                   and line.split()[0].isdigit()]
    assert [row[0] for row in engine_rows] == ['1', '2', '1', '2']
    # frames/s relative to ERFNet, and a peak of GPU memory per camera.
    assert all(float(row[5]) > 0 and float(row[6]) > 0 for row in engine_rows)
