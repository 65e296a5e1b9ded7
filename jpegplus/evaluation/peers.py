"""The codecs the benchmark compares: Pillow's JPEG (the anchor), its optimised
variant, jpegli, area-downsample → JPEG → bicubic, jpegplus with its ablations,
and the yardstick: jpegplus with no networks, and the jpegplus files as a
standard viewer shows them.

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
    role: str  # "anchor", "peer", "jpegplus", "ablation", "yardstick" (no networks, standard viewer) or "extension"
    qualities: tuple[int, ...]
    encode: Callable[[np.ndarray, int], bytes]
    decode: Callable[[bytes, tuple[int, int]], np.ndarray]
    encoder_id: str
    decoder_id: str
    note: str = ""
    reuse: str | None = None
    jpegplus_files: bool = False  # files carry the APP9 segment (their scale is recorded)
    reuse_if: Callable[[bytes], bool] | None = None
    extends: str | None = None  # role "extension": the codec whose curve this one continues


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

    def is_scale1(data: bytes) -> bool:  # forced scale 1 keeps the closed loop's scale-1 candidates (4:4:4 too)
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

    return Codec(POSTNET_ALONE, "ablation", tuple(qualities), pillow_encode, decode, "pillow",
                 "postnet-enhance", "Pillow default files, decoded with enhance=True")


def file_scale(data: bytes) -> int | None:
    """The scale a jpegplus file's trusted APP9 segment records, or None for a
    plain JPEG (SegmentError for a segment the decoder would not trust)."""
    from jpegplus import segment

    head = segment.of_bytes(data)
    return None if head is None else head.scale


# ---------------------------------------------------------------- the yardstick: no networks, a standard viewer

NO_NETWORKS = "no networks"
STANDARD_VIEWER = "standard viewer"
POSTNET_ALONE = "PostNet alone (scale 1)"
IDENTITY_MODEL_ID = "00000000"  # what the no-networks files record in their segment


class NotIdentityError(ValueError):
    """A freshly built network is not the identity (area ½ / bicubic ×2 at scale 2)."""


def check_identity(name: str, net) -> None:
    """NotIdentityError unless `net` (a fresh PreNet- or PostNet-like module,
    net(x, level, scale)) gives exactly its base: PreNet ("pre") x at scale 1 and
    the 2×2 area average at scale 2; PostNet ("post") y at scale 1 and bicubic ×2
    (torch, align_corners=False) at scale 2. Checked on random images at several levels."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 48, generator=gen)
    levels = torch.tensor([0.05, 0.9])
    with torch.inference_mode():
        for scale in (1, 2):
            if name == "pre":
                got, want, base = net(x, levels, scale), (x if scale == 1 else F.avg_pool2d(x, 2)), "area ½"
            else:
                got = net(x, levels, scale)
                want = x if scale == 1 else F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)
                base = "bicubic ×2"
            if got.shape != want.shape or not torch.equal(got, want):
                diff = (got - want).abs().max().item() if got.shape == want.shape else got.shape
                raise NotIdentityError(f"a fresh {type(net).__name__} is not {'the identity' if scale == 1 else base} "
                                       f"at scale {scale} (max difference {diff})")


def base_forward(name: str):
    """What a fresh network computes, without computing the zeros its trunk adds:
    PreNet ("pre") x, or the 2×2 area average at scale 2; PostNet ("post") y, or
    bicubic ×2 (torch, align_corners=False) at scale 2."""
    import torch.nn.functional as F

    if name == "pre":
        return lambda x, level, scale, full_chroma=None: x if scale == 1 else F.avg_pool2d(x, 2)
    return lambda y, level, scale, full_chroma=None: y if scale == 1 else F.interpolate(
        y, scale_factor=2, mode="bicubic", align_corners=False)


