"""Rate control: the quality whose file meets a byte budget or a PSNR target.

    jpegplus.encode(image, target_size=150_000)  # the highest quality whose file is at most 150,000 bytes
    jpegplus.encode(image, target_psnr=38.0)     # the smallest file whose jpegplus decode reaches 38 dB

A search over user quality 1..100 in which every trial is a real encode, the
one jpegplus.encode runs (engine.encode, closed-loop scale choice included):
the file returned is exactly what encode gives at the quality found (with the
same options), and it always meets the target
(a file above target_size is never returned). No quality meeting it raises
TargetError, which says how close the encoder gets.

File size need not grow with quality: the closed loop may store quality q at
half size and q + 1 at full size, or q at 4:4:4 and q + 1 at 4:2:0. The
search assumes only what holds for one kind of candidate (engine.candidates:
its scale and chroma subsampling), where the ladder's internal quality never
falls as user quality rises: there, size and decoded PSNR grow with quality.
So a trial that misses the target at quality q as kind k rules out, for kind
k, every harder quality (higher ones for a size, lower ones for a PSNR), and a
quality stays open while some kind the encoder may choose there is not ruled
out. The search bisects the open qualities next to the best found so far:
plain bisection where one kind is offered (small images; qualities where the
ladder offers neither scale 2 nor 4:4:4). Where more are, a trial that misses
as the kind the closed loop chose also encodes each other kind alone (the
closed loop's own candidate there), so that kind can be ruled out as well; a
stretch left open only by a kind not yet tried there is probed at its easiest
quality, which settles all of it for that kind. Its cost is measured in the README.
"""
from __future__ import annotations

import io
import math
import numbers
from dataclasses import dataclass
from typing import Callable, Hashable

from .errors import TargetError

QUALITIES = tuple(range(1, 101))


@dataclass(frozen=True)
class Trial:
    """One encode of a search: user `quality` 1..100, the `kind` of candidate
    its file is (real encodes: (scale, subsampling)), the file, the PSNR in dB of its jpegplus decode against
    the input (None unless a PSNR is the target), and whether the search forced
    the kind (a closed-loop candidate alone, not what encode(quality) gives)."""
    quality: int
    kind: Hashable
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
           kinds: Callable[[int], tuple]) -> Found:
    """Find `goal` over qualities 1..100 (see the module docstring).

    trial(quality, kind): the encode at `quality`, the closed loop's choice
    when `kind` is None, else that kind of candidate alone. kinds(quality): the
    kinds the closed loop may choose at `quality`. TargetError when nothing meets it."""
    order = goal.order()
    n = len(order)
    missed_from: dict = {}  # kind → first position missed as it: it and every harder one miss
    missed, met, trials = set(), [], []
    best = -1  # the hardest position whose file met the goal

    def ruled_out(i: int, kind) -> bool:
        return i >= missed_from.get(kind, n)

    def run(quality: int, kind) -> Trial:
        trials.append(trial(quality, kind))
        return trials[-1]

    while True:
        open_ = [i for i in range(best + 1, n)
                 if i not in missed and not all(ruled_out(i, k) for k in kinds(order[i]))]
        if not open_:
            break
        run_ = open_[:next((k for k in range(1, len(open_)) if open_[k] != open_[k - 1] + 1), len(open_))]
        # Bisect the bracket next to the best so far; a run beyond a ruled-out stretch is open only at the
        # kind nothing has ruled out there yet, and its easiest position decides all of it for that kind.
        i = run_[len(run_) // 2] if run_[0] == best + 1 else run_[0]
        t = run(order[i], None)
        if goal.met(t):
            best = i
            met.append(t)
            continue
        missed.add(i)
        missed_from[t.kind] = min(missed_from.get(t.kind, n), i)
        for k in kinds(order[i]):
            if not ruled_out(i, k) and not goal.met(run(order[i], k)):
                missed_from[k] = i
    if not met:
        raise goal.missed(trials)
    return Found(goal.best(met), tuple(trials))


# ---------------------------------------------------------------- with the real encoder

def encode(image, goal: Goal, *, scale: int | None = None, progressive: bool | None = None,
           subsampling: str | None = None, keep_metadata: bool = False, bundle=None, tile: int | None = None,
           **options) -> Found:
    """Search for `goal` with real encodes of `image` (a PIL image or uint8
    array): what jpegplus.encode(image, target_size=...) or target_psnr runs,
    returning the Found (the file, its quality, the trials). The options are
    encode's, which checks them before it calls this. Each trial is
    engine.encode as jpegplus.encode runs it, so its file is encode's at that
    quality; a PSNR target keeps each trial's reconstruction, which is what
    jpegplus.decode gives (compared over RGB, on L for a grey image).
    Only images the networks code take a target: ValueError for CMYK, which
    Pillow's writer stores at a quality."""
    from . import engine
    from .bundle import resolve
    from .metadata import metadata_from
    from .modes import prepare

    prep = prepare(image)
    if prep.plain is not None:
        raise ValueError(f"target_size and target_psnr take RGB and grey images, not mode {prep.plain.mode} "
                         "(which Pillow's writer stores at a quality)")
    meta = metadata_from(image, options, keep_metadata)
    bundle = resolve(bundle)
    nets = engine.TiledNets(bundle, [prep.rgb], tile)
    size = (prep.rgb.shape[1], prep.rgb.shape[0])

    def kinds(quality: int) -> tuple:
        row = bundle.manifest.ladder.row(quality)
        return tuple((c.scale, c.subsampling) for c in engine.candidates(row, size, scale, prep.grey, subsampling,
                                                                       prep.bilevel))

    def trial(quality: int, forced: tuple | None) -> Trial:
        s, sub = forced or (scale, subsampling)
        coded = engine.encode(bundle, nets, prep.grey, quality, s, meta,
                              keep_rec=goal.psnr is not None, progressive=progressive, subsampling=sub,
                              bilevel=prep.bilevel)[0]
        psnr = None if coded.rec is None else psnr_of(engine.image_error(coded.rec, prep.rgb, prep.grey))
        return Trial(quality, stored_kind(coded.data), coded.data, psnr, forced is not None)

    return search(goal, trial, kinds)


def stored_kind(data: bytes) -> tuple[int, str]:
    """(scale, subsampling) of a jpegplus file: what its segment says and its
    chroma layout ("4:2:0" for grey files, which engine.candidates gives them)."""
    from PIL import JpegImagePlugin

    from . import segment as seg
    from .jpeg import subsampling_of

    im = JpegImagePlugin.JpegImageFile(io.BytesIO(data))
    return seg.parse(seg.find(im.applist)).scale, subsampling_of(im) or "4:2:0"


def psnr_of(mse: float) -> float:
    """PSNR in dB (peak 255) of a mean squared error in 0..255 levels² (engine.image_error's,
    banded: no float64 copies of a large image, as evaluation.metrics.psnr makes)."""
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)
