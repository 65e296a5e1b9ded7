"""The codecs the benchmark compares: Pillow's JPEG (the anchor), its optimised
variant, jpegli, area-downsample → JPEG → bicubic, and jpegplus with its ablations.

Every codec maps a uint8 RGB image (H, W, 3) and a quality to file bytes, and
file bytes and the original size (W, H) back to a uint8 RGB image (H, W, 3).
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

ANCHOR_QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
ANCHOR = "Pillow default"


@dataclass(frozen=True)
class Codec:
    """One rate–distortion curve of the benchmark.

    Codecs with equal `encoder_id` produce the same file at a quality, so the
    benchmark encodes once and shares the file; equal `decoder_id` likewise
    shares decodes of identical bytes. `reuse` names another encoder_id whose
    file at the same quality is this codec's file whenever `reuse_if(file)`.
    """
    name: str
    role: str  # "anchor", "peer", "jpegplus" or "ablation"
    qualities: tuple[int, ...]
    encode: Callable[[np.ndarray, int], bytes]
    decode: Callable[[bytes, tuple[int, int]], np.ndarray]
    encoder_id: str
    decoder_id: str
    note: str = ""
    reuse: str | None = None
    jpegplus_files: bool = False  # files carry the APP9 segment (their scale is recorded)
    reuse_if: Callable[[bytes], bool] | None = None


# ---------------------------------------------------------------- Pillow / libjpeg-turbo

def pillow_encode(rgb: np.ndarray, quality: int, **options) -> bytes:
    """Pillow JPEG at `quality` with its defaults (4:2:0, no optimize) unless options say otherwise."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=int(quality), **options)
    return buf.getvalue()


def pillow_decode(data: bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    """Any JPEG decoded by Pillow to uint8 RGB (H, W, 3); `size` is not needed."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def pillow_default(qualities=ANCHOR_QUALITIES) -> Codec:
    return Codec(ANCHOR, "anchor", tuple(qualities), pillow_encode, pillow_decode, "pillow", "pillow",
                 "libjpeg-turbo via Pillow, 4:2:0, standard tables, no optimize")


def pillow_optimize(qualities=ANCHOR_QUALITIES) -> Codec:
    return Codec("Pillow optimize", "peer", tuple(qualities),
                 lambda rgb, q: pillow_encode(rgb, q, optimize=True), pillow_decode,
                 "pillow-optimize", "pillow", "as the anchor, with optimised Huffman tables")


# ---------------------------------------------------------------- jpegli

def jpegli(qualities=ANCHOR_QUALITIES) -> Codec | None:
    """jpegli through pyjpegli, or None when it is not installed."""
    try:
        import pyjpegli
    except ImportError:
        return None

    def encode(rgb: np.ndarray, quality: int) -> bytes:
        rgb = np.ascontiguousarray(rgb)
        return pyjpegli.encode(rgb.tobytes(), rgb.shape[1], rgb.shape[0], quality=int(quality))

    version = getattr(pyjpegli, "__version__", "?")
    return Codec("jpegli", "peer", tuple(qualities), encode, pillow_decode, "jpegli", "pillow",
                 f"pyjpegli {version} defaults, decoded by Pillow")


# ---------------------------------------------------------------- area ½ → JPEG → bicubic ×2

def half_size(w: int, h: int) -> tuple[int, int]:
    return -(-w // 2), -(-h // 2)


def area_down_encode(rgb: np.ndarray, quality: int) -> bytes:
    """Box (area) ½ downsample, then Pillow default JPEG; the original size is
    not stored, so the decoder doubles and crops by the caller's size."""
    im = Image.fromarray(rgb)
    return pillow_encode(np.asarray(im.resize(half_size(*im.size), Image.BOX)), quality)


def area_down(qualities=ANCHOR_QUALITIES) -> Codec:
    """Its decoder needs the original (W, H): a plain JPEG of half size cannot
    say whether an original side was odd."""
    def decode(data: bytes, size: tuple[int, int]) -> np.ndarray:
        w, h = size
        with Image.open(io.BytesIO(data)) as im:
            up = im.convert("RGB").resize((2 * im.size[0], 2 * im.size[1]), Image.BICUBIC)
        return np.asarray(up)[:h, :w]

    return Codec("area ½ + bicubic", "peer", tuple(qualities), area_down_encode, decode, "area-down",
                 "bicubic-up", "Pillow BOX ½ → Pillow default JPEG → Pillow BICUBIC ×2")


# ---------------------------------------------------------------- jpegplus and its ablations

def jpegplus_codecs(qualities, bundle=None, name="jpegplus", role="jpegplus", note="") -> list[Codec]:
    """jpegplus with closed-loop scale choice, and the same pair held at scale 1.

    `bundle` None is the shipped default. The scale-1 curve reuses the
    closed-loop file wherever that file already is scale 1 (identical bytes).
    """
    import jpegplus

    def encode(rgb: np.ndarray, quality: int) -> bytes:
        return jpegplus.encode(rgb, int(quality), bundle=bundle)

    def encode_s1(rgb: np.ndarray, quality: int) -> bytes:
        return jpegplus.encode(rgb, int(quality), scale=1, bundle=bundle)

    def decode(data: bytes, size=None) -> np.ndarray:
        return np.asarray(jpegplus.decode(data, bundle=bundle).convert("RGB"))

    def is_scale1(data: bytes) -> bool:
        return file_scale(data) == 1

    qualities = tuple(int(q) for q in qualities)
    return [
        Codec(name, role, qualities, encode, decode, name, name, note or "closed-loop scale choice (1 or 2)",
              jpegplus_files=True),
        Codec(f"{name} scale 1 only", "ablation", qualities, encode_s1, decode, f"{name}-s1", name,
              "the same networks, never downsampling", reuse=name, reuse_if=is_scale1, jpegplus_files=True),
    ]


def postnet_alone(bundle=None, qualities=ANCHOR_QUALITIES) -> Codec:
    """The anchor's files, decoded through PostNet at scale 1 (enhance=True)."""
    import jpegplus

    def decode(data: bytes, size=None) -> np.ndarray:
        return np.asarray(jpegplus.decode(data, enhance=True, bundle=bundle).convert("RGB"))

    return Codec("PostNet alone (scale 1)", "ablation", tuple(qualities), pillow_encode, decode, "pillow",
                 "postnet-enhance", "Pillow default files, decoded with enhance=True")


def file_scale(data: bytes) -> int | None:
    """The scale a jpegplus file's trusted APP9 segment records, or None for a
    plain JPEG (SegmentError for a segment the decoder would not trust)."""
    from jpegplus import segment

    head = segment.of_bytes(data)
    return None if head is None else head.scale
