"""`jpegplus bench DIR`: rate–distortion and speed of jpegplus against Pillow's JPEG.

Rate is bits per original pixel of the whole file (len(bytes)·8 / (W·H)); PSNR
is over all RGB samples (uint8, peak 255); MS-SSIM is over RGB; SSIMULACRA2 is
the `ssimulacra2` package's definition (jpegplus.evaluation.metrics). A curve
holds, at each quality setting, the average over images of the per-image values
(MS-SSIM dB is taken of the averaged MS-SSIM). BD-rates are against Pillow's
default JPEG at quality 10…90, with pchip of log-rate over the overlapping range
(jpegplus.evaluation.metrics.bd_rate).

Every run also gives the yardstick: jpegplus with no networks (identity pre/post,
the same tables, requantisation, ladder and scale choice), whence the learned
share = BD(no networks) − BD(jpegplus); what a standard viewer shows of the
jpegplus files, and so PostNet's gain at each quality (with the ablations, on
Pillow's own files too); and the low-rate table (lowest rate, PSNR at 0.10,
0.15 and 0.25 bpp, BD-rate against area ½ + bicubic). Writes results.json, results.md
and rd.png to --out and prints the Markdown tables.
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
from .metrics import Ssimulacra2Reference, bd_rate, ms_ssim, msssim_db, psnr

# jpegplus qualities: its ladder is calibrated to at least Pillow's PSNR at equal
# quality, so reaching the anchor's q10 PSNR needs points below 10, and q95
# makes sure the top end goes past the anchor's q90.
# quality 1 gives the lowest rate jpegplus reaches (the low-rate table).
DEFAULT_QUALITIES = (1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}
PSNR_CAP = 100.0  # dB, for a lossless result, so averages stay finite
SPEED_QUALITIES = (75, 10)  # a typical quality, and a low one where the encoder also tries scale ½
NOFAKE_FOLDER = "ablation-nofake"
LOW_RATE_TARGETS = (0.10, 0.15, 0.25)  # bpp, the low-rate table's columns
LOW_RATE_REFERENCE = "area ½ + bicubic"
# The metrics of a curve: (key in rows and curves, the key BD-rates use, its label)
METRICS = (("psnr", "psnr", "PSNR-RGB"), ("ms_ssim", "ms_ssim_db", "MS-SSIM"),
           ("ssimulacra2", "ssimulacra2", "SSIMULACRA2"))
SSIMULACRA2_TOLERANCE = 0.05  # points: the bench's SSIMULACRA2 against the package's, on one decode per run


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
                 anchor_qualities=peers.ANCHOR_QUALITIES,
                 low_qualities=peers.LOW_QUALITIES) -> tuple[list[peers.Codec], list[str], dict]:
    """Codecs in evaluation order (a codec that reuses another's files comes
    after it), notes on what was skipped, and the default bundle's manifest
    (jpegplus.bundle.Manifest).
    `qualities` are jpegplus's (and its no-networks and standard-viewer rows');
    the anchor, the peers and PostNet-alone use `anchor_qualities`; the anchor
    and area ½ + bicubic are extended to `low_qualities` (those not among
    `anchor_qualities`) for the low-rate table only. The yardstick rows (no
    networks, standard viewer) are there with or without `ablations`."""
    from ..bundle import default_bundle, load_bundle, weights_dir
    from ..errors import WeightsError

    bundle = default_bundle()
    aq = tuple(anchor_qualities)
    low = tuple(q for q in sorted(set(low_qualities)) if q not in aq)
    anchor, area = peers.pillow_default(aq), peers.area_down(aq)
    codecs = [anchor, peers.pillow_optimize(aq)]
    notes = []
    jpegli = peers.jpegli(aq)
    if jpegli is None:
        notes.append("jpegli skipped: pyjpegli is not installed (pip install pyjpegli)")
    else:
        codecs.append(jpegli)
    codecs.append(area)
    if low:
        codecs += [peers.low_rate_extension(anchor, low), peers.low_rate_extension(area, low)]
    main, scale1 = peers.jpegplus_codecs(qualities, bundle)
    codecs += [main, peers.standard_viewer(qualities, main.name)]
    try:
        codecs.append(peers.no_networks(qualities, bundle))
    except peers.NotIdentityError as e:
        notes.append(f"{peers.NO_NETWORKS} skipped: {e}; the learned share cannot be measured")
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

def score_image(rgb: np.ndarray, rec: np.ndarray, ss2: Ssimulacra2Reference | None) -> dict:
    """{"psnr" (capped), "ms_ssim"} of decode `rec` against `rgb`, and "ssimulacra2" when `ss2` is given."""
    score = {"psnr": min(psnr(rgb, rec), PSNR_CAP), "ms_ssim": ms_ssim(rgb, rec)}
    if ss2 is not None:
        score["ssimulacra2"] = ss2.score(rec)
    return score


def measure_image(rgb: np.ndarray, codecs: list[peers.Codec], progress=None, ssimulacra2: bool = True) -> dict:
    """Per codec, per quality: {"bytes", "bpp", "psnr", "ms_ssim"} (and
    "ssimulacra2" when asked, "scale" for jpegplus files) of one uint8 RGB image (H, W, 3).

    A file shared by codecs (same encoder_id) is encoded once; identical bytes
    through the same decoder are decoded once; identical pixels (Pillow with and
    without optimize) are scored once.
    """
    h, w = rgb.shape[:2]
    files: dict = {}    # (encoder_id, quality) -> bytes
    decoded: dict = {}  # (decoder_id, file digest) -> pixel digest
    scores: dict = {}   # pixel digest -> score_image(...)
    ss2 = Ssimulacra2Reference(rgb) if ssimulacra2 else None
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
                    scores[decoded[dkey]] = score_image(rgb, rec, ss2)
            row = {"quality": q, "bytes": len(data), "bpp": len(data) * 8 / (w * h), **scores[decoded[dkey]]}
            if codec.jpegplus_files:
                row["scale"] = peers.file_scale(data)
            rows.append(row)
            if progress is not None:
                progress.update(1)
        out[codec.name] = {"rows": rows, "seconds": time.perf_counter() - started}
    return out


def average_curves(per_image: dict, codecs: list[peers.Codec]) -> dict:
    """Per codec: qualities and the per-image averages at each (bpp, psnr,
    ms_ssim, ms_ssim_db of the averaged MS-SSIM, ssimulacra2 when measured),
    plus the share of scale-2 files; an extension names the curve it extends."""
    curves = {}
    for codec in codecs:
        tables = [img[codec.name]["rows"] for img in per_image.values()]
        c = {"role": codec.role, "note": codec.note, "qualities": list(codec.qualities)}
        if codec.extends:
            c["extends"] = codec.extends
        for key in ("bpp", "psnr", "ms_ssim", "ssimulacra2"):
            if key in tables[0][0]:
                c[key] = [float(np.mean([t[i][key] for t in tables])) for i in range(len(codec.qualities))]
        c["ms_ssim_db"] = [msssim_db(v) for v in c["ms_ssim"]]
        if "scale" in tables[0][0]:
            c["scale2_share"] = [float(np.mean([t[i]["scale"] == 2 for t in tables]))
                                 for i in range(len(codec.qualities))]
        c["seconds"] = float(sum(img[codec.name]["seconds"] for img in per_image.values()))
        curves[codec.name] = c
    return curves


def bd_rates(ref: dict, c: dict) -> dict:
    """{"bd_rate_psnr", "bd_rate_ms_ssim"[, "bd_rate_ssimulacra2"]}: BD-rate (%) of
    curve `c` against curve `ref` over each metric both hold (None without overlap)."""
    out = {}
    for key, bd_key, _ in METRICS:
        if bd_key in ref and bd_key in c:
            v = bd_rate(ref["bpp"], ref[bd_key], c["bpp"], c[bd_key])
            out[f"bd_rate_{key}"] = None if math.isnan(v) else v
    return out


def compare_to_anchor(curves: dict, anchor: str = peers.ANCHOR) -> dict:
    """Per codec (extensions left out): BD-rate (%) over PSNR, MS-SSIM dB and
    SSIMULACRA2 (when measured) against the anchor (None where the curves do
    not overlap), and how the PSNR ranges overlap."""
    a = curves[anchor]
    lo_a, hi_a = min(a["psnr"]), max(a["psnr"])
    summary = {}
    for name, c in curves.items():
        if c.get("role") == "extension":
            continue
        lo, hi = min(c["psnr"]), max(c["psnr"])
        overlap = max(0.0, min(hi, hi_a) - max(lo, lo_a))
        summary[name] = {
            **bd_rates(a, c),
            "spans_anchor_psnr": bool(lo <= lo_a + 1e-9 and hi >= hi_a - 1e-9),
            "psnr_range": [lo, hi],
            "overlap_psnr": [max(lo, lo_a), min(hi, hi_a)] if overlap > 0 else None,
            "overlap_share": overlap / (hi_a - lo_a) if hi_a > lo_a else None,
        }
    return summary


def learned_share(summary: dict, main: str = "jpegplus", plain: str = peers.NO_NETWORKS) -> dict | None:
    """What the networks earn, in BD-rate points per metric: BD(no networks) −
    BD(jpegplus), both against the anchor (positive: the networks save bits).
    None when either row is missing; a metric is None where a BD-rate is."""
    if main not in summary or plain not in summary:
        return None
    share = {}
    for key, _, _ in METRICS:
        a, b = summary[plain].get(f"bd_rate_{key}"), summary[main].get(f"bd_rate_{key}")
        if f"bd_rate_{key}" in summary[main]:
            share[key] = None if a is None or b is None else a - b
    return share


# PostNet's gain: (codec decoded through PostNet, the same files decoded without it, what those files are)
POSTNET_PAIRS = (("jpegplus", peers.STANDARD_VIEWER, "jpegplus files"),
                 (peers.POSTNET_ALONE, peers.ANCHOR, "Pillow's files, enhance=True"))


def postnet_gain(curves: dict, pairs=POSTNET_PAIRS) -> list[dict]:
    """PostNet's gain in PSNR-RGB dB at each quality both curves of a pair hold:
    the same files decoded with and without it (the curves average per-image
    values, so this is the mean per-image gain). One row per pair whose curves
    were measured: {"files", "with", "without", "gain_db": {quality: dB}}."""
    rows = []
    for name, plain, files in pairs:
        c, p = curves.get(name), curves.get(plain)
        if c is None or p is None:
            continue
        gains = {q: c["psnr"][c["qualities"].index(q)] - p["psnr"][p["qualities"].index(q)]
                 for q in sorted(set(c["qualities"]) & set(p["qualities"]))}
        rows.append({"files": files, "with": name, "without": plain, "gain_db": gains})
    return rows


def joined_curve(curves: dict, name: str) -> dict:
    """Curve `name` with the points of every extension of it, sorted by rate
    (one point per quality): {"qualities", "bpp", "psnr", "ms_ssim_db"[, "ssimulacra2"]}."""
    parts = [curves[name]] + [c for c in curves.values() if c.get("extends") == name]
    keys = ["bpp"] + [bd for _, bd, _ in METRICS if bd in curves[name]]
    points = {}
    for c in parts:
        for i, q in enumerate(c["qualities"]):
            points.setdefault(q, {k: c[k][i] for k in keys})
    order = sorted(points, key=lambda q: (points[q]["bpp"], q))
    return {"qualities": order, **{k: [points[q][k] for q in order] for k in keys}}


def value_at_rate(bpp, values, target: float) -> float | None:
    """`values` at rate `target` (bpp): pchip over log-rate through the curve's
    points; None outside the rates the curve reaches. Points of equal rate
    (the same file at two qualities) count once."""
    from scipy.interpolate import PchipInterpolator

    r, v = np.log(np.asarray(bpp, float)), np.asarray(values, float)
    order = np.argsort(r, kind="stable")
    r, v = r[order], v[order]
    keep = np.concatenate([[True], np.diff(r) > 1e-12])
    r, v = r[keep], v[keep]
    t = math.log(target)
    if not r[0] - 1e-12 <= t <= r[-1] + 1e-12:
        return None
    if len(r) == 1:
        return float(v[0])
    return float(PchipInterpolator(r, v)(np.clip(t, r[0], r[-1])))


def low_rate_table(curves: dict, targets=LOW_RATE_TARGETS, reference: str = LOW_RATE_REFERENCE,
                   names=("jpegplus", peers.NO_NETWORKS, peers.STANDARD_VIEWER, peers.ANCHOR,
                          LOW_RATE_REFERENCE)) -> dict | None:
    """The low-rate regime, per codec of `names` that ran, each joined with its
    low-quality extension: the lowest rate reached (bpp, and the PSNR there),
    PSNR at each target rate (value_at_rate; None outside the curve), and the
    BD-rate against `reference` (area ½ + bicubic) over their overlap."""
    if reference not in curves:
        return None
    ref = joined_curve(curves, reference)
    rows = {}
    for name in names:
        if name not in curves:
            continue
        c = joined_curve(curves, name)
        lowest = int(np.argmin(c["bpp"]))
        lo, hi = max(min(c["psnr"]), min(ref["psnr"])), min(max(c["psnr"]), max(ref["psnr"]))
        rows[name] = {
            "lowest_bpp": c["bpp"][lowest],
            "lowest_quality": c["qualities"][lowest],
            "psnr_at_lowest": c["psnr"][lowest],
            "psnr_at": {f"{t:.2f}": value_at_rate(c["bpp"], c["psnr"], t) for t in targets},
            "vs_reference": bd_rates(ref, c),
            "overlap_psnr": [lo, hi] if hi > lo else None,
        }
    return {"targets_bpp": list(targets), "reference": reference,
            "interpolation": "pchip of PSNR over log-rate through the averaged points; n/a outside a curve's rates",
            "codecs": rows}


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


def speed_bundles() -> dict:
    """{label: bundle} whose speed is measured: the default (ONNX Runtime), its
    float32 graphs where the default runs int8 ones (what CPUs without 8-bit multiply-adds run),
    the default with one PostNet view where it averages more (jpegplus.views;
    $JPEGPLUS_VIEWS=1), and the same weights through torch when torch is
    installed (the [torch] path)."""
    from ..bundle import default_bundle, load_bundle
    from ..runtime import installed

    bundles = {"jpegplus": default_bundle()}
    if bundles["jpegplus"].precision == "int8":
        bundles["jpegplus_float32"] = load_bundle(runtime="onnx", precision="float32")
    if bundles["jpegplus"].views > 1:
        bundles["jpegplus_1view"] = load_bundle(runtime=bundles["jpegplus"].runtime, views=1)
    if installed("torch") and bundles["jpegplus"].runtime != "torch":
        bundles["jpegplus_torch"] = load_bundle(runtime="torch")
    return bundles


def measure_speed(paths: list[Path], quality: int = SPEED_QUALITIES[0], progress=None) -> dict:
    """Median over images of encode and decode ms per megapixel at `quality`:
    jpegplus (closed-loop scale choice included; the bundles of speed_bundles:
    "jpegplus_…", "jpegplus_float32_…", "jpegplus_1view_…", "jpegplus_torch_…") and
    Pillow default. Each runtime's timings alternate image by image, so a change
    in the machine's load touches both alike."""
    import jpegplus

    def pillow_load(data):
        with Image.open(io.BytesIO(data)) as im:
            im.load()

    first = load_rgb(paths[0])
    bundles = speed_bundles()
    for bundle in bundles.values():
        jpegplus.decode(jpegplus.encode(first, quality, bundle=bundle), bundle=bundle)  # warm-up
    keys = [f"{label}_{step}" for label in bundles for step in ("encode", "decode")]
    times = {k: [] for k in (*keys, "pillow_encode", "pillow_decode")}
    for path in paths:
        rgb = load_rgb(path)
        for label, bundle in bundles.items():
            data = jpegplus.encode(rgb, quality, bundle=bundle)
            times[f"{label}_encode"].append(
                ms_per_megapixel(lambda: jpegplus.encode(rgb, quality, bundle=bundle), rgb, 1))
            times[f"{label}_decode"].append(ms_per_megapixel(lambda: jpegplus.decode(data, bundle=bundle), rgb, 1))
        plain = peers.pillow_encode(rgb, quality)
        times["pillow_encode"].append(ms_per_megapixel(lambda: peers.pillow_encode(rgb, quality), rgb, 5))
        times["pillow_decode"].append(ms_per_megapixel(lambda: pillow_load(plain), rgb, 5))
        if progress is not None:
            progress.update(1)
    return {"quality": quality, "images": len(paths),
            **{f"{k}_ms_per_mp": statistics.median(v) for k, v in times.items()}}


