"""The private APP9 segment that tells jpegplus how to decode a file.

Layout (big-endian), after the marker FF E9 and its 2-byte length:
    b"jpegplus\\0"  identifier (lower case: ExifTool reads APPn payloads that
                    start with "JP" as JUMBF)
    u8  version     FORMAT_VERSION
    u8  scale       1 or 2: stored size = ceil(original / scale)
    u16 flags       bit 0: the original was greyscale
    u32 width, u32 height               original size in pixels
    u32 stored_width, u32 stored_height  size of the JPEG image itself
    8s  model_id    first 8 hex digits naming the weights that wrote the file
    u32 scan_crc    check value: CRC-32 over the segment's own fields (identifier
                    to model_id) continued over the entropy-coded data after
                    SOS. A file that another tool re-encoded while keeping the
                    segment, or a segment damaged in any field, is noticed.

Whether a file's segment can be trusted is decided once, by `trusted` (no torch,
no pixels): the decoder, the Pillow plugin, `jpegplus info`, the benchmark and
the calibration all ask it.
"""
from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass

from PIL import Image, JpegImagePlugin

from .errors import SegmentError, SegmentWarning

MARKER = 0xE9  # APP9
IDENT = b"jpegplus\x00"
FORMAT_VERSION = 1
_BODY = struct.Struct(">BBHIIII8sI")
GREY = 1


@dataclass(frozen=True)
class Segment:
    scale: int
    width: int
    height: int
    stored_width: int
    stored_height: int
    model_id: str
    grey: bool = False
    scan_crc: int = 0
    version: int = FORMAT_VERSION

    def payload(self) -> bytes:
        """The APP9 payload (identifier and fields), without marker and length."""
        return IDENT + _BODY.pack(self.version, self.scale, GREY if self.grey else 0, self.width, self.height,
                                  self.stored_width, self.stored_height,
                                  self.model_id.encode("ascii")[:8].ljust(8, b"0"), self.scan_crc)

    def pack(self) -> bytes:
        """Complete marker segment (FF E9, length, payload)."""
        body = self.payload()
        return bytes([0xFF, MARKER]) + struct.pack(">H", len(body) + 2) + body


def is_segment(payload: bytes) -> bool:
    """True when an APP9 payload (without marker and length) is a jpegplus one."""
    return payload.startswith(IDENT)


def parse(payload: bytes) -> Segment:
    """Segment from an APP9 payload; SegmentError if it is malformed or from a future version."""
    if not is_segment(payload):
        raise SegmentError("not a jpegplus segment")
    body = payload[len(IDENT):]
    if len(body) < 1:
        raise SegmentError("truncated jpegplus segment")
    if body[0] != FORMAT_VERSION:
        raise SegmentError(f"jpegplus segment version {body[0]} is not supported (this is version {FORMAT_VERSION})")
    if len(body) != _BODY.size:
        raise SegmentError(f"jpegplus segment has {len(body)} bytes, expected {_BODY.size}")
    version, scale, flags, w, h, sw, sh, model, crc = _BODY.unpack(body)
    if flags & ~GREY:
        raise SegmentError(f"jpegplus segment has unknown flags {flags:#06x}")
    if scale not in (1, 2):
        raise SegmentError(f"jpegplus segment has scale {scale}")
    if min(w, h, sw, sh) < 1 or sw != -(-w // scale) or sh != -(-h // scale):
        raise SegmentError(f"jpegplus segment sizes are inconsistent: {w}x{h} at scale {scale} stored as {sw}x{sh}")
    try:
        model_id = model.decode("ascii")
    except UnicodeDecodeError as e:
        raise SegmentError("jpegplus segment model id is not ASCII") from e
    return Segment(scale, w, h, sw, sh, model_id, bool(flags & GREY), crc, version)


def scan_start(data: bytes) -> int:
    """Offset of the entropy-coded data after the first SOS marker segment."""
    if data[:2] != b"\xff\xd8":
        raise SegmentError("not a JPEG (no SOI marker)")
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise SegmentError("malformed JPEG marker structure")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if length < 2:
            raise SegmentError(f"malformed JPEG marker length {length}")
        if marker == 0xDA:
            return min(i + 2 + length, len(data))
        i += 2 + length
    raise SegmentError("no SOS marker found")


def scan_crc(data: bytes) -> int:
    """CRC-32 of everything after the first SOS marker segment (the entropy-coded data and EOI)."""
    return zlib.crc32(memoryview(data)[scan_start(data):])


def check_value(data: bytes, fields: bytes) -> int:
    """CRC-32 of `fields` (a segment payload without its last 4 bytes) continued over the scan of `data`."""
    return zlib.crc32(memoryview(data)[scan_start(data):], zlib.crc32(fields))


def seal(data: bytes, segment: Segment) -> bytes:
    """Write the check value into the (already present, same-length) segment of `data`."""
    placeholder = segment.pack()
    pos = data.find(placeholder)
    if pos < 0:
        raise SegmentError("segment placeholder not found in encoded data")
    check = check_value(data, segment.payload()[:-4])
    sealed = Segment(**{**segment.__dict__, "scan_crc": check}).pack()
    return data[:pos] + sealed + data[pos + len(sealed):]


def verify(data: bytes, payload: bytes) -> None:
    """SegmentError unless the APP9 `payload` was sealed into exactly these bytes:
    every field of the segment and the whole scan unchanged since jpegplus wrote them."""
    if len(payload) < 4 or check_value(data, payload[:-4]) != struct.unpack(">I", payload[-4:])[0]:
        raise SegmentError("the segment or the image data changed since jpegplus wrote it "
                           "(damaged, or re-encoded by another tool?)")


def find(applist) -> bytes | None:
    """The payload of the first jpegplus segment in Pillow's `im.applist`, or None."""
    for name, payload in applist or ():
        if name == "APP9" and is_segment(payload):
            return payload
    return None


def trusted(im: Image.Image, data: bytes | None = None) -> Segment | None:
    """The segment of an opened (not loaded) JPEG `im`, or None when it has none.

    SegmentError says why a segment that is there cannot be trusted: it is
    malformed or from a future version, the file's size or mode is not the
    stored image it describes, or (with `data`, the file's bytes) its check
    value does not match its fields and the scan."""
    payload = find(getattr(im, "applist", None))
    if payload is None:
        return None
    head = parse(payload)
    if im.size != (head.stored_width, head.stored_height):
        raise SegmentError(f"segment says the stored image is {head.stored_width}x{head.stored_height}, "
                           f"the file holds {im.size[0]}x{im.size[1]}")
    if im.mode != ("L" if head.grey else "RGB"):
        raise SegmentError(f"segment says {'grey' if head.grey else 'colour'}, the file holds mode {im.mode}")
    if data is not None:
        verify(data, payload)
    return head


def read(im: Image.Image, data: bytes | None) -> Segment | None:
    """The segment a decoder follows: `trusted`, except that a segment that
    cannot be trusted gives a SegmentWarning and None (the file decodes as
    plain JPEG). The original size it claims obeys Image.MAX_IMAGE_PIXELS as
    Pillow's own sizes do (DecompressionBombError beyond twice the limit)."""
    try:
        head = trusted(im, data)
    except SegmentError as e:
        warnings.warn(f"{e}; decoding as plain JPEG", SegmentWarning, stacklevel=3)
        return None
    if head is not None:
        check_pixels(head.width, head.height)
    return head


def of_bytes(data: bytes) -> Segment | None:
    """`trusted` of a whole JPEG file's bytes, read by Pillow's own JPEG plugin."""
    return trusted(JpegImagePlugin.JpegImageFile(io.BytesIO(data)), data)


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
