"""The private APP9 segment that tells jpegplus how to decode a file.

Layout (big-endian), after the marker FF E9 and its 2-byte length:
    b"jpegplus\\0"  identifier (lower case: ExifTool reads APPn payloads that
                    start with "JP" as JUMBF)
    u8  version     1 or 2 (FORMAT_VERSION, 2, is what this version writes)
    u8  scale       1 or 2: stored size = ceil(original / scale)
    u16 flags       bit 0: the original was greyscale; bit 1 (AS_STORED, scale 1
                    only): show the stored image as it is, without PostNet
                    (what the encoder writes for black-and-white inputs, on
                    which PostNet, trained on photos, loses; engine.postnet_use)
    u32 width, u32 height               original size in pixels
    u32 stored_width, u32 stored_height  size of the JPEG image itself
    8s  model_id    first 8 hex digits naming the weights that wrote the file
    u32 coding_crc  CRC-32 of the fields above (identifier to model_id),
                    continued over the file's coding bytes: every marker
                    segment that is not APPn or COM (DQT, DHT, SOF, DRI, SOS...)
                    and everything from the first scan on. Metadata edits keep
                    it; anything that rewrites the entropy coding does not.
    u32 image_crc   (version 2 only) CRC-32 of the same fields, continued over
                    what decoding depends on: each component's quantisation
                    table, then the stored image as libjpeg decodes it
                    (Pillow's pixels, mode L or RGB, row by row).

Version 1 files carry only a check over the fields and the entropy-coded data
after the first SOS (check_v1); they are verified exactly as before.

Why the image check is over decoded pixels and not over the DCT coefficients.
A jpegplus decode depends on two things only: the stored image as libjpeg
decodes it, and the quantisation tables (PostNet's conditioning level). Both
are functions of the quantised coefficients and the tables, so a transcode that
keeps those (`jpegtran -copy all -progressive` or `-optimize`, a progressive
twin written by jpegplus itself, any lossless entropy re-coder) keeps the image
check, and a real change (a re-encode, a crop, a lossless rotation, an edit)
changes the pixels and breaks it. Reading the coefficients themselves would
need an entropy decoder for baseline and progressive scans (refinement scans
included) in Python, or a compiled dependency: a minimal pure-Python decoder of
baseline scans alone took 0.4–0.7 s per megapixel on Kodak, more than the whole
codec. libjpeg decodes the pixels in 2–14 ms per megapixel, and the decoder
needs them anyway. The pixels are libjpeg-turbo's: accurate integer IDCT and
fancy upsampling, which libjpeg-turbo keeps bit-exact across versions and SIMD
paths (tests/test_transcode.py checks the system's djpeg against Pillow's own
libjpeg-turbo). A Pillow built on another libjpeg (IJG libjpeg 9 upsamples
chroma differently) would find a transcoded file untrusted and decode it plain,
with a warning; a file whose coding bytes are as jpegplus wrote them is
verified by coding_crc alone, on any decoder.

Verification is therefore cheap where it can be: coding_crc first (no decode;
a file as written, or whose metadata changed), the image check only when the
coding bytes changed (one extra libjpeg decode of the stored image).

Whether a file's segment can be trusted is decided once, by `trusted` (no torch):
the decoder, the Pillow plugin, `jpegplus info`, the benchmark and the
calibration all ask it.
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
FORMAT_VERSION = 2
_BODIES = {1: struct.Struct(">BBHIIII8sI"), 2: struct.Struct(">BBHIIII8sII")}
_BODY = _BODIES[FORMAT_VERSION]
CHECK_BYTES = {1: 4, 2: 8}  # the check values at the end of each version's payload
GREY = 1
AS_STORED = 2
ROWS = 1024  # rows of pixels hashed at a time (bounded memory on huge images)


@dataclass(frozen=True)
class Segment:
    scale: int
    width: int
    height: int
    stored_width: int
    stored_height: int
    model_id: str
    grey: bool = False
    coding_crc: int = 0
    image_crc: int = 0  # version 2 only
    version: int = FORMAT_VERSION
    as_stored: bool = False

    def payload(self) -> bytes:
        """The APP9 payload (identifier and fields), without marker and length."""
        flags = (GREY if self.grey else 0) | (AS_STORED if self.as_stored else 0)
        fields = (self.version, self.scale, flags, self.width, self.height,
                  self.stored_width, self.stored_height, self.model_id.encode("ascii")[:8].ljust(8, b"0"),
                  self.coding_crc)
        if self.version >= 2:
            fields += (self.image_crc,)
        return IDENT + _BODIES[self.version].pack(*fields)

    def pack(self) -> bytes:
        """Complete marker segment (FF E9, length, payload)."""
        body = self.payload()
        return bytes([0xFF, MARKER]) + struct.pack(">H", len(body) + 2) + body

    def fields(self) -> bytes:
        """The payload without its check values: what every check value starts from."""
        return self.payload()[:-CHECK_BYTES[self.version]]


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
    if body[0] not in _BODIES:
        raise SegmentError(f"jpegplus segment version {body[0]} is not supported (this is version {FORMAT_VERSION})")
    layout = _BODIES[body[0]]
    if len(body) != layout.size:
        raise SegmentError(f"jpegplus segment has {len(body)} bytes, expected {layout.size}")
    version, scale, flags, w, h, sw, sh, model, coding, *image = layout.unpack(body)
    if flags & ~(GREY | AS_STORED):
        raise SegmentError(f"jpegplus segment has unknown flags {flags:#06x}")
    if scale not in (1, 2):
        raise SegmentError(f"jpegplus segment has scale {scale}")
    if flags & AS_STORED and scale != 1:
        raise SegmentError(f"jpegplus segment asks for the stored image as it is at scale {scale}")
    if min(w, h, sw, sh) < 1 or sw != -(-w // scale) or sh != -(-h // scale):
        raise SegmentError(f"jpegplus segment sizes are inconsistent: {w}x{h} at scale {scale} stored as {sw}x{sh}")
    try:
        model_id = model.decode("ascii")
    except UnicodeDecodeError as e:
        raise SegmentError("jpegplus segment model id is not ASCII") from e
    return Segment(scale, w, h, sw, sh, model_id, bool(flags & GREY), coding, image[0] if image else 0, version,
                   bool(flags & AS_STORED))


# ---------------------------------------------------------------- the file's structure

def marker_segments(data: bytes):
    """(marker, start, end) of each marker segment before the first scan, then
    (0xDA, start of the SOS segment, len(data)) for the scans and all that follows."""
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
            yield marker, i, len(data)
            return
        yield marker, i, min(i + 2 + length, len(data))
        i += 2 + length
    raise SegmentError("no SOS marker found")


def scan_start(data: bytes) -> int:
    """Offset of the entropy-coded data after the first SOS marker segment."""
    for marker, start, _ in marker_segments(data):
        if marker == 0xDA:
            length = struct.unpack(">H", data[start + 2:start + 4])[0]
            return min(start + 2 + length, len(data))
    raise SegmentError("no SOS marker found")  # not reached: marker_segments raises first


def is_metadata(marker: int) -> bool:
    """APPn and COM: segments that say nothing about the coded image."""
    return 0xE0 <= marker <= 0xEF or marker == 0xFE


def check_v1(data: bytes, fields: bytes) -> int:
    """Version 1's check: CRC-32 of `fields` continued over the data after the first SOS segment."""
    return zlib.crc32(memoryview(data)[scan_start(data):], zlib.crc32(fields))


