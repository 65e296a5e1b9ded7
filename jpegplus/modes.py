"""Input images of every mode, handled as Pillow's JPEG writer handles them.

Pillow writes modes 1 and L as greyscale JPEG, RGB, RGBX and YCbCr as colour
JPEG, CMYK as an Adobe CMYK JPEG, and refuses every other mode (LA, P, RGBA,
I;16, I, F...) with OSError("cannot write mode X as JPEG"). jpegplus does the
same: grey and colour go through the networks; CMYK is written as a plain
Pillow JPEG at the same quality (the networks are RGB only), and refused modes
raise UnsupportedModeError, an OSError with Pillow's message. Pillow does not
apply EXIF orientation when saving, so neither does jpegplus: the pixels are
stored as given and the orientation tag is kept with the rest of the EXIF.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import EmptyImageError, JpegPlusError, UnsupportedModeError

GREY_MODES = ("1", "L")
COLOUR_MODES = ("RGB", "RGBX", "YCbCr")
PLAIN_MODES = ("CMYK",)  # Pillow can write them, the networks cannot: plain JPEG
ARRAY_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}  # channels of an (H, W, C) array


@dataclass
class Prepared:
    """An input ready to encode. rgb: uint8 (H, W, 3) for the networks, or None
    when `plain` (a PIL image to write as plain JPEG) is set instead; bilevel:
    the input was black and white (mode 1; engine.encode stores it as is)."""
    rgb: np.ndarray | None
    grey: bool
    plain: Image.Image | None = None
    bilevel: bool = False


def refuse(mode: str) -> UnsupportedModeError:
    return UnsupportedModeError(f"cannot write mode {mode} as JPEG")


def check_size(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise EmptyImageError(f"cannot write empty image ({width}x{height})")


def from_pil(image: Image.Image) -> Prepared:
    check_size(*image.size)
    mode = image.mode
    if mode in PLAIN_MODES:
        return Prepared(None, False, image)
    if mode not in GREY_MODES + COLOUR_MODES:
        raise refuse(mode)
    image.load()
    if mode in GREY_MODES:
        grey = np.asarray(image.convert("L"))
        return Prepared(np.repeat(grey[:, :, None], 3, 2), True, bilevel=mode == "1")
    # asarray of an RGB image is already a fresh (H, W, 3) array: no second copy
    return Prepared(np.asarray(image if mode == "RGB" else image.convert("RGB")), False)


def from_array(arr) -> Prepared:
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise JpegPlusError(f"numpy input must be uint8 (0..255), got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3):
        raise JpegPlusError(f"numpy input must be H×W or H×W×3, got shape {arr.shape}")
    check_size(arr.shape[1], arr.shape[0])
    if arr.ndim == 2:
        return Prepared(np.repeat(arr[:, :, None], 3, 2), True)
    if arr.shape[2] != 3:
        if arr.shape[2] in ARRAY_MODES:
            raise refuse(ARRAY_MODES[arr.shape[2]])
        raise JpegPlusError(f"numpy input must be H×W or H×W×3, got shape {arr.shape}")
    return Prepared(np.ascontiguousarray(arr), False)


def prepare(image) -> Prepared:
    """PIL image or uint8 array (H×W grey, H×W×1, H×W×3 RGB) → Prepared.

    Raises UnsupportedModeError (an OSError) for modes Pillow cannot write as
    JPEG, EmptyImageError (a ValueError) for zero-size images, and
    JpegPlusError for arrays of another dtype or shape."""
    if isinstance(image, Image.Image):
        return from_pil(image)
    return from_array(image)
