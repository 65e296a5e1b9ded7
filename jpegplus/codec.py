"""jpegplus encode and decode: PreNet → rate–distortion requantisation → JPEG,
baseline or progressive (+ APP9 segment) → PostNet.

Pixel arrays are uint8 (H, W, 3) RGB. Every encoder decision (ladder row,
candidate scales, internal quality, the closed-loop choice) is taken in
jpegplus.engine; this module turns PIL images and arrays into its inputs and
its outputs into bytes and images. The networks run tile by tile
(jpegplus.tiling), so memory stays bounded on huge images: `tile` (input pixels
per tile side, default tiling.TILE) trades speed for memory and does not change
the result beyond tiling.TOLERANCE.
"""
from __future__ import annotations

import builtins
import io

import numpy as np
from PIL import Image

from . import engine
from . import segment as seg
from . import target
from .bundle import Bundle, resolve
from .errors import NotJpegError
from .jpeg import pillow_only
from .metadata import copy_info, metadata_from
from .modes import prepare

DEFAULT_QUALITY = 75


# ---------------------------------------------------------------- encode

def encode_plain(image: Image.Image, quality: int, meta: dict, progressive: bool | None) -> bytes:
    """Pillow's own JPEG at `quality`, for modes the networks do not take (CMYK)."""
    buf = io.BytesIO()
    with pillow_only():
        image.save(buf, "JPEG", quality=int(quality), progressive=bool(progressive), **meta)
    return buf.getvalue()


def encode(image, quality: int | None = None, *, target_size: int | None = None, target_psnr: float | None = None,
           scale: int | None = None, progressive: bool | None = None, subsampling: str | None = None,
           keep_metadata: bool = False, bundle: Bundle | None = None, tile: int | None = None, **options) -> bytes:
    """Encode a PIL image or uint8 array (H×W×3 RGB or H×W grey) to jpegplus bytes.

    quality 1..100 keeps Pillow's meaning (calibrated so that, on average, the
    file is no bigger and no worse in PSNR than Pillow's at the same quality);
    None is 75. Instead of a quality, target_size (bytes) gives the highest
    quality whose file is at most that big, and target_psnr (dB against the
    input, after jpegplus decoding) the smallest file that reaches it: a
    search of several encodes (jpegplus.target; TargetError, a ValueError, when
    no quality meets it). Giving more than one of the three is a ValueError.
    scale None chooses 1 or 2 per image by closed-loop rate–distortion.
    progressive None writes the smaller of a baseline and a progressive file
    (the same coefficients, so the same decoded pixels); True forces
    progressive (libjpeg's default scan script), False baseline.
    subsampling None lets the closed loop store colour at 4:4:4 where the
    ladder offers it and it pays (high qualities, fine chroma detail);
    "4:2:0" always stores 4:2:0.

    Metadata follows Pillow's JPEG writer: only the options given (exif,
    icc_profile, dpi, comment, xmp; None drops one) are written, plus the
    comment in a PIL image's info, which Pillow's writer also takes.
    keep_metadata=True copies the rest of the image's info too.

    Modes follow Pillow's JPEG writer (see jpegplus.modes): 1 and L are stored
    grey, RGB/RGBX/YCbCr in colour, CMYK as Pillow's plain CMYK JPEG (scale is
    ignored), and LA, P, RGBA, I;16... raise UnsupportedModeError (an OSError).
    Zero-size images raise EmptyImageError (a ValueError).
    """
    goal = target.goal(quality, target_size, target_psnr)
    if goal is None:
        quality = DEFAULT_QUALITY if quality is None else quality
        if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
            raise ValueError(f"quality must be an integer 1..100, got {quality!r}")
    if scale not in (None, 1, 2):
        raise ValueError(f"scale must be None, 1 or 2, got {scale!r}")
    if progressive not in (None, True, False):
        raise ValueError(f"progressive must be None, True or False, got {progressive!r}")
    if subsampling not in (None, "4:2:0"):
        raise ValueError(f"subsampling must be None or '4:2:0', got {subsampling!r}")
    if goal is not None:
        return target.encode(image, goal, scale=scale, progressive=progressive, subsampling=subsampling,
                             keep_metadata=keep_metadata,
                             bundle=bundle, tile=tile, **options).data
    prep = prepare(image)
    meta = metadata_from(image, options, keep_metadata)
    if prep.plain is not None:
        return encode_plain(prep.plain, quality, meta, progressive)
    bundle = resolve(bundle)
    nets = engine.TiledNets(bundle, [prep.rgb], tile)
    return engine.encode(bundle, nets, prep.grey, quality, scale, meta, progressive=progressive,
                         subsampling=subsampling, bilevel=prep.bilevel)[0].data


def save(image, fp, quality: int | None = None, **options) -> None:
    """Encode and write to a path or binary file object (options as encode's, target_size included)."""
    data = encode(image, quality, **options)
    if hasattr(fp, "write"):
        fp.write(data)
    else:
        with builtins.open(fp, "wb") as f:
            f.write(data)


# ---------------------------------------------------------------- decode

def decode(data: bytes, *, enhance: bool = False, bundle: Bundle | None = None,
           tile: int | None = None, device=None) -> Image.Image:
    """Decode jpegplus (or plain JPEG) bytes to a loaded PIL image.

    A jpegplus file comes back at its original size and mode through PostNet. A
    plain JPEG decodes exactly as Pillow decodes it, unless enhance=True, which
    runs PostNet at scale 1 on it (RGB and L files; others come back as Pillow
    decodes them). PostNet is told whether a file is 4:4:4 and restores it
    whole; with weights whose PostNet is not (older models), a fine 4:4:4 file
    keeps its own chroma, and the finest their plain decode (engine.postnet_use).
    A segment that is damaged, from a future version or does not match the
    image gives a SegmentWarning and the plain decode.

    PostNet runs on the CPU with the bundle's runtime (ONNX Runtime by default);
    `device` (a torch device such as "cuda") runs it through torch there, which
    needs `pip install 'jpegplus[torch]'` (RuntimeMissingError, an ImportError,
    without it).

    Raises what Pillow raises for bytes it cannot read (UnidentifiedImageError,
    OSError for truncated or broken data, DecompressionBombError), NotJpegError
    (an OSError) for other image formats, WeightsError when the weights cannot
    be loaded."""
    if not isinstance(data, bytes):
        data = bytes(data)
    if device is not None and str(device) != "cpu":
        from .runtime import require_torch

        require_torch(f"decode(device={str(device)!r})")
    with pillow_only():  # read the stored JPEG layer even when jpegplus.register() is active
        im = Image.open(io.BytesIO(data))
    if im.format not in ("JPEG", "MPO"):
        raise NotJpegError(f"not a JPEG file (found {im.format})")
    head = seg.read(im, data)
    im.load()
    if head is None and not (enhance and im.mode in ("RGB", "L")):
        return im
    bundle = resolve(bundle)
    if head is None:
        out = engine.post_image(bundle, im, 1, im.size, im.mode == "L", tile=tile, device=device)
    else:
        out = engine.post_image(bundle, im, head.scale, (head.width, head.height), head.grey, tile=tile,
                                device=device)
    return copy_info(im, out)


def open(fp, *, enhance: bool = False, device=None) -> Image.Image:  # noqa: A001 - mirrors PIL.Image.open
    """Read a path or binary file object and decode it (see decode)."""
    if hasattr(fp, "read"):
        return decode(fp.read(), enhance=enhance, device=device)
    with builtins.open(fp, "rb") as f:
        return decode(f.read(), enhance=enhance, device=device)
