"""The local memory read of LMA: each query pixel attends to a window around it in T frames.

For a query key map ``q`` (B×Dk×H×W) and T memory frames of keys ``k_t`` (Dk channels) and values
``v_t`` (Dv channels)::

    logit[t, dy, dx, y, x] = Σ_c q[c, y, x] · k_t[c, y + dy, x + dx]      (dy, dx ∈ [-h, h])
    p = softmax over all (t, dy, dx) jointly                               (T·P² entries)
    out[:, y, x] = Σ_t Σ_dy Σ_dx p[t, dy, dx, y, x] · v_t[:, y + dy, x + dx]

with the window side ``P = 2h + 1`` (21 in the paper). As in the published model the logits are
not scaled, and window positions outside the image are zero padding that takes part in the
softmax (logit 0, value 0). Two per-stream extras serve batches of cameras whose memories hold
different numbers of frames, and the optional slot gate:

- ``valid`` (B×T bool): slots that hold no frame are left out of the softmax entirely, unlike
  zero-padded border positions. A stream without any valid slot reads zeros.
- ``slot_bias`` (B×T): added to every logit of a slot (the log of a gate in (0, 1]).

Implementations, all with the same signature and results (to float rounding):

- :func:`local_memory_read_reference`: the formula above with ``unfold``; it materialises all
  P² shifted copies of every frame, so it is for tests and small maps only.
- :func:`local_memory_read_blocked`: splits the query map into tiles; a tile's windows all lie
  in one halo region (tile + 2h on each side) of each memory frame, so logits and read-out are
  two batched matrix products per tile against that region, with positions outside each pixel's
  own window masked out. Nothing of size P² × map is ever built; work is done in bands of tiles
  to bound the temporary memory.
- :func:`local_memory_read_gathered`: the blocked read in operators that export to ONNX
  (gathers of constant indices instead of strided views), for the deployment runtimes.

`lma_perception.models.memory_kernels` picks one by device, a fused kernel included.
"""

from __future__ import annotations

from functools import cache

import torch
from torch.nn.functional import pad, unfold

DEFAULT_WINDOW = 21
# Query tile of the blocked read; 8×8 keeps the matrix products large enough to run at full
# speed while the halo (21-1 = 20 cells) wastes less than half of each region.
TILE = (8, 8)
# Upper bound on logits held at once by the blocked read (elements): on CPU a few bands of
# tiles whose temporaries stay in cache; on GPUs more, to launch fewer kernels, still far from
# the gigabytes a 1024×2048 input would need at once.
MAX_CHUNK_LOGITS = 1 << 22
MAX_CHUNK_LOGITS_GPU = 1 << 26
# Softmax weights below e^-60 (relative to the largest) are raised to it in the blocked read:
# products of such weights and values stay clear of float32 denormals, which x86 CPUs handle
# about a hundred times slower, and exp() of the masked -inf logits skips its slow path.
MIN_LOG_WEIGHT = -60.0


