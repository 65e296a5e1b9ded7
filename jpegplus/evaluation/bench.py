"""`jpegplus bench DIR`: rate–distortion and speed of jpegplus against Pillow's JPEG.

Rate is bits per original pixel of the whole file (len(bytes)·8 / (W·H)); PSNR
is over all RGB samples (uint8, peak 255); MS-SSIM is over RGB. A curve holds,
at each quality setting, the average over images of the per-image values
(MS-SSIM dB is taken of the averaged MS-SSIM). BD-rates are against Pillow's
default JPEG at quality 10…90, with pchip of log-rate over the overlapping range
(jpegplus.evaluation.metrics.bd_rate). Writes results.json, results.md and rd.png to --out
and prints the Markdown tables.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from . import missing_extra, peers
from .metrics import bd_rate, ms_ssim, msssim_db, psnr

# jpegplus qualities: its ladder is calibrated to at least Pillow's PSNR at equal
# quality, so reaching the anchor's q10 PSNR needs points below 10, and q95
# makes sure the top end goes past the anchor's q90.
DEFAULT_QUALITIES = (2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}
PSNR_CAP = 100.0  # dB, for a lossless result, so averages stay finite
SPEED_QUALITIES = (75, 10)  # a typical quality, and a low one where the encoder also tries scale ½
NOFAKE_FOLDER = "ablation-nofake"


# ---------------------------------------------------------------- inputs

def find_images(folder: Path, recursive: bool = False, limit: int | None = None) -> list[Path]:
    """Image files in `folder` (by suffix), sorted by path, at most `limit`."""
    pattern = "**/*" if recursive else "*"
    found = sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return found[:limit] if limit else found


def load_rgb(path: Path) -> np.ndarray:
    """uint8 RGB (H, W, 3); grey and alpha images are converted (alpha dropped)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


# ---------------------------------------------------------------- codecs

def build_codecs(qualities, ablations: bool, nofake_folder: Path | None,
                 anchor_qualities=peers.ANCHOR_QUALITIES) -> tuple[list[peers.Codec], list[str], dict]:
    """Codecs in evaluation order (a codec that reuses another's files comes
    after it), notes on what was skipped, and the default bundle's manifest
    (jpegplus.bundle.Manifest).
    `qualities` are jpegplus's; the anchor, the peers and PostNet-alone use
    `anchor_qualities`."""
    from ..bundle import default_bundle, load_bundle, weights_dir
    from ..errors import WeightsError

    bundle = default_bundle()
    aq = tuple(anchor_qualities)
    codecs = [peers.pillow_default(aq), peers.pillow_optimize(aq)]
    notes = []
    jpegli = peers.jpegli(aq)
    if jpegli is None:
        notes.append("jpegli skipped: pyjpegli is not installed (pip install pyjpegli)")
    else:
        codecs.append(jpegli)
    codecs.append(peers.area_down(aq))
    main, scale1 = peers.jpegplus_codecs(qualities, bundle)
    codecs.append(main)
    if ablations:
        codecs += [scale1, peers.postnet_alone(bundle, aq)]
        folder = nofake_folder or weights_dir() / NOFAKE_FOLDER
        if (folder / "manifest.json").is_file():
            try:
                nofake = load_bundle(folder)
                codecs.append(peers.jpegplus_codecs(
                    qualities, nofake, name="pre/post without FakeCodec", role="ablation",
                    note=f"weights {folder} (model {nofake.model_id}), closed-loop scale choice")[0])
            except WeightsError as e:
                notes.append(f"ablation without FakeCodec skipped: {e}")
        else:
            notes.append(f"ablation without FakeCodec skipped: no {folder}/manifest.json")
    return codecs, notes, bundle.manifest


# ---------------------------------------------------------------- measuring

