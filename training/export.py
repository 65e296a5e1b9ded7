"""Export trained networks to weights/: safetensors files named by their sha256,
and manifest.json with configs, hashes, the table family and the quality ladder.

    python -m training.export --prepost runs/prepost_ft.pt --fakecodec runs/fakecodec.pt --ladder runs/ladder.json
Without --prepost it writes identity networks (a bootstrap for development).
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from jpegplus.bundle import save_net
from jpegplus.models import build
from training.common import CHROMA_WEIGHT, FLATNESS, REQUANT, load_checkpoint, restore_net


def identity_ladder() -> dict:
    return {"q1": list(range(1, 101)), "q2": [0] * 100, "lambda": [0.0] * 100}


def restore(path: str, key: str):
    ckpt = load_checkpoint(path)
    if ckpt is None:
        raise SystemExit(f"no checkpoint at {path}")
    return restore_net(ckpt["models"][key]), ckpt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--prepost", help="checkpoint holding 'pre' and 'post'")
    ap.add_argument("--fakecodec", help="checkpoint holding 'fakecodec'")
    ap.add_argument("--ladder", help="JSON from training.calibrate")
    ap.add_argument("--out", default="weights")
    args = ap.parse_args(argv)
    out = Path(args.out)
    for old in out.glob("*.safetensors"):
        old.unlink()
    models, info = {}, {}
    if args.prepost:
        pre, ck = restore(args.prepost, "pre")
        post, _ = restore(args.prepost, "post")
        info["prepost"] = {"step": ck["step"], "config": ck["config"], **ck["extra"]}
    else:
        pre, post = build("PreNet", {}), build("PostNet", {})
    models["pre"] = save_net(pre, out, "pre")
    models["post"] = save_net(post, out, "post")
    if args.fakecodec:
        fc, ck = restore(args.fakecodec, "fakecodec")
        models["fakecodec"] = save_net(fc, out, "fakecodec")
        info["fakecodec"] = {"step": ck["step"], "config": ck["config"], **ck["extra"]}
    ladder = json.loads(Path(args.ladder).read_text()) if args.ladder else {
        "ladder": identity_ladder(), "tables": {"flatness": FLATNESS, "chroma_weight": CHROMA_WEIGHT, **REQUANT}}
    model_id = hashlib.sha256("".join(m["sha256"] for m in models.values()).encode()).hexdigest()[:8]
    manifest = {"format": 1, "model_id": model_id, "models": models, "tables": ladder["tables"],
                "ladder": ladder["ladder"], "training": info}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"exported model {model_id} to {out}: " + ", ".join(f"{k}={v['file']}" for k, v in models.items()))


if __name__ == "__main__":
    main()