def coding_check(data: bytes, fields: bytes) -> int:
    """CRC-32 of `fields` continued over the coding bytes of `data` (every marker
    segment but APPn and COM, and everything from the first SOS on)."""
    crc = zlib.crc32(fields)
    view = memoryview(data)
    for marker, start, end in marker_segments(data):
        if not is_metadata(marker):
            crc = zlib.crc32(view[start:end], crc)
    return crc


def stored_image(data: bytes, *, guard: bool = True) -> Image.Image:
    """The stored JPEG image of `data`, loaded as Pillow decodes it (no draft).
    SegmentError when it cannot be decoded or (guard=True, for bytes from
    outside) is beyond Pillow's decompression-bomb limit."""
    try:
        im = JpegImagePlugin.JpegImageFile(io.BytesIO(data))
        limit = Image.MAX_IMAGE_PIXELS
        if guard and limit is not None and im.size[0] * im.size[1] > 2 * limit:
            raise SegmentError(f"the stored image ({im.size[0]}x{im.size[1]}) is too large to verify")
        im.load()
    except SegmentError:
        raise
    except Exception as e:  # noqa: BLE001 - whatever Pillow raises, the image cannot be verified
        raise SegmentError(f"the stored image cannot be decoded ({type(e).__name__}: {e})") from None
    return im


