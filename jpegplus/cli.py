"""The `jpegplus` command (also `python -m jpegplus`).

    jpegplus encode photos/ *.png -o out/ -q 70 -j 2   # images → jpegplus .jpg files (metadata kept; --strip)
    jpegplus encode photos/ -o out/ --target-size 150k # the highest quality whose file fits 150,000 bytes
    jpegplus encode /shared/in -o /shared/out --dask tcp://scheduler:8786   # on a Dask cluster (jpegplus[dask])
    jpegplus decode out/*.jpg -o png/                  # jpegplus (or plain) JPEG → PNG at full size
    jpegplus info out/a.jpg                            # what the jpegplus segment says
    jpegplus bench ...                                 # jpegplus.evaluation.bench (its own --help;
                                                       # needs pip install 'jpegplus[bench]')
    jpegplus demo                                      # the bundled sample against Pillow

Inputs are files, folders (searched recursively for images) and glob
patterns; `-` is stdin, and `-o -` is stdout (one input). Outputs keep the
inputs' relative folders under -o. An input is never overwritten; outputs
are written to a temporary name and renamed, so a failure or Ctrl-C leaves
no partial file. Exit codes: 0 all done, 1 a file failed (one line each on
stderr; --keep-going carries on past failures), 2 bad usage, 130 Ctrl-C.
The summary compares encode's files with what Pillow's JPEG writes at the
same quality (and with the inputs' own bytes for JPEG inputs); decode's
counts the pixels written. The jobs (jpegplus.batch) run one by one, on a
local process pool (-j N) or on a Dask cluster (--dask, jpegplus.distributed).
"""
from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import tempfile
from pathlib import Path

from .batch import JPEG_SUFFIXES, STDIO, Result, UsageError, expand_inputs, plan_task, read_input, run_jobs, \
    run_pool, summary, task_options, write_output
from .errors import ClusterError

PROG = "jpegplus"
SAMPLE = Path(__file__).parent / "data" / "sample.png"  # package data, installed next to this module
# --target-size suffixes: SI, as file managers count (150k = 150,000 bytes, 1.5M = 1,500,000)
SIZE_SUFFIXES = {"": 1, "k": 1000, "K": 1000, "M": 1000**2}


# ---------------------------------------------------------------- encode and decode (jpegplus.batch)

def report(task: str, results: list[Result], total: int, out_stream) -> int:
    """One line per failure on stderr, then the summary; the exit code."""
    failed = [r for r in results if r.error]
    sys.stdout.flush()
    for r in failed:
        print(f"{PROG}: {r.src}: {r.error}", file=sys.stderr)
    sys.stderr.flush()
    print(summary(task, results, total), file=out_stream)
    return 1 if failed else 0


