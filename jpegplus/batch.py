"""Batch conversion: the jobs behind `jpegplus encode|decode`, however they run.

    jobs = plan_task("encode", ["photos/"], "out/", options)   # Job(src, dst) each; never an input as output
    results = run_jobs("encode", jobs, options, keep_going, progress, runner)
    summary("encode", results, len(jobs))

Inputs are files, folders (searched recursively for the task's suffixes) and
glob patterns; `-` is stdin or stdout. Outputs keep the inputs' relative
folders. Each file is one call of run_one (read, convert, write atomically:
a temporary name, then a rename), whose errors become one-line Results. The
files run one by one (run_serial), on a local process pool (run_pool, the
command's -j) or on a Dask cluster (jpegplus.distributed.run, --dask): the
same per-file work and the same summary everywhere.
"""
from __future__ import annotations

import contextlib
import glob
import os
import sys
import tempfile
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm", ".gif"}
JPEG_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif"}
STDIO = "-"
PART = ".part"  # write_output's temporary files: .<output name>.<random>.part beside the output


class UsageError(ValueError):
    """Bad inputs, outputs or options: the command's exit code 2, a ValueError in Python."""


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


FILE_MODE = 0o666  # what open(path, "w") asks for; the umask takes its share


def current_umask() -> int:
    """The process's umask: from /proc where Linux shows it (no race with other
    threads), else by setting it and putting it back."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
            os.fchmod(f.fileno(), FILE_MODE & ~current_umask())  # as open() would make it, not mkstemp's 0600
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

def run_jobs(task: str, jobs: list[Job], options: dict, keep_going: bool, progress: bool | None,
             runner=None) -> list[Result]:
    """Results in completion order, with a progress bar (None: on a terminal,
    for more than one file); stops at the first failure unless keep_going.
    `runner(task, jobs, options, keep_going, bar)` runs them: run_serial (the
    default), run_pool (a local process pool) or jpegplus.distributed.run (a
    Dask cluster); each updates `bar` once per file."""
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="file", desc=task, file=sys.stderr,
               disable=(not progress) if progress is not None else (len(jobs) < 2 or None))
    try:
        return (runner or run_serial)(task, jobs, options, keep_going, bar)
    finally:
        bar.close()


def run_serial(task: str, jobs: list[Job], options: dict, keep_going: bool, bar) -> list[Result]:
    """One file after the other, in this process."""
    results = []
    for job in jobs:
        results.append(run_one(task, job, options))
        bar.update()
        if results[-1].error and not keep_going:
            break
    return results


def run_pool(task: str, jobs: list[Job], options: dict, keep_going: bool, bar, workers: int) -> list[Result]:
    """On `workers` local processes (spawned), the cores shared out among them."""
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


# ---------------------------------------------------------------- the summary

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
