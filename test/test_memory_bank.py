"""The per-stream memory bank: FIFO order, reset, bytes, write policies, batching."""

import numpy as np
import pytest
import torch

from lma_perception.memory import MemoryBank, MemoryBatch
from lma_perception.models import create_model
from lma_perception.runtime.engine import EngineConfig, SegmentationEngine


def frame(index: int, key_dim: int = 2, value_dim: int = 3, size=(4, 5)):
    """A key and value whose every element identifies the frame (plus a pattern for cosines)."""
    pattern = torch.arange(size[0] * size[1], dtype=torch.float32).view(size) * (index % 3 - 1)
    return (torch.full((key_dim, *size), float(index)) + pattern,
            torch.full((value_dim, *size), float(index)))


def test_fifo_keeps_the_last_frames_oldest_first():
    bank = MemoryBank(4)
    for index in range(1, 7):
        assert bank.write(*frame(index))
        assert bank.fill == min(index, 4)
    assert [int(value[0, 0, 0]) for _, value in bank.frames()] == [3, 4, 5, 6]
    assert bank.writes == 6 and bank.writes_skipped == 0
    assert bank.length == 4


def test_reset_empties_and_frees_but_keeps_counting():
    bank = MemoryBank(3)
    for index in range(5):
        bank.write(*frame(index))
    assert bank.nbytes == 3 * (2 + 3) * 4 * 5 * 4  # slots × channels × h × w × float32
    bank.reset()
    assert bank.fill == 0 and bank.nbytes == 0 and bank.frames() == []
    assert bank.writes == 5
    bank.write(*frame(9))
    assert [int(v[0, 0, 0]) for _, v in bank.frames()] == [9]


def test_a_different_map_size_needs_a_reset():
    bank = MemoryBank(2)
    bank.write(*frame(1))
    with pytest.raises(ValueError, match='reset'):
        bank.write(*frame(2, size=(4, 6)))
    with pytest.raises(ValueError, match='Dk×h×w'):
        bank.write(torch.zeros(2, 4), torch.zeros(3, 4))


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match=r'memory length must be in \[1, 64\], got 0'):
        MemoryBank(0)
    with pytest.raises(ValueError, match="'sometimes'"):
        MemoryBank(4, policy='sometimes')
    with pytest.raises(ValueError, match='threshold'):
        MemoryBank(4, policy='adaptive', threshold=3.0)


def test_batch_of_banks_with_different_fills():
    full, partial, empty = MemoryBank(3), MemoryBank(3), MemoryBank(3)
    for index in range(4):
        full.write(*frame(index))
    partial.write(*frame(7))
    batch = MemoryBatch.from_banks([partial, None, full, empty])
    assert batch.fill == (1, 0, 3, 0)
    assert batch.keys.shape == (4, 3, 2, 4, 5) and batch.values.shape == (4, 3, 3, 4, 5)
    assert batch.valid().tolist() == [
        [True, False, False], [False] * 3, [True] * 3, [False] * 3,
    ]
    assert torch.equal(batch.values[0, 0], frame(7)[1])
    assert batch.values[0, 1:].abs().sum() == 0 and batch.values[1].abs().sum() == 0
    assert sorted(int(v[0, 0, 0]) for v in batch.values[2]) == [1, 2, 3]
    assert MemoryBatch.from_banks([empty, None]) is None
    assert batch.select([2, 0]).fill == (3, 1)


def test_banks_of_one_batch_must_hold_one_map_size():
    small, large = MemoryBank(2), MemoryBank(2)
    small.write(*frame(1))
    large.write(*frame(1, size=(6, 6)))
    with pytest.raises(ValueError, match='one size'):
        MemoryBatch.from_banks([small, large])


def test_adaptive_policy_skips_identical_keys_and_writes_changed_ones():
    bank = MemoryBank(4, policy='adaptive', threshold=0.02)
    key, value = frame(2)
    assert bank.write(key, value)
    for _ in range(3):
        assert not bank.write(key.clone(), value)
    assert bank.writes == 1 and bank.writes_skipped == 3 and bank.fill == 1
    assert bank.write(*frame(3))  # the pattern flips sign: a different scene
    assert bank.writes == 2


def engine(policy: str) -> SegmentationEngine:
    torch.manual_seed(0)
    config = EngineConfig(device='cpu', input_size=(64, 128), write_policy=policy)
    return SegmentationEngine(create_model('lma_erfnet'), config)


def scene(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (64, 512, 3), dtype=np.uint8)


def test_adaptive_policy_with_the_model_on_static_and_moving_scenes():
    segmenter = engine('adaptive')
    rng = np.random.default_rng(0)
    world = scene(rng)
    static, moving = segmenter.new_memory(), segmenter.new_memory()
    for t in range(5):
        # The same view with sensor noise of ±2 grey levels, and a camera panning 16 px/frame.
        noisy = np.clip(world[:, :128] + rng.integers(-2, 3, (64, 128, 3)), 0, 255)
        segmenter.segment([noisy.astype(np.uint8), world[:, 16 * t:16 * t + 128]],
                          [static, moving])
    assert (static.writes, static.writes_skipped, static.fill) == (1, 4, 1)
    assert (moving.writes, moving.writes_skipped, moving.fill) == (5, 0, 4)


def test_always_policy_writes_a_static_scene():
    segmenter = engine('always')
    image = scene(np.random.default_rng(1))[:, :128]
    memory = segmenter.new_memory()
    results = [segmenter.segment([image], [memory])[0] for _ in range(5)]
    assert [r.memory_written for r in results] == [True] * 5
    assert memory.fill == 4 and memory.writes_skipped == 0


def test_bank_lives_on_the_models_device_and_reports_its_bytes():
    segmenter = engine('always')
    memory = segmenter.new_memory()
    segmenter.segment([scene(np.random.default_rng(2))[:, :128]], [memory])
    key, value = memory.frames()[0]
    assert key.device == value.device == segmenter.device
    # 4 slots × (16 key + 64 value channels) × 8×16 cells × 4 bytes.
    assert memory.nbytes == 4 * 80 * 8 * 16 * 4