# ---------------------------------------------------------------- reporting

def environment(manifest, argv: list[str]) -> dict:
    import onnxruntime
    import PIL
    import torch
    from PIL import features

    from ..bundle import default_bundle
    from ..runtime import threads

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
        "runtime": default_bundle().runtime,
        "precision": default_bundle().precision,
        "onnxruntime": onnxruntime.__version__,
        "network_threads": threads() or "the runtime's default (physical cores)",
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


def fmt_points(v) -> str:
    return "n/a" if v is None else f"{v:+.1f}"


def fmt_db(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def measured_metrics(curves: dict) -> list[tuple[str, str, str]]:
    """The METRICS entries the anchor's curve holds (SSIMULACRA2 only when measured)."""
    return [m for m in METRICS if m[1] in curves[peers.ANCHOR]]


def yardstick_lines(results: dict) -> list[str]:
    """The learned share, PostNet's gain and the low-rate table, in Markdown."""
    curves, lines = results["curves"], []
    metrics = measured_metrics(curves)
    share = results.get("learned_share")
    if share is not None:
        parts = [f"{fmt_points(share.get(key))} points over {label}" for key, _, label in metrics]
        lines += ["", f"**Learned share** = BD-rate({peers.NO_NETWORKS}) − BD-rate(jpegplus): " + ", ".join(parts)
                  + f". ({peers.NO_NETWORKS}: identity pre/post, the same tables, requantisation, ladder and "
                  f"closed-loop scale choice. {peers.STANDARD_VIEWER}: the jpegplus files decoded by plain Pillow, "
                  "files stored at scale 2 resized ×2 with Pillow BICUBIC.)"]
    gains = results.get("postnet_gain")
    if gains:
        qualities = sorted({q for r in gains for q in r["gain_db"]})
        lines += ["", "PostNet's gain in PSNR-RGB (dB): the same files decoded with and without it.", "",
                  "| files | " + " | ".join(f"q{q}" for q in qualities) + " |",
                  "|---|" + "---:|" * len(qualities)]
        for r in gains:
            lines.append(f"| {r['files']} ({r['with']} against {r['without']}) | "
                         + " | ".join(f"{r['gain_db'][q]:+.2f}" if q in r["gain_db"] else "" for q in qualities)
                         + " |")
    low = results.get("low_rate")
    if low and low["codecs"]:
        ref = low["reference"]
        heads = " | ".join(f"PSNR at {t:.2f} bpp" for t in low["targets_bpp"])
        bd_heads = " | ".join(f"BD-rate {label} vs {ref}" for _, _, label in metrics)
        extra = low_qualities(curves)
        lines += ["", f"Low rates: the lowest rate each reaches (its lowest quality), PSNR-RGB (dB) at fixed rates "
                      f"({low['interpolation']}), and BD-rate against {ref} over the PSNR range both reach."
                      + (f" {peers.ANCHOR} and {ref} include their low qualities ({quality_list(extra)}) here only."
                         if extra else ""),
                  "", f"| codec | lowest bpp (quality, PSNR) | {heads} | {bd_heads} | overlap (dB) |",
                  "|---|---|" + "---:|" * (len(low["targets_bpp"]) + len(metrics)) + "---|"]
        for name, r in low["codecs"].items():
            at = " | ".join(fmt_db(v) for v in r["psnr_at"].values())
            bds = " | ".join(fmt_pct(r["vs_reference"].get(f"bd_rate_{key}")) for key, _, _ in metrics)
            ov = "none" if r["overlap_psnr"] is None else f"{r['overlap_psnr'][0]:.1f}–{r['overlap_psnr'][1]:.1f}"
            if name == ref:
                bds = " | ".join("(reference)" for _ in metrics)
                ov = ""
            lines.append(f"| {name} | {r['lowest_bpp']:.3f} (q{r['lowest_quality']}, {r['psnr_at_lowest']:.1f} dB) | "
                         f"{at} | {bds} | {ov} |")
    return lines


def low_qualities(curves: dict) -> list[int]:
    return sorted({q for c in curves.values() if c.get("role") == "extension" for q in c["qualities"]})


def markdown(results: dict) -> tuple[str, str]:
    """(summary tables for stdout, the whole results.md)."""
    env, summary, curves = results["environment"], results["summary"], results["curves"]
    metrics = measured_metrics(curves)
    lines = [
        f"{results['images']} images from `{results['folder']}`; model {env['model_id']}. "
        f"BD-rate against {peers.ANCHOR} at {quality_list(curves[peers.ANCHOR]['qualities'])} "
        "(pchip of log-rate over the overlapping range); "
        "rate = bits per original pixel of the whole file; each curve averages the per-image values "
        "at each quality.",
        "",
        "| codec | " + " | ".join(f"BD-rate {label}" for _, _, label in metrics)
        + " | spans anchor PSNR range | PSNR range (dB) | bpp range |",
        "|---|" + "---:|" * len(metrics) + "---|---|---|",
    ]
    for name, s in summary.items():
        c = curves[name]
        spans = "yes" if s["spans_anchor_psnr"] else (
            "no" if s["overlap_psnr"] is None else f"no (overlap {s['overlap_psnr'][0]:.1f}–{s['overlap_psnr'][1]:.1f})")
        label = f"**{name}**" if c["role"] in ("anchor", "jpegplus") else name
        bds = " | ".join(fmt_pct(s.get(f"bd_rate_{key}")) for key, _, _ in metrics)
        lines.append(f"| {label} | {bds} | {spans} | "
                     f"{s['psnr_range'][0]:.1f}–{s['psnr_range'][1]:.1f} | {min(c['bpp']):.3f}–{max(c['bpp']):.3f} |")
    lines += yardstick_lines(results)
    speeds = results.get("speed") or []
    if speeds:
        lines += [
            "",
            f"Speed, median over {speeds[0]['images']} images ({env['machine']}; networks: "
            f"{env.get('network_threads', env['torch_threads'])} threads in ONNX Runtime, {env['torch_threads']} "
            f"in torch):",
            "",
            "| codec | quality | encode ms/MP | decode ms/MP |",
            "|---|---:|---:|---:|",
        ]
        labels = {"jpegplus": f"jpegplus, ONNX Runtime, {env.get('precision', 'float32')} graphs (the default)",
                  "jpegplus_float32": "jpegplus, ONNX Runtime, float32 graphs",
                  "jpegplus_1view": "jpegplus, one PostNet view (JPEGPLUS_VIEWS=1)", "jpegplus_torch": "jpegplus, torch"}
        for sp in speeds:
            lines += [f"| {name} | {sp['quality']} | {sp[f'{label}_encode_ms_per_mp']:.0f} | "
                      f"{sp[f'{label}_decode_ms_per_mp']:.0f} |"
                      for label, name in labels.items() if f"{label}_encode_ms_per_mp" in sp]
            lines.append(f"| Pillow default | {sp['quality']} | {sp['pillow_encode_ms_per_mp']:.1f} | "
                         f"{sp['pillow_decode_ms_per_mp']:.1f} |")
    if results["notes"]:
        lines += [""] + [f"- {n}" for n in results["notes"]]
    table = "\n".join(lines)

    doc = [f"# jpegplus benchmark: {Path(results['folder']).name}", "", table, ""]
    if results["ladder_check"]:
        doc += ["## Quality ladder: jpegplus against Pillow at the same quality", "",
                "| quality | bytes ratio | PSNR gain (dB) |", "|---:|---:|---:|"]
        doc += [f"| {r['quality']} | {r['bytes_ratio']:.3f} | {r['psnr_gain_db']:+.2f} |" for r in results["ladder_check"]]
        doc.append("")
    ss2 = any(key == "ssimulacra2" for key, _, _ in metrics)
    doc += ["## Rate–distortion points (averages over images)", "",
            "| codec | quality | bpp | PSNR (dB) | MS-SSIM | MS-SSIM (dB) |" + (" SSIMULACRA2 |" if ss2 else "")
            + " scale-2 share |",
            "|---|---:|---:|---:|---:|---:|" + ("---:|" if ss2 else "") + "---:|"]
    for name, c in curves.items():
        for i, q in enumerate(c["qualities"]):
            share = f"{c['scale2_share'][i]:.2f}" if "scale2_share" in c else ""
            s2 = f" {c['ssimulacra2'][i]:.2f} |" if ss2 else ""
            doc.append(f"| {name} | {q} | {c['bpp'][i]:.4f} | {c['psnr'][i]:.2f} | {c['ms_ssim'][i]:.4f} | "
                       f"{c['ms_ssim_db'][i]:.2f} |{s2} {share} |")
    doc += ["", "## Codecs", ""] + [f"- {name}: {c['note']}" for name, c in curves.items()]
    check = results.get("ssimulacra2_check")
    if check:
        doc += ["", f"SSIMULACRA2: {check['note']}"]
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
    p.add_argument("--low-qualities", type=int, nargs="*", default=list(peers.LOW_QUALITIES),
                   help=f"extra qualities of {peers.ANCHOR} and {LOW_RATE_REFERENCE} for the low-rate table only "
                        "(default %(default)s; none: --low-qualities with no value)")
    p.add_argument("--ssimulacra2", action=argparse.BooleanOptionalAction, default=True,
                   help="score every decode with SSIMULACRA2 too (default on; about a fifth more time)")
    p.add_argument("--limit", type=int, default=None, help="use at most N images (sorted by name)")
    p.add_argument("--recursive", action="store_true", help="look for images in subfolders too")
    p.add_argument("--no-ablations", action="store_true", help="skip the ablation curves (no networks and the standard viewer stay)")
    p.add_argument("--no-speed", action="store_true", help="skip the speed measurement")
    p.add_argument("--ablation-weights", type=Path, default=None,
                   help=f"pre/post pair trained without the FakeCodec (default: weights/{NOFAKE_FOLDER})")
    args = p.parse_args(argv)
    bad = [q for q in args.qualities + args.anchor_qualities + args.low_qualities if not 1 <= q <= 100]
    if bad:
        p.error(f"qualities must be 1..100, got {bad}")
    if len(set(args.anchor_qualities)) < 2:
        p.error("the anchor needs at least 2 qualities for a BD-rate")
    args.qualities = sorted(set(args.qualities))
    args.anchor_qualities = sorted(set(args.anchor_qualities))
    args.low_qualities = sorted(set(args.low_qualities))
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


def check_ssimulacra2(rgb: np.ndarray, rec: np.ndarray, ours: float, what: str) -> dict:
    """The bench's SSIMULACRA2 of one decode against the `ssimulacra2` package's
    own (through PNG files in memory), so every run states how far they agree."""
    try:
        import ssimulacra2 as package
    except ImportError:
        return {"note": "the ssimulacra2 package is not installed, so this run's scores were not cross-checked "
                        "against it (pip install 'jpegplus[bench]')"}

    def png(a):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, "PNG", compress_level=0)
        buf.seek(0)
        return buf

    theirs = float(package.compute_ssimulacra2(png(rgb), png(rec)))
    diff = ours - theirs
    version = getattr(package, "__version__", "?")
    return {"package_version": version, "decode": what, "ours": ours, "package": theirs, "difference": diff,
            "within_tolerance": abs(diff) <= SSIMULACRA2_TOLERANCE,
            "note": f"the definition of the ssimulacra2 package {version}, computed in float32 with OpenCV "
                    f"(metrics.Ssimulacra2Reference); on {what} it gives {ours:.3f} against the package's "
                    f"{theirs:.3f} ({diff:+.4f})."}


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
                                           args.anchor_qualities, args.low_qualities)
    per_image = {}
    with tqdm(total=len(paths) * sum(len(c.qualities) for c in codecs), desc="rate–distortion",
              unit="file", file=sys.stderr, mininterval=1.0) as bar:
        for path in paths:
            bar.set_postfix_str(path.name)
            per_image[str(path.relative_to(args.folder))] = measure_image(load_rgb(path), codecs, bar,
                                                                          ssimulacra2=args.ssimulacra2)
    curves = average_curves(per_image, codecs)
    ss2_check = None
    if args.ssimulacra2:
        first, anchor = next(iter(per_image)), codecs[0]
        q = anchor.qualities[len(anchor.qualities) // 2]
        rgb = load_rgb(args.folder / first)
        rec = anchor.decode(anchor.encode(rgb, q), rgb.shape[1::-1])
        ours = next(r["ssimulacra2"] for r in per_image[first][anchor.name]["rows"] if r["quality"] == q)
        ss2_check = check_ssimulacra2(rgb, rec, ours, f"{first}, {anchor.name} q{q}")
        if not ss2_check.get("within_tolerance", True):
            notes.append(f"SSIMULACRA2 differs from the ssimulacra2 package by {ss2_check['difference']:+.3f} "
                         f"points on {ss2_check['decode']} (tolerance {SSIMULACRA2_TOLERANCE})")
    speed = None
    if not args.no_speed:
        with tqdm(total=len(paths) * len(SPEED_QUALITIES), desc="speed", unit="image", file=sys.stderr,
                  mininterval=1.0) as bar:
            speed = [measure_speed(paths, q, progress=bar) for q in SPEED_QUALITIES]
    summary = compare_to_anchor(curves)
    results = {
        "folder": str(args.folder),
        "images": len(paths),
        "image_names": list(per_image),
        "environment": environment(manifest, argv),
        "anchor": peers.ANCHOR,
        "metric_notes": "bpp = file bytes·8 / original pixels; PSNR over RGB, peak 255, capped at "
                        f"{PSNR_CAP:g} dB; MS-SSIM over RGB (pytorch-msssim definition); curves average the "
                        "per-image values at each quality; ms_ssim_db = -10·log10(1 - averaged MS-SSIM); "
                        "ssimulacra2 (0..100, higher is better) as the ssimulacra2 package defines it. Curves of "
                        "role 'extension' continue another curve to low qualities for the low-rate table only.",
        "notes": notes,
        "summary": summary,
        "learned_share": learned_share(summary),
        "low_rate": low_rate_table(curves),
        "postnet_gain": postnet_gain(curves),
        "ssimulacra2_check": ss2_check,
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