def measure_image(rgb: np.ndarray, codecs: list[peers.Codec], progress=None) -> dict:
    """Per codec, per quality: {"bytes", "bpp", "psnr", "ms_ssim"} (and "scale"
    for jpegplus files) of one uint8 RGB image (H, W, 3).

    A file shared by codecs (same encoder_id) is encoded once; identical bytes
    through the same decoder are decoded once; identical pixels (Pillow with and
    without optimize) are scored once.
    """
    h, w = rgb.shape[:2]
    files: dict = {}    # (encoder_id, quality) -> bytes
    decoded: dict = {}  # (decoder_id, file digest) -> pixel digest
    scores: dict = {}   # pixel digest -> (psnr, ms_ssim)
    out: dict = {}
    for codec in codecs:
        started = time.perf_counter()
        rows = []
        for q in codec.qualities:
            key = (codec.encoder_id, q)
            if key not in files:
                shared = files.get((codec.reuse, q))
                files[key] = shared if shared is not None and codec.reuse_if(shared) else codec.encode(rgb, q)
            data = files[key]
            dkey = (codec.decoder_id, hashlib.sha1(data).digest())
            if dkey not in decoded:
                rec = codec.decode(data, (w, h))
                if rec.shape != rgb.shape:
                    raise RuntimeError(f"{codec.name} at q{q} decoded to {rec.shape}, expected {rgb.shape}")
                decoded[dkey] = hashlib.sha1(np.ascontiguousarray(rec)).digest()
                if decoded[dkey] not in scores:
                    scores[decoded[dkey]] = (min(psnr(rgb, rec), PSNR_CAP), ms_ssim(rgb, rec))
            score = scores[decoded[dkey]]
            row = {"quality": q, "bytes": len(data), "bpp": len(data) * 8 / (w * h),
                   "psnr": score[0], "ms_ssim": score[1]}
            if codec.jpegplus_files:
                row["scale"] = peers.file_scale(data)
            rows.append(row)
            if progress is not None:
                progress.update(1)
        out[codec.name] = {"rows": rows, "seconds": time.perf_counter() - started}
    return out


def average_curves(per_image: dict, codecs: list[peers.Codec]) -> dict:
    """Per codec: qualities and the per-image averages at each (bpp, psnr,
    ms_ssim, ms_ssim_db of the averaged MS-SSIM), plus the share of scale-2 files."""
    curves = {}
    for codec in codecs:
        tables = [img[codec.name]["rows"] for img in per_image.values()]
        c = {"role": codec.role, "note": codec.note, "qualities": list(codec.qualities)}
        for key in ("bpp", "psnr", "ms_ssim"):
            c[key] = [float(np.mean([t[i][key] for t in tables])) for i in range(len(codec.qualities))]
        c["ms_ssim_db"] = [msssim_db(v) for v in c["ms_ssim"]]
        if "scale" in tables[0][0]:
            c["scale2_share"] = [float(np.mean([t[i]["scale"] == 2 for t in tables]))
                                 for i in range(len(codec.qualities))]
        c["seconds"] = float(sum(img[codec.name]["seconds"] for img in per_image.values()))
        curves[codec.name] = c
    return curves


def compare_to_anchor(curves: dict, anchor: str = peers.ANCHOR) -> dict:
    """Per codec: BD-rate (%) over PSNR and over MS-SSIM dB against the anchor
    (None where the curves do not overlap), and how the PSNR ranges overlap."""
    a = curves[anchor]
    lo_a, hi_a = min(a["psnr"]), max(a["psnr"])
    summary = {}
    for name, c in curves.items():
        lo, hi = min(c["psnr"]), max(c["psnr"])
        bd_p = bd_rate(a["bpp"], a["psnr"], c["bpp"], c["psnr"])
        bd_m = bd_rate(a["bpp"], a["ms_ssim_db"], c["bpp"], c["ms_ssim_db"])
        overlap = max(0.0, min(hi, hi_a) - max(lo, lo_a))
        summary[name] = {
            "bd_rate_psnr": None if math.isnan(bd_p) else bd_p,
            "bd_rate_ms_ssim": None if math.isnan(bd_m) else bd_m,
            "spans_anchor_psnr": bool(lo <= lo_a + 1e-9 and hi >= hi_a - 1e-9),
            "psnr_range": [lo, hi],
            "overlap_psnr": [max(lo, lo_a), min(hi, hi_a)] if overlap > 0 else None,
            "overlap_share": overlap / (hi_a - lo_a) if hi_a > lo_a else None,
        }
    return summary


