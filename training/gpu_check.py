"""The GPU path, measured: one script to run whenever a CUDA GPU is at hand.

    python -m training.gpu_check                      # on the GPU machine, from the repository root
    python -m training.gpu_check --json $OUT/gpu.json # the figures as JSON too
    python -m training.gpu_check --quick              # small sizes (what tests/test_gpu_check.py runs)

1. The test suite's GPU tests (the tests under tests/ skipped without CUDA),
   through pytest when it is installed.
2. Filter throughput on N×3×S×S batches on the device, at each --quality:
   megapixels per second end to end, and its time split in two: the networks
   (engine.BatchNets.pre/post: PreNet, PostNet and the copies to and from the
   device) and the CPU coding (requantisation, libjpeg encode and decode, the
   segment, the closed loop's error), image by image on the CPU. Also whether
   the device's output matches the CPU's within 2 levels (what the GPU test
   asserts), so the check runs even without pytest.
3. jpegplus.decode(data, device=...) in ms per megapixel of output, split into
   PostNet (engine.TiledNets.post, copies included) and the rest (libjpeg
   decode, the segment check, colour conversion).

Without a CUDA GPU it says so in one line, skips the GPU tests, and takes the
same measurements on the CPU, so the script itself stays tested. It needs only
torch, numpy and Pillow besides jpegplus (no pytest, no ../shared data: the
images are crops of the bundled sample).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
GPU_TEST = re.compile(r"@pytest\.mark\.skipif\(not torch\.cuda\.is_available\(\)[^\n]*\n(?:@[^\n]*\n)*def (test_\w+)")
MATCH_LEVELS = 2  # device against CPU, per uint8 value (tests/test_filter.py's GPU test)


def gpu_tests() -> list[str]:
    """pytest node ids of the suite's GPU tests: those skipped unless CUDA is available."""
    ids = []
    for path in sorted(TESTS.glob("test_*.py")):
        ids += [f"{path.relative_to(REPO)}::{name}" for name in GPU_TEST.findall(path.read_text())]
    return ids


def run_gpu_tests() -> dict:
    """The suite's GPU tests through pytest: {"tests": [...], "rc": exit code, "summary": pytest's last line}."""
    ids = gpu_tests()
    if not ids:
        return {"tests": [], "rc": None, "summary": "no GPU tests found under tests/"}
    if importlib.util.find_spec("pytest") is None:
        return {"tests": ids, "rc": None, "summary": "pytest is not installed: the device check below stands in"}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *ids], cwd=REPO,
                         capture_output=True, text=True)
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    return {"tests": ids, "rc": run.returncode, "summary": lines[-1] if lines else run.stderr.strip()[-300:]}


class Stopwatch:
    """Seconds spent inside patched methods, the device synchronised at both ends."""

    def __init__(self, device):
        import torch

        self.seconds = 0.0
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    @contextlib.contextmanager
    def timing(self, cls, *names):
        with contextlib.ExitStack() as stack:
            for name in names:
                stack.enter_context(mock.patch.object(cls, name, self.timed(getattr(cls, name))))
            yield self

    def timed(self, method):
        def wrapper(*args, **kwargs):
            self.sync()
            t0 = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.sync()
                self.seconds += time.perf_counter() - t0
        return wrapper


def sample_crops(n: int, size: int) -> np.ndarray:
    """n crops of size×size from the bundled sample (768×512, tiled by mirroring
    when size is larger), at varied offsets and flips: uint8 (n, size, size, 3)."""
    from PIL import Image

    from jpegplus.cli import SAMPLE

    with Image.open(SAMPLE) as im:
        rgb = np.asarray(im.convert("RGB"))
    big = np.pad(rgb, ((0, max(0, size - rgb.shape[0])), (0, max(0, size - rgb.shape[1])), (0, 0)), mode="symmetric")
    rng = np.random.default_rng(0)
    crops = []
    for i in range(n):
        y, x = rng.integers(0, big.shape[0] - size + 1), rng.integers(0, big.shape[1] - size + 1)
        crop = big[y:y + size, x:x + size]
        crops.append(crop[:, ::-1] if i % 2 else crop)
    return np.ascontiguousarray(np.stack(crops))


def filter_throughput(device, batch: int, size: int, quality: int, repeats: int) -> dict:
    """Filter on a batch (batch, 3, size, size) on `device`: best of `repeats` after a warm-up."""
    import torch

    import jpegplus
    from jpegplus import engine

    crops = sample_crops(batch, size)
    x = (torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255).to(device)
    f = jpegplus.Filter(quality)
    f(x[:1])  # warm-up: weights to the device, kernels
    best = None
    for _ in range(repeats):
        watch = Stopwatch(device)
        with watch.timing(engine.BatchNets, "pre", "post"):
            watch.sync()
            t0 = time.perf_counter()
            out = f(x)
            watch.sync()
            total = time.perf_counter() - t0
        if best is None or total < best[0]:
            best = (total, watch.seconds, out)
    total, nets, out = best
    mp = batch * size * size / 1e6
    check = min(batch, 2)  # the device's output against the CPU's, as the GPU test does
    diff = int(np.abs(levels(out[:check]) - levels(f(x[:check].cpu()))).max())
    return {"quality": quality, "batch": [batch, 3, size, size], "megapixels": mp, "seconds": total,
            "network_seconds": nets, "cpu_coding_seconds": total - nets, "mp_per_s": mp / total,
            "network_mp_per_s": mp / nets, "cpu_coding_mp_per_s": mp / (total - nets),
            "max_level_difference_vs_cpu": diff, "on_device": out.device.type == device.type}


