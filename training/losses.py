"""The training losses and JPEG's own rate–distortion exchange rate, in one place.

MSE is in 0..255 levels², bpp in bits per pixel.
"""
from __future__ import annotations

import numpy as np
import torch

ROUNDING_MSE = 1 / 12  # MSE of rounding to 8 bits: a floor every real output has; keeps log finite

# Per-sample losses of the MSE. "mse" is ruled by the coarsest qualities (50× the
# error of fine ones) and, measured after 400 steps of stage c, hurts the finest
# (−0.08 dB at q80); "log" weighs every quality alike, as a BD-rate does, but
# there learns nothing (0.00 dB everywhere: the fine qualities' unpredictable
# noise drowns the signal); "rmse" sits between (+0.35 dB at q5, +0.17 at q20,
# −0.04 at q80 after the same 400 steps) and is what PostNet trains with.
LOSSES = {"mse": lambda m: m, "rmse": torch.sqrt, "log": torch.log}


def restoration_loss(x_hat: torch.Tensor, x: torch.Tensor, kind: str = "rmse") -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, per-sample MSE (N,)) of float batches (N, 3, H, W) in 0..1: the mean over
    samples of LOSSES[kind](MSE + ROUNDING_MSE)."""
    mse = ((x_hat.float() - x) * 255).pow(2).mean((1, 2, 3))
    return LOSSES[kind](mse + ROUNDING_MSE).mean(), mse


def rd_loss(mse: torch.Tensor, bpp: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Stage b's cost: mean over samples of log(MSE + λ(q)·bpp), every quality weighed alike."""
    return torch.log(mse + lam * bpp + ROUNDING_MSE).mean()


def rd_slope(mse, bpp, grid) -> np.ndarray:
    """λ = −dMSE/dbpp of a rate–distortion curve sampled at the qualities `grid`
    (ascending), per grid point. Points where the slope is undefined or not
    positive (the coarsest qualities share clipped tables) take the neighbours'
    value by interpolation."""
    grid = np.asarray(grid, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = -np.gradient(np.asarray(mse, float), np.asarray(bpp, float))
    ok = np.isfinite(slope) & (slope > 0)
    return np.interp(grid, grid[ok], slope[ok])
