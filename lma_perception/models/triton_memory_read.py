"""The local memory read as one fused Triton kernel (inference on CUDA).

One program reads the memory for a tile of query pixels, like the blocked PyTorch read: all
windows of a tile lie in one halo region of each memory frame (tile + window - 1 cells a side),
so the logits of the tile against one region row are one small matrix product, with positions
outside each pixel's own window masked out. The program walks the region rows of every slot
with an online softmax (running maximum, running sum, rescaled accumulator, as in flash
attention), so the T·P² logits of a pixel never reach memory: it reads its tile's halo regions
once and writes only its part of the B×Dv×H×W result.

The semantics are those of :func:`~lma_perception.models.memory_read.local_memory_read_reference`:
unscaled dot products, window positions outside the image are zero padding that takes part in
the softmax (logit 0, value 0: masked loads give exactly that), slots that ``valid`` marks
empty are left out of it entirely, ``slot_bias`` is added to all logits of its slot, and a stream
without any valid slot reads zeros. Inputs are fp32, fp16 or bf16, accumulation is fp32;
fp32 products run in full precision (not TF32), so they match the reference to float rounding.

The kernel has no backward pass: when autograd would need one (grad mode on and an input that
requires grad), or for shapes and dtypes it does not serve, the read falls back to
:func:`~lma_perception.models.memory_read.local_memory_read_blocked`.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from lma_perception.models.memory_read import (
    DEFAULT_WINDOW,
    check_inputs,
    local_memory_read_blocked,
    slot_logit_bias_of,
)

# Query pixels per program (rows, columns), both powers of two. For the 21×21 window a 4×8
# tile computes 24 region rows × 32 columns of logits per pixel for 441 used (1.7×), the least
# of the tiles with 32 pixels or more, and gives a 512×1024 frame (64×128 features) 256
# programs per stream. `lma-perception bench gpu --tiles` compares others on a GPU.
TILE = (4, 8)
NUM_WARPS = 4
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Channel counts are padded to powers of two in registers; beyond these the tile's
# accumulators no longer fit and the blocked read is used instead.
MAX_KEY_DIM = 128
MAX_VALUE_DIM = 256
# The matrix-multiply units need every operand side to be at least 16.
MIN_DOT_SIDE = 16


@triton.jit
def _local_read_kernel(
    query_ptr, keys_ptr, values_ptr, bias_ptr, out_ptr,
    slots, height, width, tiles_x, key_dim, value_dim,
    q_sb, q_sc, q_sy, q_sx,
    k_sb, k_st, k_sc, k_sy, k_sx,
    v_sb, v_st, v_sc, v_sy, v_sx,
    o_sb, o_sc, o_sy, o_sx,
    window: tl.constexpr, tile_h: tl.constexpr, tile_w: tl.constexpr,
    region_w: tl.constexpr, block_dk: tl.constexpr, block_dv: tl.constexpr,
    has_bias: tl.constexpr,
):
    log2e: tl.constexpr = 1.4426950408889634
    half: tl.constexpr = window // 2
    tile = tl.program_id(0)
    batch = tl.program_id(1).to(tl.int64)
    top = (tile // tiles_x) * tile_h
    left = (tile % tiles_x) * tile_w

    pixel = tl.arange(0, tile_h * tile_w)
    pixel_y = pixel // tile_w
    pixel_x = pixel % tile_w
    in_image = (top + pixel_y < height) & (left + pixel_x < width)
    key_channel = tl.arange(0, block_dk)
    value_channel = tl.arange(0, block_dv)
    query = tl.load(
        query_ptr + batch * q_sb + key_channel[None, :] * q_sc
        + (top + pixel_y)[:, None] * q_sy + (left + pixel_x)[:, None] * q_sx,
        mask=in_image[:, None] & (key_channel[None, :] < key_dim), other=0.0,
    )

    # Region column c lies in the window of tile column x when x <= c < x + window; columns
    # past tile_w + window - 1 (padding to a power of two) are in no window.
    column = tl.arange(0, region_w)
    in_window_columns = (column[None, :] >= pixel_x[:, None]) & (
        column[None, :] < pixel_x[:, None] + window
    )
    map_x = left - half + column
    x_in_map = (map_x >= 0) & (map_x < width)

    # Softmax state per pixel, in base 2: running maximum, running sum, unnormalised read.
    running_max = tl.full([tile_h * tile_w], float('-inf'), tl.float32)
    running_sum = tl.zeros([tile_h * tile_w], tl.float32)
    read = tl.zeros([tile_h * tile_w, block_dv], tl.float32)
    # One flat loop over (slot, region row), which Triton software-pipelines: the next row's
    # keys and values load while the current one is reduced.
    rows: tl.constexpr = tile_h + window - 1
    for step in range(slots * rows):
        slot = step // rows
        row = step % rows
        # -inf on an empty slot leaves it out entirely, unlike the zero padding.
        slot_bias = tl.load(bias_ptr + batch * slots + slot) * log2e if has_bias else 0.0
        # The map row of each region column: a block rather than a scalar, as Triton's
        # interpreter turns a scalar test broadcast into a block mask into integers.
        map_y = tl.full([region_w], top - half + row, tl.int32)
        # Outside the map, masked loads give the zero keys and values of the padding.
        in_map = x_in_map & (map_y >= 0) & (map_y < height)
        keys = tl.load(
            keys_ptr + batch * k_sb + slot * k_st + key_channel[:, None] * k_sc
            + map_y[None, :] * k_sy + map_x[None, :] * k_sx,
            mask=(key_channel[:, None] < key_dim) & in_map[None, :], other=0.0,
        )
        values = tl.load(
            values_ptr + batch * v_sb + slot * v_st + value_channel[None, :] * v_sc
            + map_y[:, None] * v_sy + map_x[:, None] * v_sx,
            mask=in_map[:, None] & (value_channel[None, :] < value_dim), other=0.0,
        )
        logits = tl.dot(query, keys, input_precision='ieee') * log2e + slot_bias
        in_window = in_window_columns & ((row >= pixel_y) & (row < pixel_y + window))[:, None]
        logits = tl.where(in_window, logits, float('-inf'))

        new_max = tl.maximum(running_max, tl.max(logits, 1))
        # A pixel that has met no position yet (outside its window rows, or in empty slots)
        # keeps max -inf: subtract 0 instead, so that exp2 gives 0 rather than NaN.
        shift = tl.where(new_max == float('-inf'), 0.0, new_max)
        rescale = tl.exp2(running_max - shift)
        weights = tl.exp2(logits - shift[:, None])
        running_sum = running_sum * rescale + tl.sum(weights, 1)
        read = read * rescale[:, None] + tl.dot(
            weights.to(values.dtype), values, input_precision='ieee'
        )
        running_max = new_max

    # A stream without any valid slot has an empty softmax and reads zeros.
    total = tl.where(running_sum > 0.0, running_sum, 1.0)
    read = read / total[:, None]
    tl.store(
        out_ptr + batch * o_sb + value_channel[None, :] * o_sc
        + (top + pixel_y)[:, None] * o_sy + (left + pixel_x)[:, None] * o_sx,
        read.to(out_ptr.dtype.element_ty),
        mask=in_image[:, None] & (value_channel[None, :] < value_dim),
    )


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _block(size: int) -> int:
    return max(MIN_DOT_SIDE, triton.next_power_of_2(size))


def _needs_fallback(
    query_key: torch.Tensor, memory_keys: torch.Tensor, memory_values: torch.Tensor,
    slot_bias: torch.Tensor | None,
) -> bool:
    """Tell whether the call is one the kernel does not serve: autograd, dtype, channels."""
    tensors = [query_key, memory_keys, memory_values, slot_bias]
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return True
    if any(t.dtype not in DTYPES for t in (query_key, memory_keys, memory_values)):
        return True
    return query_key.shape[1] > MAX_KEY_DIM or memory_values.shape[2] > MAX_VALUE_DIM


def triton_local_memory_read(
    query_key: torch.Tensor, memory_keys: torch.Tensor, memory_values: torch.Tensor, *,
    valid: torch.Tensor | None = None, slot_bias: torch.Tensor | None = None,
    window: int = DEFAULT_WINDOW, tile: tuple[int, int] = TILE,
) -> torch.Tensor:
    """Read the memory with the fused kernel (B×Dv×H×W, channels-last, in the inputs' dtype).

    Arguments as for :func:`~lma_perception.models.memory_read.local_memory_read_reference`;
    ``tile`` is the (rows, columns) of query pixels per program, powers of two with at least
    16 pixels. Inputs of different dtypes are read in their promoted dtype. Calls that need
    gradients, dtypes other than fp32/fp16/bf16, or more than 128 key or 256 value channels
    go to the blocked PyTorch read.
    """
    check_inputs(query_key, memory_keys, memory_values, window)
    tile_h, tile_w = tile
    if not (_is_power_of_two(tile_h) and _is_power_of_two(tile_w)
            and tile_h * tile_w >= MIN_DOT_SIDE):
        raise ValueError(
            f'the tile sides must be powers of two with at least {MIN_DOT_SIDE} pixels, '
            f'got {tile}'
        )
    if _needs_fallback(query_key, memory_keys, memory_values, slot_bias):
        return local_memory_read_blocked(
            query_key, memory_keys, memory_values, valid=valid, slot_bias=slot_bias,
            window=window,
        )
    batch, slots, key_dim, height, width = memory_keys.shape
    value_dim = memory_values.shape[2]
    dtype = torch.promote_types(
        torch.promote_types(query_key.dtype, memory_keys.dtype), memory_values.dtype
    )
    query_key, memory_keys, memory_values = (
        t.to(dtype) for t in (query_key, memory_keys, memory_values)
    )
    bias = slot_logit_bias_of(
        valid, slot_bias, (batch, slots), query_key.new_empty(0, dtype=torch.float32)
    )
    if bias is not None:
        bias = bias.contiguous()
    # Channels-last output, the layout the fusion convolutions that read it run fastest on.
    out = query_key.new_empty(batch, height, width, value_dim).permute(0, 3, 1, 2)
    tiles_x = triton.cdiv(width, tile_w)
    grid = (triton.cdiv(height, tile_h) * tiles_x, batch)
    # Triton launches on the current CUDA device, which need not be the tensors' one.
    on_device = torch.cuda.device(out.device) if out.is_cuda else contextlib.nullcontext()
    with on_device:
        # Without a bias the kernel never reads its bias pointer; any tensor stands in.
        _local_read_kernel[grid](
            query_key, memory_keys, memory_values, query_key if bias is None else bias, out,
            slots, height, width, tiles_x, key_dim, value_dim,
            *query_key.stride(), *memory_keys.stride(), *memory_values.stride(), *out.stride(),
            window=window, tile_h=tile_h, tile_w=tile_w, region_w=_block(tile_w + window - 1),
            block_dk=_block(key_dim), block_dv=_block(value_dim), has_bias=bias is not None,
            num_warps=NUM_WARPS,
        )
    return out