def levels(t) -> np.ndarray:
    """float (N, C, H, W) in 0..1 on any device → int levels 0..255 on the CPU."""
    return (t.float() * 255).round().long().cpu().numpy()


def decode_speed(device, size: int, quality: int, repeats: int) -> dict:
    """jpegplus.decode(data, device=device) of one size×size jpegplus file, in ms per
    output megapixel: best of `repeats` after a warm-up, PostNet's share apart."""
    import jpegplus
    from jpegplus import engine

    data = jpegplus.encode(sample_crops(1, size)[0], quality)
    jpegplus.decode(data, device=str(device))  # warm-up
    best = None
    for _ in range(repeats):
        watch = Stopwatch(device)
        with watch.timing(engine.TiledNets, "post"):
            t0 = time.perf_counter()
            im = jpegplus.decode(data, device=str(device))
            watch.sync()
            total = time.perf_counter() - t0
        if best is None or total < best[0]:
            best = (total, watch.seconds)
    mp = im.size[0] * im.size[1] / 1e6
    total, post = best
    return {"quality": quality, "size": list(im.size), "bytes": len(data), "ms_per_mp": 1000 * total / mp,
            "postnet_ms_per_mp": 1000 * post / mp, "rest_ms_per_mp": 1000 * (total - post) / mp}


def device_name(device) -> str:
    import torch

    from jpegplus.bundle import default_bundle

    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    return f"CPU, {os.cpu_count()} cores, networks through {default_bundle().runtime}"


def use_checkout_weights() -> None:
    """Run from a checkout that was never installed (the GPU machine): the repository's weights/."""
    if "JPEGPLUS_WEIGHTS" not in os.environ and importlib.util.find_spec("jpegplus.weights") is None:
        os.environ["JPEGPLUS_WEIGHTS"] = str(REPO / "weights")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16, help="N of the N×3×S×S Filter batch (default 16)")
    ap.add_argument("--size", type=int, default=512, help="S, the side of each image (default 512)")
    ap.add_argument("--quality", type=int, nargs="+", default=[75, 10],
                    help="Filter and decode qualities (default 75: scale 1 only; 10: both scales tried)")
    ap.add_argument("--decode-size", type=int, default=2048, help="side of the decoded image (default 2048)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs, best kept (default 3)")
    ap.add_argument("--quick", action="store_true", help="batch 2 of 64×64, decode 128×128, one run")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.size, args.decode_size, args.repeats = 2, 64, 128, 1

    import torch

    use_checkout_weights()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    report = {"device": device_name(device), "cuda": cuda}
    print(f"device: {report['device']}")
    if cuda:
        report["gpu_tests"] = run_gpu_tests()
        print(f"GPU tests ({len(report['gpu_tests']['tests'])}): {report['gpu_tests']['summary']}")
    else:
        print("no CUDA GPU: GPU tests and GPU measurements skipped; the same measurements on the CPU follow")
    report["filter"], report["decode"] = [], []
    for q in args.quality:
        r = filter_throughput(device, args.batch, args.size, q, args.repeats)
        report["filter"].append(r)
        print(f"Filter q{q}, batch {'×'.join(map(str, r['batch']))}: {r['mp_per_s']:.2f} MP/s end to end "
              f"({r['seconds']:.3f} s); networks {r['network_seconds']:.3f} s = {r['network_mp_per_s']:.2f} MP/s, "
              f"CPU coding {r['cpu_coding_seconds']:.3f} s = {r['cpu_coding_mp_per_s']:.2f} MP/s; "
              f"on {device.type}: {r['on_device']}, vs CPU within {r['max_level_difference_vs_cpu']} levels")
    for q in args.quality:
        r = decode_speed(device, args.decode_size, q, args.repeats)
        report["decode"].append(r)
        print(f"decode q{q}, {r['size'][0]}×{r['size'][1]} ({r['bytes']:,} bytes): {r['ms_per_mp']:.1f} ms/MP "
              f"(PostNet {r['postnet_ms_per_mp']:.1f}, the rest {r['rest_ms_per_mp']:.1f})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    failed = (cuda and report["gpu_tests"]["rc"] not in (0, None)) or any(
        r["max_level_difference_vs_cpu"] > MATCH_LEVELS or not r["on_device"] for r in report["filter"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
