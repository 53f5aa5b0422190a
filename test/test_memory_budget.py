"""What a node's memories and forward pass need, against what the device has free."""

import pytest
import torch

from lma_perception.models import create_model
from lma_perception.runtime.engine import EngineConfig, SegmentationEngine
from lma_perception.runtime.memory_budget import (
    MemoryBudgetError,
    available_bytes,
    check_budget,
    forward_bytes,
    memory_entry_bytes,
)

FITS = dict(cameras=3, memory_length=4, entry_bytes=1000, input_size=(64, 128), batch_size=3,
            what="the host's available memory", input_size_name="'input_size'")


def test_a_memory_entry_is_what_a_bank_holds_per_frame():
    engine = SegmentationEngine(create_model('lma_erfnet').eval(),
                                EngineConfig(device='cpu', input_size=(64, 128), memory_length=3))
    memory = engine.new_memory()
    engine.segment([torch.zeros(64, 128, 3, dtype=torch.uint8).numpy()], [memory])
    config = engine.model.config
    entry = memory_entry_bytes(config.key_dim, config.value_dim, engine.model.stride,
                               engine.input_size, engine.dtype)
    assert memory.nbytes == 3 * entry  # every slot is allocated on the first write
    assert memory_entry_bytes(16, 64, 8, (512, 1024), torch.float32) == 2_621_440
    assert memory_entry_bytes(16, 64, 8, (512, 1024), torch.float16) == 1_310_720


def test_host_memory_available_is_known_and_plausible():
    available, what = available_bytes(torch.device('cpu'))
    assert what == "the host's available memory"
    assert 0 < available <= torch.iinfo(torch.int64).max


def test_what_fits_passes():
    needed = forward_bytes((64, 128), 3) + 3 * 4 * 1000
    check_budget(available=needed, **FITS)


def test_memories_that_do_not_fit_name_memory_length_and_both_sizes():
    available = forward_bytes((64, 128), 3) + 3 * 4 * 1000 - 1
    with pytest.raises(MemoryBudgetError) as error:
        check_budget(available=available, **FITS)
    assert str(error.value) == (
        "parameter 'memory_length' = 4: 3 camera(s) × 4 frames × 1,000 bytes a frame (network "
        "input 128×64) need 12,000 bytes (11.7 KiB) beside the 9,830,400 bytes (9.4 MiB) of a "
        f"forward pass, but the host's available memory is {available:,} bytes (9.4 MiB)"
    )


def test_a_forward_pass_that_does_not_fit_names_the_input_size():
    with pytest.raises(MemoryBudgetError) as error:
        check_budget(available=1000, **(FITS | {'input_size_name': "'input_size' (the "
                                                                  "checkpoint's)"}))
    assert str(error.value) == (
        "parameter 'input_size' (the checkpoint's) = [64, 128]: a forward pass of 3 image(s) at "
        "128×64 needs 9,830,400 bytes (9.4 MiB), but the host's available memory is 1,000 bytes"
    )
