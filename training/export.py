"""Export trained networks to weights/: safetensors files named by their sha256,
and manifest.json with configs, hashes, the table family and the quality ladder.

    python -m training.export --prepost runs/prepost_ft.pt --fakecodec runs/fakecodec.pt --ladder runs/ladder.json
    python -m training.export --post runs/post_v2.pt --base weights --ladder runs/ladder.json --out runs/export
With --post (a training.train_post checkpoint) PostNet is that network and the
others (PreNet, FakeCodec) are copied from --base with their training record.
Without --prepost or --post it writes identity networks (a bootstrap for development).
Without --ladder it writes the table family of the manifest already in
--tables-from (default: --base, else the packaged weights) and an identity
ladder (with --post: that manifest's ladder).
The manifest is checked by jpegplus.bundle.Manifest before it is written.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from jpegplus.bundle import Ladder, Manifest, TableFamily, load_bundle, read_manifest, save_net
from jpegplus.models import build
from training.common import load_checkpoint, restore_net


def identity_ladder() -> Ladder:
    return Ladder(tuple(range(1, 101)), (0,) * 100, (0.0,) * 100)


def restore(path: str, key: str):
    ckpt = load_checkpoint(path)
    if ckpt is None:
        raise SystemExit(f"no checkpoint at {path}")
    return restore_net(ckpt["models"][key]), ckpt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--prepost", help="checkpoint holding 'pre' and 'post'")
    ap.add_argument("--fakecodec", help="checkpoint holding 'fakecodec'")
    ap.add_argument("--post", help="checkpoint holding 'post' alone (training.train_post); the rest from --base")
    ap.add_argument("--base", help="weights folder the networks --post does not replace come from "
                                   "(default: the packaged weights)")
    ap.add_argument("--ladder", help="JSON from training.calibrate")
    ap.add_argument("--tables-from", help="weights folder whose table family is used without --ladder "
                                          "(default: the packaged weights)")
    ap.add_argument("--out", default="weights")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.ladder:
        calibrated = json.loads(Path(args.ladder).read_text())
        tables, ladder = TableFamily.from_json(calibrated["tables"]), Ladder.from_json(calibrated["ladder"])
    else:  # read before anything in --out is replaced; --post keeps the base's ladder too
        source = read_manifest(args.tables_from or args.base)
        tables, ladder = source.tables, source.ladder if args.post else identity_ladder()
    models, info = {}, {}
    if args.post:  # load the base networks before anything in --out is replaced
        base = read_manifest(args.base)
        kept = load_bundle(args.base, names=tuple(k for k in base.models if k != "post")).nets
        info = {k: v for k, v in base.training.items() if k != "post"}
    for old in out.glob("*.safetensors"):
        old.unlink()
    if args.post:
        post, ck = restore(args.post, "post")
        info["post"] = {"step": ck["step"], "config": ck["config"], **ck["extra"]}
        models = {k: save_net(net, out, k) for k, net in kept.items()}
        models["post"] = save_net(post, out, "post")
    elif args.prepost:
        pre, ck = restore(args.prepost, "pre")
        post, _ = restore(args.prepost, "post")
        info["prepost"] = {"step": ck["step"], "config": ck["config"], **ck["extra"]}
    else:
        pre, post = build("PreNet", {}), build("PostNet", {})
    if not args.post:
        models["pre"] = save_net(pre, out, "pre")
        models["post"] = save_net(post, out, "post")
    if args.fakecodec:
        fc, ck = restore(args.fakecodec, "fakecodec")
        models["fakecodec"] = save_net(fc, out, "fakecodec")
        info["fakecodec"] = {"step": ck["step"], "config": ck["config"], **ck["extra"]}
    model_id = hashlib.sha256("".join(m.sha256 for m in models.values()).encode()).hexdigest()[:8]
    manifest = Manifest(model_id, models, tables, ladder, info)
    Manifest.from_json(json.loads(json.dumps(manifest.to_json())), out / "manifest.json")  # what loaders will check
    (out / "manifest.json").write_text(json.dumps(manifest.to_json(), indent=1))
    print(f"exported model {model_id} to {out}: " + ", ".join(f"{k}={v.file}" for k, v in models.items()))


if __name__ == "__main__":
    main()
