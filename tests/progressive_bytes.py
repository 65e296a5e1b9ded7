"""Bytes of jpegplus files written baseline, progressive, and by default (the smaller).

    python tests/progressive_bytes.py ../shared/data/kodak      # qualities 10 30 50 75 90

For every image and quality it encodes three times (progressive=False, True,
None) and reports the total bytes per quality, the progressive file's size
relative to the baseline one, how many images the default wrote progressive,
and whether every default file is the smaller of the two (the layouts hold the
same coefficients, so they decode to the same pixels; tests/test_transcode.py
checks that bit for bit).
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

from PIL import Image

import jpegplus

import measure_args  # tests/measure_args.py


def measure(paths: list[Path], qualities: list[int]) -> dict:
    """{quality: {"baseline", "progressive", "default": [bytes per image], "default_progressive": [bool]}}."""
    rows = {}
    for q in qualities:
        row = {"baseline": [], "progressive": [], "default": [], "default_progressive": []}
        for path in paths:
            image = Image.open(path).convert("RGB")
            for name, layout in (("baseline", False), ("progressive", True), ("default", None)):
                data = jpegplus.encode(image, q, progressive=layout)
                row[name].append(len(data))
                if layout is None:
                    row["default_progressive"].append(bool(Image.open(io.BytesIO(data)).info.get("progressive")))
        rows[q] = row
    return rows


def table(rows: dict, n: int) -> str:
    lines = [f"jpegplus on {n} images: total bytes per quality",
             "| quality | baseline | progressive | progressive vs baseline | default (smaller) | default vs baseline "
             "| written progressive |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for q, row in rows.items():
        base, prog, default = (sum(row[k]) for k in ("baseline", "progressive", "default"))
        lines.append(f"| {q} | {base:,} | {prog:,} | {100 * (prog / base - 1):+.2f} % | {default:,} "
                     f"| {100 * (default / base - 1):+.2f} % | {sum(row['default_progressive'])} of {n} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = measure_args.parser(__doc__, [10, 30, 50, 75, 90]).parse_args(argv)
    paths = measure_args.images(args)
    if not paths:
        return 2
    rows = measure(paths, args.quality)
    print(table(rows, len(paths)))
    smaller = all(d == min(b, p) for row in rows.values()
                  for b, p, d in zip(row["baseline"], row["progressive"], row["default"]))
    print(f"every default file is the smaller of the two: {smaller}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
