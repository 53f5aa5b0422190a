"""The fused Triton memory read equals the reference read.

With a CUDA GPU the compiled kernel runs on CUDA tensors. Without one the same tests run the
kernel in Triton's interpreter on CPU tensors: Triton reads ``TRITON_INTERPRET`` each time
``@triton.jit`` wraps a function, its own library functions included, so it must be set before
Triton is first imported in this process, which this module does. The kernel is also compiled
to machine code for two GPU generations (no GPU needed), in a subprocess free of that setting.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault('TRITON_INTERPRET', '1')
triton = pytest.importorskip('triton')

from triton.runtime.interpreter import InterpretedFunction  # noqa: E402

from lma_perception.models import triton_memory_read  # noqa: E402
from lma_perception.models.memory_kernels import select_kernel  # noqa: E402
from lma_perception.models.memory_read import (  # noqa: E402
    local_memory_read_blocked,
    local_memory_read_reference,
)
from lma_perception.models.triton_memory_read import triton_local_memory_read  # noqa: E402

INTERPRETED = isinstance(triton_memory_read._local_read_kernel, InterpretedFunction)
DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'
needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason='the compiled kernel needs a CUDA GPU'
)


@pytest.fixture(autouse=True)
def kernel_can_run(request):
    """Fail clearly when Triton was imported, compiling, before this module could say so."""
    compiles_only = request.function.__name__ == 'test_kernel_compiles_for_ampere_and_hopper'
    if DEVICE == 'cpu' and not INTERPRETED and not compiles_only:
        pytest.fail('no CUDA, and Triton was imported before TRITON_INTERPRET=1 was set: run '
                    'this file on its own, or with TRITON_INTERPRET=1 in the environment')


def random_memory(batch, slots, height, width, key_dim=16, value_dim=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    # Keys scaled so that the unscaled logits spread over a few units, as trained keys do.
    query = torch.randn(batch, key_dim, height, width, generator=generator) * 0.5
    keys = torch.randn(batch, slots, key_dim, height, width, generator=generator) * 0.5
    values = torch.randn(batch, slots, value_dim, height, width, generator=generator)
    return query.to(DEVICE), keys.to(DEVICE), values.to(DEVICE)


def mixed_fill(fill, slots):
    """B×T valid mask of streams holding ``fill[b]`` frames each."""
    return torch.arange(slots, device=DEVICE) < torch.tensor(fill, device=DEVICE)[:, None]


@pytest.mark.parametrize('slots', [1, 2, 3, 4, 5])
def test_kernel_equals_reference_where_the_window_overhangs(slots):
    # A 5×7 map: every 21×21 window reaches far past the borders on all sides.
    query, keys, values = random_memory(1, slots, 5, 7, seed=slots)
    out = triton_local_memory_read(query, keys, values)
    assert out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(
        out, local_memory_read_reference(query, keys, values), rtol=0, atol=1e-5
    )


@pytest.mark.parametrize(('height', 'width'), [(9, 17), (26, 6)])
def test_kernel_equals_reference_over_several_tiles(height, width):
    # Partial tiles on the right and bottom edges; the 26-row map has windows inside the map.
    query, keys, values = random_memory(1, 1, height, width)
    torch.testing.assert_close(
        triton_local_memory_read(query, keys, values),
        local_memory_read_reference(query, keys, values), rtol=0, atol=1e-5,
    )


def test_kernel_with_mixed_fill_and_slot_bias():
    # Streams holding 3, 1 and no frames in one batch, plus a log-gate on every slot.
    query, keys, values = random_memory(3, 3, 5, 7, seed=7)
    valid = mixed_fill([3, 1, 0], 3)
    slot_bias = torch.rand(3, 3, generator=torch.Generator().manual_seed(1)).log().to(DEVICE)
    out = triton_local_memory_read(query, keys, values, valid=valid, slot_bias=slot_bias)
    torch.testing.assert_close(
        out, local_memory_read_reference(query, keys, values, valid=valid, slot_bias=slot_bias),
        rtol=0, atol=1e-5,
    )
    assert torch.equal(out[2], torch.zeros_like(out[2]))
    # The empty slots of stream 1 are left out, not read as zero-padding frames.
    alone = local_memory_read_reference(
        query[1:2], keys[1:2, :1], values[1:2, :1], slot_bias=slot_bias[1:2, :1]
    )
    torch.testing.assert_close(out[1:2], alone, rtol=0, atol=1e-5)


@pytest.mark.parametrize(('dtype', 'tolerance'), [
    (torch.float16, 2e-3),
    pytest.param(torch.bfloat16, 2e-2, marks=pytest.mark.skipif(
        INTERPRETED, reason="Triton's interpreter multiplies bf16 matrices as raw 16-bit "
        'integers; the compiled kernel is checked on CUDA and compiled for bf16 below',
    )),
])
def test_kernel_in_half_precision(dtype, tolerance):
    query, keys, values = (t.to(dtype) for t in random_memory(2, 2, 5, 7, seed=3))
    valid = mixed_fill([2, 1], 2)
    out = triton_local_memory_read(query, keys, values, valid=valid)
    assert out.dtype == dtype
    # Against the fp32 formula on the same numbers: half weights and output rounding remain.
    expected = local_memory_read_reference(
        query.float(), keys.float(), values.float(), valid=valid
    )
    torch.testing.assert_close(out.float(), expected, rtol=tolerance, atol=tolerance)


def test_mixed_precision_inputs_are_read_in_the_wider_dtype():
    # Under autocast a half-precision query may meet a memory written in fp32.
    query, keys, values = random_memory(1, 2, 5, 7)
    out = triton_local_memory_read(query.half(), keys, values)
    assert out.dtype == torch.float32
    expected = local_memory_read_reference(query.half().float(), keys, values)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize('window', [1, 3, 5])
def test_kernel_for_other_windows_and_channel_counts(window):
    # 4 key and 6 value channels are padded to the 16 the matrix units need, and masked.
    query, keys, values = random_memory(1, 2, 6, 10, key_dim=4, value_dim=6)
    torch.testing.assert_close(
        triton_local_memory_read(query, keys, values, window=window),
        local_memory_read_reference(query, keys, values, window=window), rtol=0, atol=1e-5,
    )


def test_kernel_reads_channels_last_inputs_with_any_tile():
    query, keys, values = random_memory(1, 1, 7, 12)
    expected = local_memory_read_reference(query, keys, values)
    # The layouts the engine produces: channels-last query, values as the banks stack them.
    query_cl = query.contiguous(memory_format=torch.channels_last)
    values_cl = values.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    for tile in [(4, 8), (2, 8), (8, 16)]:
        torch.testing.assert_close(
            triton_local_memory_read(query_cl, keys, values_cl, tile=tile),
            expected, rtol=0, atol=1e-5,
        )


def test_training_never_goes_through_the_kernel():
    # With grad mode on and inputs that need gradients, the kernel (which has no backward)
    # hands over to the blocked read: gradients flow and equal the reference ones.
    tensors = random_memory(1, 2, 5, 6, key_dim=4, value_dim=5)
    weights = torch.randn(1, 5, 5, 6, device=DEVICE)
    grads = []
    for read in (triton_local_memory_read, local_memory_read_reference):
        inputs = [t.clone().requires_grad_() for t in tensors]
        (read(*inputs) * weights).sum().backward()
        grads.append([t.grad for t in inputs])
    for kernel_grad, reference_grad in zip(*grads, strict=True):
        torch.testing.assert_close(kernel_grad, reference_grad, rtol=1e-4, atol=1e-5)


def test_inputs_the_kernel_does_not_serve_go_to_the_blocked_read():
    double = [t.double() for t in random_memory(1, 2, 5, 6, key_dim=4, value_dim=5)]
    wide = random_memory(1, 1, 4, 4, key_dim=4, value_dim=300)
    for tensors in (double, wide):
        out = triton_local_memory_read(*tensors)
        assert out.dtype == tensors[0].dtype
        torch.testing.assert_close(out, local_memory_read_blocked(*tensors), rtol=0, atol=0)


def test_bad_tiles_and_inputs_are_named():
    query, keys, values = random_memory(1, 2, 5, 6)
    with pytest.raises(ValueError, match='powers of two'):
        triton_local_memory_read(query, keys, values, tile=(3, 8))
    with pytest.raises(ValueError, match='at least 16 pixels'):
        triton_local_memory_read(query, keys, values, tile=(2, 4))
    with pytest.raises(ValueError, match='odd'):
        triton_local_memory_read(query, keys, values, window=4)
    with pytest.raises(ValueError, match='do not match the query key'):
        triton_local_memory_read(query[:, :8], keys, values)


# Compiles the kernel for the paper's setting (16-d keys, 64-d values, 21×21 window) and
# prints, per dtype and GPU generation, whether machine code came out and uses tensor cores.
COMPILE_SCRIPT = """
import json, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from lma_perception.models import triton_memory_read as module

