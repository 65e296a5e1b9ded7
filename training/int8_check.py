"""Do int8 PostNet graphs pay? The shipped PostNet's int8 graphs (or, where the
manifest lists none, new ones made by jpegplus.bundle.quantise_int8 into --out)
measured on val/ whole images against the float32 graphs, on the same files:

- BD-rate over PSNR-RGB of the int8 decode against the float32 one (the files
  are the same, so this is the PSNR int8 loses, expressed in rate);
- PSNR change per quality;
- decode time per megapixel of PostNet alone, float32 and int8, alternating
  image by image (same load for both).

New graphs are calibrated on train/ crops (never val/),
training.common.int8_calibration_feeds.

    python -m training.int8_check --train ../shared/data/train --val ../shared/data/val/cid22 --out runs/int8
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

import jpegplus
from jpegplus import runtime, segment
from jpegplus.bundle import INT8_FLOAT_CONVS, load_bundle, quantise_int8, weights_dir
from jpegplus.evaluation.metrics import bd_rate, psnr
from training.common import int8_calibration_feeds, postnet_feed

QUALITIES = (10, 20, 30, 50, 70, 90)


def pngs(folder: str) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*.png"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--out", default="runs/int8")
    ap.add_argument("--calibration", type=int, default=24, help="train crops per scale")
    ap.add_argument("--every", type=int, default=1, help="use every n-th val image")
    ap.add_argument("--keep-float", nargs="*", default=list(INT8_FLOAT_CONVS),
                    help="ONNX node names of convolutions left in float32 (default: the shipped choice)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reference = load_bundle(precision="float32")  # the files: encoded as float32 graphs would
    entry = reference.manifest.models["post"]
    bounds = entry.config.get("bounds", ())
    nets = {"float32": {}, "int8": {}}
    for g in entry.graphs:
        if g.int8:
            dst = weights_dir() / g.int8[0]
        else:
            dst = out / f"post-{g.key.replace('@', '-b')}-int8.onnx"
            quantise_int8(weights_dir() / g.file, dst, int8_calibration_feeds(
                args.train, g.scale, args.calibration, chroma=reference.nets["post"].takes_chroma, band=g.band,
                bounds=bounds), keep_float=args.keep_float)
        nets["float32"][g] = weights_dir() / g.file
        nets["int8"][g] = dst
    nets = {kind: runtime.OnnxNet({(g.scale, g.band): p for g, p in files.items()},
                                  {g.scale: g.reach for g in files}, bounds) for kind, files in nets.items()}

    rows = {k: {q: {"bpp": [], "psnr": []} for q in QUALITIES} for k in nets}
    seconds = {k: 0.0 for k in nets}
    megapixels = 0.0
    for path in tqdm(pngs(args.val)[::args.every], desc="val images"):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        h, w = rgb.shape[:2]
        for q in QUALITIES:
            data = jpegplus.encode(rgb, q, bundle=reference)
            scale = segment.of_bytes(data).scale
            feed = postnet_feed(data, reference.nets["post"].takes_chroma)
            megapixels += h * w / 1e6
            for kind, net in nets.items():
                t = time.perf_counter()
                y = net.infer(feed["image"], feed["level"], scale, feed.get("chroma"))
                seconds[kind] += time.perf_counter() - t
                rec = np.rint(np.clip(y[0, :, :h, :w], 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
                rows[kind][q]["bpp"].append(8 * len(data) / (h * w))
                rows[kind][q]["psnr"].append(psnr(rgb, rec))
    curve = {k: ([np.mean(v[q]["bpp"]) for q in QUALITIES], [np.mean(v[q]["psnr"]) for q in QUALITIES])
             for k, v in rows.items()}
    result = {
        "bd_rate_int8_vs_float32_pct": bd_rate(*curve["float32"], *curve["int8"]),
        "psnr_change_db": {q: curve["int8"][1][i] - curve["float32"][1][i] for i, q in enumerate(QUALITIES)},
        "postnet_ms_per_mp": {k: 1000 * s / megapixels for k, s in seconds.items()},
        "images": len(pngs(args.val)[::args.every]),
    }
    print(json.dumps(result, indent=1))
    (out / "int8_check.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
