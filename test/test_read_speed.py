"""The memory-read benchmark runs every tiling end to end (no timing asserted)."""

from lma_perception.benchmarks.read_speed import SHIPPED, TILINGS
from lma_perception.cli import main


def test_bench_read_prints_every_tiling_against_the_shipped_one(capsys):
    assert main(['bench', 'read', '--map', '24x16', '--memory-length', '2',
                 '--repeats', '1']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert 'round-robin' in lines[0] and '24x16' in lines[0]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    # Every tiling, and the shipped tile with the whole map (6 tiles of 8×8) in one step.
    assert set(rows) == {f'{h}x{w}/{n}' for (h, w), n in TILINGS} | {'8x8/6'}
    assert rows[SHIPPED][3] == '1.00×'
    assert rows['8x8/4'][4] == '1.78' and rows['4x4/16'][4] == '1.31'
    assert rows['8x8/4'][5] == '12.2'
