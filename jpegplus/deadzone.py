"""Dead-zone requantisation: the encoder's rate–distortion quantiser, done in pixels.

libjpeg rounds every DCT coefficient c/Q to the nearest integer. Under an
entropy coder that is not the best trade: a coefficient just above ½ costs
a whole symbol to save little error. A dead-zone quantiser rounds |c/Q| down
unless its fraction exceeds `threshold` (½ is plain rounding; video coders use
about ⅔ for intra blocks). libjpeg cannot be told to do this, but it does not
need to be: we quantise the image ourselves — the encoder's own colour
transform, 2×2 chroma averaging and 8×8 DCT, with the file's tables — and hand
it the image those coefficients decode to. Re-quantising that image with the
same tables gives back the same coefficients (up to 8-bit rounding noise), so
libjpeg writes the dead-zone choice into an ordinary baseline JPEG.

Measured on val/ with the jpegplus tables, see training/deadzone_sweep.py.
Arrays are uint8 (H, W, 3) RGB or (H, W) grey; tables (2, 8, 8) luma, chroma.
Work is done in bands of BAND rows, so memory stays bounded on huge images.
"""
from __future__ import annotations

import numpy as np

BAND = 256  # rows per band: a multiple of 16 (one 4:2:0 MCU row)

# JFIF RGB → YCbCr (centred: Cb, Cr without their +128 offset); libjpeg uses these.
RGB_TO_YCC = np.array([[0.299, 0.587, 0.114],
                       [-0.168736, -0.331264, 0.5],
                       [0.5, -0.418688, -0.081312]], dtype=np.float32)
YCC_TO_RGB = np.linalg.inv(RGB_TO_YCC).astype(np.float32)


def dct_matrix() -> np.ndarray:
    """Orthonormal 8-point DCT-II D (float32): coefficients = D · block · Dᵀ, JPEG's own scaling."""
    k, n = np.arange(8)[:, None], np.arange(8)[None]
    d = np.sqrt(2 / 8) * np.cos(np.pi * (2 * n + 1) * k / 16)
    d[0] /= np.sqrt(2)
    return d.astype(np.float32)


DCT = dct_matrix()
DCT2 = np.kron(DCT, DCT)  # (64, 64): a row-major flattened block b ↦ D·b·Dᵀ, flattened; one GEMM for all blocks


def quantise_plane(plane: np.ndarray, table: np.ndarray, threshold: float) -> np.ndarray:
    """A centred plane (h, w), multiples of 8, as its dead-zone quantised decode.

    DC is rounded as libjpeg does; each AC coefficient keeps ⌊|c/Q| + 1 − threshold⌋."""
    h, w = plane.shape
    blocks = plane.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 64)
    q = table.astype(np.float32).reshape(64)
    c = blocks @ DCT2.T / q
    k = np.sign(c) * np.floor(np.abs(c) + (1 - threshold))
    k[:, 0] = np.round(c[:, 0])
    rec = (k * q) @ DCT2
    return rec.reshape(h // 8, w // 8, 8, 8).transpose(0, 2, 1, 3).reshape(h, w)


def requantise_band(band: np.ndarray, tables: np.ndarray, threshold: float) -> np.ndarray:
    """One band (h, w, 3) float32, h and w multiples of 16 → RGB float32 whose
    4:2:0 JPEG coefficients are the dead-zone ones."""
    h, w = band.shape[:2]
    ycc = band @ RGB_TO_YCC.T
    ycc[..., 0] = quantise_plane(ycc[..., 0] - 128, tables[0], threshold) + 128
    for i in (1, 2):
        full = ycc[..., i]
        half = full.reshape(h // 2, 2, w // 2, 2).mean((1, 3))  # what the encoder's 2×2 averaging sees
        shift = quantise_plane(half, tables[1], threshold) - half
        ycc[..., i] = full + np.repeat(np.repeat(shift, 2, 0), 2, 1)  # moves each 2×2 mean by exactly `shift`
    return ycc @ YCC_TO_RGB.T


def requantise(arr: np.ndarray, tables: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 image (H, W, 3) or (H, W) → the same shape, simplified so that
    libjpeg with `tables` (4:2:0 for colour) codes it with dead-zone
    quantisation. threshold 0.5 (or less) returns the input unchanged."""
    if threshold <= 0.5:
        return arr
    tables = np.asarray(tables)
    grey = arr.ndim == 2
    h, w = arr.shape[:2]
    pad = ((0, -h % 16), (0, -w % 16)) + (() if grey else ((0, 0),))
    src = np.pad(arr, pad, mode="edge")  # libjpeg also repeats the last row and column into partial blocks
    out = np.empty_like(arr)
    for r in range(0, h, BAND):
        band = src[r:r + BAND].astype(np.float32)
        if grey:
            rec = quantise_plane(band - 128, tables[0], threshold) + 128
        else:
            rec = requantise_band(band, tables, threshold)
        rows = min(BAND, h - r)
        out[r:r + rows] = np.clip(np.rint(rec[:rows, :w]), 0, 255).astype(np.uint8)
    return out
