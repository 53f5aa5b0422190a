"""The training speed benchmark runs end to end through the command line (no timing asserted)."""

from lma_perception.cli import main


def test_bench_train_times_a_step_of_each_stage(capsys):
    assert main(['bench', 'train', '--sizes', '64x32', '--steps', '1', '--warmup', '1',
                 '--batch-size', '1', '--memory-length', '1']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ['stage', 'size', 'variant', 's/step', 'steps/s', 'samples/s',
                                'vs', 'eager']
    rows = [line.split() for line in lines[2:]]
    assert [row[:3] for row in rows] == [['single', '64x32', 'eager'], ['lma', '64x32', 'eager']]
    for _, _, _, seconds, steps, samples, ratio in rows:
        assert float(seconds) > 0 and float(ratio) == 1.0
        assert abs(float(steps) * float(seconds) - 1) < 0.05
        assert samples == steps  # batch 1
