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
counts the pixels written. The same jobs run one by one, on a local process
pool (-j N) or on a Dask cluster (--dask, jpegplus.distributed).
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import re
import sys
import tempfile
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import ClusterError

PROG = "jpegplus"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm", ".gif"}
JPEG_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif"}
STDIO = "-"
SAMPLE = Path(__file__).parent / "data" / "sample.png"  # package data, installed next to this module
PART = ".part"  # write_output's temporary files: .<output name>.<random>.part beside the output
# --target-size suffixes: SI, as file managers count (150k = 150,000 bytes, 1.5M = 1,500,000)
SIZE_SUFFIXES = {"": 1, "k": 1000, "K": 1000, "M": 1000**2}


class UsageError(ValueError):
    """Bad command line (exit code 2), or bad options to jpegplus.distributed.convert."""


@dataclass(frozen=True)
class Job:
    """One input and where its output goes (STDIO for stdin / stdout)."""
    src: str
    dst: str


@dataclass(frozen=True)
class Result:
    """One file done (or failed: `error`, one line). Bytes read and written;
    encode: the quality used (found, with a target) and the bytes of Pillow's
    JPEG of the same image at that quality, and whether the input was a JPEG;
    decode: the pixels written."""
    src: str
    dst: str
    bytes_in: int
    bytes_out: int
    error: str | None = None
    quality: int | None = None
    pillow_bytes: int = 0
    jpeg_input: bool = False
    pixels: int = 0


# ---------------------------------------------------------------- inputs and outputs

def expand_inputs(inputs: list[str], suffixes: set[str]) -> list[tuple[str, Path | None]]:
    """(path, base folder or None) for each input file: folders are searched
    recursively for files with `suffixes`, patterns are globbed. A name that
    matches nothing is kept, so it fails later with a clear message."""
    found = []
    for item in inputs:
        if item == STDIO:
            found.append((STDIO, None))
        elif os.path.isdir(item):
            base = Path(item)
            found += [(str(p), base) for p in sorted(base.rglob("*")) if p.is_file() and p.suffix.lower() in suffixes]
        elif glob.has_magic(item) and not os.path.exists(item):
            found += [(p, None) for p in sorted(glob.glob(item, recursive=True)) if os.path.isfile(p)]
        else:
            found.append((item, None))
    return found


def plan(inputs: list[str], out: str | None, suffixes: set[str], new_suffix: str) -> list[Job]:
    """Jobs for all inputs: output = out/<relative folder>/<stem><new_suffix>.
    UsageError when the outputs are ambiguous or would overwrite an input."""
    files = expand_inputs(inputs, suffixes)
    if not files:
        raise UsageError("no input files found")
    if out is None:
        if files != [(STDIO, None)]:
            raise UsageError("give an output folder with -o (or read stdin with '-')")
        out = STDIO
    if out == STDIO:
        if len(files) != 1:
            raise UsageError("'-o -' (stdout) takes exactly one input")
        return [Job(files[0][0], STDIO)]
    if os.path.exists(out) and not os.path.isdir(out):
        raise UsageError(f"-o {out}: exists and is not a folder")
    jobs = []
    for src, base in files:
        rel = Path("stdin") if src == STDIO else (Path(src).relative_to(base) if base else Path(Path(src).name))
        jobs.append(Job(src, str(Path(out) / rel.with_suffix(new_suffix))))
    check_outputs(jobs)
    return jobs


def check_outputs(jobs: list[Job]) -> None:
    """UsageError if two inputs share an output or an output is an input."""
    inputs = {os.path.realpath(j.src) for j in jobs if j.src != STDIO}
    seen: dict[str, str] = {}
    for job in jobs:
        real = os.path.realpath(job.dst)
        if real in inputs:
            raise UsageError(f"{job.src}: output {job.dst} is an input; refusing to overwrite it "
                             "(choose another -o folder)")
        if real in seen:
            raise UsageError(f"{job.src} and {seen[real]} would both be written to {job.dst}")
        seen[real] = job.src


def read_input(src: str) -> bytes:
    if src == STDIO:
        return sys.stdin.buffer.read()
    with open(src, "rb") as f:
        return f.read()


def write_output(dst: str, data: bytes) -> None:
    """Write atomically: a hidden temporary file in the same folder, then rename."""
    if dst == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    folder = os.path.dirname(dst) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(dst)}.", suffix=PART)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:  # KeyboardInterrupt included: never leave the partial file
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_leftovers(jobs: list[Job]) -> int:
    """Remove the temporary files of write_output that a writer killed before
    its rename left beside the jobs' outputs (a lost Dask worker); how many."""
    removed = 0
    for job in jobs:
        if job.dst == STDIO:
            continue
        folder, name = os.path.split(job.dst)
        for path in glob.glob(os.path.join(glob.escape(folder or "."), glob.escape(f".{name}.") + "*" + PART)):
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed += 1
    return removed


# ---------------------------------------------------------------- the work, one file

