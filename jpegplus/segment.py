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
    u32 scan_crc    CRC-32 of the entropy-coded data after SOS, so a file that
                    another tool re-encoded while keeping the segment is noticed
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from .errors import SegmentError

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

    def pack(self) -> bytes:
        """Complete marker segment (FF E9, length, payload)."""
        body = IDENT + _BODY.pack(self.version, self.scale, GREY if self.grey else 0, self.width, self.height,
                                  self.stored_width, self.stored_height, self.model_id.encode("ascii")[:8].ljust(8, b"0"),
                                  self.scan_crc)
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
    if scale not in (1, 2):
        raise SegmentError(f"jpegplus segment has scale {scale}")
    if min(w, h, sw, sh) < 1 or sw != -(-w // scale) or sh != -(-h // scale):
        raise SegmentError(f"jpegplus segment sizes are inconsistent: {w}x{h} at scale {scale} stored as {sw}x{sh}")
    try:
        model_id = model.decode("ascii")
    except UnicodeDecodeError as e:
        raise SegmentError("jpegplus segment model id is not ASCII") from e
    return Segment(scale, w, h, sw, sh, model_id, bool(flags & GREY), crc, version)


def scan_crc(data: bytes) -> int:
    """CRC-32 of everything after the first SOS marker segment (the entropy-coded data and EOI)."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise SegmentError("malformed JPEG marker structure")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker == 0xDA:
            return zlib.crc32(data[i + 2 + length:])
        i += 2 + length
    raise SegmentError("no SOS marker found")


def seal(data: bytes, segment: Segment) -> bytes:
    """Write the scan CRC into the (already present, same-length) segment of `data`."""
    placeholder = segment.pack()
    pos = data.find(placeholder)
    if pos < 0:
        raise SegmentError("segment placeholder not found in encoded data")
    sealed = Segment(**{**segment.__dict__, "scan_crc": scan_crc(data)}).pack()
    return data[:pos] + sealed + data[pos + len(sealed):]


def find(applist) -> bytes | None:
    """The payload of the first jpegplus segment in Pillow's `im.applist`, or None."""
    for name, payload in applist or ():
        if name == "APP9" and is_segment(payload):
            return payload
    return None