def ladder_check(curves: dict, name: str = "jpegplus", anchor: str = peers.ANCHOR) -> list[dict]:
    """At qualities both curves hold: jpegplus bytes relative to the anchor's
    and its PSNR gain in dB (the calibration promise: ≤ 1 and ≥ 0 on average)."""
    a, c = curves[anchor], curves.get(name)
    if c is None:
        return []
    rows = []
    for q in sorted(set(a["qualities"]) & set(c["qualities"])):
        i, j = a["qualities"].index(q), c["qualities"].index(q)
        rows.append({"quality": q, "bytes_ratio": c["bpp"][j] / a["bpp"][i],
                     "psnr_gain_db": c["psnr"][j] - a["psnr"][i]})
    return rows


def ms_per_megapixel(fn, rgb: np.ndarray, repeat: int) -> float:
    """Best of `repeat` wall-clock runs of fn(), in milliseconds per megapixel of rgb."""
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000 / (rgb.shape[0] * rgb.shape[1] / 1e6)


def measure_speed(paths: list[Path], quality: int = SPEED_QUALITIES[0], progress=None) -> dict:
    """Median over images of encode and decode ms per megapixel at `quality`:
    jpegplus (closed-loop scale choice included, default bundle) and Pillow default."""
    import jpegplus

    def pillow_load(data):
        with Image.open(io.BytesIO(data)) as im:
            im.load()

    first = load_rgb(paths[0])
    jpegplus.decode(jpegplus.encode(first, quality))  # warm-up: weights, torch kernels
    times = {k: [] for k in ("jpegplus_encode", "jpegplus_decode", "pillow_encode", "pillow_decode")}
    for path in paths:
        rgb = load_rgb(path)
        data = jpegplus.encode(rgb, quality)
        times["jpegplus_encode"].append(ms_per_megapixel(lambda: jpegplus.encode(rgb, quality), rgb, 1))
        times["jpegplus_decode"].append(ms_per_megapixel(lambda: jpegplus.decode(data), rgb, 1))
        plain = peers.pillow_encode(rgb, quality)
        times["pillow_encode"].append(ms_per_megapixel(lambda: peers.pillow_encode(rgb, quality), rgb, 5))
        times["pillow_decode"].append(ms_per_megapixel(lambda: pillow_load(plain), rgb, 5))
        if progress is not None:
            progress.update(1)
    return {"quality": quality, "images": len(paths),
            **{f"{k}_ms_per_mp": statistics.median(v) for k, v in times.items()}}


# ---------------------------------------------------------------- reporting