def identity_bundle(bundle=None, fast: bool = True):
    """The bundle `bundle` (default: shipped) with its networks replaced by fresh,
    untrained ones of the same classes and configs. jpegplus networks are residual
    with zero-initialised output heads, so a fresh PreNet is the identity (2×2
    area average at scale 2) and a fresh PostNet the identity (bicubic ×2 at
    scale 2); check_identity proves it before use (NotIdentityError otherwise).
    Tables, requantisation and ladder are the bundle's own.

    fast=True then skips the trunk whose output the zero head discards: each
    network keeps its class, structure and attributes (so tiling and padding are
    the very same), but its forward computes the base alone, which is exactly
    what the fresh network gives (x + 0 = x); tests check that files and decodes
    are byte-identical to the full fresh networks'. About 4× cheaper."""
    import dataclasses

    import torch

    from ..bundle import Bundle, resolve
    from ..models import build

    bundle = resolve(bundle)
    nets = {}
    torch.manual_seed(0)  # the trunks are random but multiplied by zero: fixed anyway, for repeatability
    for name in ("pre", "post"):
        entry = bundle.manifest.models[name]
        net = build(entry.class_name, entry.config).eval().to(memory_format=torch.channels_last)
        check_identity(name, net)
        if fast:
            net.forward = base_forward(name)  # an instance attribute: nn.Module.__call__ runs it
            check_identity(name, net)
        nets[name] = net
    manifest = dataclasses.replace(bundle.manifest, model_id=IDENTITY_MODEL_ID)
    return Bundle(manifest, nets)


def no_networks(qualities, bundle=None) -> Codec:
    """jpegplus without its networks: identity pre/post (identity_bundle), the same
    tables, requantisation, ladder and closed-loop scale choice."""
    ident = identity_bundle(bundle)
    classes = "/".join(ident.manifest.models[n].class_name for n in ("pre", "post"))
    return jpegplus_codecs(qualities, ident, name=NO_NETWORKS, role="yardstick",
                           note=f"fresh {classes} (zero output heads, checked): identity pre/post, area ½ and "
                                "bicubic ×2 at scale 2; the same tables, requantisation, ladder and closed-loop "
                                "scale choice")[0]


def standard_viewer(qualities, main: str = "jpegplus") -> Codec:
    """The jpegplus files of codec `main` as a standard viewer shows them: plain
    Pillow (libjpeg-turbo) decode, no networks; a file stored at scale 2 decodes
    at half size and is resized ×2 with Pillow's BICUBIC, then cropped to the
    original size (the same geometry as area ½ + bicubic)."""
    from ..jpeg import pillow_only

    def decode(data: bytes, size: tuple[int, int]) -> np.ndarray:
        w, h = size
        with pillow_only(), Image.open(io.BytesIO(data)) as im:  # Pillow's own plugin even if jpegplus is registered
            im = im.convert("RGB")
            if im.size != (w, h):
                im = im.resize((2 * im.size[0], 2 * im.size[1]), Image.BICUBIC)
            return np.asarray(im)[:h, :w]

    def encode(rgb: np.ndarray, quality: int) -> bytes:
        import jpegplus

        return jpegplus.encode(rgb, int(quality))

    return Codec(STANDARD_VIEWER, "yardstick", tuple(int(q) for q in qualities), encode, decode, main, "viewer",
                 f"the {main} files decoded by plain Pillow, no networks; files stored at scale 2 are resized "
                 "×2 with Pillow BICUBIC and cropped to the original size", jpegplus_files=True)


# ---------------------------------------------------------------- low-rate extensions

LOW_QUALITIES = (1, 2, 3, 5, 7)


def low_rate_extension(base: Codec, qualities=LOW_QUALITIES) -> Codec:
    """`base` at extra (low) qualities, kept apart from its headline curve so
    BD-rates against the anchor stay at the headline qualities; the low-rate
    table joins the two. Shares the base's files and decodes."""
    import dataclasses

    return dataclasses.replace(base, name=f"{base.name} (low qualities)", role="extension",
                               qualities=tuple(int(q) for q in qualities),
                               note=f"{base.name} at the low qualities of the low-rate table", extends=base.name)
