"""The model speed benchmark runs end to end through the command line (no timing asserted)."""

from lma_perception.cli import main


def test_bench_model_prints_both_models_and_the_ratio(capsys):
    assert main(['bench', 'model', '--sizes', '64x32', '--repeats', '1']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert 'LMA/ERFNet' in lines[1] and 'read share' in lines[1]
    device, size, erfnet_ms, lma_ms, ratio, read_ms, share = lines[2].split()
    assert (device, size) == ('cpu', '64x32')
    assert float(erfnet_ms) > 0 and float(lma_ms) > 0 and float(read_ms) > 0
    assert abs(float(ratio) - float(lma_ms) / float(erfnet_ms)) < 0.1 * float(ratio) + 0.02
    assert share.endswith('%')