def environment(manifest, argv: list[str]) -> dict:
    import PIL
    import torch
    from PIL import features

    import jpegplus

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "machine": f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} logical CPUs",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "jpegplus": jpegplus.__version__,
        "model_id": manifest.model_id,
        "command": shlex.join(["jpegplus", "bench", *argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def quality_list(qualities) -> str:
    """q10, 20 … 90 style for an evenly spaced ladder, else every value."""
    q = list(qualities)
    steps = {b - a for a, b in zip(q, q[1:])}
    if len(q) > 3 and len(steps) == 1:
        return f"q{q[0]}, {q[1]} … {q[-1]}"
    return "q" + ", ".join(map(str, q))


def fmt_pct(v) -> str:
    return "n/a" if v is None else f"{v:+.1f} %"


def markdown(results: dict) -> tuple[str, str]:
    """(summary tables for stdout, the whole results.md)."""
    env, summary, curves = results["environment"], results["summary"], results["curves"]
    lines = [
        f"{results['images']} images from `{results['folder']}`; model {env['model_id']}. "
        f"BD-rate against {peers.ANCHOR} at {quality_list(curves[peers.ANCHOR]['qualities'])} "
        "(pchip of log-rate over the overlapping range); "
        "rate = bits per original pixel of the whole file; each curve averages the per-image values "
        "at each quality.",
        "",
        "| codec | BD-rate PSNR-RGB | BD-rate MS-SSIM | spans anchor PSNR range | PSNR range (dB) | bpp range |",
        "|---|---:|---:|---|---|---|",
    ]
    for name, s in summary.items():
        c = curves[name]
        spans = "yes" if s["spans_anchor_psnr"] else (
            "no" if s["overlap_psnr"] is None else f"no (overlap {s['overlap_psnr'][0]:.1f}–{s['overlap_psnr'][1]:.1f})")
        label = f"**{name}**" if c["role"] in ("anchor", "jpegplus") else name
        lines.append(f"| {label} | {fmt_pct(s['bd_rate_psnr'])} | {fmt_pct(s['bd_rate_ms_ssim'])} | {spans} | "
                     f"{s['psnr_range'][0]:.1f}–{s['psnr_range'][1]:.1f} | {min(c['bpp']):.3f}–{max(c['bpp']):.3f} |")
    speeds = results.get("speed") or []
    if speeds:
        lines += [
            "",
            f"Speed, median over {speeds[0]['images']} images, {env['torch_threads']} torch threads "
            f"({env['machine']}):",
            "",
            "| codec | quality | encode ms/MP | decode ms/MP |",
            "|---|---:|---:|---:|",
        ]
        for sp in speeds:
            lines += [
                f"| jpegplus (closed-loop scale choice) | {sp['quality']} | {sp['jpegplus_encode_ms_per_mp']:.0f} | "
                f"{sp['jpegplus_decode_ms_per_mp']:.0f} |",
                f"| Pillow default | {sp['quality']} | {sp['pillow_encode_ms_per_mp']:.1f} | "
                f"{sp['pillow_decode_ms_per_mp']:.1f} |",
            ]
    if results["notes"]:
        lines += [""] + [f"- {n}" for n in results["notes"]]
    table = "\n".join(lines)

    doc = [f"# jpegplus benchmark: {Path(results['folder']).name}", "", table, ""]
    if results["ladder_check"]:
        doc += ["## Quality ladder: jpegplus against Pillow at the same quality", "",
                "| quality | bytes ratio | PSNR gain (dB) |", "|---:|---:|---:|"]
        doc += [f"| {r['quality']} | {r['bytes_ratio']:.3f} | {r['psnr_gain_db']:+.2f} |" for r in results["ladder_check"]]
        doc.append("")
    doc += ["## Rate–distortion points (averages over images)", "",
            "| codec | quality | bpp | PSNR (dB) | MS-SSIM | MS-SSIM (dB) | scale-2 share |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for name, c in curves.items():
        for i, q in enumerate(c["qualities"]):
            share = f"{c['scale2_share'][i]:.2f}" if "scale2_share" in c else ""
            doc.append(f"| {name} | {q} | {c['bpp'][i]:.4f} | {c['psnr'][i]:.2f} | {c['ms_ssim'][i]:.4f} | "
                       f"{c['ms_ssim_db'][i]:.2f} | {share} |")
    doc += ["", "## Codecs", ""] + [f"- {name}: {c['note']}" for name, c in curves.items()]
    doc += ["", f"Command: `{env['command']}`; {env['date']}; torch {env['torch']}, Pillow {env['pillow']} "
            f"(libjpeg-turbo {env['libjpeg_turbo']}), python {env['python']}.", ""]
    return table, "\n".join(doc)


# ---------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(prog="jpegplus bench", description=__doc__.split("\n")[0])
    p.add_argument("folder", type=Path, help="folder of images (PNG, JPEG, …)")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="output folder (default ./bench-out)")
    p.add_argument("--qualities", type=int, nargs="+", default=list(DEFAULT_QUALITIES),
                   help="jpegplus qualities 1..100 (default %(default)s)")
    p.add_argument("--anchor-qualities", type=int, nargs="+", default=list(peers.ANCHOR_QUALITIES),
                   help="qualities of Pillow and the other peers (default %(default)s, the headline's; "
                        "fewer only for quick runs)")
    p.add_argument("--limit", type=int, default=None, help="use at most N images (sorted by name)")
    p.add_argument("--recursive", action="store_true", help="look for images in subfolders too")
    p.add_argument("--no-ablations", action="store_true", help="skip the ablation curves")
    p.add_argument("--no-speed", action="store_true", help="skip the speed measurement")
    p.add_argument("--ablation-weights", type=Path, default=None,
                   help=f"pre/post pair trained without the FakeCodec (default: weights/{NOFAKE_FOLDER})")
    args = p.parse_args(argv)
    bad = [q for q in args.qualities + args.anchor_qualities if not 1 <= q <= 100]
    if bad:
        p.error(f"qualities must be 1..100, got {bad}")
    if len(set(args.anchor_qualities)) < 2:
        p.error("the anchor needs at least 2 qualities for a BD-rate")
    args.qualities = sorted(set(args.qualities))
    args.anchor_qualities = sorted(set(args.anchor_qualities))
    return args


def json_safe(obj):
    """Replace NaN/inf floats by None so results.json is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def main(argv=None) -> int:
    from tqdm import tqdm

    problem = missing_extra()
    if problem is not None:
        print(f"jpegplus {problem}", file=sys.stderr)
        return 2
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if not args.folder.is_dir():
        print(f"jpegplus bench: {args.folder} is not a folder", file=sys.stderr)
        return 2
    paths = find_images(args.folder, args.recursive, args.limit)
    if not paths:
        print(f"jpegplus bench: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {args.folder}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    codecs, notes, manifest = build_codecs(args.qualities, not args.no_ablations, args.ablation_weights,
                                           args.anchor_qualities)
    per_image = {}
    with tqdm(total=len(paths) * sum(len(c.qualities) for c in codecs), desc="rate–distortion",
              unit="file", file=sys.stderr, mininterval=1.0) as bar:
        for path in paths:
            bar.set_postfix_str(path.name)
            per_image[str(path.relative_to(args.folder))] = measure_image(load_rgb(path), codecs, bar)
    curves = average_curves(per_image, codecs)
    speed = None
    if not args.no_speed:
        with tqdm(total=len(paths) * len(SPEED_QUALITIES), desc="speed", unit="image", file=sys.stderr,
                  mininterval=1.0) as bar:
            speed = [measure_speed(paths, q, progress=bar) for q in SPEED_QUALITIES]
    results = {
        "folder": str(args.folder),
        "images": len(paths),
        "image_names": list(per_image),
        "environment": environment(manifest, argv),
        "anchor": peers.ANCHOR,
        "metric_notes": "bpp = file bytes·8 / original pixels; PSNR over RGB, peak 255, capped at "
                        f"{PSNR_CAP:g} dB; MS-SSIM over RGB (pytorch-msssim definition); curves average the "
                        "per-image values at each quality; ms_ssim_db = -10·log10(1 - averaged MS-SSIM).",
        "notes": notes,
        "summary": compare_to_anchor(curves),
        "curves": curves,
        "ladder_check": ladder_check(curves),
        "speed": speed,
        "per_image": per_image,
    }
    results["seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(json_safe(results), indent=1))
    table, doc = markdown(results)
    (args.out / "results.md").write_text(doc)
    from .plots import rd_plot

    rd_plot(curves, peers.ANCHOR, args.out / "rd.png",
            title=f"{args.folder.name}: {len(paths)} images, model {manifest.model_id}")
    print(table)
    print(f"\nWrote {args.out / 'results.json'}, results.md and rd.png in {results['seconds']:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
