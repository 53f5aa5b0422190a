"""The model benchmark runs every installed backend end to end (no timing asserted)."""

import openvino

from lma_perception.benchmarks.model_speed import installed_backends
from lma_perception.cli import main


def test_bench_model_prints_every_backend_model_and_batch(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path))
    assert main(['bench', 'model', '--sizes', '64x32', '--batches', '2', '--memory-length', '1',
                 '--repeats', '1']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert 'round-robin' in lines[0] and 'GFLOP/s' in lines[0]
    assert lines[1].split()[:6] == ['backend', 'model', 'size', 'batch', 'min', 'ms']
    backends = installed_backends()
    assert {'onnxruntime', 'openvino'} <= set(backends)
    if 'BF16' in openvino.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES'):
        backends.append('openvino/bf16')
    else:
        assert "openvino/bf16: not run: bf16 needs a CPU with AVX-512 BF16" in lines[2]
        lines = lines[:2] + [line for line in lines[2:] if 'not run' not in line]
    rows = [line.split() for line in lines[2:]]
    assert {(r[0], r[1], r[3]) for r in rows} == {
        (b, m, n) for b in backends for m in ('erfnet', 'lma_erfnet') for n in ('2',)
    }
    for backend, model, size, _, low, median, versus, lma_ratio, gmac, share in rows:
        assert size == '64x32' and 0 < float(low) <= float(median)
        assert versus.endswith('×') and float(gmac) > 0 and share.endswith('%')
        assert (lma_ratio == '-') == (model == 'erfnet')
        if backend == 'torch':
            assert versus == '1.00×'
