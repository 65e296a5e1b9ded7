"""Rate control: the quality whose file meets a byte budget or a PSNR target.

    jpegplus.encode(image, target_size=150_000)  # the highest quality whose file is at most 150,000 bytes
    jpegplus.encode(image, target_psnr=38.0)     # the smallest file whose jpegplus decode reaches 38 dB

A search over user quality 1..100 in which every trial is a real
jpegplus.encode (closed-loop scale choice included): the file returned is
exactly what encode gives at the quality found, and it always meets the target
(a file above target_size is never returned). No quality meeting it raises
TargetError, which says how close the encoder gets.

File size need not grow with quality: the closed loop may store quality q at
half size and q + 1 at full size. The search assumes only what holds at one
scale, where the ladder's internal quality never falls as user quality rises:
there, size and decoded PSNR grow with quality. So a trial that misses the
target at quality q and scale s rules out, at scale s, every harder quality
(higher ones for a size, lower ones for a PSNR), and a quality stays open while
some scale the encoder may choose there (engine.candidates) is not ruled out.
The search bisects the open qualities next to the best found so far: plain
bisection where one scale is offered (quality 20 and up with the shipped
ladder, and small images). Where two are, a trial that misses at the scale the
closed loop chose also encodes the other scale alone (the closed loop's own
candidate there), so that scale can be ruled out as well; a stretch left open
only by a scale not yet tried there is probed at its easiest quality, which
settles all of it at that scale. Its cost is measured in the README.
"""
from __future__ import annotations

import io
import math
import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import TargetError

QUALITIES = tuple(range(1, 101))


@dataclass(frozen=True)
class Trial:
    """One encode of a search: user `quality` 1..100, the `scale` its file is
    stored at (1 or 2), the file, the PSNR in dB of its jpegplus decode against
    the input (None unless a PSNR is the target), and whether the search forced
    the scale (a closed-loop candidate alone, not what encode(quality) gives)."""
    quality: int
    scale: int
    data: bytes
    psnr: float | None = None
    forced: bool = False


@dataclass(frozen=True)
class Goal:
    """A file of at most `size` bytes, or a decode of at least `psnr` dB (exactly one is set)."""
    size: int | None = None
    psnr: float | None = None

    def met(self, trial: Trial) -> bool:
        return len(trial.data) <= self.size if self.size is not None else trial.psnr >= self.psnr

    def order(self) -> tuple[int, ...]:
        """The qualities from the easiest to meet to the hardest: ascending for a size, descending for a PSNR."""
        return QUALITIES if self.size is not None else QUALITIES[::-1]

    def best(self, met: list[Trial]) -> Trial:
        """Of the trials that met the goal: the highest quality (size), or the
        smallest file, then the lowest quality (PSNR)."""
        if self.size is not None:
            return max(met, key=lambda t: t.quality)
        return min(met, key=lambda t: (len(t.data), t.quality))

    def missed(self, trials: list[Trial]) -> TargetError:
        """The error when no quality meets the goal, with the closest file the search found."""
        closest = [t for t in trials if not t.forced]
        if self.size is not None:
            t = min(closest, key=lambda t: len(t.data))
            return TargetError(f"target_size {self.size:,} bytes cannot be met: the smallest file jpegplus writes "
                               f"for this image is {len(t.data):,} bytes (quality {t.quality})", len(t.data))
        t = max(closest, key=lambda t: t.psnr)
        return TargetError(f"target_psnr {self.psnr:g} dB cannot be reached: the best jpegplus decode of this "
                           f"image is {t.psnr:.2f} dB (quality {t.quality})", t.psnr)


@dataclass(frozen=True)
class Found:
    """A search's result: the trial returned (what jpegplus.encode gives at its
    quality) and every trial the search encoded, in order (`len(trials)` encodes)."""
    trial: Trial
    trials: tuple[Trial, ...]

    @property
    def data(self) -> bytes:
        return self.trial.data

    @property
    def quality(self) -> int:
        return self.trial.quality


def goal(quality=None, target_size=None, target_psnr=None) -> Goal | None:
    """The Goal that jpegplus.encode's arguments ask for, or None for a plain
    quality. ValueError when more than one of the three is given, or a target
    is not a whole number of bytes ≥ 1 / a finite PSNR > 0 dB."""
    given = [name for name, value in (("quality", quality), ("target_size", target_size),
                                      ("target_psnr", target_psnr)) if value is not None]
    if len(given) > 1:
        raise ValueError(f"give one of quality, target_size and target_psnr, not {' and '.join(given)}")
    if target_size is not None:
        if isinstance(target_size, bool) or not isinstance(target_size, numbers.Integral) or target_size < 1:
            raise ValueError(f"target_size must be a whole number of bytes, at least 1, got {target_size!r}")
        return Goal(size=int(target_size))
    if target_psnr is not None:
        if isinstance(target_psnr, bool) or not isinstance(target_psnr, numbers.Real) \
                or not math.isfinite(target_psnr) or target_psnr <= 0:
            raise ValueError(f"target_psnr must be a finite number of dB above 0, got {target_psnr!r}")
        return Goal(psnr=float(target_psnr))
    return None