def image_check(im: Image.Image, fields: bytes) -> int:
    """CRC-32 of `fields` continued over what decoding `im` (a loaded JPEG)
    depends on: each component's quantisation table (natural order, 16-bit),
    then its pixels (mode L or RGB) in bands of ROWS rows. Sampling factors
    are left out: their effect is in the pixels, and jpegtran rewrites a grey
    image's meaningless 2×2 as 1×1."""
    crc = zlib.crc32(fields)
    tables = getattr(im, "quantization", None) or {}
    for _, _, _, tq in getattr(im, "layer", ()):
        table = tables.get(tq)
        if table is None or len(table) != 64:
            raise SegmentError(f"the stored image has no quantisation table {tq}")
        crc = zlib.crc32(struct.pack(">64H", *table), crc)
    width, height = im.size
    for top in range(0, height, ROWS):
        crc = zlib.crc32(im.crop((0, top, width, min(height, top + ROWS))).tobytes(), crc)
    return crc


# ---------------------------------------------------------------- sealing and verifying

def seal(data: bytes, segment: Segment) -> bytes:
    """Write the check values into the (already present, same-length) segment of
    `data`. Version 2 decodes `data` once for the image check."""
    placeholder = segment.pack()
    pos = data.find(placeholder)
    if pos < 0:
        raise SegmentError("segment placeholder not found in encoded data")
    fields = segment.fields()
    if segment.version == 1:
        checks = {"coding_crc": check_v1(data, fields)}
    else:
        image = image_check(stored_image(data, guard=False), fields)  # our own bytes: no bomb limit
        checks = {"coding_crc": coding_check(data, fields), "image_crc": image}
    sealed = Segment(**{**segment.__dict__, **checks}).pack()
    return data[:pos] + sealed + data[pos + len(sealed):]


CHANGED = ("the segment or the image data changed since jpegplus wrote it "
           "(damaged, or re-encoded by another tool?)")


def verify(data: bytes, payload: bytes) -> str:
    """SegmentError unless the APP9 `payload` (a jpegplus segment's) was sealed
    for these bytes. Returns how: "coding" when the fields and the coding bytes
    are unchanged since jpegplus wrote them; "image" (version 2) when the coding
    changed but not what decoding depends on (a lossless transcode)."""
    version = payload[len(IDENT)] if len(payload) > len(IDENT) else None
    if version not in CHECK_BYTES or len(payload) < len(IDENT) + _BODIES[version].size:
        raise SegmentError(CHANGED)
    n = CHECK_BYTES[version]
    fields, checks = payload[:-n], struct.unpack(f">{n // 4}I", payload[-n:])
    if version == 1:
        if check_v1(data, fields) != checks[0]:
            raise SegmentError(CHANGED)
        return "coding"
    if coding_check(data, fields) == checks[0]:
        return "coding"
    try:
        same = image_check(stored_image(data), fields) == checks[1]
    except SegmentError as e:
        raise SegmentError(f"{CHANGED}: {e}") from None
    if not same:
        raise SegmentError(CHANGED)
    return "image"


def find(applist) -> bytes | None:
    """The payload of the first jpegplus segment in Pillow's `im.applist`, or None."""
    for name, payload in applist or ():
        if name == "APP9" and is_segment(payload):
            return payload
    return None


def asks_as_stored(im: Image.Image) -> bool:
    """Whether an opened JPEG's own jpegplus segment (if it has a well-formed one)
    asks for its stored image as it is (AS_STORED)."""
    payload = find(getattr(im, "applist", None))
    try:
        return payload is not None and parse(payload).as_stored
    except SegmentError:
        return False


def trusted(im: Image.Image, data: bytes | None = None) -> Segment | None:
    """The segment of an opened (not loaded) JPEG `im`, or None when it has none.

    SegmentError says why a segment that is there cannot be trusted: it is
    malformed or from a future version, the file's size or mode is not the
    stored image it describes, or (with `data`, the file's bytes) `verify`
    finds that the coded image changed since jpegplus wrote it."""
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
