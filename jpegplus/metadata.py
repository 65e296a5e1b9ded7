"""Metadata that travels with a jpegplus file: which metadata a save writes
(Pillow's rule: what the save call is given), the EXIF size fix-up, and
copying info onto a decoded image.

A jpegplus file may store the picture at half size, but its EXIF must describe
the picture the user gets back, so the EXIF width and height tags are set to
the full (original) size in pixels.
"""
from __future__ import annotations

import struct

METADATA_KEYS = ("exif", "icc_profile", "dpi", "comment", "xmp")
PILLOW_TAKES_FROM_INFO = ("comment",)  # what Pillow's JPEG writer takes from im.info when not passed

EXIF_HEADER = b"Exif\x00\x00"
IFD0_SIZE_TAGS = (0x0100, 0x0101)   # ImageWidth, ImageLength
EXIF_SIZE_TAGS = (0xA002, 0xA003)   # PixelXDimension (ExifImageWidth), PixelYDimension
EXIF_IFD_POINTER = 0x8769
SHORT, LONG = 3, 4


def image_size(image) -> tuple[int, int] | None:
    """(width, height) in pixels of a PIL image or an (H, W[, C]) array; None if unknown."""
    size = getattr(image, "size", None)
    if isinstance(size, tuple) and len(size) == 2:
        return size
    shape = getattr(image, "shape", None)
    if shape is not None and len(shape) >= 2:
        return int(shape[1]), int(shape[0])
    return None


def metadata_from(image, options: dict, keep_metadata: bool = False) -> dict:
    """The metadata save options (exif, icc_profile, dpi, comment, xmp) to write.

    Pillow's rule, as its JPEG writer applies it: a key the caller passes is
    written (passing it as None, or empty, drops it), and of a PIL image's
    `info` only the comment is taken when not passed. keep_metadata=True opts
    in to copying every other key from `info` too (what pillow-heif does).
    EXIF width and height tags are set to the image's own size (see fix_exif_size).
    """
    info = getattr(image, "info", None) or {}
    meta = {}
    for key in METADATA_KEYS:
        if key in options:
            value = options[key]
        elif keep_metadata or key in PILLOW_TAKES_FROM_INFO:
            value = info.get(key)
        else:
            value = None
        if value is not None:
            meta[key] = value
    size = image_size(image)
    if "exif" in meta and size is not None:
        meta["exif"] = fix_exif_size(meta["exif"], *size)
    return meta


def copy_info(src, dst):
    """Copy `src.info` onto `dst.info` without replacing keys `dst` already has; returns dst."""
    for key, value in src.info.items():
        dst.info.setdefault(key, value)
    return dst


def fix_exif_size(exif, width: int, height: int):
    """EXIF with its size tags (IFD0 ImageWidth/ImageLength, Exif IFD
    PixelX/YDimension) set to `width` × `height` pixels, where they exist.

    `exif` is raw EXIF bytes (with or without the b"Exif\\0\\0" header) or a
    PIL.Image.Exif (serialised first, as Pillow's writer would; the caller's
    object is not changed). Tags are patched in place, so every other byte
    (maker notes included) is kept; bytes that are not a readable TIFF
    structure come back unchanged. Tags that are absent are not added.
    """
    if hasattr(exif, "tobytes") and not isinstance(exif, (bytes, bytearray)):
        exif = exif.tobytes()
    head = len(EXIF_HEADER) if bytes(exif[:6]) == EXIF_HEADER else 0
    buf = bytearray(exif)
    try:
        patched = _patch_tiff(memoryview(buf)[head:], width, height)
    except (struct.error, IndexError, ValueError):
        return exif
    return bytes(buf) if patched else exif


def _patch_tiff(tiff: memoryview, width: int, height: int) -> bool:
    """Patch the size tags of a TIFF structure in place; True if any changed."""
    order = {b"II": "<", b"MM": ">"}.get(bytes(tiff[:2]))
    if order is None:
        raise ValueError("not a TIFF header")
    ifd0 = struct.unpack_from(order + "I", tiff, 4)[0]
    changed = False
    entries = _entries(tiff, order, ifd0)
    for tag, value in zip(IFD0_SIZE_TAGS, (width, height)):
        changed |= _set(tiff, order, entries.get(tag), value)
    pointer = entries.get(EXIF_IFD_POINTER)
    if pointer is not None:
        exif_ifd = struct.unpack_from(order + "I", tiff, pointer + 8)[0]
        sub = _entries(tiff, order, exif_ifd)
        for tag, value in zip(EXIF_SIZE_TAGS, (width, height)):
            changed |= _set(tiff, order, sub.get(tag), value)
    return changed


def _entries(tiff: memoryview, order: str, offset: int) -> dict[int, int]:
    """{tag: offset of its 12-byte entry} of the IFD at `offset`."""
    count = struct.unpack_from(order + "H", tiff, offset)[0]
    if offset + 2 + 12 * count > len(tiff):
        raise ValueError("IFD runs past the end of the EXIF data")
    return {struct.unpack_from(order + "H", tiff, offset + 2 + 12 * i)[0]: offset + 2 + 12 * i for i in range(count)}


def _set(tiff: memoryview, order: str, entry: int | None, value: int) -> bool:
    """Write `value` into a one-value SHORT or LONG entry; True if the bytes changed."""
    if entry is None:
        return False
    kind, count = struct.unpack_from(order + "HI", tiff, entry + 2)
    if count != 1 or kind not in (SHORT, LONG):
        return False
    fmt = order + ("H" if kind == SHORT else "I")
    if struct.unpack_from(fmt, tiff, entry + 8)[0] == value:
        return False
    if kind == SHORT and value > 0xFFFF:
        # SHORT cannot hold it; the value field has 4 bytes either way, so make it LONG
        struct.pack_into(order + "HI", tiff, entry + 2, LONG, 1)
        fmt = order + "I"
    struct.pack_into(order + "I", tiff, entry + 8, 0)
    struct.pack_into(fmt, tiff, entry + 8, value)
    return True
