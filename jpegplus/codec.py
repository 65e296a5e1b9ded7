"""jpegplus encode and decode: PreNet → rate–distortion requantisation → baseline JPEG
(+ APP9 segment) → PostNet.

Pixel arrays are uint8 (H, W, 3) RGB; network tensors are float (1, 3, H, W) in 0..1.
The networks run tile by tile (jpegplus.tiling), so memory stays bounded on
huge images: `tile` (input pixels per tile side, default tiling.TILE) trades
speed for memory and does not change the result beyond tiling.TOLERANCE.
"""
from __future__ import annotations

import builtins
import io
import warnings

import numpy as np
import torch
from PIL import Image, JpegImagePlugin

from . import segment as seg
from .bundle import Bundle, default_bundle
from .requant import manifest_options, requantise
from .errors import JpegPlusError, NotJpegError, SegmentError, SegmentWarning
from .jpeg import encode_array, read_tables
from .modes import prepare
from .tables import jpegplus_tables, quant_level
from .tiling import run_tiled, to_tensor, to_uint8  # noqa: F401 - to_tensor/to_uint8 kept for callers

MULTIPLE = 16  # full-size tensors are padded to this, so scale 2 keeps 8-px alignment
ROWS = 256     # rows per chunk when comparing or converting whole images (bounded memory)


# ---------------------------------------------------------------- helpers

