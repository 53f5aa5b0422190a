"""The inference engine: batching with per-image memories, sizes, void, confidence, errors."""

import numpy as np
import pytest
import torch
from model_tester import randomize_batchnorm

from lma_perception.models import CheckpointError, create_model, save_checkpoint
from lma_perception.runtime import engine as engine_module
from lma_perception.runtime.engine import EngineConfig, SegmentationEngine

CPU = EngineConfig(device='cpu', input_size=(64, 128))


def lma_erfnet(seed: int = 0):
    torch.manual_seed(seed)
    model = create_model('lma_erfnet')
    randomize_batchnorm(model, torch.Generator().manual_seed(seed + 1))
    return model


def engine(config: EngineConfig = CPU) -> SegmentationEngine:
    return SegmentationEngine(lma_erfnet(), config)


def images(seed: int, *sizes):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for size in sizes]


def test_a_batch_equals_its_images_run_one_by_one():
    batched, single = engine(), engine()
    sizes = ((100, 150), (48, 64))  # neither a multiple of 8 nor the network size
    history = [images(t, *sizes) for t in range(4)]
    # Camera 0 has seen 3 frames before the last, camera 1 only 1: different memory fills.
    memories = [batched.new_memory(), batched.new_memory()]
    single_memories = [single.new_memory(), single.new_memory()]
    for t, frames in enumerate(history):
        cameras = [0, 1] if t >= 2 else [0]
        batch_results = batched.segment([frames[c] for c in cameras],
                                        [memories[c] for c in cameras])
        for c, result in zip(cameras, batch_results, strict=True):
            (alone,) = single.segment([frames[c]], [single_memories[c]])
            assert np.array_equal(result.labels, alone.labels)
            assert result.memory_written == alone.memory_written
    assert [m.fill for m in memories] == [4, 2]
    for memory, reference in zip(memories, single_memories, strict=True):
        for (key, value), (ref_key, ref_value) in zip(memory.frames(), reference.frames(),
                                                      strict=True):
            torch.testing.assert_close(key, ref_key, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(value, ref_value, rtol=1e-4, atol=1e-4)


def test_outputs_are_sized_as_the_input_or_the_network():
    segmenter = engine()
    frames = images(0, (100, 150), (64, 128), (37, 301))
    results = segmenter.segment(frames, [None, segmenter.new_memory(), None], confidence=True)
    for frame, result in zip(frames, results, strict=True):
        assert result.labels.shape == frame.shape[:2] and result.labels.dtype == np.uint8
        assert result.confidence.shape == frame.shape[:2] and result.confidence.dtype == np.uint8
        assert set(result.timings_ms) == {'preprocess', 'model', 'postprocess'}
        assert all(ms >= 0 for ms in result.timings_ms.values())
    network = segmenter.segment(frames, [None] * 3, output_size='network')
    assert all(r.labels.shape == (64, 128) and r.confidence is None for r in network)


def test_labels_resize_back_with_nearest_neighbour():
    segmenter = engine()
    frame = images(3, (64, 128))[0]
    small = segmenter.segment([frame], [None])[0].labels
    large = segmenter.segment([np.repeat(np.repeat(frame, 2, 0), 2, 1)], [None])[0].labels
    assert large.shape == (128, 256)
    assert set(np.unique(large)) <= set(np.unique(small)) | {255}


def test_no_memory_is_the_single_frame_path():
    segmenter = engine()
    erfnet = create_model('erfnet')
    erfnet.encoder.load_state_dict(segmenter.model.encoder.state_dict())
    erfnet.decoder.load_state_dict(segmenter.model.decoder.state_dict())
    plain = SegmentationEngine(erfnet, CPU)
    memory = segmenter.new_memory()
    for frame in images(5, (64, 128), (64, 128)):
        (without,) = segmenter.segment([frame], [None])
        (reference,) = plain.segment([frame], [plain.new_memory()])
        assert np.array_equal(without.labels, reference.labels)
        assert not without.memory_written and not reference.memory_written
    # The first frame of a stream has an empty memory: same labels, and it is then written.
    (first,) = segmenter.segment([frame], [memory])
    assert np.array_equal(first.labels, reference.labels)
    assert first.memory_written and memory.fill == 1


def test_the_void_channel_becomes_255_and_confidence_is_the_max_probability():
    model = lma_erfnet()
    with torch.no_grad():
        model.decoder.output_conv.bias[19] = 1e4  # channel 19 wins everywhere
    segmenter = SegmentationEngine(model, CPU)
    (result,) = segmenter.segment(images(1, (50, 70)), [None], confidence=True)
    assert (result.labels == 255).all()
    assert (result.confidence == 255).all()
    with torch.no_grad():
        model.decoder.output_conv.bias[19] = -1e4
        model.decoder.output_conv.bias[7] = 1e4
    (result,) = segmenter.segment(images(1, (50, 70)), [None])
    assert (result.labels == 7).all()


def test_bad_inputs_get_one_clear_error():
    segmenter = engine()
    frame = images(0, (64, 128))[0]
    bad = {
        'image 0: expected an H×W×3 uint8 RGB array, got float32': frame.astype(np.float32),
        'got uint8 array of shape \\(64, 128\\)': frame[..., 0],
        'got uint8 array of shape \\(64, 128, 4\\)': np.dstack([frame, frame[..., :1]]),
        'got list': [[0, 0, 0]],
    }
    for message, image in bad.items():
        with pytest.raises(ValueError, match=message):
            segmenter.segment([image], [None])
    with pytest.raises(ValueError, match='2 images but 1 memories'):
        segmenter.segment([frame, frame], [None])
    memory = segmenter.new_memory()
    with pytest.raises(ValueError, match='appears twice'):
        segmenter.segment([frame, frame], [memory, memory])
    with pytest.raises(ValueError, match='output_size'):
        segmenter.segment([frame], [None], output_size='native')
    assert segmenter.segment([], []) == []


def test_bad_settings_get_one_clear_error():
    with pytest.raises(ValueError, match='multiples of 8'):
        EngineConfig(input_size=(100, 128))
    with pytest.raises(ValueError, match='precision'):
        EngineConfig(precision='int8')
    with pytest.raises(ValueError, match='write policy'):
        EngineConfig(write_policy='never')
    with pytest.raises(ValueError, match=r'memory_length must be in \[0, 64\]'):
        EngineConfig(memory_length=65)
    with pytest.raises(ValueError, match=r'memory_length must be in \[0, 64\]'):
        EngineConfig(memory_length=-1)
    with pytest.raises(ValueError,
                       match="'torch' does not run fp16 on cpu; fp16 runs with torch on cuda"):
        SegmentationEngine(create_model('erfnet'), EngineConfig(device='cpu', precision='fp16'))
    with pytest.raises(ValueError, match='unknown device'):
        EngineConfig(device='tpu')


def test_memory_length_zero_means_no_memory_at_all():
    segmenter = SegmentationEngine(create_model('lma_erfnet'),
                                   EngineConfig(device='cpu', memory_length=0))
    assert segmenter.uses_memory and segmenter.new_memory() is None
    single = SegmentationEngine(create_model('erfnet'), EngineConfig(device='cpu'))
    assert single.new_memory() is None
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='CUDA is not available'):
            SegmentationEngine(create_model('erfnet'), EngineConfig(device='cuda'))