def open_image(data: bytes):
    """PIL image from bytes, loaded; a jpegplus file comes back decoded at full
    size, an image with alpha or a palette comes back RGB over white."""
    import io

    from PIL import Image

    im = Image.open(io.BytesIO(data))
    if im.format in ("JPEG", "MPO"):
        from . import codec
        return codec.decode(data)
    im.load()
    if im.mode in ("P", "PA", "RGBA", "LA"):
        # JPEG has no alpha: lay it over white, as a browser shows it on a white page
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", im.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        flat.info = dict(im.info)
        return flat
    return im


def encode_one(job: Job, options: dict) -> Result:
    """Encode one file at options' quality or target (task_options), and what
    Pillow's own JPEG writer makes of the same image at the quality used."""
    from . import codec, target
    from .metadata import metadata_from

    data = read_input(job.src)
    image = open_image(data)
    goal = target.goal(options["quality"], options["target_size"], options["target_psnr"])
    rest = {k: options[k] for k in ("scale", "progressive", "keep_metadata")}
    if goal is None:
        quality = options["quality"] or codec.DEFAULT_QUALITY
        out = codec.encode(image, quality, **rest)
    else:
        found = target.encode(image, goal, **rest)
        out, quality = found.data, found.quality
    pillow = codec.encode_plain(image, quality, metadata_from(image, {}, options["keep_metadata"]), None)
    write_output(job.dst, out)
    return Result(job.src, job.dst, len(data), len(out), quality=quality, pillow_bytes=len(pillow),
                  jpeg_input=data[:2] == b"\xff\xd8")


def decode_one(job: Job, options: dict) -> Result:
    import io

    from . import codec

    data = read_input(job.src)
    im = codec.decode(data, enhance=options["enhance"])
    keep = {k: im.info[k] for k in ("icc_profile", "exif", "dpi") if im.info.get(k) is not None}
    buf = io.BytesIO()
    im.save(buf, options["format"], **keep)
    write_output(job.dst, buf.getvalue())
    return Result(job.src, job.dst, len(data), buf.tell(), pixels=im.size[0] * im.size[1])


@dataclass(frozen=True)
class Task:
    """A command that converts files: its per-file work, the inputs it takes
    from folders, its output suffix (from the options), its options' defaults."""
    work: Callable[[Job, dict], Result]
    suffixes: set[str]
    new_suffix: Callable[[dict], str]
    defaults: dict


TASKS = {
    "encode": Task(encode_one, IMAGE_SUFFIXES, lambda o: ".jpg",
                   {"quality": None, "target_size": None, "target_psnr": None, "scale": None, "progressive": None,
                    "keep_metadata": True}),  # a converter keeps metadata (--strip drops it)
    "decode": Task(decode_one, JPEG_SUFFIXES, lambda o: "." + o["format"].lower(), {"enhance": False, "format": "PNG"}),
}


def task_options(task: str, **given) -> dict:
    """The options of `task` ("encode" or "decode"): its defaults, updated by
    `given` (None keeps a default). UsageError for unknown or bad options."""
    from . import target

    if task not in TASKS:
        raise UsageError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    defaults = TASKS[task].defaults
    unknown = set(given) - set(defaults)
    if unknown:
        raise UsageError(f"{task} has no option {', '.join(sorted(unknown))} (it takes {', '.join(defaults)})")
    options = {**defaults, **{k: v for k, v in given.items() if v is not None}}
    if task == "decode":
        return {**options, "format": options["format"].upper()}
    try:
        target.goal(options["quality"], options["target_size"], options["target_psnr"])
    except ValueError as e:
        raise UsageError(str(e)) from None
    quality = options["quality"]
    if quality is not None and (isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100):
        raise UsageError(f"quality must be 1..100, got {quality!r}")
    if options["scale"] not in (None, 1, 2):
        raise UsageError(f"scale must be 1 or 2, got {options['scale']!r}")
    return options


def plan_task(task: str, inputs: list[str], out: str | None, options: dict) -> list[Job]:
    """plan() with the task's input suffixes and output suffix."""
    t = TASKS[task]
    return plan(inputs, out, t.suffixes, t.new_suffix(options))


def one_line(e: BaseException) -> str:
    """An error as the one line a failed file gets: its type and message."""
    return f"{type(e).__name__}: {' '.join(str(e).split()) or type(e).__name__}"