kernel = module._local_read_kernel
tile_h, tile_w = module.TILE
constants = {'window': 21, 'tile_h': tile_h, 'tile_w': tile_w, 'region_w': 32,
             'block_dk': 16, 'block_dv': 64, 'has_bias': True}
results = {}
for dtype in ('fp32', 'fp16', 'bf16'):
    signature = {name: 'constexpr' if name in constants else f'*{dtype}'
                 if name.endswith('_ptr') else 'i32' for name in kernel.arg_names}
    signature['bias_ptr'] = '*fp32'
    source = ASTSource(kernel, signature, constexprs={
        (kernel.arg_names.index(name),): value for name, value in constants.items()})
    for arch in (80, 90):
        compiled = triton.compile(source, target=GPUTarget('cuda', arch, 32),
                                  options={'num_warps': module.NUM_WARPS})
        results[f'{dtype}-sm{arch}'] = [len(compiled.asm['cubin']) > 0,
                                        'mma.sync' in compiled.asm['ptx']]
print(json.dumps(results))
"""


def test_kernel_compiles_for_ampere_and_hopper(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != 'TRITON_INTERPRET'}
    env.update(TRITON_CACHE_DIR=str(tmp_path), TRITON_DEFAULT_FP_FUSION='1')
    run = subprocess.run(
        [sys.executable, '-c', COMPILE_SCRIPT], env=env, capture_output=True, text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout.splitlines()[-1])
    assert sorted(results) == sorted(
        f'{dtype}-sm{arch}' for dtype in ('fp32', 'fp16', 'bf16') for arch in (80, 90)
    )
    for name, (has_machine_code, uses_tensor_cores) in results.items():
        assert has_machine_code, name
        # Half precisions run both products on the tensor cores; fp32 keeps full precision.
        assert uses_tensor_cores == (not name.startswith('fp32')), name


@needs_cuda
def test_cuda_reads_select_the_fused_kernel():
    assert select_kernel(torch.device('cuda')) is triton_local_memory_read
    assert select_kernel(torch.device('cpu')) is local_memory_read_blocked
