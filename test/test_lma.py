"""Local Memory Attention: sizes, the paper's semantics, the generic wrapper, the slot gate."""

import pytest
import torch
from model_tester import (
    GOLDEN_FILE,
    check_forward_backward,
    check_golden,
    check_save_load_round_trip,
    randomize_batchnorm,
)
from torch import nn
from torch.nn.functional import interpolate, relu

from lma_perception.memory import MemoryBank, MemoryBatch
from lma_perception.models import LMAConfig, LMASegmenter, create_model, load_checkpoint
from lma_perception.models.checkpoint import DEFAULT_WEIGHTS
from lma_perception.models.lma import GatedFusion, KeyValue


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def models(**overrides):
    """An LMA-ERFNet and the single-frame ERFNet with the same encoder and decoder weights."""
    torch.manual_seed(0)
    lma = create_model('lma_erfnet', **overrides)
    randomize_batchnorm(lma, torch.Generator().manual_seed(1))
    erfnet = create_model('erfnet')
    erfnet.encoder.load_state_dict(lma.encoder.state_dict())
    erfnet.decoder.load_state_dict(lma.decoder.state_dict())
    return lma.eval(), erfnet.eval()


def test_lma_adds_627872_parameters():
    lma, erfnet = models()
    assert count(lma) - count(erfnet) == 627_872
    assert count(lma.memory_kv) + count(lma.query_kv) == 184_480
    assert count(lma.fusion) == 443_392
    assert count(KeyValue(128, 16, 64)) == 92_240


def test_slot_gate_is_extra_and_off_by_default():
    plain, _ = models()
    gated, _ = models(slot_gate=True)
    assert plain.slot_gate is None
    assert count(gated) - count(plain) == count(gated.slot_gate) > 0


def test_query_key_conv_starts_equal_to_memory_key_conv_but_is_separate():
    lma, _ = models()
    assert torch.equal(lma.query_kv.key.weight, lma.memory_kv.key.weight)
    assert torch.equal(lma.query_kv.key.bias, lma.memory_kv.key.bias)
    assert not torch.equal(lma.query_kv.value.weight, lma.memory_kv.value.weight)
    with torch.no_grad():
        lma.query_kv.key.weight.add_(1.0)
    assert not torch.equal(lma.query_kv.key.weight, lma.memory_kv.key.weight)


def test_fusion_follows_the_published_formula():
    torch.manual_seed(0)
    fusion = GatedFusion(64, 128).eval()
    randomize_batchnorm(fusion, torch.Generator().manual_seed(2))
    query, memory = torch.randn(2, 64, 9, 17), torch.randn(2, 64, 9, 17)
    with torch.no_grad():
        a = relu(fusion.bn_query(query))
        b = relu(fusion.bn_memory(memory))
        g = torch.cat([a, b], 1)
        expected = (
            fusion.conv_query(a) * torch.sigmoid(fusion.gate_query(g))
            + fusion.conv_memory(b) * torch.sigmoid(fusion.gate_memory(g))
        )
        expected = relu(fusion.bn_out(expected))
        torch.testing.assert_close(fusion(query, memory), expected, rtol=1e-5, atol=1e-5)
    assert {bn.eps for bn in (fusion.bn_query, fusion.bn_memory, fusion.bn_out)} == {1e-3}
    assert fusion.dropout.p == 0.3


def test_empty_memory_gives_exactly_the_erfnet_output():
    lma, erfnet = models()
    images = torch.rand(2, 3, 64, 128)
    with torch.no_grad():
        expected = erfnet(images)
        assert torch.equal(lma(images), expected)
        assert torch.equal(lma(images, MemoryBatch.from_banks([MemoryBank(), None])), expected)
        assert torch.equal(lma.step(images).logits, expected)


def test_a_stream_with_memory_differs_from_erfnet_and_its_neighbour_does_not():
    lma, erfnet = models()
    frames = torch.rand(3, 2, 3, 64, 128)
    bank = MemoryBank(4)
    with torch.no_grad():
        for frame in frames[:2]:
            output = lma.step(frame[:1], MemoryBatch.from_banks([bank]))
            bank.write(output.memory_key[0], output.memory_value[0])
        alone = lma(frames[2, :1], MemoryBatch.from_banks([bank]))
        mixed = lma(frames[2], MemoryBatch.from_banks([bank, None]))
        single = erfnet(frames[2])
    torch.testing.assert_close(mixed[:1], alone, rtol=1e-4, atol=1e-4)
    assert torch.equal(mixed[1:], single[1:])
    assert (mixed[:1] - single[:1]).abs().max() > 1e-3


