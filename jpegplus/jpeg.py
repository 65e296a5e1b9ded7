"""The real JPEG codec (libjpeg-turbo through Pillow): 4:2:0 (or 4:4:4) with
optimised Huffman tables, reading back what a file holds, and the switch that
makes a registered jpegplus plugin step aside for Pillow's own JPEG plugin.

Arrays are uint8 (H, W, 3) RGB or (H, W) grey.
"""
from __future__ import annotations

import io
import threading
from contextlib import contextmanager

import numpy as np
from PIL import Image, ImageFile, JpegImagePlugin

from .tables import pillow_qtables

_state = threading.local()


@contextmanager
def pillow_only():
    """Within this block (this thread), a registered jpegplus plugin behaves
    exactly as Pillow's own JPEG plugin. jpegplus reads and writes its plain
    JPEG layer through Pillow this way, so a registered plugin never decodes twice."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1


def bypassed() -> bool:
    """True inside a pillow_only() block of this thread."""
    return getattr(_state, "depth", 0) > 0


SUBSAMPLINGS = ("4:2:0", "4:4:4")  # the chroma layouts jpegplus writes (grey files have none)
# With optimised Huffman codes (and in progressive files) libjpeg writes the whole file at once into Pillow's
# buffer, which Pillow sizes at 2 bytes a pixel (tables given) and at least ImageFile.MAXBLOCK; libjpeg cannot
# suspend there, so a bigger file fails ("broken data stream"): noise at the finest tables and 4:4:4 takes
# 2.5 bytes a pixel. A baseline code spends at most 16 + 11 bits on a coefficient: under 4 bytes a sample.
WORST_BYTES_PER_SAMPLE = 4
_big_buffer = threading.Lock()


def encode_array(arr: np.ndarray, tables: np.ndarray, extra: bytes = b"", *, progressive: bool = False,
                 subsampling: str = "4:2:0", **metadata) -> bytes:
    """JPEG bytes of `arr` quantised with `tables` (2, 8, 8), chroma at
    `subsampling` (one of SUBSAMPLINGS), optimised Huffman: baseline, or progressive with libjpeg's default scan
    script (the same coefficients, so the same decoded pixels). `extra` is raw
    marker segments written after APP0/APP1; `metadata` goes to Pillow (exif,
    icc_profile, dpi, comment, xmp)."""
    im = Image.fromarray(arr)
    qt = pillow_qtables(tables)
    if im.mode == "L":
        qt = qt[:1]
    meta = {k: v for k, v in metadata.items() if v is not None}

    def save() -> bytes:
        buf = io.BytesIO()
        with pillow_only():  # Pillow's own writer even while jpegplus.register() is active
            im.save(buf, "JPEG", qtables=qt, subsampling=subsampling, optimize=True, progressive=progressive,
                    extra=extra, **meta)
        return buf.getvalue()

    try:
        return save()
    except OSError:  # the file outgrew Pillow's buffer: again with room for the worst case (rare, so serialised)
        with _big_buffer:
            usual = ImageFile.MAXBLOCK
            ImageFile.MAXBLOCK = max(usual, WORST_BYTES_PER_SAMPLE * arr.size + (1 << 20))  # + markers, metadata
            try:
                return save()
            finally:
                ImageFile.MAXBLOCK = usual


def subsampling_of(im: Image.Image) -> str | None:
    """The chroma layout of an opened JPEG: "4:4:4", "4:2:2" or "4:2:0" (None: grey or another layout)."""
    return {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}.get(JpegImagePlugin.get_sampling(im)) if im.mode != "L" else None


def decode_array(data: bytes) -> np.ndarray:
    """Decode JPEG bytes to uint8 RGB (H, W, 3) exactly as Pillow does."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def read_tables(im: Image.Image) -> np.ndarray:
    """Quantisation tables of an opened JPEG as (2, 8, 8) int in natural order
    (chroma = luma for grey files). Pillow keeps them in natural order."""
    q = getattr(im, "quantization", None) or {}
    if 0 not in q:
        raise ValueError("JPEG has no luma quantisation table")
    luma = np.asarray(q[0], dtype=np.int64).reshape(8, 8)
    chroma = np.asarray(q.get(1, q[0]), dtype=np.int64).reshape(8, 8)
    return np.stack([luma, chroma])
