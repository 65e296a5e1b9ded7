"""jpegplus encode and decode: PreNet → baseline JPEG (+ APP9 segment) → PostNet.

Pixel arrays are uint8 (H, W, 3) RGB; network tensors are float (1, 3, H, W) in 0..1.
"""
from __future__ import annotations

import builtins
import io
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import segment as seg
from .bundle import Bundle, default_bundle
from .errors import JpegPlusError, SegmentError, SegmentWarning
from .jpeg import encode_array, read_tables
from .tables import jpegplus_tables, quant_level

METADATA_KEYS = ("exif", "icc_profile", "dpi", "comment", "xmp")
MULTIPLE = 16  # full-size tensors are padded to this, so scale 2 keeps 8-px alignment


# ---------------------------------------------------------------- helpers

def to_array(image) -> tuple[np.ndarray, bool]:
    """PIL image or uint8 array → (uint8 RGB (H, W, 3), was_grey)."""
    if isinstance(image, Image.Image):
        grey = image.mode in ("1", "L", "I;16", "I", "F", "LA")
        image.load()
        rgb = image.convert("RGB") if image.mode != "RGB" else image
        return np.asarray(rgb), grey
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise JpegPlusError(f"numpy input must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, 2), True
    if arr.ndim == 3 and arr.shape[2] == 3:
        return np.ascontiguousarray(arr), False
    raise JpegPlusError(f"numpy input must be H×W or H×W×3, got shape {arr.shape}")


def pad_to(arr: np.ndarray, multiple: int) -> np.ndarray:
    h, w = arr.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    return np.pad(arr, ((0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else arr


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1)[None].float() / 255


def to_uint8(t: torch.Tensor) -> np.ndarray:
    return (t[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def run_net(net, x: torch.Tensor, level: float, scale: int) -> torch.Tensor:
    """One network on one image tensor (1, 3, h, w)."""
    with torch.inference_mode():
        return net(x, torch.tensor([level]), scale)


def metadata_from(image, options: dict, keep_metadata: bool) -> dict:
    """Metadata save options: the caller's, else (keep_metadata) the image's own info."""
    meta = {k: options[k] for k in METADATA_KEYS if options.get(k) is not None}
    if keep_metadata and isinstance(image, Image.Image):
        for k in METADATA_KEYS:
            if k not in meta and image.info.get(k) is not None:
                meta[k] = image.info[k]
    return meta


# ---------------------------------------------------------------- encode

def encode_at(bundle: Bundle, rgb: np.ndarray, grey: bool, scale: int, jpeg_quality: int, meta: dict) -> bytes:
    """jpegplus file of `rgb` (H, W, 3) at one scale and internal JPEG quality."""
    h, w = rgb.shape[:2]
    t = bundle.manifest["tables"]
    tables = jpegplus_tables(jpeg_quality, t["flatness"], t["chroma_weight"])
    x = to_tensor(pad_to(rgb, MULTIPLE))
    stored = to_uint8(run_net(bundle.nets["pre"], x, quant_level(tables), scale))
    sh, sw = -(-h // scale), -(-w // scale)
    stored = stored[:sh, :sw]
    if grey:
        stored = np.asarray(Image.fromarray(stored).convert("L"))
    head = seg.Segment(scale, w, h, sw, sh, bundle.model_id, grey)
    return seg.seal(encode_array(stored, tables, extra=head.pack(), **meta), head)


def ladder_at(bundle: Bundle, quality: int) -> dict:
    """The ladder row for user quality 1..100: internal qualities per scale and λ."""
    lad = bundle.manifest["ladder"]
    i = int(quality) - 1
    return {"q1": lad["q1"][i], "q2": lad["q2"][i], "lambda": lad["lambda"][i]}


def encode(image, quality: int = 75, *, scale: int | None = None, keep_metadata: bool = True,
           bundle: Bundle | None = None, **options) -> bytes:
    """Encode a PIL image or uint8 array (H×W×3 RGB or H×W grey) to jpegplus bytes.

    quality 1..100 keeps Pillow's meaning (calibrated so that, on average, the
    file is no bigger and no worse in PSNR than Pillow's at the same quality).
    scale None chooses 1 or 2 per image by closed-loop rate–distortion; metadata
    options (exif, icc_profile, dpi, comment, xmp) are written, and taken from a
    PIL image's info when not given unless keep_metadata=False.
    """
    if not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer 1..100, got {quality!r}")
    if scale not in (None, 1, 2):
        raise ValueError(f"scale must be None, 1 or 2, got {scale!r}")
    bundle = bundle or default_bundle()
    rgb, grey = to_array(image)
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise JpegPlusError(f"cannot encode an empty image of shape {rgb.shape}")
    meta = metadata_from(image, options, keep_metadata)
    row = ladder_at(bundle, quality)
    can_halve = row["q2"] > 0 and min(rgb.shape[:2]) >= 2 * MULTIPLE
    if scale is not None:
        q = row["q1"] if scale == 1 or row["q2"] <= 0 else row["q2"]
        return encode_at(bundle, rgb, grey, scale, q, meta)
    candidates = [encode_at(bundle, rgb, grey, 1, row["q1"], meta)]
    if can_halve:
        candidates.append(encode_at(bundle, rgb, grey, 2, row["q2"], meta))
    if len(candidates) == 1:
        return candidates[0]
    ref = rgb.astype(np.float64)
    if grey:
        ref = np.asarray(Image.fromarray(rgb).convert("L").convert("RGB"), np.float64)
    costs = []
    for data in candidates:
        rec = np.asarray(decode(data, bundle=bundle).convert("RGB"), np.float64)
        mse = np.mean((rec - ref) ** 2)
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
    not match the image: then a SegmentWarning says why)."""
    payload = seg.find(getattr(im, "applist", None))
    if payload is None:
        return None
    try:
        head = seg.parse(payload)
        if im.size != (head.stored_width, head.stored_height):
            raise SegmentError(f"segment says the stored image is {head.stored_width}x{head.stored_height}, "
                               f"the file holds {im.size[0]}x{im.size[1]}")
        if data is not None and seg.scan_crc(data) != head.scan_crc:
            raise SegmentError("the image data changed since jpegplus wrote it (re-encoded by another tool?)")
    except SegmentError as e:
        warnings.warn(f"{e}; decoding as plain JPEG", SegmentWarning, stacklevel=3)
        return None
    return head


def post_process(bundle: Bundle, im: Image.Image, scale: int, size: tuple[int, int], grey: bool) -> Image.Image:
    """PostNet on a decoded JPEG: stored pixels → full-size image of `size` (w, h)."""
    level = quant_level(read_tables(im))
    stored = np.asarray(im.convert("RGB"))
    y = to_tensor(pad_to(stored, MULTIPLE // scale))
    out = to_uint8(run_net(bundle.nets["post"], y, level, scale))[: size[1], : size[0]]
    result = Image.fromarray(out)
    return result.convert("L") if grey else result


def copy_info(src: Image.Image, dst: Image.Image) -> Image.Image:
    for k, v in src.info.items():
        dst.info.setdefault(k, v)
    return dst


def decode(data: bytes, *, enhance: bool = False, bundle: Bundle | None = None) -> Image.Image:
    """Decode jpegplus (or plain JPEG) bytes to a loaded PIL image.

    A jpegplus file comes back at its original size and mode through PostNet. A
    plain JPEG decodes exactly as Pillow decodes it, unless enhance=True, which
    runs PostNet at scale 1 on it."""
    im = Image.open(io.BytesIO(data))
    if im.format != "JPEG":
        raise JpegPlusError(f"not a JPEG file (found {im.format})")
    im.load()
    head = read_segment(im, data)
    if head is None and not (enhance and im.mode in ("RGB", "L")):
        return im
    bundle = bundle or default_bundle()
    if head is None:
        out = post_process(bundle, im, 1, im.size, im.mode == "L")
    else:
        out = post_process(bundle, im, head.scale, (head.width, head.height), head.grey)
    return copy_info(im, out)


def open(fp, *, enhance: bool = False) -> Image.Image:  # noqa: A001 - mirrors PIL.Image.open
    """Read a path or binary file object and decode it (see decode)."""
    if hasattr(fp, "read"):
        return decode(fp.read(), enhance=enhance)
    with builtins.open(fp, "rb") as f:
        return decode(f.read(), enhance=enhance)
