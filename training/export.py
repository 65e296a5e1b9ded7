"""Export trained networks to weights/: safetensors files named by their sha256,
ONNX graphs of PreNet and PostNet (one per scale, what ONNX Runtime runs), and
manifest.json with configs, hashes, the table family and the quality ladder.

    python -m training.export --prepost runs/prepost_ft.pt --fakecodec runs/fakecodec.pt --ladder runs/ladder.json
    python -m training.export --post runs/post_v2.pt --base weights --ladder runs/ladder.json --out runs/export
    python -m training.export --pre runs/pre_v3.pt --post runs/post_v2c.pt --base weights --out runs/export
With --post (a training.train_post checkpoint) PostNet is that network, with
--pre (training.train_pre) PreNet, and the others are copied from --base with
their training record (and the networks' views, unless --views / --pre-views say otherwise).
Without --prepost or --post it writes identity networks (a bootstrap for development).
Without --ladder it writes the table family of the manifest already in
--tables-from (default: --base, else the packaged weights) and an identity
ladder (with --post or --pre: that manifest's ladder).
The manifest is checked by jpegplus.bundle.Manifest before it is written.
An --out ending in .tar writes the folder as one tar archive (named as the
archive, less .tar): one file for a GPU machine's $OUT, which brings back 8 at most.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import shutil
import tarfile
import tempfile
from pathlib import Path

from jpegplus.bundle import (INT8_FLOAT_CONVS, Ladder, Manifest, TableFamily, export_onnx, load_bundle, quantise_int8,
                             read_manifest, save_net)
from jpegplus import views
from jpegplus.models import build
from training.common import (load_checkpoint, postnet_calibration_feeds, prenet_calibration_feeds, reconfigured,
                             restore_net)


ONNX_NETS = ("pre", "post")


def int8_graph(folder: Path, graph, feeds, keep_float=()) -> tuple[str, str]:
    """(file, sha256) of the int8 version of `graph`, written beside it as <stem>-int8-<sha8>.onnx."""
    tmp = folder / (Path(graph.file).stem.rsplit("-", 1)[0] + "-int8.tmp")
    digest = quantise_int8(folder / graph.file, tmp, feeds, keep_float)
    final = tmp.with_name(f"{tmp.stem}-{digest[:8]}.onnx")
    tmp.replace(final)
    return final.name, digest


def with_int8(folder: Path, name: str, entry, train: str, encoder=None, count: int = 24, crop: int = 256,
              keep_float=None):
    """NetEntry `entry` of network `name` ("pre" or "post") with an int8 version of
    each of its ONNX graphs (in `folder`, beside them), calibrated on `count`
    crops of `train` images (training.common: PreNet on the images and the levels
    the encoder gives them, PostNet on the files `encoder` makes of them, each
    band's graph on its own band's files); the convolutions named in
    `keep_float` (None: INT8_FLOAT_CONVS[name]) stay float32."""
    keep_float = INT8_FLOAT_CONVS[name] if keep_float is None else keep_float
    bounds = entry.config.get("bounds", ())
    chroma = bool(entry.config.get("net", entry.config).get("chroma_flag"))

    def feeds(g):
        if name == "pre":
            return prenet_calibration_feeds(train, g.scale, count, crop, bundle=encoder)
        return postnet_calibration_feeds(train, g.scale, count, crop, chroma=chroma, band=g.band, bounds=bounds,
                                      bundle=encoder)

    return dataclasses.replace(entry, graphs=tuple(
        dataclasses.replace(g, int8=int8_graph(folder, g, feeds(g), keep_float)) for g in entry.graphs))


def resumed(prev: dict, record: dict) -> bool:
    """Whether training record `record` is the checkpoint of record `prev` resumed
    (a longer budget): its runs begin with all of prev's."""
    runs = prev.get("runs")
    return bool(runs) and record.get("runs", [])[:len(runs)] == runs


def same_run(prev: dict, record: dict) -> bool:
    """Whether training record `record` is the record `prev` itself: the same
    checkpoint exported again (its continued_from aside)."""
    return {k: v for k, v in prev.items() if k != "continued_from"} == json.loads(json.dumps(record))


def identity_ladder() -> Ladder:
    return Ladder(tuple(range(1, 101)), (0,) * 100, (0.0,) * 100)