def parse_size(text: str) -> int:
    """Bytes from a size like 150000, 150k or 1.5M (SI: k = 1000, M = 1,000,000; an optional B)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kKM]?)B?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (bytes, or with k or M: 150k = 150,000 bytes)")
    return round(float(m.group(1)) * SIZE_SUFFIXES[m.group(2)])


def cmd_work(args) -> int:
    if args.command == "encode":
        given = {"quality": args.quality, "target_size": args.target_size, "target_psnr": args.target_psnr,
                 "scale": args.scale, "progressive": args.progressive, "keep_metadata": not args.strip}
    else:
        given = {"enhance": args.enhance, "format": args.format}
    options = task_options(args.command, **given)
    jobs = plan_task(args.command, args.inputs, args.out, options)
    if args.jobs < 1:
        raise UsageError(f"-j must be at least 1, got {args.jobs}")
    workers = min(args.jobs, len(jobs))
    if args.dask is None:
        runner = functools.partial(run_pool, workers=workers) if workers > 1 else None
        results = run_jobs(args.command, jobs, options, args.keep_going, args.progress, runner)
    else:
        from . import distributed

        if args.jobs != 1:
            raise UsageError("-j and --dask: the cluster's workers do the work; give one of them")
        distributed.check(jobs)
        with distributed.connect(args.dask) as client:
            runner = functools.partial(distributed.run, client)
            results = run_jobs(args.command, jobs, options, args.keep_going, args.progress, runner)
    to_stdout = jobs[0].dst == STDIO
    return report(args.command, results, len(jobs), sys.stderr if to_stdout or args.quiet else sys.stdout)


# ---------------------------------------------------------------- info

def describe(data: bytes) -> dict:
    """What a file holds: sizes, chroma subsampling, bits per original pixel, and the jpegplus
    segment with whether the decoder trusts it (jpegplus.segment.trusted; no torch needed)."""
    import io

    from PIL import JpegImagePlugin

    from . import segment as seg
    from .errors import SegmentError
    from .jpeg import subsampling_of

    im = JpegImagePlugin.JpegImageFile(io.BytesIO(data))
    facts = {"bytes": len(data), "stored_size": list(im.size), "mode": im.mode,
             "progressive": bool(im.info.get("progressive")), "subsampling": subsampling_of(im), "jpegplus": None,
             "bpp": round(8 * len(data) / (im.size[0] * im.size[1]), 4)}
    payload = seg.find(im.applist)
    if payload is None:
        return facts
    try:
        head = seg.parse(payload)
    except SegmentError as e:
        facts["jpegplus"] = {"error": str(e)}
        return facts
    problem, how = None, None
    try:
        seg.trusted(im)  # sizes and mode, without the check values
        how = seg.verify(data, payload)
    except SegmentError as e:
        problem = str(e)
    facts["jpegplus"] = {"version": head.version, "scale": head.scale, "size": [head.width, head.height],
                         "grey": head.grey, "as_stored": head.as_stored, "model_id": head.model_id,
                         "intact": problem is None, "transcoded": how == "image"}
    if problem:
        facts["jpegplus"]["error"] = problem
    facts["bpp"] = round(8 * len(data) / (head.width * head.height), 4)
    return facts


def info_line(path: str, f: dict) -> str:
    w, h = f["stored_size"]
    j = f["jpegplus"]
    if j is None:
        return f"{path}: plain JPEG, {f['bytes']:,} bytes, {w}x{h} {f['mode']}, {f['bpp']} bpp"
    if "version" not in j:
        return f"{path}: JPEG {w}x{h} with an unreadable jpegplus segment ({j['error']}), {f['bytes']:,} bytes"
    state = "intact" if j["intact"] else f"NOT intact ({j['error']}): decodes as plain JPEG"
    if j.get("transcoded"):
        state += " (losslessly transcoded: same image, new entropy coding)"
    layout = ("progressive" if f["progressive"] else "baseline") + (f" {f['subsampling']}" if f["subsampling"] else "")
    return (f"{path}: jpegplus v{j['version']} {layout}, {f['bytes']:,} bytes, {j['size'][0]}x{j['size'][1]} "
            f"{'L' if j['grey'] else 'RGB'} stored as {w}x{h} (scale {j['scale']}), model {j['model_id']}, "
            f"{f['bpp']} bpp{', shown as stored' if j.get('as_stored') else ''}, {state}")


def cmd_info(args) -> int:
    from .errors import SegmentError

    files = expand_inputs(args.inputs, JPEG_SUFFIXES)
    if not files:
        raise UsageError("no input files found")
    status, records = 0, []
    for src, _ in files:
        try:
            facts = describe(read_input(src))
        except (OSError, SyntaxError, SegmentError, ValueError) as e:
            print(f"{PROG}: {src}: {type(e).__name__}: {' '.join(str(e).split())}", file=sys.stderr)
            status = 1
            continue
        if args.json:
            records.append({"file": src, **facts})
        else:
            print(info_line(src, facts))
    if args.json:
        print(json.dumps(records, indent=1))
    return status


# ---------------------------------------------------------------- demo

def cmd_demo(args) -> int:
    """Encode the bundled sample with jpegplus and with Pillow at the same quality; compare."""
    import io

    import numpy as np
    from PIL import Image

    from . import codec
    from .evaluation.metrics import psnr

    out = (Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="jpegplus-demo-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with Image.open(SAMPLE) as f:
        original = f.convert("RGB")
    q = args.quality
    ours = codec.encode(original, q)
    buf = io.BytesIO()
    original.save(buf, "JPEG", quality=q)
    theirs = buf.getvalue()
    decoded = codec.decode(ours)
    write_output(str(out / "sample.jpegplus.jpg"), ours)
    write_output(str(out / "sample.pillow.jpg"), theirs)
    png = io.BytesIO()
    decoded.save(png, "PNG")
    write_output(str(out / "sample.jpegplus-decoded.png"), png.getvalue())
    ref = np.asarray(original)
    p_ours = psnr(ref, np.asarray(decoded.convert("RGB")))
    p_theirs = psnr(ref, np.asarray(Image.open(io.BytesIO(theirs)).convert("RGB")))
    saved = 100 * (1 - len(ours) / len(theirs))
    w, h = original.size
    print(f"sample.png {w}x{h}, quality {q}")
    print(f"  jpegplus : {len(ours):>9,} bytes  {8 * len(ours) / (w * h):.3f} bpp  PSNR {p_ours:.2f} dB")
    print(f"  Pillow   : {len(theirs):>9,} bytes  {8 * len(theirs) / (w * h):.3f} bpp  PSNR {p_theirs:.2f} dB")
    print(f"  saved    : {saved:.1f}% of Pillow's bytes ({p_ours - p_theirs:+.2f} dB)")
    print(f"files in {out}:")
    for name in ("sample.jpegplus.jpg", "sample.pillow.jpg", "sample.jpegplus-decoded.png"):
        print(f"  {out / name}")
    return 0


# ---------------------------------------------------------------- command line

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Smaller JPEG files at the same quality, still plain JPEG.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{encode,decode,info,bench,demo}")

    def common(s):
        s.add_argument("inputs", nargs="+", help="files, folders or glob patterns; '-' reads stdin")
        s.add_argument("-o", "--out", help="output folder ('-': stdout, one input)")
        s.add_argument("-j", "--jobs", type=int, default=1, help="worker processes (default 1)")
        s.add_argument("--keep-going", action="store_true", help="carry on past failed files")
        s.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar (default: on a terminal, for more than one file)")
        s.add_argument("--quiet", action="store_true", help="summary on stderr instead of stdout")
        s.add_argument("--dask", metavar="ADDRESS",
                       help="run on a Dask cluster: a scheduler address (tcp://host:8786), or local:N for N local "
                            "worker processes; paths must be visible to the workers (needs jpegplus[dask])")

    enc = sub.add_parser("encode", help="images to jpegplus .jpg files")
    common(enc)
    rate = enc.add_mutually_exclusive_group()
    rate.add_argument("-q", "--quality", type=int, help="1..100, Pillow's meaning (default 75)")
    rate.add_argument("--target-size", type=parse_size, metavar="SIZE",
                      help="the highest quality whose file fits in SIZE bytes (150k = 150,000; 1.5M)")
    rate.add_argument("--target-psnr", type=float, metavar="DB",
                      help="the smallest file whose jpegplus decode reaches DB (PSNR against the input)")
    enc.add_argument("--scale", type=int, choices=(1, 2), help="force full (1) or half (2) size storage")
    enc.add_argument("--strip", action="store_true",
                     help="drop EXIF, ICC, XMP, dpi and comment (kept by default: a converter keeps them)")
    layout = enc.add_mutually_exclusive_group()
    layout.add_argument("--progressive", action="store_const", const=True, dest="progressive",
                        help="always write progressive JPEG (default: the smaller of baseline and progressive)")
    layout.add_argument("--baseline", action="store_const", const=False, dest="progressive",
                        help="always write baseline JPEG")

    dec = sub.add_parser("decode", help="jpegplus (or plain) JPEG files to full-size images")
    common(dec)
    dec.add_argument("-f", "--format", default="png", help="output format, e.g. png, tiff, webp (default png)")
    dec.add_argument("--enhance", action="store_true", help="also run PostNet on plain JPEGs")

    inf = sub.add_parser("info", help="what a file's jpegplus segment says")
    inf.add_argument("inputs", nargs="+", help="files, folders or glob patterns; '-' reads stdin")
    inf.add_argument("--json", action="store_true", help="one JSON list instead of lines")

    sub.add_parser("bench", help="benchmark against other codecs (see: jpegplus bench --help)", add_help=False)

    demo = sub.add_parser("demo", help="the bundled sample: jpegplus against Pillow")
    demo.add_argument("--out", help="folder for the files (default: a new temporary folder)")
    demo.add_argument("-q", "--quality", type=int, default=75)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        try:
            from .evaluation import bench
        except ImportError as e:
            print(f"{PROG}: bench is not available: {e}", file=sys.stderr)
            return 2
        return int(bench.main(argv[1:]) or 0)
    p = parser()
    args = p.parse_args(argv)
    try:
        if args.command in ("encode", "decode"):
            return cmd_work(args)
        if args.command == "info":
            return cmd_info(args)
        return cmd_demo(args)
    except UsageError as e:
        p.error(str(e))  # exits 2
    except ClusterError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 0
