"""Pillow drop-in: after `jpegplus.register()`, Pillow reads and writes jpegplus files.

    import jpegplus
    from PIL import Image
    jpegplus.register(quality=70)          # optional defaults for every save
    im.save("photo.jpg", quality=60)       # a jpegplus file
    Image.open("photo.jpg")                # original size, format "JPEG"
    jpegplus.unregister()                  # Pillow as before

Registration takes over Pillow's "JPEG" format id (same position in
Image.ID, so `formats=["JPEG"]` still finds it). Plain JPEGs, MPO files and
files whose jpegplus segment cannot be trusted are handed back exactly as
Pillow's own plugin opens them; only a trusted jpegplus file becomes a
JpegPlusImageFile, a JpegImageFile subclass whose size is the original size
and whose load() runs PostNet. Save options a resampling codec cannot honour
go to Pillow's own JPEG writer (see pillow_only_reason).

Importing this module changes nothing in Pillow (it imports Pillow's own JPEG
plugin, as Pillow itself would); torch is imported only when a jpegplus file
is encoded or its pixels are decoded (opening one reads its segment only).
"""
from __future__ import annotations

import io

from PIL import Image, JpegImagePlugin

from . import segment as seg
from .jpeg import bypassed
from .metadata import METADATA_KEYS

FORMAT = "JPEG"
# Bitstream-level save options: jpegplus writes baseline 4:2:0 files with its
# own tables, so these go to Pillow's writer, which honours them exactly.
PILLOW_ONLY_OPTIONS = ("qtables", "restart_marker_blocks", "restart_marker_rows", "streamtype",
                       "progressive", "progression", "keep_rgb", "extra")
JPEGPLUS_MODES = ("RGB", "L")
DRAFT_MIN_REDUCTION = 2  # draft() below this reduction keeps the full PostNet decode

_registered: dict = {}  # "open", "save": Pillow's originals while registered; "defaults"


def is_registered() -> bool:
    return bool(_registered)


# ---------------------------------------------------------------- reading

class JpegPlusImageFile(JpegImagePlugin.JpegImageFile):
    """A trusted jpegplus file: `size` and `mode` are the original's, load()
    decodes the stored JPEG and runs PostNet. `jpegplus_segment` is the parsed
    segment (jpegplus.segment.Segment)."""

    format = FORMAT
    # Class defaults: unpickling skips _open and gives a loaded image.
    jpegplus_segment = None
    _jpegplus_data: bytes | None = None
    _stored: tuple | None = None

    def _adopt(self, head: seg.Segment, data: bytes) -> None:
        self.jpegplus_segment = head
        self._jpegplus_data = data
        self._stored = (self.size, self.mode, list(self.tile))
        self._size = (head.width, head.height)
        self._mode = "L" if head.grey else "RGB"

    def load(self):
        if self._jpegplus_data is not None:
            self._load_jpegplus()
        return super().load()

    def _load_jpegplus(self) -> None:
        from . import engine
        from .bundle import resolve

        head, data = self.jpegplus_segment, self._jpegplus_data
        stored = JpegImagePlugin.JpegImageFile(io.BytesIO(data))
        stored.load()
        out = engine.post_image(resolve(None), stored, head.scale, (head.width, head.height), head.grey)
        self.im = out.im
        self._mode, self._size = out.mode, out.size
        self.tile = []
        self._jpegplus_data = None
        if self._exclusive_fp and self._close_exclusive_fp_after_loading and self.fp:
            self.fp.close()
        self.fp = None

    def draft(self, mode, size):
        """For a reduction of DRAFT_MIN_REDUCTION or more, decode the stored
        JPEG with libjpeg's DCT scaling and skip PostNet (what thumbnail()
        wants); otherwise keep the full decode (returns None)."""
        if self._jpegplus_data is None or self._stored is None:
            return super().draft(mode, size)
        if not size:
            return None
        reduction = min(self.size[0] // max(1, size[0]), self.size[1] // max(1, size[1]))
        if reduction < DRAFT_MIN_REDUCTION:
            return None
        head = self.jpegplus_segment
        self._size, self._mode, self.tile = self._stored[0], self._stored[1], list(self._stored[2])
        self._jpegplus_data = None
        result = super().draft(mode, size)
        dct = self.decoderconfig[0] if self.decoderconfig else 1
        # The original picture covers width/scale of the (edge-padded) stored image.
        box = (0, 0, head.width / (head.scale * dct), head.height / (head.scale * dct))
        return (result[0] if result else self.mode), box


def _open_factory(fp, filename=None):
    """Pillow's JPEG factory, then: a trusted jpegplus file becomes a JpegPlusImageFile."""
    im = _registered["open"][0](fp, filename)
    if bypassed() or type(im) is not JpegImagePlugin.JpegImageFile or seg.find(im.applist) is None:
        return im
    pos = fp.tell()
    fp.seek(0)
    data = fp.read()
    fp.seek(pos)
    head = seg.read(im, data)  # a SegmentWarning says why when it is not trusted
    if head is None:
        return im
    im.__class__ = JpegPlusImageFile
    im._adopt(head, data)
    return im


# ---------------------------------------------------------------- writing

def pillow_only_reason(im: Image.Image, options: dict) -> str | None:
    """Why Pillow's own writer must handle this save, or None for jpegplus."""
    if im.mode not in JPEGPLUS_MODES:
        return f"mode {im.mode}"
    quality = options.get("quality", 75)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        return f"quality={quality!r}"  # "keep", presets, 0, -1 and invalid values: Pillow's meaning
    if options.get("subsampling", -1) not in (-1, None, 2, "4:2:0"):
        return f"subsampling={options['subsampling']!r}"
    for key in PILLOW_ONLY_OPTIONS:
        if options.get(key):
            return key
    if min(im.size) < 1:
        return "empty image"  # Pillow raises its own error
    return None


def _save(im: Image.Image, fp, filename) -> None:
    """Pillow save handler for "JPEG": jpegplus unless pillow_only_reason says otherwise."""
    if bypassed():
        return _registered["save"](im, fp, filename)
    options = {**_registered["defaults"], **im.encoderinfo}
    if pillow_only_reason(im, options) is not None:
        im.encoderinfo = options
        return _registered["save"](im, fp, filename)
    from . import codec

    meta = {k: options[k] for k in METADATA_KEYS if k in options}
    data = codec.encode(im, options.get("quality", 75), scale=options.get("scale"),
                        keep_metadata=options.get("keep_metadata", True), **meta)
    fp.write(data)


# ---------------------------------------------------------------- registration

def register(**defaults) -> None:
    """Make Pillow read and write jpegplus files under its "JPEG" format.

    `defaults` are save options used when a save does not give them, e.g.
    quality=70, scale=2, keep_metadata=False. Calling again replaces them."""
    if not _registered:
        # JpegImagePlugin is imported (at the top of this module) before we
        # register, so Pillow's lazy plugin loading cannot register over us.
        _registered["open"] = Image.OPEN[FORMAT]
        _registered["save"] = Image.SAVE[FORMAT]
    _registered["defaults"] = dict(defaults)
    Image.register_open(FORMAT, _open_factory, JpegImagePlugin._accept)
    Image.register_save(FORMAT, _save)


def unregister() -> None:
    """Give Pillow's own JPEG plugin back (a no-op when not registered)."""
    if not _registered:
        return
    factory, accept = _registered["open"]
    Image.register_open(FORMAT, factory, accept)
    Image.register_save(FORMAT, _registered["save"])
    _registered.clear()
