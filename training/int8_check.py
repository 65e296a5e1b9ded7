"""Do int8 graphs pay? The shipped PreNet's and PostNet's int8 graphs (or, where
the manifest lists none, new ones made by jpegplus.bundle.quantise_int8 into
--out) measured on val/ whole images against the float32 graphs:

- BD-rate over PSNR-RGB of the whole system in int8 (files encoded through the
  int8 PreNet, decoded through the int8 PostNet) against the float32 one: what
  shipping int8 costs;
- BD-rate of the int8 PostNet alone, on the same files (the PSNR it loses,
  expressed in rate);
- bpp and PSNR change per quality of the whole system;
- time per megapixel of PreNet alone (at scale 2: the shipped one passes its
  input through at scale 1; models before d33d215b were timed at scale 1) and of
  PostNet alone, float32 and int8, alternating image by image (same load for both).

New graphs are calibrated on train/ crops (never val/), training.export.with_int8.

    python -m training.int8_check --train ../shared/data/train --val ../shared/data/val/cid22 --out runs/int8
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

import jpegplus
from jpegplus import segment
from jpegplus.bundle import INT8_FLOAT_CONVS, load_bundle, onnx_net, weights_dir
from jpegplus.evaluation.metrics import bd_rate, psnr
from jpegplus.tables import quant_level
from jpegplus.tiling import image_to_array
from training.common import postnet_feed
from training.export import ONNX_NETS, with_int8

QUALITIES = (10, 20, 30, 50, 70, 90)
PRENET_TIMING_SCALE = 2  # ms per megapixel of input


def pngs(folder: str) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*.png"))


def int8_nets(reference, out: Path, train: str, calibration: int, keep_float) -> dict:
    """{name: (float32 OnnxNet, int8 OnnxNet)} of PreNet and PostNet: the int8
    graphs the manifest lists, else new ones written into `out` (PostNet's with
    `keep_float` left float32)."""
    nets = {}
    for name in ONNX_NETS:
        entry = reference.manifest.models[name]
        folder = weights_dir()
        if not all(g.int8 for g in entry.graphs):
            folder = out / "weights"
            folder.mkdir(parents=True, exist_ok=True)
            for g in entry.graphs:
                (folder / g.file).write_bytes((weights_dir() / g.file).read_bytes())
            keep = {**INT8_FLOAT_CONVS, "post": tuple(keep_float)}
            entry = with_int8(folder, name, entry, train, count=calibration, keep_float=keep[name])
        nets[name] = tuple(onnx_net(entry, {(g.scale, g.band): folder / f for g, f in files})
                           for files in ([(g, g.file) for g in entry.graphs], [(g, g.int8[0]) for g in entry.graphs]))
    return nets


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--out", default="runs/int8")
    ap.add_argument("--calibration", type=int, default=24, help="train crops per scale")
    ap.add_argument("--every", type=int, default=1, help="use every n-th val image")
    ap.add_argument("--keep-float", nargs="*", default=list(INT8_FLOAT_CONVS["post"]),
                    help="ONNX node names of PostNet convolutions left in float32 in new graphs, made where the "
                         "manifest lists none (default: the shipped choice)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reference = load_bundle(precision="float32")  # the float32 system
    nets = int8_nets(reference, out, args.train, args.calibration, args.keep_float)
    int8_encoder = dataclasses.replace(reference, nets={**reference.nets, "pre": nets["pre"][1]})
    chroma = reference.nets["post"].takes_chroma
    kinds = ("float32", "int8 post", "int8")  # float32 files and PostNet; the same files, int8 PostNet; int8 both
    rows = {k: {q: {"bpp": [], "psnr": []} for q in QUALITIES} for k in kinds}
    seconds = {(n, k): 0.0 for n in ONNX_NETS for k in ("float32", "int8")}
    megapixels = {n: 0.0 for n in ONNX_NETS}
    images = pngs(args.val)[::args.every]
    for path in tqdm(images, desc="val images"):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        h, w = rgb.shape[:2]
        x, level = image_to_array(rgb), np.array([quant_level(reference.manifest.tables.tables(50))], np.float32)
        for kind, net in zip(("float32", "int8"), nets["pre"]):
            t = time.perf_counter()
            net.infer(x, level, PRENET_TIMING_SCALE)
            seconds["pre", kind] += time.perf_counter() - t
        megapixels["pre"] += h * w / 1e6
        for q in QUALITIES:
            files = {"float32": jpegplus.encode(rgb, q, bundle=reference), "int8": jpegplus.encode(rgb, q, bundle=int8_encoder)}
            for kind, data, post in (("float32", files["float32"], 0), ("int8 post", files["float32"], 1),
                                     ("int8", files["int8"], 1)):
                feed = postnet_feed(data, chroma)
                t = time.perf_counter()
                y = nets["post"][post].infer(feed["image"], feed["level"], segment.of_bytes(data).scale, feed.get("chroma"))
                if kind != "int8":  # PostNet's time: the same files through float32 and int8
                    seconds["post", kind.split()[0]] += time.perf_counter() - t
                rec = np.rint(np.clip(y[0, :, :h, :w], 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
                rows[kind][q]["bpp"].append(8 * len(data) / (h * w))
                rows[kind][q]["psnr"].append(psnr(rgb, rec))
            megapixels["post"] += h * w / 1e6
    curve = {k: ([np.mean(v[q]["bpp"]) for q in QUALITIES], [np.mean(v[q]["psnr"]) for q in QUALITIES])
             for k, v in rows.items()}
    result = {
        "bd_rate_int8_vs_float32_pct": bd_rate(*curve["float32"], *curve["int8"]),
        "bd_rate_postnet_only_pct": bd_rate(*curve["float32"], *curve["int8 post"]),
        "bpp_change_pct": {q: 100 * (curve["int8"][0][i] / curve["float32"][0][i] - 1) for i, q in enumerate(QUALITIES)},
        "psnr_change_db": {q: curve["int8"][1][i] - curve["float32"][1][i] for i, q in enumerate(QUALITIES)},
        "prenet_ms_per_mp": {k: 1000 * seconds["pre", k] / megapixels["pre"] for k in ("float32", "int8")},
        "postnet_ms_per_mp": {k: 1000 * seconds["post", k] / megapixels["post"] for k in ("float32", "int8")},
        "images": len(images),
    }
    print(json.dumps(result, indent=1))
    (out / "int8_check.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
