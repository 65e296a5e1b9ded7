"""Overlapped tiled inference: PreNet and PostNet on images of any size with
bounded memory, uint8 in and uint8 out, on either runtime (jpegplus.runtime).

An output pixel of either network depends only on input pixels within a fixed
radius, its `reach(scale)`. A tile is run on a window that extends `halo(...)`
pixels beyond it on every side and only the tile's own part of the result is
kept, so tiled and untiled runs compute the same function. Tiles start on a
16-pixel grid (the unshuffle, 2×2 pooling and padding grid), and the image is
edge-padded to the network's size multiple exactly as an untiled run pads it.
What remains is floating-point noise between convolutions of different sizes:
after rounding to uint8 the tiled output differs from the untiled one by at
most TOLERANCE (0..255 levels) in any pixel (tests/test_hardening.py checks this).

Arrays are uint8 (H, W, 3) RGB; network inputs are float32 (1, 3, h, w) in 0..1.
"""
from __future__ import annotations

import numpy as np

from .runtime import runner

ALIGN = 16        # tile origins and halos are multiples of this (input pixels)
TILE = 1024       # default tile side in input pixels: ~100 MB of activations for PostNet
TOLERANCE = 1     # max |tiled - untiled| per channel, 0..255 levels


def image_to_array(arr: np.ndarray) -> np.ndarray:
    """One image: uint8 (H, W, 3) → float32 (1, 3, H, W) in 0..1. Transposed as
    uint8 first, so only one float array is made (fresh large arrays cost page faults)."""
    return np.divide(np.ascontiguousarray(arr.transpose(2, 0, 1))[None], np.float32(255), dtype=np.float32)


def write_image(y: np.ndarray, out: np.ndarray) -> None:
    """One image: float (1, 3, H, W) in 0..1 → uint8 `out` (H, W, 3), rounded (half
    to even) and clamped. `y` is overwritten: it is the scratch space, so no
    temporary image-sized arrays are made."""
    t = y[0]
    np.clip(t, 0, 1, out=t)
    t *= 255
    np.rint(t, out=t)
    out[...] = t.transpose(1, 2, 0)  # whole numbers 0..255: the cast is exact


def array_to_image(y: np.ndarray) -> np.ndarray:
    """One image: float (1, 3, H, W) in 0..1 → a new uint8 (H, W, 3) (write_image's rounding); y is kept."""
    out = np.empty((y.shape[2], y.shape[3], 3), np.uint8)
    write_image(np.array(y, np.float32), out)
    return out


def halo(net, scale: int) -> int:
    """Context (input pixels, a multiple of ALIGN) a tile needs on each side:
    the network's own `reach(scale)`, rounded up to the tile grid."""
    return -(-net.reach(scale) // ALIGN) * ALIGN


def window(src: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """src[y0:y1, x0:x1] where rows/columns past the end repeat the last one
    (what np.pad(mode="edge") gives the untiled run)."""
    h, w = src.shape[:2]
    part = src[y0:min(y1, h), x0:min(x1, w)]
    extra_y, extra_x = y1 - min(y1, h), x1 - min(x1, w)
    if extra_y or extra_x:
        part = np.pad(part, ((0, extra_y), (0, extra_x), (0, 0)), mode="edge")
    return part


def run_tiled(net, src: np.ndarray, level: float, scale: int, out_size: tuple[int, int], *,
              multiple: int, upsamples: bool, tile: int | None = None, device=None,
              full_chroma: bool = False, views: int = 1) -> np.ndarray:
    """Run network `net` (a runtime.OnnxNet, or a torch module run on `device`,
    default the CPU) at `level` and `scale` over uint8 `src` (H, W, 3) tile by tile
    (`full_chroma`: the file's 4:4:4 flag, for a PostNet that takes it).

    The input is edge-padded to a multiple of `multiple`; the network maps n
    input pixels to n·scale (upsamples, PostNet) or n/scale (PreNet) output
    pixels. Returns uint8 (out_h, out_w, 3), the top-left crop of the output,
    out_size = (out_w, out_h). `tile` is the tile side in input pixels (rounded
    down to a multiple of ALIGN, default TILE); peak float memory is set by it,
    not by the image size. Where the network passes its input through at
    `scale` (runtime passes_through), `src` itself (out_size must be its size).
    `views`: each tile is the mean of the network's outputs on that many views
    of it (jpegplus.views)."""
    h, w = src.shape[:2]
    hp, wp = h + (-h % multiple), w + (-w % multiple)
    up, down = (scale, 1) if upsamples else (1, scale)
    out_w, out_h = out_size
    net = runner(net, device)
    if net.passes_through(scale):
        if (out_w, out_h) != (w, h) or src.shape[2:] != (3,):
            raise ValueError(f"a network passing through at scale {scale} gives {w}×{h}×3, not {out_w}×{out_h}×3")
        return src
    out = np.empty((out_h, out_w, 3), np.uint8)
    step = max(ALIGN, (tile or TILE) // ALIGN * ALIGN)
    margin = halo(net, scale)
    levels, flags = np.array([level], np.float32), np.array([float(full_chroma)], np.float32)
    for y0 in range(0, hp, step):
        y1 = min(y0 + step, hp)
        wy0, wy1 = max(0, y0 - margin), min(hp, y1 + margin)
        for x0 in range(0, wp, step):
            x1 = min(x0 + step, wp)
            wx0, wx1 = max(0, x0 - margin), min(wp, x1 + margin)
            y = net.infer(image_to_array(window(src, wy0, wy1, wx0, wx1)), levels, scale, flags, views)
            oy0, ox0 = y0 * up // down, x0 * up // down
            oy1, ox1 = min(y1 * up // down, out_h), min(x1 * up // down, out_w)
            if oy0 >= oy1 or ox0 >= ox1:
                continue
            cy, cx = (y0 - wy0) * up // down, (x0 - wx0) * up // down
            write_image(y[:, :, cy:cy + oy1 - oy0, cx:cx + ox1 - ox0], out[oy0:oy1, ox0:ox1])
    return out
