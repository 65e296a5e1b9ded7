"""How often the encoder's fold (jpegplus.engine.encode, fold=True) picks another
candidate than the full closed loop, and what that costs, on val/ images.

For every image and user quality where the ladder offers more than one
candidate (scale 2 at low qualities, 4:4:4 at high ones), it scores each
twice: with PostNet (the full closed loop: MSE + λ·bpp of what decode gives)
and without (the fold's proxy: a plain decode, bicubic ×2 at scale 2). For
each margin it then replays the fold's rule (the proxy decides when its best
two costs differ by more than the margin, else the full loop does) and prints the share of images decided without PostNet, how many picked
another file than the full loop, and the loss: total RD cost against the full
loop's, and the mean PSNR change of the images that differ.

    python -m training.fold_check --data ../shared/data/val/cid22 --every 2
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from jpegplus import engine
from jpegplus.bundle import default_bundle

QUALITIES = (1, 4, 7, 10, 13, 16, 19, 70, 80, 90)
MARGINS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)


def score(bundle, rgb: np.ndarray, quality: int) -> dict | None:
    """Per candidate: bytes, full MSE (with PostNet), proxy MSE; None where one candidate only."""
    h, w = rgb.shape[:2]
    row = bundle.manifest.ladder.row(quality)
    options = engine.candidates(row, (w, h))
    if len(options) < 2:
        return None
    nets = engine.TiledNets(bundle, [rgb])
    out = {"lam": row.lam, "pixels": h * w, "bytes": [], "mse": [], "proxy_mse": []}
    for c in options:
        [data] = engine.encode_candidate(bundle, nets, False, c, {})
        [rec] = engine.reconstruct(nets, [data], c.scale, (w, h))
        out["bytes"].append(len(data))
        out["mse"].append(engine.image_error(rec, rgb, False))
        out["proxy_mse"].append(engine.image_error(engine.plain_image(data, c.scale, (w, h)), rgb, False))
    return out


def replay(cases: list[dict], margin: float) -> dict:
    """The fold's rule at `margin` over scored cases, against the full closed loop."""
    early = differ = 0
    cost_fold = cost_full = 0.0
    psnr_changes = []
    for c in cases:
        full = [engine.rd_cost(m, b, c["pixels"], c["lam"]) for m, b in zip(c["mse"], c["bytes"])]
        proxy = [engine.rd_cost(m, b, c["pixels"], c["lam"]) for m, b in zip(c["proxy_mse"], c["bytes"])]
        want = int(np.argmin(full))
        decided = bool(engine.proxy_decides(np.array(proxy)[:, None], margin)[0])
        got = int(np.argmin(proxy)) if decided else want
        early += decided
        differ += got != want
        cost_fold += full[got]
        cost_full += full[want]
        if got != want:
            psnr_changes.append(10 * np.log10(c["mse"][want] / c["mse"][got]))
    return {"margin": margin, "decided_early": early / len(cases), "differ": differ, "cases": len(cases),
            "rd_cost_increase": cost_fold / cost_full - 1,
            "psnr_change_where_differ_db": float(np.mean(psnr_changes)) if psnr_changes else 0.0}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder of val/ images (the reporting sets are never used for choices)")
    ap.add_argument("--every", type=int, default=1, help="use every n-th image")
    ap.add_argument("--qualities", type=int, nargs="+", default=list(QUALITIES))
    ap.add_argument("--out", help="write the replay table as JSON here")
    args = ap.parse_args(argv)
    paths = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() == ".png")[::args.every]
    bundle = default_bundle()
    cases = []
    for path in tqdm(paths, desc="images"):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        cases += [c for q in args.qualities if (c := score(bundle, rgb, q)) is not None]
    rows = [replay(cases, m) for m in MARGINS]
    print(f"{len(cases)} (image, quality) cases from {len(paths)} images, qualities {args.qualities}")
    print("| margin | decided without PostNet | picked another file | RD cost vs full loop | "
          "PSNR change where picked another |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['margin']:.2f} | {100 * r['decided_early']:.0f} % | {r['differ']} of {r['cases']} | "
              f"{100 * r['rd_cost_increase']:+.3f} % | {r['psnr_change_where_differ_db']:+.3f} dB |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
