"""Write weights/MODEL_CARD.md from what the runs recorded: the manifest, the
ladder check, the rebuild times and (optionally) the val/ benchmark.

    python -m training.model_card --val-bench bench-val/results.md
"""
from __future__ import annotations

import argparse
import json
import os
import platform

import torch

from jpegplus.bundle import read_manifest


def load(path):
    return json.load(open(path)) if path and os.path.exists(path) else None


def params(folder, entry) -> int:
    """Parameters in the safetensors file of a manifest entry (jpegplus.bundle.NetEntry)."""
    from safetensors import safe_open

    with safe_open(os.path.join(folder, entry.file), "pt") as f:
        return sum(f.get_tensor(k).numel() for k in f.keys())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", default="weights")
    ap.add_argument("--ladder", default="runs/ladder.json")
    ap.add_argument("--rebuild", default="runs/rebuild.json",
                    help="stage times of `training.rebuild` (default when missing: the manifest's training record "
                         "'rebuild', which exports carry from their --base)")
    ap.add_argument("--val-bench", default=None, help="results.md of `jpegplus bench` on val/")
    ap.add_argument("--int8-check", default=None, help="int8_check.json of training.int8_check")
    args = ap.parse_args(argv)
    man = read_manifest(args.weights)
    tr = man.training
    ladder, rebuild = load(args.ladder), load(args.rebuild) or tr.get("rebuild")
    bench = open(args.val_bench).read() if args.val_bench and os.path.exists(args.val_bench) else None
    L = [f"# jpegplus model card: `{man.model_id}`", ""]
    L += ["## Networks", "", "| name | class | config | parameters | file | sha256 |", "|---|---|---|---|---|---|"]
    for name, e in man.models.items():
        L.append(f"| {name} | {e.class_name} | `{json.dumps(e.config)}` | {params(args.weights, e):,} | "
                 f"{e.file} | `{e.sha256[:16]}…` |")
    graphs = [(name, g) for name, e in man.models.items() for g in e.graphs]
    if graphs:
        L += ["", "ONNX graphs (what ONNX Runtime runs; `training.export` writes them from the networks above):", "",
              "| network | scale[@level band] | float32 graph | reach (px) | int8 graph |", "|---|---|---|---|---|"]
        L += [f"| {name} | {g.key} | {g.file} | {g.reach} | {g.int8[0] if g.int8 else '—'} |" for name, g in graphs]
    for name, e in man.models.items():
        if e.config.get("identity_scales"):
            L += ["", f"{name} passes its input through unchanged at scale "
                      f"{', '.join(map(str, e.config['identity_scales']))} (config identity_scales): no graph there, "
                      "and the encoder skips it (jpegplus/models/nets.py, PreNet)."]
    what_views = {"post": ("restores", "decoded file", " $JPEGPLUS_VIEWS sets another count."),
                  "pre": ("downsamples", "image at scale ½", "")}
    for name, e in man.models.items():
        if e.views > 1 and name in what_views:
            verb, what, override = what_views[name]
            L += ["", f"{name} {verb} {e.views} views of each {what} and averages them (manifest \"views\"; "
                      f"jpegplus/views.py): one run per view, and the ladder was calibrated with them.{override}"]
    int8 = load(args.int8_check) if args.int8_check else None
    if int8:
        post_only = int8.get("bd_rate_postnet_only_pct")
        L += ["", f"int8 graphs against float32 on val/ ({int8['images']} images; `python -m training.int8_check`): "
              f"BD-rate over PSNR-RGB {int8['bd_rate_int8_vs_float32_pct']:+.2f} % for the whole system"
              + (f" (int8 PreNet and PostNet; PostNet alone on the same files {post_only:+.2f} %)"
                 if post_only is not None else "")
              + ", PSNR change per quality "
              + ", ".join(f"q{q} {v:+.3f} dB" for q, v in int8["psnr_change_db"].items()) + "."]
    L += ["", f"Quantisation-table family: flatness {man.tables.flatness}, chroma weight "
          f"{man.tables.chroma_weight} (jpegplus/tables.py); requantisation "
          f"{json.dumps(man.tables.requant)} (jpegplus/requant.py, training/requant_sweep.py); all chosen on val/.", ""]
    L += ["## Training data", "",
          "`../shared/data/train/`: CID22 training split (205 images, 512×512) and 26 CLIC 2025 validation images, "
          "both CC BY-SA 4.0 (Cloudinary Image Dataset '22; CLIC 2025). 6000 random 128×128 crops "
          "(training/make_pack.py, seed 0). Model selection, the quality ladder and the table family use "
          "`val/` (41 CID22 validation images) only; Kodak was never used for training or choosing.", ""]
    L += ["## Training", "", f"Card written on {platform.processor() or platform.machine()}, {os.cpu_count()} CPU "
          f"cores, torch {torch.__version__}. Stages a–c (preset: `python -m training.rebuild`) ran on two CPU cores; "
          "the hardware of stage d's runs, GPU rounds included, follows the table.", ""]
    L += ["| stage | steps | seed | batch × crop | wall time |", "|---|---|---|---|---|"]
    fc, pp = tr.get("fakecodec", {}), tr.get("prepost", {})
    if fc:
        c = fc["config"]
        L.append(f"| a. FakeCodec on real JPEG pairs | {fc['step']} | {c['seed']} | {c['batch']} × {c['crop']}² | "
                 f"{fc.get('wall_s', 0) / 60:.1f} min |")
    if pp:
        c = pp["config"]
        L.append(f"| b. PreNet + PostNet through FakeCodec | {c['steps']} | {c['seed']} | {c['batch']} × {c['crop']}² | "
                 f"{pp.get('wall_s', 0) / 60:.1f} min |")
        for i, ft in enumerate(c.get("earlier_finetunes", [])):
            L.append(f"| c{i + 1}. PostNet on real JPEG | {ft['steps']} | {ft['seed']} | {ft['batch']} × "
                     f"{ft['crop']}² | {ft['wall_s'] / 60:.1f} min |")
        ft = c.get("finetune", {})
        if ft:
            extra = f", {ft['standard_share']:.0%} of scale-1 samples with standard tables" if ft.get("standard_share") else ""
            L.append(f"| c. PostNet on real JPEG{extra} | {pp.get('finetune_steps')} | {ft['seed']} | {ft['batch']} × "
                     f"{ft['crop']}² | {pp.get('finetune_wall_s', 0) / 60:.1f} min |")
    post = tr.get("post", {})
    chain = []  # the PostNet's runs, oldest first: each continued run records the one it went on from
    while post:
        chain.insert(0, post)
        post = post.get("continued_from", {})
    hardware = []

    def trained(record: dict) -> dict:  # a run's train_post config (a banded record's: its first member's)
        return record["bands"][0]["config"] if "bands" in record else record["config"]

    for i, record in enumerate(chain):
        banded = record.get("bands")
        for b, post in enumerate(banded or [record]):
            c, label = post["config"], f"d{i + 1}" + (f".{b}" if banded else "")
            if post.get("kept"):  # a shipped member assembled as it was (training.bands FOLDER@B): no new run
                lo, hi = c["levels"]
                L.append(f"| {label}. member {b} of a BandedPostNet (files of quantisation level {lo:g}–{hi:g}): "
                         f"the member trained above, kept as it was ({post['kept']}) | 0 | | | 0 min |")
                continue
            for r in post.get("runs", []):
                budget = f", lr schedule over {r['minutes']:g} min of the chain's wall time" if r.get("minutes") else ""
                precision = ", bf16 autocast" if r.get("bf16") else ""
                settings = f" ({r['batch']} × {r['crop']}², each batch {r['reuse']}×, peak lr {r['lr']}{budget}{precision})" \
                    if "crop" in r else ""
                hardware.append(f"{label} on {r['hardware']} from its step {r['from_step']}{settings}")
            start = (f"continued from the run above (--init, peak lr {c['lr']})" if i else
                     f"continued from an earlier PostNet (--init {c['init']}, peak lr {c['lr']})") if c.get("init") \
                else "from scratch"
            extra = f", {c['share_444']:.0%} of the other scale-1 batches at 4:4:4" if c.get("share_444") else ""
            before = [trained(r) for r in chain[:i]]  # the runs it continued; the first that asked for a part added it
            if c.get("chroma_flag") and not any(r.get("chroma_flag") for r in before):
                extra += ", the 4:4:4 flag input added (zero-initialised: nets.with_chroma_flag)"
            if c.get("film") and not any(r.get("film") for r in before):
                extra += (f", conditioned scales and shifts of the context path added ({c['film']} level knots, "
                          "zero-initialised: nets.with_film)")
            if c.get("context_depth") and not any(r.get("context_depth") for r in before):
                extra += (f", its context path deepened to {c['context_depth']} convolutions (zero-initialised: "
                          "nets.with_deeper_context)")
            if banded:
                lo, hi = c["levels"]
                extra += f", files of quantisation level {lo:g}–{hi:g} only: member {b} of a BandedPostNet"
            L.append(f"| {label}. PostNet v2 {start} on real JPEG{extra} "
                     f"(training/train_post.py) | {post['step']} | {c['seed']} | {c['batch']} × {c['crop']}² | "
                     f"{post.get('wall_s', 0) / 60:.1f} min |")
    pre = tr.get("pre", {})
    if pre:
        c = pre["config"]
        L.append(f"| e. PreNet through the FakeCodec in front of the PostNet above, continued from stage b's "
                 f"(training/train_pre.py, peak lr {c['lr']}) | {pre['step']} | {c['seed']} | {c['batch']} × "
                 f"{c['crop']}² | {pre.get('wall_s', 0) / 60:.1f} min |")
    if chain:
        L += ["", "Stages b and c trained the first PreNet and PostNet; stage d replaced that PostNet"
              + (" and stage e retrained the PreNet" if pre else "") + f". Stage d's hardware: "
              + ("; ".join(hardware) or "not recorded") + "."]
    if rebuild:
        total = sum(v["wall_s"] for v in rebuild.values())
        L += ["", f"Whole rebuild (all stages incl. the ablation and calibration): {total / 60:.0f} min. Per stage: "
              + ", ".join(f"{k} {v['wall_s'] / 60:.1f} min" for k, v in rebuild.items()) + "."]
    if fc.get("fidelity_val"):
        L += ["", "## FakeCodec fidelity on val/", "",
              "PSNR between FakeCodec output and the real libjpeg-turbo output (and of the analytic core alone), "
              "and the error of its rate estimate against real file sizes, per quality band. The CNN correction "
              "learnt nothing measurable beyond the analytic core (equal to 0.01 dB): what remains is rounding noise "
              "of the integer IDCT and colour conversion.", "",
              "| band | PSNR fake vs real (dB) | core alone (dB) | rate mean abs error | rate bias |", "|---|---|---|---|---|"]
        for band, r in fc["fidelity_val"].items():
            L.append(f"| {band} | {r['psnr_fake_vs_real_db']} | {r['psnr_core_vs_real_db']} | "
                     f"{r['rate_mean_abs_err_pct']} % | {r['rate_bias_pct']:+} % |")
    if ladder:
        L += ["", "## Quality ladder check on val/", "",
              "Real closed-loop encoder against Pillow default at the same quality (mean over val/), measured "
              "when the ladder was calibrated (training/calibrate.py), with the PostNet of that time:", "",
              "| quality | mean bpp / Pillow's | PSNR gain (dB) | share at scale 2 | share at 4:4:4 |",
              "|---|---|---|---|---|"]
        for r in ladder["check_val"]:
            L.append(f"| {r['quality']} | {r['bytes_ratio']:.3f} | {r['psnr_gain_db']:+.2f} | {r['scale2_share']:.0%} "
                     f"| {r.get('share_444', 0):.0%} |")
    if bench:
        L += ["", "## Benchmark on val/ (`jpegplus bench ../shared/data/val/cid22`)", "", bench]
    path = os.path.join(args.weights, "MODEL_CARD.md")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