def restore(path: str, key: str):
    """The network `key` of a training checkpoint, and the record of its run for the manifest."""
    ckpt = load_checkpoint(path)
    if ckpt is None:
        raise SystemExit(f"no checkpoint at {path}")
    return restore_net(ckpt["models"][key]), {"step": ckpt["step"], "config": ckpt["config"], **ckpt["extra"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--prepost", help="checkpoint holding 'pre' and 'post'")
    ap.add_argument("--fakecodec", help="checkpoint holding 'fakecodec'")
    ap.add_argument("--post", help="checkpoint holding 'post' alone (training.train_post); the rest from --base")
    ap.add_argument("--pre", help="checkpoint holding 'pre' alone (training.train_pre); the rest from --base")
    ap.add_argument("--base", help="weights folder the networks --post does not replace come from "
                                   "(default: the packaged weights)")
    ap.add_argument("--ladder", help="JSON from training.calibrate")
    ap.add_argument("--tables-from", help="weights folder whose table family is used without --ladder "
                                          "(default: the packaged weights)")
    ap.add_argument("--int8", metavar="TRAIN_DIR", help="also write int8 PreNet and PostNet graphs, calibrated on "
                                                        "images of this folder (train/; training.int8_check measures "
                                                        "them)")
    ap.add_argument("--pre-identity-scales", type=int, nargs="*", metavar="SCALE",
                    help="scales at which PreNet passes its input through (its learned head there kept, unused): "
                         "1, or none for learned at every scale (default: as the PreNet exported)")
    ap.add_argument("--views", type=int, choices=views.COUNTS,
                    help="views of each file PostNet averages at decode (jpegplus.views; calibrate the ladder with "
                         "them; default: as in --base, else 1)")
    ap.add_argument("--pre-views", type=int, choices=views.COUNTS,
                    help="views of each image PreNet averages at encode (default: as in --base, else 1)")
    ap.add_argument("--out", default="weights")
    args = ap.parse_args(argv)
    out = archive = Path(args.out)
    if archive.suffix == ".tar":
        out = Path(tempfile.mkdtemp()) / archive.stem
        out.mkdir()
    # the networks' views: as asked, else the base manifest's (--base, or the packaged one under --post / --pre)
    kept = read_manifest(args.base).models if args.base or args.post or args.pre else {}
    post_views = args.views or (kept["post"].views if kept else 1)
    pre_views = args.pre_views or (kept["pre"].views if kept else 1)
    if args.ladder:
        calibrated = json.loads(Path(args.ladder).read_text())
        tables, ladder = TableFamily.from_json(calibrated["tables"]), Ladder.from_json(calibrated["ladder"])
    else:  # read before anything in --out is replaced; --post and --pre keep the base's ladder too
        source = read_manifest(args.tables_from or args.base)
        tables, ladder = source.tables, source.ladder if args.post or args.pre else identity_ladder()
    nets, info = {}, {}
    replaced = {k: path for k, path in (("pre", args.pre), ("post", args.post)) if path}
    if replaced:  # the base networks are read before anything in --out is replaced
        base = read_manifest(args.base)
        kept = tuple(k for k in base.models if k not in replaced)
        nets = dict(load_bundle(args.base, names=kept, runtime="torch").nets)
        info = {k: v for k, v in base.training.items() if k not in replaced}
        for k, path in replaced.items():
            nets[k], info[k] = restore(path, k)
            prev = base.training.get(k)
            if prev and same_run(prev, info[k]):  # the base's own checkpoint again (a new ladder, views, graphs)
                info[k] = prev
            elif prev and resumed(prev, info[k]):  # the same checkpoint, trained further: it replaces that record
                info[k]["config"]["init"] = info[k]["config"].get("init") or prev["config"].get("init")
                if "continued_from" in prev:
                    info[k]["continued_from"] = prev["continued_from"]
            elif prev and (k == "pre" or info[k]["config"].get("init")):  # a continued run: keep
                info[k]["continued_from"] = prev                          # the record it went on from
    elif args.prepost:
        nets["pre"], info["prepost"] = restore(args.prepost, "pre")
        nets["post"], _ = restore(args.prepost, "post")
    else:
        nets = {"pre": build("PreNet", {}), "post": build("PostNet", {})}
    if args.pre_identity_scales is not None:
        nets["pre"] = reconfigured(nets["pre"], identity_scales=args.pre_identity_scales)
    if args.fakecodec:
        nets["fakecodec"], info["fakecodec"] = restore(args.fakecodec, "fakecodec")
    # int8 calibration files come from the base encoder, loaded before --out (perhaps the same folder) is replaced
    encoder = load_bundle(Path(args.base) if args.base else None) if args.int8 else None
    for old in [*out.glob("*.safetensors"), *out.glob("*.onnx")]:
        old.unlink()
    models = {k: save_net(net, out, k) for k, net in nets.items()}
    for k in ONNX_NETS:  # what encode and decode run; the FakeCodec serves training alone
        models[k] = dataclasses.replace(models[k], graphs=export_onnx(nets[k], out, k))
    if args.int8:
        models.update({k: with_int8(out, k, models[k], args.int8, encoder) for k in ONNX_NETS})
    models["post"] = dataclasses.replace(models["post"], views=post_views)
    models["pre"] = dataclasses.replace(models["pre"], views=pre_views)
    # the id names what the networks do: their tensors, their configs (PreNet's identity_scales change it alone)
    # and their views
    model_id = hashlib.sha256("".join(m.sha256 + json.dumps(m.config, sort_keys=True) + f"{m.views}" * (m.views > 1)
                                      for m in models.values()).encode()).hexdigest()[:8]
    manifest = Manifest(model_id, models, tables, ladder, info)
    Manifest.from_json(json.loads(json.dumps(manifest.to_json())), out / "manifest.json")  # what loaders will check
    (out / "manifest.json").write_text(json.dumps(manifest.to_json(), indent=1))
    if archive != out:
        with tarfile.open(archive, "w") as tar:
            tar.add(out, arcname=out.name)
        shutil.rmtree(out.parent)
    print(f"exported model {model_id} to {archive}: " + ", ".join(f"{k}={v.file}" for k, v in models.items()))


if __name__ == "__main__":
    main()
