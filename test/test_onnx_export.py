"""ONNX export: the gathered memory read, the exported graphs run by ONNX Runtime, the cache."""

from __future__ import annotations

import json
import logging

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from lma_perception.cli import main
from lma_perception.labels import CLASS_NAMES
from lma_perception.memory import MemoryBank, MemoryBatch
from lma_perception.models import create_model
from lma_perception.models.memory_read import (
    local_memory_read_gathered,
    local_memory_read_reference,
)
from lma_perception.models.prediction import logits_to_labels
from lma_perception.runtime.export_cache import cached_export
from lma_perception.runtime.onnx_export import METADATA_KEYS, export_onnx, read_metadata


@pytest.mark.parametrize(('slots', 'height', 'width'), [(1, 8, 8), (2, 13, 21), (3, 20, 9)])
def test_gathered_read_matches_the_formula(slots, height, width):
    generator = torch.Generator().manual_seed(slots)
    query = torch.randn(3, 16, height, width, generator=generator) * 0.5
    keys = torch.randn(3, slots, 16, height, width, generator=generator) * 0.5
    values = torch.randn(3, slots, 8, height, width, generator=generator)
    valid = torch.ones(3, slots, dtype=torch.bool)
    valid[0] = False  # a stream without frames reads zeros
    valid[1, 0] = False
    bias = torch.randn(3, slots, generator=generator) * 0.3
    for kwargs in ({}, {'valid': valid, 'slot_bias': bias}):
        expected = local_memory_read_reference(query, keys, values, **kwargs)
        got = local_memory_read_gathered(query, keys, values, **kwargs)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert not local_memory_read_gathered(query, keys, values, valid=valid)[0].any()


def _session(path) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])


def test_lma_step_graph_matches_the_model_with_mixed_fills(tmp_path):
    torch.manual_seed(0)
    model = create_model('lma_erfnet', slot_gate=True).eval()
    size = (32, 64)
    proto = export_onnx(model, tmp_path / 'step.onnx', size, confidence=True)
    onnx.checker.check_model(onnx.load(str(tmp_path / 'step.onnx')), full_check=True)
    metadata = read_metadata(proto)
    assert set(METADATA_KEYS) <= set(metadata)
    assert metadata['graph'] == 'lma_step'
    assert json.loads(metadata['model_config'])['lma']['slot_gate'] is True
    assert json.loads(metadata['input_size']) == [32, 64]
    assert json.loads(metadata['class_names']) == list(CLASS_NAMES)
    assert len(json.loads(metadata['palette'])) == len(CLASS_NAMES)
    inputs = {i.name: i for i in proto.graph.input}
    assert inputs['images'].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert inputs['images'].type.tensor_type.shape.dim[0].dim_param == 'batch'
    session = _session(tmp_path / 'step.onnx')

    def bank_with(frames: int) -> MemoryBank:
        bank = MemoryBank(4)
        with torch.inference_mode():
            for _ in range(frames):
                step = model.step(torch.rand(1, 3, *size))
                bank.write(step.memory_key[0], step.memory_value[0])
        return bank

    for fills in ((3, 0, 1), (2,), (0, 0)):  # dynamic batch and slot count, empty memories
        banks = [bank_with(f) for f in fills]
        images = torch.randint(0, 256, (len(fills), *size, 3), dtype=torch.uint8)
        memory = MemoryBatch.from_banks(banks)
        with torch.inference_mode():
            expected = model.step(images.permute(0, 3, 1, 2).float() / 255, memory)
        labels, scores = logits_to_labels(expected.logits, confidence=True)
        if memory is None:
            keys = torch.zeros(len(fills), 1, 16, 4, 8)
            values = torch.zeros(len(fills), 1, 4, 8, 64)
        else:
            keys, values = memory.keys, memory.values.permute(0, 1, 3, 4, 2)
        got = session.run(None, {
            'images': images.numpy(), 'memory_keys': keys.contiguous().numpy(),
            'memory_values': values.contiguous().numpy(),
            'memory_fill': np.array(fills, np.int64),
        })
        assert [a.dtype for a in got[:2]] == [np.uint8, np.uint8]
        assert len(np.unique(labels.numpy())) > 1  # a test that can fail
        assert (got[0] == labels.numpy()).mean() >= 0.999
        assert np.abs(got[1].astype(int) - scores.numpy()).max() <= 1
        np.testing.assert_allclose(got[2], expected.memory_key.numpy(), atol=1e-4)
        np.testing.assert_allclose(
            got[3], expected.memory_value.permute(0, 2, 3, 1).numpy(), atol=1e-4
        )


def test_export_command_writes_a_checked_single_frame_file(tmp_path, capsys):
    out = tmp_path / 'frame.onnx'
    assert main(['export', str(out), '--single-frame', '--input-size', '64x32']) == 0
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    assert read_metadata(proto)['graph'] == 'frame'
    assert [o.name for o in proto.graph.output] == ['labels']
    assert main(['export', str(tmp_path / 'missing' / 'x.onnx')]) == 1
    assert 'no folder' in capsys.readouterr().err


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_cache_reuses_valid_entries_and_rebuilds_stale_or_corrupt_ones(tmp_path):
    handler = _Messages()
    logger = logging.getLogger('lma_perception.runtime.export_cache')
    logger.addHandler(handler)
    try:
        torch.manual_seed(0)
        model = create_model('erfnet').eval()

        def export() -> object:
            return cached_export(model, (32, 64), 'onnxruntime', '1.0', confidence=False,
                                 root=tmp_path)

        path = export()
        written = path.stat().st_mtime_ns
        assert export() == path and path.stat().st_mtime_ns == written
        assert handler.messages == []

        path.write_bytes(b'not an onnx file')
        assert export() == path
        onnx.checker.check_model(onnx.load(str(path)))
        assert len(handler.messages) == 1 and 'corrupt' in handler.messages[0]

        record = path.with_suffix('.json')
        fields = json.loads(record.read_text())
        record.write_text(json.dumps({**fields, 'package_version': '0.0.0'}))
        export()
        assert 'stale (package_version changed)' in handler.messages[-1]

        with torch.no_grad():
            model.decoder.output_conv.bias.add_(1.0)
        assert export() != path  # other weights, another entry
        assert len(list(tmp_path.glob('*.onnx'))) == 2
        assert not list(tmp_path.glob('*.partial'))
    finally:
        logger.removeHandler(handler)
