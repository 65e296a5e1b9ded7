"""PostNet's views: the mean of its outputs on symmetric copies of a decoded image.

A JPEG's 8×8 blocks (and 4:2:0's 16×16 units) map onto themselves under a
transpose, and under flips of an image whose sides are multiples of 16, so
PostNet can restore the same file seen as its transpose or mirror image and
undo the view on its output. Each view errs somewhat differently (the network
is not exactly symmetric), so their mean is a better restoration: a
self-ensemble, bought with one PostNet run per view. On all 41 val/ images
(model d0cbb9b3's networks, `python -m training.evaluate_post weights --views
1 2 4 8`: its eight settings) the mean gain over the plain decode is +1.222 /
+1.321 / +1.373 / +1.400 dB with 1 / 2 / 4 / 8 views.

How many views a model runs is its manifest's PostNet entry "views" (what its
ladder was calibrated with); $JPEGPLUS_VIEWS or load_bundle(views=...) sets
another count (fewer for speed, 8 for the best restoration).

Works alike on numpy arrays (ONNX Runtime) and torch tensors: images
(N, C, H, W); `run` maps an image of (h, w) to its output of (h·r, w·r): a
stored image to the restored one (PostNet, r = 1 or 2), or an image to its
half-size version (PreNet at scale ½, the encoder's learned downsampler).
"""
from __future__ import annotations

import math
import os

import numpy as np

VIEWS_VAR = "JPEGPLUS_VIEWS"
GRID = 16  # flipped views pad the image to this (4:2:0's unit), so its blocks stay on the grid

# A view: (transpose, flip rows, flip columns); the first n are what `n` views run.
# 2: the transpose (never needs padding); 4: the block grid's half-turn symmetries too; 8: all of them.
VIEWS = ((False, False, False), (True, False, False), (False, True, True), (True, True, True),
         (False, False, True), (False, True, False), (True, False, True), (True, True, False))
COUNTS = (1, 2, 4, 8)


def check(n) -> int:
    """`n` as a view count (one of COUNTS); ValueError otherwise."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or int(n) not in COUNTS:
        raise ValueError(f"PostNet views must be one of {', '.join(map(str, COUNTS))}, got {n!r}")
    return int(n)


def from_env(default: int) -> int:
    """$JPEGPLUS_VIEWS as a view count when set, else `default`."""
    raw = os.environ.get(VIEWS_VAR, "").strip()
    if not raw:
        return check(default)
    try:
        return check(int(raw))
    except ValueError:
        raise ValueError(f"{VIEWS_VAR} must be one of {', '.join(map(str, COUNTS))}, got {raw!r}") from None


def _flip(x, axes: tuple[int, ...]):
    return np.flip(x, axes) if isinstance(x, np.ndarray) else x.flip(axes)


def _pad(x, h: int, w: int):
    """x edge-padded at the bottom and right to (h, w)."""
    ph, pw = h - x.shape[-2], w - x.shape[-1]
    if not ph and not pw:
        return x
    if isinstance(x, np.ndarray):
        return np.pad(x, ((0, 0),) * (x.ndim - 2) + ((0, ph), (0, pw)), mode="edge")
    import torch.nn.functional as F

    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def _flips(rows: bool, cols: bool) -> tuple[int, ...]:
    return (-2,) * rows + (-1,) * cols


def averaged(run, x, n: int, side: int = 1, mapper=map):
    """The mean of run(view(x)), each view undone, over the first n VIEWS; n = 1
    is run(x) itself. x: float (N, C, h, w) → float32 (N, C, h·r, w·r), numpy or
    torch as x is, where run scales sizes by r (PostNet: 1 or 2; PreNet: ½).
    `side` views at a time go through `mapper` (a thread pool's map runs them
    side by side; `run` must then be thread-safe), so at most that many outputs
    are held at once."""
    if n == 1:
        return run(x)
    h, w = x.shape[-2:]
    hp, wp = -(-h // GRID) * GRID, -(-w // GRID) * GRID  # what flipped views pad to

    def one(view):
        transpose, rows, cols = view
        v = x
        if rows or cols:
            v = _flip(_pad(v, hp, wp), _flips(rows, cols))
        if transpose:
            v = v.swapaxes(-1, -2)
        out = run(v)
        if transpose:
            out = out.swapaxes(-1, -2)
        if rows or cols:  # the padding's part of the output goes too
            r = out.shape[-2] / hp
            out = _flip(out, _flips(rows, cols))[..., :math.ceil(h * r), :math.ceil(w * r)]
        return out

    chosen = VIEWS[:check(n)]
    total = None
    for i in range(0, n, max(1, side)):
        for out in mapper(one, chosen[i:i + max(1, side)]):
            if total is None:  # the first view is the image itself: its output, ours to add into
                total = np.asarray(out, np.float32) if isinstance(out, np.ndarray) else out.float()
            else:
                total += out
    total /= n
    return total
