"""Calibrate the quality ladder on val/: user quality q → internal JPEG quality
per scale, and the λ the closed-loop scale choice uses.

Promise: on average over val/, jpegplus at quality q gives no more bytes and no
lower PSNR than Pillow (default settings) at q. "On average" is what the bench
measures (jpegplus.evaluation.bench.ladder_check): the mean over images of bits
per pixel, so a small image weighs as much as a big one. Below quality 10 the
budget falls further, to --floor-bpp at quality 1, so the lowest qualities reach
the low-rate regime that Pillow's bottom does not. For each q:
  q1 = highest internal quality whose mean bpp at scale 1 is within q's budget;
  q2 = highest internal quality whose mean bpp at scale 2 is ≤ that of q1 at scale 1
       (0 = scale 2 is never tried: it is not within `--s2-margin` dB of scale 1 there);
  q444 = the same for scale 1 with 4:4:4 chroma (its own, coarser chroma table),
       0 where it is not within `--s444-margin` dB of 4:2:0;
  then q2 and q444 are lowered until the closed loop's mix fits q's budget: each
       image keeps the candidate the encoder would keep (per-image curves; the
       fold's proxy decides where the encoder's does), and an image that takes
       a better but bigger file at scale 2 or 4:4:4 would otherwise push the
       mean past it (mix_rate);
  λ  = −dMSE/dbpp of the scale-1 curve at q1 (the exchange rate for the choice).
Then the real encoder (closed loop) is run at q = 10, 20, …, 90 to check the promise;
where it writes more bits than Pillow there, that quality's second candidate is
lowered until it does not (enforce).
Both go through the encoder's own engine (jpegplus.engine): the curves at forced
(scale, internal quality) candidates, the check through jpegplus.encode.

    python -m training.calibrate --weights runs/export --out runs/ladder.json
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import io
import json
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image
from tqdm import tqdm

from jpegplus import codec, engine, segment
from jpegplus.bundle import Ladder, load_bundle
from jpegplus.evaluation.metrics import psnr
from jpegplus.jpeg import subsampling_of
from training.losses import rd_slope

GRID1 = [1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 17, 20, 24, 28, 33, 38, 44, 50, 56, 62, 68, 74, 80, 85, 90, 93, 96, 98, 100]
GRID2 = [q for q in GRID1 if q <= 90]
GRID444 = [q for q in GRID1 if q >= 24]  # 4:4:4 pays only at high rates
BLEND_TO = 10  # user qualities below this may take fewer bytes than Pillow's (--floor-bpp)


def bpp(data: bytes | int, im: np.ndarray) -> float:
    """Bits per pixel of a file (or a byte count) for image `im` (H, W, 3)."""
    return 8 * (data if isinstance(data, int) else len(data)) / (im.shape[0] * im.shape[1])


def pillow_curve(images) -> tuple[np.ndarray, np.ndarray]:
    """Mean bpp and mean PSNR of Pillow default JPEG at q = 1..100: arrays (100,)."""
    rate, quality = np.zeros(100), np.zeros(100)
    for im in tqdm(images, desc="pillow"):
        for q in range(1, 101):
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, "JPEG", quality=q)
            rate[q - 1] += bpp(buf.tell(), im)
            quality[q - 1] += psnr(im, np.asarray(Image.open(buf).convert("RGB")))
    return rate / len(images), quality / len(images)


@dataclass(frozen=True)
class Curves:
    """One candidate kind's per-image curves on a grid of internal qualities:
    bits per pixel, PSNR of what jpegplus.decode gives, and PSNR of the plain
    decode (engine.plain_image: the fold's proxy; None where it is not known),
    each (images, len(grid))."""
    grid: list
    bpp: np.ndarray
    psnr: np.ndarray
    proxy: np.ndarray | None = None

    def at(self, q: float, which: str) -> np.ndarray:
        """Per-image values (images,) of curve `which` ("bpp", "psnr", "proxy") at internal quality q."""
        return np.array([np.interp(q, self.grid, row) for row in getattr(self, which)])


def jpegplus_curve(bundle, images, scale: int, grid, subsampling: str = "4:2:0") -> Curves:
    """The Curves of jpegplus forced to `scale` and `subsampling` on these images."""
    rate, quality, proxy = (np.zeros((len(images), len(grid))) for _ in range(3))
    for i, im in enumerate(tqdm(images, desc=f"jpegplus scale {scale} {subsampling}")):
        nets = engine.TiledNets(bundle, [im])
        size = (im.shape[1], im.shape[0])
        for j, q in enumerate(grid):
            [data] = engine.encode_candidate(bundle, nets, False, engine.Candidate(scale, q, subsampling), {})
            rate[i, j] = bpp(data, im)
            quality[i, j] = psnr(im, np.asarray(codec.decode(data, bundle=bundle)))
            proxy[i, j] = psnr(im, engine.plain_image(data, scale, size))
    return Curves(list(grid), rate, quality, proxy)


def highest_within(grid, mean_rate, budget: float) -> int:
    """Highest integer internal quality whose interpolated mean bpp ≤ budget (0 if none)."""
    qs = np.arange(1, 101)
    rates = np.interp(qs, grid, mean_rate)
    ok = qs[rates <= budget]
    return int(ok.max()) if len(ok) else 0


def rate_budgets(anchor_bpp, floor_bpp: float | None, blend_to: int = BLEND_TO) -> np.ndarray:
    """Mean bpp allowed per user quality 1..100: Pillow's at that quality, except
    below `blend_to`, where the budget falls geometrically from Pillow's at
    `blend_to` to `floor_bpp` at quality 1 (the low-rate regime, which Pillow's
    bottom does not reach). Quality keeps its order."""
    budget = np.asarray(anchor_bpp, float).copy()
    if floor_bpp:
        qs = np.arange(1, blend_to)
        blend = np.exp(np.interp(qs, [1, blend_to], [np.log(floor_bpp), np.log(budget[blend_to - 1])]))
        budget[:blend_to - 1] = np.minimum(budget[:blend_to - 1], blend)
    return budget


def second_quality(q1: int, budget: float, c1: Curves, c: Curves, margin_db: float) -> int:
    """The internal quality of another candidate (curves c) beside 4:2:0 at
    scale 1's q1 (curves c1): the highest whose mean bpp is within `budget`, or
    0 (never tried) if none is, or if its mean PSNR is more than `margin_db`
    below q1's."""
    q = highest_within(c.grid, c.bpp.mean(0), budget)
    if q and np.interp(q, c.grid, c.psnr.mean(0)) < np.interp(q1, c1.grid, c1.psnr.mean(0)) - margin_db:
        return 0
    return q


def mix_rate(lam: float, offered) -> float:
    """Mean bpp over the images when each keeps the candidate the encoder's
    closed loop keeps (engine.encode), read off per-image curves: the lowest
    MSE + λ·bpp (engine.rd_cost) of what decode gives, except where the fold's
    proxy (the plain decode's cost) decides (engine.proxy_decides), as it does
    for most images. `offered`: (internal quality, Curves) per candidate;
    quality 0 = not offered."""
    offered = [(q, c) for q, c in offered if q]
    rates = np.array([c.at(q, "bpp") for q, c in offered])

    def costs(which: str) -> np.ndarray:
        return np.array([255.0**2 / 10 ** (c.at(q, which) / 10) for q, c in offered]) + lam * rates

    choice = np.argmin(costs("psnr"), 0)
    if len(offered) > 1 and all(c.proxy is not None for _, c in offered):
        proxy = costs("proxy")
        choice = np.where(engine.proxy_decides(proxy), np.argmin(proxy, 0), choice)
    return float(np.take_along_axis(rates, choice[None], 0).mean())


def fit_mix(budget: float, lam: float, offered: list, k: int) -> list:
    """`offered` (as mix_rate's) with candidate k's quality lowered to the highest
    whose mix fits `budget` (0: none does, the candidate is not offered)."""
    q, c = offered[k]
    for trial in range(q, 0, -1):
        offered[k] = (trial, c)
        if mix_rate(lam, offered) <= budget:
            return offered
    offered[k] = (0, c)
    return offered


def build_ladder(anchor_bpp, c1: Curves, c2: Curves, margin_db: float, floor_bpp: float | None = None,
                 c444: Curves | None = None, margin_444: float = 0.5) -> Ladder:
    """The ladder from Pillow's mean bpp per quality (100,) and jpegplus's curves
    at scale 1 (c1), scale 2 (c2) and scale 1 at 4:4:4 (c444; None: never
    tried). Each quality's budget is rate_budgets(...): q1 is the highest
    internal quality within it (at least 1), q2 and q444 the highest within it
    and within q1's mean bpp (second_quality, with margins `margin_db` and
    `margin_444`), then lowered until the closed loop's mix fits the budget (fit_mix)."""
    m1 = c1.bpp.mean(0)
    mse1 = (255.0**2 / 10 ** (c1.psnr / 10)).mean(0)
    slope = rd_slope(mse1, m1, c1.grid)
    budgets = rate_budgets(anchor_bpp, floor_bpp)
    q1s, q2s, q444s, lams = [], [], [], []
    for q in range(1, 101):
        q1 = max(1, highest_within(c1.grid, m1, budgets[q - 1]))
        budget = min(float(np.interp(q1, c1.grid, m1)), budgets[q - 1])
        lam = round(float(max(np.interp(q1, c1.grid, slope), 0.01)), 3)
        offered = [(q1, c1), (second_quality(q1, budget, c1, c2, margin_db), c2)]
        if c444 is not None:
            offered.append((second_quality(q1, budget, c1, c444, margin_444), c444))
        for k in range(1, len(offered)):
            offered = fit_mix(budgets[q - 1], lam, offered, k)
        q1s.append(q1)
        q2s.append(offered[1][0])
        q444s.append(offered[2][0] if c444 is not None else 0)
        lams.append(lam)
    return Ladder(tuple(q1s), tuple(q2s), tuple(lams), tuple(q444s))


CHECKED = tuple(range(10, 100, 10))  # user qualities the real encoder checks (as the bench's ladder check)


def check_quality(bundle, images, q: int, anchor_bpp, anchor_psnr) -> dict:
    """The real closed-loop encoder at user quality q against Pillow on these
    images: mean bpp relative to Pillow's (the bench's bytes ratio), PSNR gain,
    and the shares of files stored at scale 2 and at 4:4:4."""
    rate = quality = 0.0
    halved = full_chroma = 0
    for im in images:
        data = codec.encode(im, q, bundle=bundle)
        rate += bpp(data, im)
        quality += psnr(im, np.asarray(codec.decode(data, bundle=bundle)))
        halved += segment.of_bytes(data).scale == 2
        full_chroma += subsampling_of(Image.open(io.BytesIO(data))) == "4:4:4"
    n = len(images)
    return {"quality": q, "bytes_ratio": round(rate / n / anchor_bpp[q - 1], 4),
            "psnr_gain_db": round(quality / n - anchor_psnr[q - 1], 3), "scale2_share": round(halved / n, 3),
            "share_444": round(full_chroma / n, 3)}


def check(bundle, images, anchor_bpp, anchor_psnr) -> list[dict]:
    """check_quality at each of CHECKED."""
    return [check_quality(bundle, images, q, anchor_bpp, anchor_psnr) for q in tqdm(CHECKED, desc="check")]


def lowered(ladder: Ladder, q: int) -> Ladder | None:
    """`ladder` with user quality q's closed-loop mix one step smaller: its
    second candidate's internal quality (q2, else q444) one lower, 0 past 1, and
    no lower quality's above it (quality keeps its order); None where q offers
    scale 1 at 4:2:0 alone (q1 fits the budget by construction)."""
    i = q - 1
    for field in ("q2", "q444"):
        column = list(getattr(ladder, field))
        if column[i] > 0:
            column[i] -= 1
            column[:i] = [min(v, column[i]) for v in column[:i]]
            return dataclasses.replace(ladder, **{field: tuple(column)})
    return None


def enforce(bundle, images, anchor_bpp, anchor_psnr, rows: list[dict], max_steps: int = 6):
    """The promise held by real encodes: where the check found more bits than
    Pillow's (the simulated mix misjudged the real loop, whose fold decides most
    choices without PostNet), lower that quality's mix (lowered) and check
    again, at most `max_steps` times. Returns (bundle with the ladder, rows)."""
    rows = list(rows)
    for k, row in enumerate(rows):
        for _ in range(max_steps):
            if rows[k]["bytes_ratio"] <= 1:
                break
            smaller = lowered(bundle.manifest.ladder, row["quality"])
            if smaller is None:
                break
            bundle = dataclasses.replace(bundle, manifest=dataclasses.replace(bundle.manifest, ladder=smaller))
            rows[k] = check_quality(bundle, images, row["quality"], anchor_bpp, anchor_psnr)
            print(json.dumps({"enforced": rows[k], "ladder_row": dataclasses.asdict(smaller.row(row["quality"]))}))
    return bundle, rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", required=True, help="folder with manifest.json and the candidate networks")
    ap.add_argument("--data", default="../shared/data/val/cid22")
    ap.add_argument("--out", default="runs/ladder.json")
    ap.add_argument("--s2-margin", type=float, default=1.5, help="dB below scale 1 where scale 2 is still tried")
    ap.add_argument("--s444-margin", type=float, default=0.5, help="dB below 4:2:0 where 4:4:4 is still tried")
    ap.add_argument("--no-444", action="store_true", help="never try 4:4:4 (the ladder's q444 all 0)")
    ap.add_argument("--floor-bpp", type=float, default=0.08,
                    help=f"mean bits per pixel at quality 1; qualities below {BLEND_TO} blend up to Pillow's bytes "
                         "(0: Pillow's bytes everywhere)")
    args = ap.parse_args(argv)
    files = sorted(glob.glob(os.path.join(args.data, "*.png")))
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    bundle = load_bundle(args.weights)

    anchor_bpp, anchor_psnr = pillow_curve(images)
    c1 = jpegplus_curve(bundle, images, 1, GRID1)
    c2 = jpegplus_curve(bundle, images, 2, GRID2)
    c444 = None if args.no_444 else jpegplus_curve(bundle, images, 1, GRID444, "4:4:4")
    ladder = build_ladder(anchor_bpp, c1, c2, args.s2_margin, args.floor_bpp, c444, args.s444_margin)

    bundle = dataclasses.replace(bundle, manifest=dataclasses.replace(bundle.manifest, ladder=ladder))
    bundle, rows = enforce(bundle, images, anchor_bpp, anchor_psnr, check(bundle, images, anchor_bpp, anchor_psnr))
    ladder = bundle.manifest.ladder
    for r in rows:
        print(json.dumps(r))
    result = {"tables": bundle.manifest.tables.to_json(), "ladder": ladder.to_json(), "check_val": rows,
              "images": len(images),
              "curves": {**{f"{k}{name}": v for name, c in (("1", c1), ("2", c2), ("444", c444)) if c is not None
                            for k, v in (("grid", c.grid), ("bpp", c.bpp.mean(0).tolist()),
                                         ("psnr", c.psnr.mean(0).tolist()), ("proxy", c.proxy.mean(0).tolist()))},
                         "pillow_bpp": anchor_bpp.tolist(), "pillow_psnr": anchor_psnr.tolist()}}
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"ladder → {args.out}")


if __name__ == "__main__":
    main()