def check_inputs(
    query_key: torch.Tensor, memory_keys: torch.Tensor, memory_values: torch.Tensor, window: int
) -> None:
    """Raise a ValueError naming what is wrong with the read's inputs."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f'the window side must be a positive odd number, got {window}')
    if query_key.dim() != 4 or memory_keys.dim() != 5 or memory_values.dim() != 5:
        raise ValueError(
            'expected query_key B×Dk×H×W and memory keys/values B×T×D×H×W, got shapes '
            f'{tuple(query_key.shape)}, {tuple(memory_keys.shape)}, {tuple(memory_values.shape)}'
        )
    batch, key_dim, height, width = query_key.shape
    if memory_keys.shape[0] != batch or memory_keys.shape[2:] != (key_dim, height, width):
        raise ValueError(
            f'memory keys {tuple(memory_keys.shape)} do not match the query key '
            f'{tuple(query_key.shape)}'
        )
    if memory_values.shape[:2] != memory_keys.shape[:2] or memory_values.shape[3:] != (
        height, width
    ):
        raise ValueError(
            f'memory values {tuple(memory_values.shape)} do not match the memory keys '
            f'{tuple(memory_keys.shape)}'
        )


def slot_logit_bias_of(
    valid: torch.Tensor | None, slot_bias: torch.Tensor | None, shape: tuple[int, int],
    like: torch.Tensor,
) -> torch.Tensor | None:
    """B×T additive logit bias: the slot bias, and -inf on slots that hold no frame."""
    if valid is None and slot_bias is None:
        return None
    bias = torch.zeros(shape, dtype=like.dtype, device=like.device)
    if slot_bias is not None:
        bias = bias + slot_bias.to(like.dtype)
    if valid is not None:
        bias = bias.masked_fill(~valid.to(device=like.device, dtype=torch.bool), float('-inf'))
    return bias


def local_memory_read_reference(
    query_key: torch.Tensor, memory_keys: torch.Tensor, memory_values: torch.Tensor, *,
    valid: torch.Tensor | None = None, slot_bias: torch.Tensor | None = None,
    window: int = DEFAULT_WINDOW,
) -> torch.Tensor:
    """Read the memory with ``unfold`` windows, the formula written out (B×Dv×H×W).

    Args:
        query_key: B×Dk×H×W keys of the current frame.
        memory_keys: B×T×Dk×H×W keys of the memory frames.
        memory_values: B×T×Dv×H×W values of the memory frames.
        valid: B×T bool, False for slots without a frame (excluded from the softmax).
        slot_bias: B×T, added to all logits of a slot.
        window: side P of the square window (odd).
    """
    check_inputs(query_key, memory_keys, memory_values, window)
    batch, slots, _, height, width = memory_keys.shape
    half = window // 2

    def windows(x: torch.Tensor) -> torch.Tensor:
        # B×D×H×W → B×D×P²×H×W: the zero-padded window around every pixel.
        cols = unfold(pad(x, (half, half, half, half)), window)
        return cols.view(x.shape[0], x.shape[1], window * window, height, width)

    logits = torch.stack(
        [(query_key.unsqueeze(2) * windows(memory_keys[:, t])).sum(1) for t in range(slots)], 1
    )  # B×T×P²×H×W
    bias = slot_logit_bias_of(valid, slot_bias, (batch, slots), logits)
    if bias is not None:
        logits = logits + bias.view(batch, slots, 1, 1, 1)
    weights = logits.flatten(1, 2).softmax(1).nan_to_num(0.0).view_as(logits)
    return sum(
        (weights[:, t].unsqueeze(1) * windows(memory_values[:, t])).sum(2) for t in range(slots)
    )


@cache
def _window_bias(tile_h: int, tile_w: int, window: int) -> torch.Tensor:
    """(tile_h·tile_w)×(region) logit bias: 0 inside each pixel's own window, -inf outside."""
    region_h, region_w = tile_h + window - 1, tile_w + window - 1
    iy = torch.arange(tile_h).view(tile_h, 1, 1, 1)
    ix = torch.arange(tile_w).view(1, tile_w, 1, 1)
    uy = torch.arange(region_h).view(1, 1, region_h, 1) - iy
    ux = torch.arange(region_w).view(1, 1, 1, region_w) - ix
    inside = (uy >= 0) & (uy < window) & (ux >= 0) & (ux < window)
    bias = torch.zeros(inside.shape).masked_fill(~inside, float('-inf'))
    return bias.view(tile_h * tile_w, region_h * region_w)