def pad_to(arr: np.ndarray, multiple: int) -> np.ndarray:
    h, w = arr.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    return np.pad(arr, ((0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else arr


def run_net(net, x: torch.Tensor, level: float, scale: int) -> torch.Tensor:
    """One network on one image tensor (1, 3, h, w), untiled: the reference the tiled path is tested against."""
    with torch.inference_mode():
        return net(x, torch.tensor([level]), scale)


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) → (H, W) exactly as Pillow's convert("L"), a band of rows at a time."""
    out = np.empty(rgb.shape[:2], np.uint8)
    for r in range(0, rgb.shape[0], ROWS):
        out[r:r + ROWS] = np.asarray(Image.fromarray(rgb[r:r + ROWS]).convert("L"))
    return out


def squared_error(rec: np.ndarray, ref: np.ndarray) -> float:
    """Mean squared error (0..255 levels²) of two same-shape uint8 arrays, by bands of rows."""
    total = 0
    for r in range(0, rec.shape[0], ROWS):
        d = rec[r:r + ROWS].astype(np.int32) - ref[r:r + ROWS]
        total += int(np.einsum("i,i->", d.ravel(), d.ravel(), dtype=np.int64))  # "...,...->" fails on numpy 2.4
    return total / rec.size


def check_pixels(width: int, height: int) -> None:
    """Pillow's decompression-bomb rule, applied to a size a segment claims:
    DecompressionBombError above 2 × Image.MAX_IMAGE_PIXELS, a
    DecompressionBombWarning above it, nothing when the limit is None."""
    limit = Image.MAX_IMAGE_PIXELS
    if limit is None:
        return
    pixels = max(1, width) * max(1, height)
    if pixels > 2 * limit:
        raise Image.DecompressionBombError(f"Image size ({pixels} pixels) exceeds limit of {2 * limit} pixels, "
                                           "could be decompression bomb DOS attack.")
    if pixels > limit:
        warnings.warn(f"Image size ({pixels} pixels) exceeds limit of {limit} pixels, could be decompression "
                      "bomb DOS attack.", Image.DecompressionBombWarning, stacklevel=4)


def metadata_from(image, options: dict, keep_metadata: bool) -> dict:
    """Metadata save options: the caller's (None drops one), else (keep_metadata)
    the image's own info; EXIF size tags set to the full size (jpegplus.metadata)."""
    from .metadata import metadata_from as _metadata_from

    return _metadata_from(image, options, keep_metadata)


# ---------------------------------------------------------------- encode

def encode_at(bundle: Bundle, rgb: np.ndarray, grey: bool, scale: int, jpeg_quality: int, meta: dict,
              *, tile: int | None = None) -> bytes:
    """jpegplus file of `rgb` (H, W, 3) at one scale and internal JPEG quality."""
    h, w = rgb.shape[:2]
    t = bundle.manifest["tables"]
    tables = jpegplus_tables(jpeg_quality, t["flatness"], t["chroma_weight"])
    sh, sw = -(-h // scale), -(-w // scale)
    stored = run_tiled(bundle.nets["pre"], rgb, quant_level(tables), scale, (sw, sh),
                       multiple=MULTIPLE, upsamples=False, tile=tile)
    if grey:
        stored = to_grey(stored)
    return write_file(bundle, stored, tables, seg.Segment(scale, w, h, sw, sh, bundle.model_id, grey), meta)


def write_file(bundle: Bundle, stored: np.ndarray, tables: np.ndarray, head: seg.Segment, meta: dict) -> bytes:
    """The jpegplus file of pre-processed pixels (uint8 (h, w, 3) or grey (h, w)):
    the bundle's requantisation, baseline JPEG with `tables`, the sealed segment."""
    stored = requantise(stored, tables, **manifest_options(bundle.manifest["tables"]))
    return seg.seal(encode_array(stored, tables, extra=head.pack(), **meta), head)


def encode_plain(image: Image.Image, quality: int, meta: dict) -> bytes:
    """Pillow's own JPEG at `quality`, for modes the networks do not take (CMYK)."""
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=int(quality), **meta)
    return buf.getvalue()


def ladder_at(bundle: Bundle, quality: int) -> dict:
    """The ladder row for user quality 1..100: internal qualities per scale and λ."""
    lad = bundle.manifest["ladder"]
    i = int(quality) - 1
    return {"q1": lad["q1"][i], "q2": lad["q2"][i], "lambda": lad["lambda"][i]}


def reconstruct(data: bytes, bundle: Bundle, *, tile: int | None = None) -> np.ndarray:
    """What decode gives for a file this process just wrote, as uint8 (H, W, 3)
    RGB (grey files: three equal-weight channels before the L conversion).
    Opened without Pillow's decompression-bomb check: the bytes are our own."""
    im = JpegImagePlugin.JpegImageFile(io.BytesIO(data))
    head = seg.parse(seg.find(im.applist))
    im.load()
    return post_array(bundle, im, head.scale, (head.width, head.height), tile=tile)


def encode(image, quality: int = 75, *, scale: int | None = None, keep_metadata: bool = True,
           bundle: Bundle | None = None, tile: int | None = None, **options) -> bytes:
    """Encode a PIL image or uint8 array (H×W×3 RGB or H×W grey) to jpegplus bytes.

    quality 1..100 keeps Pillow's meaning (calibrated so that, on average, the
    file is no bigger and no worse in PSNR than Pillow's at the same quality).
    scale None chooses 1 or 2 per image by closed-loop rate–distortion; metadata
    options (exif, icc_profile, dpi, comment, xmp) are written, and taken from a
    PIL image's info when not given unless keep_metadata=False.

    Modes follow Pillow's JPEG writer (see jpegplus.modes): 1 and L are stored
    grey, RGB/RGBX/YCbCr in colour, CMYK as Pillow's plain CMYK JPEG (scale is
    ignored), and LA, P, RGBA, I;16... raise UnsupportedModeError (an OSError).
    Zero-size images raise EmptyImageError (a ValueError).
    """
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer 1..100, got {quality!r}")
    if scale not in (None, 1, 2):
        raise ValueError(f"scale must be None, 1 or 2, got {scale!r}")
    prep = prepare(image)
    meta = metadata_from(image, options, keep_metadata)
    if prep.plain is not None:
        return encode_plain(prep.plain, quality, meta)
    bundle = bundle or default_bundle()
    rgb, grey = prep.rgb, prep.grey
    row = ladder_at(bundle, quality)
    can_halve = row["q2"] > 0 and min(rgb.shape[:2]) >= 2 * MULTIPLE
    if scale is not None:
        q = row["q1"] if scale == 1 or row["q2"] <= 0 else row["q2"]
        return encode_at(bundle, rgb, grey, scale, q, meta, tile=tile)
    candidates = [encode_at(bundle, rgb, grey, 1, row["q1"], meta, tile=tile)]
    if not can_halve:
        return candidates[0]
    candidates.append(encode_at(bundle, rgb, grey, 2, row["q2"], meta, tile=tile))
    costs = []
    for data in candidates:
        rec = reconstruct(data, bundle, tile=tile)
        mse = squared_error(to_grey(rec), rgb[:, :, 0]) if grey else squared_error(rec, rgb)
        del rec  # one full-size reconstruction alive at a time
        costs.append(mse + row["lambda"] * 8 * len(data) / (rgb.shape[0] * rgb.shape[1]))
    return candidates[int(np.argmin(costs))]


def save(image, fp, quality: int = 75, **options) -> None:
    """Encode and write to a path or binary file object."""
    data = encode(image, quality, **options)
    if hasattr(fp, "write"):
        fp.write(data)
    else:
        with builtins.open(fp, "wb") as f:
            f.write(data)


# ---------------------------------------------------------------- decode

def read_segment(im: Image.Image, data: bytes | None) -> seg.Segment | None:
    """The file's trusted segment, or None (plain JPEG, or a segment that does
    not match the image: then a SegmentWarning says why).

    Needs only the opened (not loaded) image. With `data` (the file's bytes)
    the segment's check value must match its fields and the scan. The original
    size it claims obeys Image.MAX_IMAGE_PIXELS as Pillow's own sizes do
    (DecompressionBombError beyond twice the limit)."""
    payload = seg.find(getattr(im, "applist", None))
    if payload is None:
        return None
    try:
        head = seg.parse(payload)
        if im.size != (head.stored_width, head.stored_height):
            raise SegmentError(f"segment says the stored image is {head.stored_width}x{head.stored_height}, "
                               f"the file holds {im.size[0]}x{im.size[1]}")
        if im.mode != ("L" if head.grey else "RGB"):
            raise SegmentError(f"segment says {'grey' if head.grey else 'colour'}, the file holds mode {im.mode}")
        if data is not None:
            seg.verify(data, payload)
    except SegmentError as e:
        warnings.warn(f"{e}; decoding as plain JPEG", SegmentWarning, stacklevel=3)
        return None
    check_pixels(head.width, head.height)
    return head


def post_array(bundle: Bundle, im: Image.Image, scale: int, size: tuple[int, int], *,
               tile: int | None = None) -> np.ndarray:
    """PostNet on a loaded JPEG: stored pixels → uint8 (h, w, 3) of `size` (w, h)."""
    try:
        level = quant_level(read_tables(im))
    except ValueError as e:
        raise JpegPlusError(f"cannot enhance this JPEG: {e}") from None
    stored = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
    return run_tiled(bundle.nets["post"], stored, level, scale, size,
                     multiple=MULTIPLE // scale, upsamples=True, tile=tile)


def post_process(bundle: Bundle, im: Image.Image, scale: int, size: tuple[int, int], grey: bool,
                 *, tile: int | None = None) -> Image.Image:
    """PostNet on a decoded JPEG: stored pixels → full-size image of `size` (w, h)."""
    out = post_array(bundle, im, scale, size, tile=tile)
    return Image.fromarray(to_grey(out) if grey else out)


def copy_info(src: Image.Image, dst: Image.Image) -> Image.Image:
    """Copy src.info onto dst (keys dst already has are kept); returns dst."""
    from .metadata import copy_info as _copy_info

    return _copy_info(src, dst)


def decode(data: bytes, *, enhance: bool = False, bundle: Bundle | None = None,
           tile: int | None = None) -> Image.Image:
    """Decode jpegplus (or plain JPEG) bytes to a loaded PIL image.

    A jpegplus file comes back at its original size and mode through PostNet. A
    plain JPEG decodes exactly as Pillow decodes it, unless enhance=True, which
    runs PostNet at scale 1 on it (RGB and L files; others come back as Pillow
    decodes them). A segment that is damaged, from a future version or does not
    match the image gives a SegmentWarning and the plain decode.

    Raises what Pillow raises for bytes it cannot read (UnidentifiedImageError,
    OSError for truncated or broken data, DecompressionBombError), NotJpegError
    (an OSError) for other image formats, WeightsError when the weights cannot
    be loaded."""
    if not isinstance(data, bytes):
        data = bytes(data)
    from .plugin import pillow_only

    with pillow_only():  # read the stored JPEG layer even when jpegplus.register() is active
        im = Image.open(io.BytesIO(data))
    if im.format not in ("JPEG", "MPO"):
        raise NotJpegError(f"not a JPEG file (found {im.format})")
    head = read_segment(im, data)
    im.load()
    if head is None and not (enhance and im.mode in ("RGB", "L")):
        return im
    bundle = bundle or default_bundle()
    if head is None:
        out = post_process(bundle, im, 1, im.size, im.mode == "L", tile=tile)
    else:
        out = post_process(bundle, im, head.scale, (head.width, head.height), head.grey, tile=tile)
    return copy_info(im, out)


def open(fp, *, enhance: bool = False) -> Image.Image:  # noqa: A001 - mirrors PIL.Image.open
    """Read a path or binary file object and decode it (see decode)."""
    if hasattr(fp, "read"):
        return decode(fp.read(), enhance=enhance)
    with builtins.open(fp, "rb") as f:
        return decode(f.read(), enhance=enhance)
