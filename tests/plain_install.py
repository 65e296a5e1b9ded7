"""What `pip install jpegplus` (no extras) gives: run with the plain venv's python
from outside the checkout (make test-plain does: cd tests && ../.venv-plain/bin/python plain_install.py).

Checks, failing with a message and exit code 1:
- torch is not installed, and `import jpegplus` + register() import neither torch
  nor onnxruntime;
- encode → decode through ONNX Runtime: full size, better than Pillow's plain
  decode of the same file, fewer bytes than Pillow at the same quality on the
  fixtures; scale 2 and grey files too;
- the installed weights are the files the manifests name (no stale ones a
  reused build/ folder would carry into the wheel);
- the Pillow plugin: save, open (header only until load), load;
- Filter on numpy arrays;
- the command line: encode with a pool of 2 workers, decode;
- decode(device="cuda") fails with one clear line naming jpegplus[torch].
Prints the import time and encode / decode times per megapixel.
"""
from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"


def check(ok: bool, what: str) -> None:
    if not ok:
        print(f"FAIL: {what}")
        sys.exit(1)
    print(f"ok: {what}")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return 10 * np.log10(255 ** 2 / mse)


def main() -> None:
    check(importlib.util.find_spec("torch") is None, "torch is not installed")
    probe = ("import time, sys; t = time.perf_counter(); import jpegplus; jpegplus.register(); "
             "print(time.perf_counter() - t, 'torch' in sys.modules, 'onnxruntime' in sys.modules)")
    seconds, torch_in, ort_in = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                               check=True).stdout.split()
    check(torch_in == ort_in == "False", f"import jpegplus + register() in {float(seconds):.3f} s, "
                                         "no torch, no onnxruntime")

    import jpegplus
    from jpegplus.bundle import default_bundle

    check(str(Path(jpegplus.__file__).parent).find("site-packages") >= 0, f"installed package ({jpegplus.__file__})")
    check(default_bundle().runtime == "onnx", "the shipped networks run on ONNX Runtime")
    from jpegplus.bundle import read_manifest, weights_dir

    folder = weights_dir()
    named = {"MODEL_CARD.md", "__init__.py"} | {
        f"{sub}{f}" for sub in ("", "ablation-nofake/")
        for f in ["manifest.json", *(f for e in read_manifest(folder / sub).models.values() for f in e.files())]}
    files = [p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    stale = sorted(set(p.relative_to(folder).as_posix() for p in files) - named)
    size = sum(p.stat().st_size for p in files) / 1e6
    check(not stale, f"the installed weights ({size:.1f} MB) are the files the manifests name, no others {stale[:3]}")

    image = Image.open(FIXTURES / "val0.png").convert("RGB")
    ref = np.asarray(image)
    mp = image.width * image.height / 1e6
    for quality, scale in ((30, None), (10, 2)):
        t = time.perf_counter()
        data = jpegplus.encode(image, quality, scale=scale)
        t_enc = time.perf_counter() - t
        t = time.perf_counter()
        out = jpegplus.decode(data)
        t_dec = time.perf_counter() - t
        check(out.size == image.size and out.mode == "RGB", f"q{quality} scale {scale}: full size back")
        plain = Image.open(io.BytesIO(data)).convert("RGB").resize(image.size, Image.BICUBIC)
        gain = psnr(out, ref) - psnr(plain, ref)
        check(gain > 0.1, f"q{quality} scale {scale}: PostNet gains {gain:+.2f} dB over a plain decode "
                          f"(encode {t_enc / mp:.2f} s/MP, decode {t_dec / mp:.2f} s/MP)")
        if scale is None:
            buf = io.BytesIO()
            image.save(buf, "JPEG", quality=quality)
            check(len(data) < buf.tell(), f"q{quality}: {len(data)} bytes < Pillow's {buf.tell()}")

    grey = image.convert("L")
    back = jpegplus.decode(jpegplus.encode(grey, 50))
    check(back.mode == "L" and psnr(back, grey) > 30, f"grey: {psnr(back, grey):.1f} dB")

    jpegplus.register()
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=50)
    buf.seek(0)
    with Image.open(buf) as im:
        check(im.size == image.size and im.format == "JPEG", "plugin: save and open")
        im.load()
        check(psnr(im, ref) > 30, f"plugin: load ({psnr(im, ref):.1f} dB)")
    jpegplus.unregister()

    arr = jpegplus.Filter(quality=40)(ref)
    check(arr.shape == ref.shape and arr.dtype == np.uint8 and psnr(arr, ref) > 28, "Filter on a numpy array")

    with tempfile.TemporaryDirectory() as tmp:
        cli = [sys.executable, "-m", "jpegplus"]
        coded = subprocess.run([*cli, "encode", str(FIXTURES / "val0.png"), "-o", tmp, "-q", "40", "-j", "2"],
                               capture_output=True, text=True)
        back = subprocess.run([*cli, "decode", str(Path(tmp) / "val0.jpg"), "-o", tmp], capture_output=True, text=True)
        check(coded.returncode == back.returncode == 0 and (Path(tmp) / "val0.png").is_file(),
              f"command line: encode -j 2 and decode ({coded.stdout.strip()} / {back.stdout.strip()})"
              + coded.stderr[-500:] + back.stderr[-500:])

    try:
        jpegplus.decode(data, device="cuda")
        check(False, "decode(device='cuda') without torch fails")
    except ImportError as e:
        check("jpegplus[torch]" in str(e) and "\n" not in str(e), f"decode(device='cuda') without torch: {e}")
    check("torch" not in sys.modules, "nothing imported torch")
    print("plain install: all checks passed")


if __name__ == "__main__":
    main()
