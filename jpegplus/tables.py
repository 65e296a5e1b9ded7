"""Quantisation tables: the family jpegplus encodes with, and a scalar summary.

Tables are 8×8 arrays in natural (row-major) order, values 1..255.
jpegplus does not use the Annex-K tables scaled by quality, which are tuned for
the eye and waste bits under an MSE criterion. It flattens them,
T = m·(S/m)^flatness, and weights chroma by `chroma_weight`; both numbers are
chosen on val/ (training/calibrate.py) and stored in the weights manifest.
"""
from __future__ import annotations

import numpy as np

# ITU-T T.81 Annex K tables, natural order.
STD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.float64).reshape(8, 8)
STD_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
] + [99] * 32, dtype=np.float64).reshape(8, 8)


def libjpeg_scale(quality: int) -> float:
    """libjpeg's quality → table scaling, in percent (quality 1..100)."""
    q = int(min(100, max(1, quality)))
    return 5000.0 / q if q < 50 else 200.0 - 2 * q


def standard_tables(quality: int) -> np.ndarray:
    """Tables libjpeg (and Pillow) use at `quality`: int array (2, 8, 8)."""
    s = libjpeg_scale(quality)
    return np.stack([np.clip(np.floor((t * s + 50) / 100), 1, 255) for t in (STD_LUMA, STD_CHROMA)]).astype(np.int64)


def jpegplus_tables(quality: int, flatness: float, chroma_weight: float) -> np.ndarray:
    """jpegplus tables at internal JPEG `quality` (1..100): int array (2, 8, 8)."""
    s = libjpeg_scale(quality)
    m = STD_LUMA.mean()
    luma = m * (STD_LUMA / m) ** flatness
    chroma = m * chroma_weight * (STD_CHROMA / STD_CHROMA.mean()) ** flatness
    return np.stack([np.clip(np.round(t * s / 100), 1, 255) for t in (luma, chroma)]).astype(np.int64)


def quant_level(tables) -> float:
    """Scalar summary of how coarse a file's tables are: mean log2 of the luma
    table divided by 8, so 0 (all ones, near lossless) .. 1 (all 255).
    This is what conditions PreNet and PostNet."""
    luma = np.asarray(tables[0], dtype=np.float64)
    return float(np.mean(np.log2(np.clip(luma, 1, 255))) / 8.0)


def level_band(levels, bounds) -> np.ndarray:
    """Which level band each quantisation level (quant_level, 0..1) falls in:
    int (N,), 0 below bounds[0], i from bounds[i - 1] (inclusive) up to bounds[i]."""
    return np.searchsorted(np.asarray(bounds, np.float64), np.asarray(levels, np.float64).reshape(-1), side="right")


def band_groups(levels, bounds) -> list[tuple[int, np.ndarray]]:
    """A batch's samples grouped by level band: [(band, sample indices int (k,))],
    bands rising. The one rule that picks a BandedPostNet's member per file, in
    torch and ONNX Runtime alike."""
    which = level_band(levels, bounds)
    return [(int(b), np.flatnonzero(which == b)) for b in np.unique(which)]


def pillow_qtables(tables: np.ndarray) -> list[list[int]]:
    """Tables in the form Pillow's `qtables=` save option takes (natural order)."""
    return [np.asarray(t).reshape(64).astype(int).tolist() for t in tables]
