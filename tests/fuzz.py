"""Fuzz jpegplus.decode with hypothesis: mutated jpegplus files and segments.

    python tests/fuzz.py --cases 10000      # prints cases, outcomes, failures, time

Each case takes one of a few small jpegplus files (colour and grey, scale 1
and 2) and applies 1..4 mutations: bit flips anywhere, flips inside the
segment, a segment field set to any value (optionally re-sealed with valid
check values, i.e. a deliberate liar), truncation, inserted or deleted bytes, a
wrong segment length, a dropped or duplicated segment. `check` is the oracle:

- decode raises only what a Pillow user expects (OSError and its subclasses,
  which include UnidentifiedImageError and jpegplus's NotJpegError;
  DecompressionBombError) or a JpegPlusError; anything else is a failure;
- it never raises when Pillow can decode the same bytes (nothing decodable is
  lost), except a DecompressionBombError for a trusted segment's original size;
- a result from a trusted segment has the size the segment states; any other
  result is exactly Pillow's plain decode, with a SegmentWarning whenever the
  file carried a jpegplus segment that was not trusted;
- no case takes longer than MAX_SECONDS (no hangs).

tests/test_fuzz.py runs a few hundred cases of the same property in CI.
"""
from __future__ import annotations

import argparse
import io
import struct
import sys
import time
import warnings
from collections import Counter
from functools import lru_cache

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from PIL import Image

import jpegplus
from jpegplus import segment as seg
from jpegplus.errors import JpegPlusError, SegmentError, SegmentWarning

MAX_SECONDS = 10.0
FUZZ_MAX_PIXELS = 1 << 20  # mutated SOF sizes must not make Pillow allocate gigabytes
FIELDS = ("version", "scale", "flags", "width", "height", "stored_width", "stored_height", "model", "coding_check",
          "image_check")
FIELD_OFFSETS = {"version": (0, "B"), "scale": (1, "B"), "flags": (2, "H"), "width": (4, "I"), "height": (8, "I"),
                 "stored_width": (12, "I"), "stored_height": (16, "I"), "model": (20, "8s"), "coding_check": (28, "I"),
                 "image_check": (32, "I")}
CHECKS = 28  # offset of the check values (coding, image) after the identifier


class FuzzFailure(AssertionError):
    """The oracle caught jpegplus misbehaving on one input."""


@lru_cache(maxsize=1)
def base_files() -> tuple[bytes, ...]:
    """Small jpegplus files: colour and grey, scale 1 and 2, odd sizes."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:24, 0:40]
    colour = np.stack([xx * 6, yy * 10, (xx + yy) * 4], 2).astype(np.uint8)
    colour = np.clip(colour + rng.integers(0, 20, colour.shape), 0, 255).astype(np.uint8)
    grey = colour[:17, :33, 1]
    return tuple(jpegplus.encode(img, q, scale=s) for img, q, s in
                 ((colour, 75, 1), (colour, 50, 2), (grey, 85, 1), (grey, 30, 2)))


def segment_start(data: bytes) -> int:
    """Offset of the jpegplus payload's first byte after the identifier, or -1."""
    i = data.find(b"\xff\xe9\x00")
    return -1 if i < 0 or data[i + 4:i + 4 + len(seg.IDENT)] != seg.IDENT else i + 4 + len(seg.IDENT)


def set_field(data: bytes, field: str, value: int, reseal: bool) -> bytes:
    start = segment_start(data)
    if start < 0 or start + seg._BODY.size > len(data):
        return data
    offset, fmt = FIELD_OFFSETS[field]
    raw = value.to_bytes(8, "big") if fmt == "8s" else struct.pack(">" + fmt, value % (1 << (8 * struct.calcsize(fmt))))
    out = data[:start + offset] + raw + data[start + offset + len(raw):]
    if reseal:
        fields = out[start - len(seg.IDENT):start + CHECKS]
        try:
            with Image.open(io.BytesIO(out)) as im:
                if im.size[0] * im.size[1] > FUZZ_MAX_PIXELS:
                    return out
            checks = seg.coding_check(out, fields), seg.image_check(seg.stored_image(out), fields)
        except (SegmentError, OSError, SyntaxError, ValueError):
            return out
        out = out[:start + CHECKS] + struct.pack(">II", *checks) + out[start + CHECKS + 8:]
    return out


def apply(data: bytes, mutation: tuple) -> bytes:
    """One mutation (kind, *args) of `data`; positions are fractions of the length."""
    kind, *args = mutation
    n = len(data)
    if kind == "flip":
        pos, mask = int(args[0] * n) % max(n, 1), args[1]
        return data[:pos] + bytes([data[pos] ^ mask]) + data[pos + 1:] if n else data
    if kind == "segment_flip":
        start = segment_start(data)
        pos = start - len(seg.IDENT) + args[0] % (len(seg.IDENT) + seg._BODY.size)
        if start < 0 or pos >= n:
            return data
        return data[:pos] + bytes([data[pos] ^ args[1]]) + data[pos + 1:]
    if kind == "field":
        return set_field(data, *args)
    if kind == "truncate":
        return data[:int(args[0] * n)]
    if kind == "insert":
        pos = int(args[0] * n)
        return data[:pos] + args[1] + data[pos:]
    if kind == "delete":
        pos = int(args[0] * n)
        return data[:pos] + data[pos + args[1]:]
    if kind == "segment_length":
        i = data.find(b"\xff\xe9")
        return data if i < 0 else data[:i + 2] + struct.pack(">H", args[0]) + data[i + 4:]
    if kind == "drop_segment":
        i = data.find(b"\xff\xe9")
        return data if i < 0 or i + 4 > n else data[:i] + data[i + 2 + struct.unpack(">H", data[i + 2:i + 4])[0]:]
    if kind == "duplicate_segment":
        i = data.find(b"\xff\xe9")
        if i < 0 or i + 4 > n:
            return data
        j = i + 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
        return data[:j] + data[i:j] + data[j:]
    raise ValueError(kind)