def test_clip_forward_equals_streaming_the_clip():
    lma, _ = models()
    clip = torch.rand(1, 4, 3, 64, 128)
    bank = MemoryBank(3)
    with torch.no_grad():
        for t in range(4):
            output = lma.step(clip[:, t], MemoryBatch.from_banks([bank]))
            bank.write(output.memory_key[0], output.memory_value[0])
        torch.testing.assert_close(lma.forward_clip(clip), output.logits, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match='at least 2 frames'):
        lma.forward_clip(clip[:, :1])


def test_memory_batch_size_must_match_images():
    lma, _ = models()
    memory = MemoryBatch.from_frames(torch.zeros(1, 2, 16, 8, 16), torch.zeros(1, 2, 64, 8, 16))
    with pytest.raises(ValueError, match='1 streams for 2 images'):
        lma(torch.rand(2, 3, 64, 128), memory)


class TinyEncoder(nn.Module):
    out_channels = 24
    stride = 8

    def __init__(self):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(16, 24, 3, 2, 1), nn.ReLU(),
        )

    def forward(self, x):
        return self.convs(x)


class TinyDecoder(nn.Module):
    num_classes = 4

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(24, 4, 1)

    def forward(self, x):
        return interpolate(self.head(x), scale_factor=8, mode='bilinear')


def test_wrapper_is_built_from_the_encoder_width_for_any_backbone():
    torch.manual_seed(0)
    config = LMAConfig(key_dim=4, value_dim=8, window=5)
    model = LMASegmenter(TinyEncoder(), TinyDecoder(), config).eval()
    assert model.memory_kv.key.in_channels == 24
    assert model.fusion.bn_out.num_features == 24
    frames = torch.rand(3, 1, 3, 32, 48)
    bank = MemoryBank(2)
    with torch.no_grad():
        for frame in frames:
            output = model.step(frame, MemoryBatch.from_banks([bank]))
            bank.write(output.memory_key[0], output.memory_value[0])
    assert output.logits.shape == (1, 4, 32, 48)
    assert output.memory_key.shape == (1, 4, 4, 6) and output.memory_value.shape == (1, 8, 4, 6)


def test_slot_gate_scales_slots_and_learns():
    lma, _ = models(slot_gate=True)
    memory = MemoryBatch.from_frames(torch.randn(2, 3, 16, 8, 16), torch.randn(2, 3, 64, 8, 16))
    query_key = torch.randn(2, 16, 8, 16)
    log_gates = lma.slot_gate(query_key, memory.keys)
    assert log_gates.shape == (2, 3)
    assert (log_gates < 0).all()
    lma.train()
    lma.forward_clip(torch.rand(1, 3, 3, 64, 128)).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in lma.slot_gate.parameters())


def test_training_reaches_every_memory_parameter():
    lma, _ = models()
    lma.train()
    lma.forward_clip(torch.rand(2, 3, 3, 64, 128)).logsumexp(1).mean().backward()
    for part in (lma.memory_kv, lma.query_kv, lma.fusion):
        for name, parameter in part.named_parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_forward_backward_with_and_without_memory():
    lma, _ = models()
    check_forward_backward(lma)
    lma.train()
    memory = MemoryBatch.from_frames(torch.randn(2, 2, 16, 8, 16), torch.randn(2, 2, 64, 8, 16))
    lma(torch.rand(2, 3, 64, 128), memory).mean().backward()
    assert lma.fusion.gate_memory.weight.grad is not None


def test_save_load_round_trip(tmp_path):
    lma, _ = models(slot_gate=True)
    loaded = check_save_load_round_trip(lma, tmp_path)
    memory = MemoryBatch.from_frames(torch.randn(1, 2, 16, 8, 16), torch.randn(1, 2, 64, 8, 16))
    images = torch.rand(1, 3, 64, 128)
    with torch.no_grad():
        assert torch.equal(lma(images, memory), loaded(images, memory))


def test_shipped_weights_reproduce_the_golden_memory_path():
    check_golden(load_checkpoint(DEFAULT_WEIGHTS)[0], GOLDEN_FILE)