def run_one(task: str, job: Job, options: dict) -> Result:
    """One file; an error becomes a Result with a one-line message (KeyboardInterrupt propagates)."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SegmentWarning etc.: the plain decode is what the user gets
            return TASKS[task].work(job, options)
    except Exception as e:  # noqa: BLE001 - reported per file, one line
        return Result(job.src, job.dst, 0, 0, one_line(e))


def init_worker(threads: int) -> None:
    """Process-pool worker: bounded network threads (either runtime), weights loaded once."""
    from .bundle import default_bundle
    from .runtime import set_threads

    set_threads(threads)
    default_bundle()


# ---------------------------------------------------------------- running many

def run_jobs(task: str, jobs: list[Job], options: dict, workers: int, keep_going: bool, progress: bool | None,
             client=None):
    """Results in completion order; stops at the first failure unless keep_going.
    One by one (workers 1), on a local process pool, or on the Dask cluster of
    `client` (a dask.distributed.Client: jpegplus.distributed)."""
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="file", desc=task, file=sys.stderr,
               disable=(not progress) if progress is not None else (len(jobs) < 2 or None))
    results = []
    try:
        if client is not None:
            from . import distributed

            results = distributed.run(client, task, jobs, options, keep_going, bar)
        elif workers <= 1:
            for job in jobs:
                results.append(run_one(task, job, options))
                bar.update()
                if results[-1].error and not keep_going:
                    break
        else:
            results = run_pool(task, jobs, options, workers, keep_going, bar)
    finally:
        bar.close()
    return results


def run_pool(task, jobs, options, workers, keep_going, bar):
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // workers)
    # spawn: a forked child of a process that already ran torch's thread pool can hang
    ctx = multiprocessing.get_context("spawn")
    results = []
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker, initargs=(threads,)) as pool:
        pending = {pool.submit(run_one, task, job, options) for job in jobs}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    results.append(future.result())
                    bar.update()
                if not keep_going and any(r.error for r in results):
                    break
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)  # workers clean up their own temporary files
            raise
        finally:
            for future in pending:
                future.cancel()
    return results


def relative(new: int, old: int) -> str:
    """How `new` compares with `old`, e.g. "15.2 % smaller", "3.0 % larger"."""
    change = 100 * (new / old - 1) if old else 0.0
    if round(change, 1) == 0:
        return "the same size"
    return f"{abs(change):.1f} % {'smaller' if change < 0 else 'larger'}"


def summary(task: str, results: list[Result], total: int) -> str:
    """The summary line. encode: bytes read and written, against what Pillow's
    JPEG writes at the same quality, and against the JPEG inputs' own bytes;
    decode: pixels and bytes written."""
    ok = [r for r in results if not r.error]
    failed = len(results) - len(ok)
    before, after = sum(r.bytes_in for r in ok), sum(r.bytes_out for r in ok)
    line = f"{len(ok)} of {total} files: "
    if task == "decode":
        pixels = sum(r.pixels for r in ok)
        line += f"{pixels / 1e6:,.2f} MP written ({pixels:,} pixels, {after:,} bytes)"
    else:
        line += f"{before:,} bytes -> {after:,} bytes"
        if ok:
            qualities = sorted({r.quality for r in ok})
            at = f"quality {qualities[0]}" if len(qualities) == 1 else f"qualities {qualities[0]}-{qualities[-1]}"
            line += f", {relative(after, sum(r.pillow_bytes for r in ok))} than Pillow at {at}"
        jpegs = [r for r in ok if r.jpeg_input]
        if jpegs:
            mine = sum(r.bytes_out for r in jpegs)
            line += (f", {relative(mine, sum(r.bytes_in for r in jpegs))} than the "
                     f"{'JPEG input' if len(jpegs) == 1 else f'{len(jpegs)} JPEG inputs'}")
    if failed:
        line += f", {failed} failed"
    if len(results) < total:
        line += f", {total - len(results)} not done"
    return line


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
    if args.dask is None:
        results = run_jobs(args.command, jobs, options, min(args.jobs, len(jobs)), args.keep_going, args.progress)
    else:
        from . import distributed

        if args.jobs != 1:
            raise UsageError("-j and --dask: the cluster's workers do the work; give one of them")
        distributed.check(jobs)
        with distributed.connect(args.dask) as client:
            results = run_jobs(args.command, jobs, options, 1, args.keep_going, args.progress, client)
    to_stdout = jobs[0].dst == STDIO
    return report(args.command, results, len(jobs), sys.stderr if to_stdout or args.quiet else sys.stdout)


# ---------------------------------------------------------------- info

def describe(data: bytes) -> dict:
    """What a file holds: sizes, bits per original pixel, and the jpegplus
    segment with whether the decoder trusts it (jpegplus.segment.trusted; no torch needed)."""
    import io

    from PIL import JpegImagePlugin

    from . import segment as seg
    from .errors import SegmentError

    im = JpegImagePlugin.JpegImageFile(io.BytesIO(data))
    facts = {"bytes": len(data), "stored_size": list(im.size), "mode": im.mode,
             "progressive": bool(im.info.get("progressive")), "jpegplus": None,
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
                         "grey": head.grey, "model_id": head.model_id, "intact": problem is None,
                         "transcoded": how == "image"}
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
    layout = "progressive" if f["progressive"] else "baseline"
    return (f"{path}: jpegplus v{j['version']} {layout}, {f['bytes']:,} bytes, {j['size'][0]}x{j['size'][1]} "
            f"{'L' if j['grey'] else 'RGB'} stored as {w}x{h} (scale {j['scale']}), model {j['model_id']}, "
            f"{f['bpp']} bpp, {state}")


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