# ---------------------------------------------------------------- the search

def search(goal: Goal, trial: Callable[[int, int | None], Trial],
           scales: Callable[[int], tuple[int, ...]]) -> Found:
    """Find `goal` over qualities 1..100 (see the module docstring).

    trial(quality, scale): the encode at `quality`, the closed loop's choice
    when `scale` is None, else that scale alone. scales(quality): the scales
    the closed loop may choose at `quality`. TargetError when nothing meets it."""
    order = goal.order()
    n = len(order)
    missed_from: dict[int, int] = {}  # scale → first position missed there: it and every harder one miss
    missed, met, trials = set(), [], []
    best = -1  # the hardest position whose file met the goal

    def ruled_out(i: int, scale: int) -> bool:
        return i >= missed_from.get(scale, n)

    def run(quality: int, scale: int | None) -> Trial:
        trials.append(trial(quality, scale))
        return trials[-1]

    while True:
        open_ = [i for i in range(best + 1, n)
                 if i not in missed and not all(ruled_out(i, s) for s in scales(order[i]))]
        if not open_:
            break
        run_ = open_[:next((k for k in range(1, len(open_)) if open_[k] != open_[k - 1] + 1), len(open_))]
        # Bisect the bracket next to the best so far; a run beyond a ruled-out stretch is open only at the
        # scale nothing has ruled out there yet, and its easiest position decides all of it at that scale.
        i = run_[len(run_) // 2] if run_[0] == best + 1 else run_[0]
        t = run(order[i], None)
        if goal.met(t):
            best = i
            met.append(t)
            continue
        missed.add(i)
        missed_from[t.scale] = min(missed_from.get(t.scale, n), i)
        for s in scales(order[i]):
            if not ruled_out(i, s) and not goal.met(run(order[i], s)):
                missed_from[s] = i
    if not met:
        raise goal.missed(trials)
    return Found(goal.best(met), tuple(trials))


# ---------------------------------------------------------------- with the real encoder

def encode(image, goal: Goal, *, scale: int | None = None, bundle=None, tile: int | None = None,
           **options) -> Found:
    """Search for `goal` with real jpegplus encodes of `image` (a PIL image or
    uint8 array, as jpegplus.encode takes). `scale` forces the scale as in
    encode; `options` are encode's other options (progressive, keep_metadata,
    metadata). The PSNR is of jpegplus.decode's image against the input: over
    RGB for colour, on L for grey images (over the CMYK samples for CMYK)."""
    from . import codec, engine
    from .bundle import resolve
    from .modes import prepare

    prep = prepare(image)  # refuses what encode refuses, before any search
    if prep.plain is not None:
        size, reference = prep.plain.size, np.asarray(prep.plain)
    else:
        size, reference = (prep.rgb.shape[1], prep.rgb.shape[0]), (prep.rgb[:, :, 0] if prep.grey else prep.rgb)
    ladder = None if prep.plain is not None else resolve(bundle).manifest.ladder

    def scales(quality: int) -> tuple[int, ...]:
        if ladder is None:
            return (1,)  # Pillow's plain JPEG: one way to store it
        return tuple(c.scale for c in engine.candidates(ladder.row(quality), size, scale))

    def trial(quality: int, forced: int | None) -> Trial:
        data = codec.encode(image, quality, scale=forced or scale, bundle=bundle, tile=tile, **options)
        psnr = None if goal.psnr is None else decoded_psnr(data, reference, bundle, tile)
        return Trial(quality, stored_scale(data), data, psnr, forced is not None)

    return search(goal, trial, scales)


def stored_scale(data: bytes) -> int:
    """The scale a file says it is stored at (1 for a file without a jpegplus segment)."""
    from PIL import JpegImagePlugin

    from . import segment as seg

    payload = seg.find(JpegImagePlugin.JpegImageFile(io.BytesIO(data)).applist)
    return 1 if payload is None else seg.parse(payload).scale


def decoded_psnr(data: bytes, reference: np.ndarray, bundle=None, tile: int | None = None) -> float:
    """PSNR in dB (peak 255) of jpegplus.decode(data) against `reference`, uint8 of
    the decoded image's shape. Banded (engine.squared_error), so memory stays
    bounded on large images, unlike evaluation.metrics.psnr's float64 copies."""
    from . import codec, engine

    mse = engine.squared_error(np.asarray(codec.decode(data, bundle=bundle, tile=tile)), reference)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)