fraction = st.floats(0, 1, allow_nan=False)
mask = st.integers(1, 255)
mutation = st.one_of(
    st.tuples(st.just("flip"), fraction, mask),
    st.tuples(st.just("segment_flip"), st.integers(0, 255), mask),
    st.tuples(st.just("field"), st.sampled_from(FIELDS),
              st.one_of(st.integers(0, 4), st.integers(0, 2**32 - 1), st.sampled_from([2**31, 65535, 65536])),
              st.booleans()),
    st.tuples(st.just("truncate"), fraction),
    st.tuples(st.just("insert"), fraction, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), fraction, st.integers(1, 64)),
    st.tuples(st.just("segment_length"), st.integers(0, 65535)),
    st.tuples(st.just("drop_segment")),
    st.tuples(st.just("duplicate_segment")),
)
cases = st.tuples(st.integers(0, 3), st.lists(mutation, min_size=1, max_size=4))


def mutate(base: int, mutations: list) -> bytes:
    data = base_files()[base]
    for m in mutations:
        data = apply(data, m)
    return data


def plain_decode(data: bytes):
    """Pillow's own decode: (pixels, size) or None when Pillow cannot decode the bytes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                return np.asarray(im), im.size
    except Exception:  # what Pillow raises is checked on jpegplus's side
        return None


def trusted_segment(data: bytes):
    """The segment jpegplus should trust in `data`, judged here from first principles, or None."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            payload = seg.find(im.applist)
            if payload is None:
                return None, False
            head = seg.parse(payload)
            seg.verify(data, payload)
            ok = im.size == (head.stored_width, head.stored_height) and im.mode == ("L" if head.grey else "RGB")
            return (head if ok else None), True
    except SegmentError:
        return None, True
    except Exception:
        return None, False


def check(data: bytes) -> str:
    """Decode `data` and judge the result (see the module docstring). Returns the
    outcome's name; raises FuzzFailure when jpegplus misbehaves."""
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = FUZZ_MAX_PIXELS
    try:
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                out, error = jpegplus.decode(data), None
            except (OSError, JpegPlusError, Image.DecompressionBombError) as e:
                out, error = None, e
            except Exception as e:
                raise FuzzFailure(f"unexpected {type(e).__name__}: {e}") from e
        seconds = time.perf_counter() - t0
        plain = plain_decode(data)
        head, had_segment = trusted_segment(data)
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    if seconds > MAX_SECONDS:
        raise FuzzFailure(f"decode took {seconds:.1f} s")
    warned = any(issubclass(w.category, SegmentWarning) for w in caught)
    if error is not None:
        if plain is not None and not (head is not None and isinstance(error, Image.DecompressionBombError)):
            raise FuzzFailure(f"{type(error).__name__} ({error}) although Pillow decodes these bytes")
        return f"error {type(error).__name__}"
    out.load()
    if plain is None:
        raise FuzzFailure("jpegplus returned an image from bytes Pillow cannot decode")
    if head is not None:
        if out.size != (head.width, head.height) or out.mode != ("L" if head.grey else "RGB"):
            raise FuzzFailure(f"trusted segment says {head.width}x{head.height}, got {out.size} {out.mode}")
        return "jpegplus decode"
    if not np.array_equal(np.asarray(out), plain[0]):
        raise FuzzFailure("untrusted file but the result differs from Pillow's plain decode")
    if had_segment and not warned:
        raise FuzzFailure("an untrusted jpegplus segment gave no SegmentWarning")
    return "plain decode, warned" if warned else "plain decode"


def run(n: int, seed: int | None = None) -> dict:
    """Run `n` hypothesis cases, recording every outcome instead of stopping at the first failure."""
    outcomes, failures, slowest = Counter(), [], [0.0]

    def body(case):
        t0 = time.perf_counter()
        data = mutate(*case)
        try:
            outcomes[check(data)] += 1
        except FuzzFailure as e:
            outcomes["FAILURE"] += 1
            failures.append((case, str(e)))
        slowest[0] = max(slowest[0], time.perf_counter() - t0)

    prop = settings(max_examples=n, deadline=None, database=None, derandomize=seed is None,
                    suppress_health_check=list(HealthCheck))(given(cases)(body))
    if seed is not None:
        prop = hypothesis_seed(seed)(prop)
    prop()
    return {"cases": sum(outcomes.values()), "outcomes": outcomes, "failures": failures, "slowest_s": slowest[0]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: derandomized)")
    args = parser.parse_args(argv)
    t0 = time.time()
    base_files()
    report = run(args.cases, args.seed)
    print(f"fuzz: {report['cases']} cases in {time.time() - t0:.0f} s, {len(report['failures'])} failures, "
          f"slowest case {report['slowest_s']:.2f} s")
    for name, count in sorted(report["outcomes"].items(), key=lambda kv: -kv[1]):
        print(f"  {count:6d}  {name}")
    for case, message in report["failures"][:10]:
        print(f"  FAILURE {message}\n    case {case!r}")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
