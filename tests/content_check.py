"""PostNet on content unlike the photos it learnt from, per quality: black-and-white (mode 1) images, which
jpegplus shows as stored (segment.AS_STORED), and two synthetic colour graphics (a UI mock-up and a chart),
which it restores as photos. The README's figures for both ("What this says, honestly").

    python tests/content_check.py ../shared/data/val/cid22 -n 6

Mode 1: each image is halved (box filter, so the dithering is at a realistic scale) and converted to mode 1
(Floyd–Steinberg); PSNR is over L against that image. "through PostNet" decodes the same file with its segment
cut out and enhance=True, which is what decoding it would give without the flag. Graphics: PSNR over RGB of the
jpegplus file decoded with and without PostNet. "bytes" is jpegplus's size / Pillow's at the same quality.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import jpegplus
from jpegplus.evaluation.metrics import psnr

import measure_args  # tests/measure_args.py

QUALITIES = (10, 30, 50, 75, 90)


def without_segment(data: bytes) -> bytes:
    """`data` with its jpegplus APP9 segment cut out (so that enhance=True runs PostNet on it)."""
    start = data.find(b"\xff\xe9")
    return data[:start] + data[start + 2 + int.from_bytes(data[start + 2:start + 4], "big"):]


def pillow_file(image: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def ui_mockup(seed: int = 0) -> Image.Image:
    """640×480 RGB: flat panels of random colours and lines of default-font text on a light grey ground."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (640, 480), (240, 240, 240))
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x, y = (int(v) for v in rng.integers(0, (560, 420)))
        w, h = (int(v) for v in rng.integers((40, 20), (200, 80)))
        draw.rectangle([x, y, x + w, y + h], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    font = ImageFont.load_default()
    for _ in range(25):
        draw.text(tuple(int(v) for v in rng.integers(0, (560, 460))), "File Edit View  settings 12:45", fill=(20,) * 3,
                  font=font)
    return im


def chart() -> Image.Image:
    """640×480 RGB: a grid, a sine curve 3 px wide and eight bars on white."""
    im = Image.new("RGB", (640, 480), "white")
    draw = ImageDraw.Draw(im)
    for i in range(10):
        draw.line([(0, 48 * i), (640, 48 * i)], fill=(200, 200, 200))
    draw.line([(x, 240 + 150 * np.sin(x / 50)) for x in range(0, 640, 4)], fill=(200, 30, 30), width=3)
    for i in range(8):
        draw.rectangle([40 + 70 * i, 400 - 30 * i, 90 + 70 * i, 470], fill=(30, 90, 200))
    return im


def bilevel_rows(paths, qualities) -> dict:
    rows = {q: [] for q in qualities}
    for path in paths:
        im = Image.open(path).convert("RGB")
        bw = im.resize((max(1, im.width // 2), max(1, im.height // 2)), Image.BOX).convert("1")
        ref = np.asarray(bw.convert("L"))
        for q in qualities:
            data, theirs = jpegplus.encode(bw, q), pillow_file(bw, q)
            shown = np.asarray(jpegplus.decode(data))
            post = np.asarray(jpegplus.decode(without_segment(data), enhance=True))
            pillow = np.asarray(Image.open(io.BytesIO(theirs)).convert("L"))
            rows[q].append((psnr(ref, shown), psnr(ref, post), psnr(ref, pillow), len(data) / len(theirs)))
    return rows


def main(argv=None) -> int:
    args = measure_args.parser(__doc__, list(QUALITIES), limit=3).parse_args(argv)
    paths = measure_args.images(args)
    if not paths:
        return 2
    print(f"Mode 1 ({len(paths)} images), PSNR over L in dB:")
    print("| quality | shown as stored | through PostNet | Pillow | bytes / Pillow's |")
    print("|---|---|---|---|---|")
    for q, r in bilevel_rows(paths, args.quality).items():
        shown, post, pillow, ratio = np.mean(r, axis=0)
        print(f"| {q} | {shown:.2f} | {post:.2f} | {pillow:.2f} | {ratio:.3f} |")
    print("\nSynthetic graphics, PSNR over RGB in dB:")
    print("| image | quality | through PostNet | plain decode | Pillow | bytes / Pillow's |")
    print("|---|---|---|---|---|---|")
    for name, image in (("UI mock-up", ui_mockup()), ("chart", chart())):
        ref = np.asarray(image)
        for q in args.quality:
            data, theirs = jpegplus.encode(image, q), pillow_file(image, q)
            post = np.asarray(jpegplus.decode(data))
            plain = Image.open(io.BytesIO(data)).convert("RGB")
            plain = np.asarray(plain if plain.size == image.size else plain.resize(image.size, Image.BICUBIC))
            pillow = np.asarray(Image.open(io.BytesIO(theirs)).convert("RGB"))
            print(f"| {name} | {q} | {psnr(ref, post):.2f} | {psnr(ref, plain):.2f} | {psnr(ref, pillow):.2f} | "
                  f"{len(data) / len(theirs):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