def _halo_regions(
    padded: torch.Tensor, band: slice, tiles_x: int, tile: tuple[int, int], window: int,
    channels_last: bool,
) -> torch.Tensor:
    """Gather the halo regions of one band of tiles from zero-padded memory frames.

    ``padded`` is B×T×Hp×Wp×D when ``channels_last`` (result B×tiles×(T·R)×D, the right operand
    of the read-out) and B×T×D×Hp×Wp otherwise (result B×tiles×D×(T·R), the right operand of the
    logits); R is the region size. Both are laid out so that the matrix products run on
    contiguous operands, which is several times faster than on transposed views.
    """
    region_h, region_w = tile[0] + window - 1, tile[1] + window - 1
    rows = slice(band.start * tile[0], (band.stop - 1) * tile[0] + region_h)
    if channels_last:
        batch, slots, _, _, depth = padded.shape
        band_rows = padded[:, :, rows]
        s = band_rows.stride()
        regions = band_rows.as_strided(
            (batch, band.stop - band.start, tiles_x, slots, region_h, region_w, depth),
            (s[0], tile[0] * s[2], tile[1] * s[3], s[1], s[2], s[3], s[4]),
        )
        return regions.reshape(batch, -1, slots * region_h * region_w, depth)
    batch, slots, depth = padded.shape[:3]
    band_rows = padded[:, :, :, rows]
    s = band_rows.stride()
    regions = band_rows.as_strided(
        (batch, band.stop - band.start, tiles_x, depth, slots, region_h, region_w),
        (s[0], tile[0] * s[3], tile[1] * s[4], s[2], s[1], s[3], s[4]),
    )
    return regions.reshape(batch, -1, depth, slots * region_h * region_w)