def test_from_checkpoint_uses_its_input_size_unless_configured(tmp_path):
    path = tmp_path / 'lma.safetensors'
    save_checkpoint(path, lma_erfnet(), input_size=(96, 160))
    segmenter = SegmentationEngine.from_checkpoint(path, EngineConfig(device='cpu'))
    assert segmenter.input_size == (96, 160) and segmenter.uses_memory
    assert segmenter.checkpoint.config.variant == 'lma_erfnet'
    (result,) = segmenter.segment(images(2, (120, 200)), [segmenter.new_memory()])
    assert result.labels.shape == (120, 200)
    resized = SegmentationEngine.from_checkpoint(path, CPU)
    assert resized.input_size == (64, 128)


def test_missing_default_weights_are_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(engine_module, 'DEFAULT_WEIGHTS', tmp_path / 'none.safetensors')
    with pytest.raises(CheckpointError, match=r'no default weights at .*none\.safetensors'):
        SegmentationEngine.from_checkpoint(None, EngineConfig(device='cpu'))


def test_memory_follows_the_engine_settings():
    segmenter = engine(EngineConfig(device='cpu', input_size=(64, 128), memory_length=2,
                                    write_policy='adaptive', write_threshold=0.1))
    memory = segmenter.new_memory()
    assert (memory.length, memory.policy, memory.threshold) == (2, 'adaptive', 0.1)
    frame = images(4, (64, 128))[0]
    written = [segmenter.segment([frame], [memory])[0].memory_written for _ in range(3)]
    assert written == [True, False, False]
