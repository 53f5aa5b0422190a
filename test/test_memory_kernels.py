"""Choosing the memory read by device, and plugging in a fused kernel."""

import torch

from lma_perception.models import memory_kernels
from lma_perception.models.memory_kernels import local_memory_read, register_kernel, select_kernel
from lma_perception.models.memory_read import (
    local_memory_read_blocked,
    local_memory_read_reference,
)


def test_dispatcher_uses_blocked_on_cpu_and_a_registered_kernel_when_present():
    assert select_kernel(torch.device('cpu')) is local_memory_read_blocked
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(1, 16, 8, 8, generator=generator)
    keys = torch.randn(1, 2, 16, 8, 8, generator=generator)
    values = torch.randn(1, 2, 8, 8, 8, generator=generator)
    register_kernel('cpu', local_memory_read_reference)
    try:
        assert select_kernel(torch.device('cpu')) is local_memory_read_reference
        torch.testing.assert_close(
            local_memory_read(query, keys, values),
            local_memory_read_reference(query, keys, values),
        )
    finally:
        memory_kernels._KERNELS.pop('cpu')
    assert select_kernel(torch.device('cpu')) is local_memory_read_blocked