def local_memory_read_blocked(
    query_key: torch.Tensor, memory_keys: torch.Tensor, memory_values: torch.Tensor, *,
    valid: torch.Tensor | None = None, slot_bias: torch.Tensor | None = None,
    window: int = DEFAULT_WINDOW,
) -> torch.Tensor:
    """Read the memory tile by tile with matrix products (B×Dv×H×W); see the module notes.

    Same arguments and result as :func:`local_memory_read_reference`, up to a difference far
    below float precision: weights under e^-60 ≈ 1e-26 of the largest are raised to that (see
    ``MIN_LOG_WEIGHT``), so masked positions and empty slots keep a share of that order.
    """
    check_inputs(query_key, memory_keys, memory_values, window)
    batch, slots, key_dim, height, width = memory_keys.shape
    value_dim = memory_values.shape[2]
    half, (tile_h, tile_w) = window // 2, TILE
    tiles_y, tiles_x = -(-height // tile_h), -(-width // tile_w)
    pad_h, pad_w = tiles_y * tile_h - height, tiles_x * tile_w - width
    region = (tile_h + window - 1) * (tile_w + window - 1)
    pixels = tile_h * tile_w

    # Memory padded by the half window (the zero padding of the formula) plus the remainder up
    # to whole tiles; query pixels in that remainder are computed and dropped.
    keys = pad(memory_keys, (half, half + pad_w, half, half + pad_h))
    values = pad(
        memory_values.permute(0, 1, 3, 4, 2), (0, 0, half, half + pad_w, half, half + pad_h)
    )
    query = pad(query_key, (0, pad_w, 0, pad_h)).reshape(
        batch, key_dim, tiles_y, tile_h, tiles_x, tile_w
    ).permute(0, 2, 4, 3, 5, 1).reshape(batch, tiles_y, tiles_x, pixels, key_dim)

    bias = _window_bias(tile_h, tile_w, window).to(query_key.device, query_key.dtype)
    bias = bias.view(1, 1, pixels, 1, region).expand(batch, 1, pixels, slots, region)
    slot_logit_bias = slot_logit_bias_of(valid, slot_bias, (batch, slots), query_key)
    if slot_logit_bias is not None:
        bias = bias + slot_logit_bias.view(batch, 1, 1, slots, 1)
    bias = bias.reshape(batch, 1, pixels, slots * region)

    out = query_key.new_empty(batch, tiles_y, tiles_x, pixels, value_dim)
    chunk = MAX_CHUNK_LOGITS if query_key.device.type == 'cpu' else MAX_CHUNK_LOGITS_GPU
    rows_per_chunk = max(1, chunk // (batch * tiles_x * pixels * slots * region))
    for start in range(0, tiles_y, rows_per_chunk):
        band = slice(start, min(start + rows_per_chunk, tiles_y))
        band_keys = _halo_regions(keys, band, tiles_x, TILE, window, channels_last=False)
        band_values = _halo_regions(values, band, tiles_x, TILE, window, channels_last=True)
        logits = query[:, band].flatten(1, 2) @ band_keys
        logits += bias
        # Softmax with the normalisation applied to the Dv-wide read-out rather than to the
        # T·R-wide weights; the max is finite unless a stream has no valid slot at all.
        logits -= logits.detach().amax(-1, keepdim=True).nan_to_num(0.0, neginf=0.0)
        weights = logits.clamp_min_(MIN_LOG_WEIGHT).exp_()
        total = weights.sum(-1, keepdim=True)
        read = (weights @ band_values).div_(total)
        out[:, band] = read.view(batch, band.stop - band.start, tiles_x, pixels, value_dim)

    # Pixels back in image order, channels last (the layout convolutions run fastest on).
    out = out.view(batch, tiles_y, tiles_x, tile_h, tile_w, value_dim).transpose(2, 3)
    out = out.reshape(batch, tiles_y * tile_h, tiles_x * tile_w, value_dim)
    out = out[:, :height, :width].permute(0, 3, 1, 2)
    if valid is not None:
        # A stream without any frame reads zeros, not the mean of its empty slots.
        out = out * valid.to(out.device).any(1).to(out.dtype).view(batch, 1, 1, 1)
    return out


# Logit of a position that must get no weight in the gathered read: finite (unlike -inf), so a
# stream whose slots are all empty still has a finite softmax, whose read is then zeroed.
MASKED_LOGIT = -1e30
# Tiles the gathered read processes per step. Its logits are then 4 × 64 pixels × T·784
# positions (3 MB at T = 4), which stay in cache from the product that writes them through the
# softmax to the product that reads them; the whole map at once streams all logits and 12× the
# memory's values through main memory, which ONNX Runtime ran markedly slower (README,
# Deployment runtimes). Steps of 2 to 4 tiles were fastest there; fewer run too little at once.
TILES_PER_STEP = 4


def _region_index(tiles: tuple[int, int], tile: tuple[int, int], window: int,
                  padded_width: int) -> torch.Tensor:
    """tiles×R flat indices (row · padded width + column) of each tile's halo region."""
    (tiles_y, tiles_x), (tile_h, tile_w) = tiles, tile
    rows = (torch.arange(tiles_y) * tile_h).view(-1, 1, 1, 1) + torch.arange(
        tile_h + window - 1).view(1, 1, -1, 1)
    cols = (torch.arange(tiles_x) * tile_w).view(1, -1, 1, 1) + torch.arange(
        tile_w + window - 1).view(1, 1, 1, -1)
    return (rows * padded_width + cols).reshape(tiles_y * tiles_x, -1)


def local_memory_read_gathered(
    query_key: torch.Tensor, memory_keys: torch.Tensor, memory_values: torch.Tensor, *,
    valid: torch.Tensor | None = None, slot_bias: torch.Tensor | None = None,
    window: int = DEFAULT_WINDOW, tile: tuple[int, int] = TILE,
    tiles_per_step: int = TILES_PER_STEP,
) -> torch.Tensor:
    """Read the memory as the blocked read does, in operators that export to ONNX (B×Dv×H×W).

    Same arguments and result as :func:`local_memory_read_reference`. Where
    :func:`local_memory_read_blocked` takes strided views of the memory, this read gathers each
    tile's halo region with one index select of constant indices over the flattened padded map,
    whose positions hold all T slots side by side, and masks with a finite logit: it traces to
    standard ONNX operators (Gather, MatMul, Softmax) with a dynamic batch and slot count. It
    works through :data:`TILES_PER_STEP` tiles at a time, so that each step's regions and
    logits stay in cache. ``tile`` and ``tiles_per_step`` are there for `bench read`, which
    measures the trade-off between a tile's wasted work and its halo copies.
    """
    check_inputs(query_key, memory_keys, memory_values, window)
    batch = query_key.shape[0]
    # Plain ints: an exported graph has a fixed map size, only batch and slots are dynamic.
    key_dim, height, width = (int(size) for size in query_key.shape[1:])
    value_dim = int(memory_values.shape[2])
    half, (tile_h, tile_w) = window // 2, tile
    tiles_y, tiles_x = -(-height // tile_h), -(-width // tile_w)
    pad_h, pad_w = tiles_y * tile_h - height, tiles_x * tile_w - width
    pixels, tiles = tile_h * tile_w, tiles_y * tiles_x
    region = (tile_h + window - 1) * (tile_w + window - 1)
    index = _region_index(
        (tiles_y, tiles_x), tile, window, tiles_x * tile_w + 2 * half
    ).to(query_key.device)

    def positions(memory: torch.Tensor) -> torch.Tensor:
        # B×T×D×H×W → B×(padded H·W)×(T·D): each padded position's slots next to each other.
        slots, depth = memory.shape[1], memory.shape[2]
        memory = pad(memory.permute(0, 3, 4, 1, 2),
                     (0, 0, 0, 0, half, half + pad_w, half, half + pad_h))
        return memory.reshape(batch, -1, slots * depth)

    keys, values = positions(memory_keys), positions(memory_values)
    query = pad(query_key, (0, pad_w, 0, pad_h)).reshape(
        batch, key_dim, tiles_y, tile_h, tiles_x, tile_w
    ).permute(0, 2, 4, 3, 5, 1).reshape(batch, tiles, pixels, key_dim)

    window_bias = _window_bias(tile_h, tile_w, window).to(query_key.device, query_key.dtype)
    bias = window_bias.clamp_min(MASKED_LOGIT).view(1, 1, pixels, region, 1)  # 1×1×P×R×1
    if valid is not None or slot_bias is not None:
        slot_logit = torch.zeros_like(memory_keys[:, :, 0, 0, 0])  # B×T
        if slot_bias is not None:
            slot_logit = slot_logit + slot_bias.to(slot_logit.dtype)
        if valid is not None:
            slot_logit = slot_logit.masked_fill(~valid.to(torch.bool), MASKED_LOGIT)
        bias = bias + slot_logit.view(batch, 1, 1, 1, -1)
    else:
        bias = bias.expand(1, 1, pixels, region, memory_keys.shape[1])
    bias = bias.reshape(bias.shape[0], 1, pixels, -1)  # ×(R·T), position-major as the regions

    reads = []
    for start in range(0, tiles, tiles_per_step):
        step_index = index[start:start + tiles_per_step]
        step_tiles = step_index.shape[0]
        step_keys = keys.index_select(1, step_index.flatten()).reshape(
            batch, step_tiles, -1, key_dim
        )
        step_values = values.index_select(1, step_index.flatten()).reshape(
            batch, step_tiles, -1, value_dim
        )
        weights = (query[:, start:start + step_tiles] @ step_keys.transpose(-1, -2) + bias)
        reads.append(weights.softmax(-1) @ step_values)  # B×tiles×P×Dv
    read = torch.cat(reads, 1).reshape(batch, tiles_y, tiles_x, tile_h, tile_w, value_dim)
    read = read.permute(0, 5, 1, 3, 2, 4).reshape(
        batch, value_dim, tiles_y * tile_h, tiles_x * tile_w
    )
    read = read[:, :, :height, :width]
    if valid is not None:
        read = read * valid.to(torch.bool).any(1).to(read.dtype).view(batch, 1, 1, 1)
    return read
