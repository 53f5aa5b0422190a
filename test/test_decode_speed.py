"""The decoding benchmark runs end to end through the command line (no timing asserted)."""

from lma_perception.cli import main


def test_bench_decode_prints_every_transport_and_the_engine(capsys):
    assert main(['bench', 'decode', '--size', '64x32', '--repeats', '1']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert '64x32' in lines[0]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert set(rows) == {'raw', 'jpeg', 'png', 'engine'}
    assert float(rows['jpeg'][2]) > 0 and rows['jpeg'][4].endswith('%')
    assert int(rows['png'][1]) > 0
