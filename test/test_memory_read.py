"""The local memory read: the fast implementation equals the reference, and both the formula."""

import math

import pytest
import torch

from lma_perception.models import memory_read
from lma_perception.models.memory_kernels import local_memory_read
from lma_perception.models.memory_read import (
    local_memory_read_blocked,
    local_memory_read_reference,
)

IMPLEMENTATIONS = [local_memory_read_reference, local_memory_read_blocked]


def random_memory(batch, slots, height, width, key_dim=16, value_dim=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    # Keys scaled so that the unscaled logits spread over a few units, as trained keys do.
    query = torch.randn(batch, key_dim, height, width, generator=generator) * 0.5
    keys = torch.randn(batch, slots, key_dim, height, width, generator=generator) * 0.5
    values = torch.randn(batch, slots, value_dim, height, width, generator=generator)
    return query, keys, values


@pytest.mark.parametrize('slots', [1, 2, 3, 4, 5])
@pytest.mark.parametrize(('height', 'width'), [(5, 7), (9, 17), (24, 40)])
def test_blocked_equals_reference(slots, height, width):
    query, keys, values = random_memory(2, slots, height, width, seed=slots)
    expected = local_memory_read_reference(query, keys, values)
    torch.testing.assert_close(
        local_memory_read_blocked(query, keys, values), expected, rtol=0, atol=1e-5
    )


@pytest.mark.parametrize('window', [1, 3, 5])
def test_blocked_equals_reference_for_other_windows(window):
    query, keys, values = random_memory(1, 2, 10, 13, key_dim=4, value_dim=6)
    torch.testing.assert_close(
        local_memory_read_blocked(query, keys, values, window=window),
        local_memory_read_reference(query, keys, values, window=window), rtol=0, atol=1e-5,
    )


def test_mixed_fill_levels_equal_each_stream_read_alone():
    query, keys, values = random_memory(3, 4, 12, 20)
    fill = torch.tensor([4, 1, 3])
    keys[1, 1:] = 0
    values[1, 1:] = 0
    keys[2, 3:] = 0
    values[2, 3:] = 0
    valid = torch.arange(4) < fill[:, None]
    for read in IMPLEMENTATIONS:
        batched = read(query, keys, values, valid=valid)
        for b in range(3):
            n = int(fill[b])
            alone = local_memory_read_reference(
                query[b:b + 1], keys[b:b + 1, :n], values[b:b + 1, :n]
            )
            torch.testing.assert_close(batched[b:b + 1], alone, rtol=0, atol=1e-5)


def test_invalid_slots_are_excluded_unlike_border_padding():
    query, keys, values = random_memory(1, 2, 6, 6)
    keys[:, 1] = 0
    values[:, 1] = 0
    valid = torch.tensor([[True, False]])
    for read in IMPLEMENTATIONS:
        masked = read(query, keys, values, valid=valid)
        one_slot = read(query, keys[:, :1], values[:, :1])
        zero_slot = read(query, keys, values)
        torch.testing.assert_close(masked, one_slot, rtol=0, atol=1e-6)
        # A zero-filled slot that counts takes softmax mass (logit 0) and dilutes the read.
        assert (zero_slot - one_slot).abs().max() > 1e-2


def test_a_stream_without_frames_reads_zeros():
    query, keys, values = random_memory(2, 2, 6, 9)
    valid = torch.tensor([[True, True], [False, False]])
    for read in IMPLEMENTATIONS:
        out = read(query, keys, values, valid=valid)
        assert torch.equal(out[1], torch.zeros_like(out[1]))
        assert out[0].abs().sum() > 0


def test_border_positions_are_zero_padding_inside_the_softmax():
    # One pixel, one frame, window 3: 8 of the 9 window positions lie outside the image and
    # count as logit 0, value 0, so the read is v · e^(q·k) / (8 + e^(q·k)).
    query = torch.tensor([0.5, -1.0]).view(1, 2, 1, 1)
    keys = torch.tensor([2.0, -0.5]).view(1, 1, 2, 1, 1)
    values = torch.tensor([3.0, 1.0, -2.0]).view(1, 1, 3, 1, 1)
    logit = 0.5 * 2.0 + 1.0 * 0.5  # unscaled dot product
    weight = math.exp(logit) / (8 + math.exp(logit))
    expected = (values * weight).view(1, 3, 1, 1)
    for read in IMPLEMENTATIONS:
        torch.testing.assert_close(read(query, keys, values, window=3), expected)


def test_softmax_is_joint_over_frames_and_window():
    # Two 1×1 frames, window 1: the weights are a softmax over the two frames' logits.
    query = torch.ones(1, 1, 1, 1)
    keys = torch.tensor([1.0, 3.0]).view(1, 2, 1, 1, 1)
    values = torch.tensor([10.0, 20.0]).view(1, 2, 1, 1, 1)
    p = torch.tensor([1.0, 3.0]).softmax(0)
    expected = (p * torch.tensor([10.0, 20.0])).sum().view(1, 1, 1, 1)
    for read in IMPLEMENTATIONS:
        torch.testing.assert_close(read(query, keys, values, window=1), expected)


def test_slot_bias_scales_a_slots_share():
    query, keys, values = random_memory(1, 3, 7, 11)
    for read in IMPLEMENTATIONS:
        no_bias = read(query, keys, values)
        torch.testing.assert_close(
            read(query, keys, values, slot_bias=torch.zeros(1, 3)), no_bias, rtol=0, atol=1e-6
        )
        # log-gate -1e4 on slot 2: the slot's weights vanish, as if it were not there.
        dropped = read(query, keys, values, slot_bias=torch.tensor([[0.0, 0.0, -1e4]]))
        torch.testing.assert_close(
            dropped, read(query, keys[:, :2], values[:, :2]), rtol=0, atol=1e-6
        )


def test_blocked_read_in_several_bands_equals_reference(monkeypatch):
    query, keys, values = random_memory(1, 2, 40, 24)
    monkeypatch.setattr(memory_read, 'MAX_CHUNK_LOGITS', 1)  # one band of tiles per step
    torch.testing.assert_close(
        local_memory_read_blocked(query, keys, values),
        local_memory_read_reference(query, keys, values), rtol=0, atol=1e-5,
    )


def test_gradients_of_blocked_equal_reference():
    tensors = random_memory(1, 2, 9, 12, key_dim=4, value_dim=5)
    weights = torch.randn(1, 5, 9, 12)
    grads = []
    for read in IMPLEMENTATIONS:
        inputs = [t.clone().requires_grad_() for t in tensors]
        (read(*inputs) * weights).sum().backward()
        grads.append([t.grad for t in inputs])
    for reference, blocked in zip(*grads, strict=True):
        torch.testing.assert_close(blocked, reference, rtol=1e-4, atol=1e-5)


def test_channels_last_inputs_give_the_same_read():
    query, keys, values = random_memory(1, 3, 16, 24)
    expected = local_memory_read_blocked(query, keys, values)
    query_cl = query.contiguous(memory_format=torch.channels_last)
    values_cl = values.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    torch.testing.assert_close(
        local_memory_read_blocked(query_cl, keys, values_cl), expected, rtol=0, atol=1e-6
    )


def test_bad_inputs_are_named():
    query, keys, values = random_memory(1, 2, 8, 8)
    with pytest.raises(ValueError, match='odd'):
        local_memory_read(query, keys, values, window=4)
    with pytest.raises(ValueError, match='do not match the query key'):
        local_memory_read(query[:, :8], keys, values)
    with pytest.raises(ValueError, match='do not match the memory keys'):
        local_memory_read(query, keys, values[:, :1])
    with pytest.raises(ValueError, match='B×T×D×H×W'):
        local_memory_read(query, keys[:, 0], values)
