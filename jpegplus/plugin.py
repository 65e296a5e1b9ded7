"""Pillow drop-in: after `jpegplus.register()`, Pillow reads and writes jpegplus files.

    import jpegplus
    from PIL import Image
    jpegplus.register(quality=70)          # optional defaults for every save
    im.save("photo.jpg", quality=60)       # a jpegplus file (baseline or progressive, the smaller)
    Image.open("photo.jpg")                # original size, format "JPEG"
    jpegplus.unregister()                  # Pillow as before

Registration takes over Pillow's "JPEG" format id (same position in
Image.ID, so `formats=["JPEG"]` still finds it). Plain JPEGs, MPO files and
files whose jpegplus segment cannot be trusted are handed back exactly as
Pillow's own plugin opens them; only a trusted jpegplus file becomes a
JpegPlusImageFile, a JpegImageFile subclass whose size is the original size
and whose load() runs PostNet (draft() as Pillow's, for thumbnails). A save
writes exactly the metadata Pillow's writer would (keep_metadata=True opts in
to copying im.info); save options a resampling codec cannot honour go to
Pillow's own JPEG writer (see pillow_only_reason).

Importing this module changes nothing in Pillow (it imports Pillow's own JPEG
plugin, as Pillow itself would); torch is imported only when a jpegplus file
is encoded or its pixels are decoded (opening one reads its segment, and
decodes the stored JPEG with Pillow only to verify a losslessly transcoded file).
"""
from __future__ import annotations

import io

from PIL import Image, JpegImagePlugin

from . import segment as seg
from .jpeg import bypassed
from .metadata import METADATA_KEYS, metadata_from

FORMAT = "JPEG"
# Save options jpegplus honours itself: quality (an int 1..100) or its own
# target_size (bytes) or target_psnr (dB), progressive
# (and its old spelling progression), optimize (always on), subsampling 4:2:0
# (given: always 4:2:0; not given: jpegplus may store 4:4:4 where it pays),
# the metadata options (exif, icc_profile, dpi, comment, xmp) and its own scale,
# keep_metadata. These bitstream-level options go to Pillow's writer, which
# honours them exactly, whenever they ask for something (a true value):
PILLOW_ONLY_OPTIONS = ("qtables", "restart_marker_blocks", "restart_marker_rows", "keep_rgb", "extra", "smooth")
# ... and these whenever they are given at all: streamtype 0 (an interchange
# stream) must pair with Pillow's tables-only (1) and image-only (2) streams.
PILLOW_ONLY_WHEN_GIVEN = ("streamtype",)
# What sets the rate: a quality, or a target the encoder searches for (jpegplus.target).
RATE_OPTIONS = ("quality", "target_size", "target_psnr")
SUBSAMPLING_420 = (-1, None, 2, "4:2:0", "4:1:1")  # Pillow writes 4:2:0 for each ("4:1:1" is its old name)
JPEGPLUS_MODES = ("RGB", "L")
# draft() runs PostNet on the reduced image when True; measured on Kodak
# (tests/thumbnails.py): skipping it gives the better thumbnail, and faster.
POST_AT_REDUCED_SIZE = False

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
    _reduction = 1  # draft(): the reduction of the original size, 1 (full size, PostNet), 2, 4 or 8

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
        out = self._post_decode() if self._reduction == 1 else self._reduced_decode()
        if out.mode != self.mode:
            out = out.convert(self.mode)  # draft("L" or "YCbCr") of a colour file
        self.im = out.im
        self._mode, self._size = out.mode, out.size
        self.tile = []
        self._jpegplus_data = None
        if self._exclusive_fp and self._close_exclusive_fp_after_loading and self.fp:
            self.fp.close()
        self.fp = None

    def _post_decode(self) -> Image.Image:
        """The full-size image: the stored JPEG through PostNet."""
        from . import engine
        from .bundle import resolve

        head = self.jpegplus_segment
        stored = JpegImagePlugin.JpegImageFile(io.BytesIO(self._jpegplus_data))
        stored.load()
        return engine.post_image(resolve(None), stored, head.scale, (head.width, head.height), head.grey)

    def _reduced_decode(self) -> Image.Image:
        """The image at 1/_reduction of the original size: the stored JPEG decoded
        with libjpeg's DCT scaling (by _reduction / scale; its size is then
        ceil(original / _reduction), as Pillow's own draft gives)."""
        head, factor = self.jpegplus_segment, self._reduction // self.jpegplus_segment.scale
        stored = JpegImagePlugin.JpegImageFile(io.BytesIO(self._jpegplus_data))
        sw, sh = stored.size
        stored.draft(self.mode, (sw // factor, sh // factor) if factor > 1 else None)
        stored.load()
        if POST_AT_REDUCED_SIZE:
            from . import engine
            from .bundle import resolve

            return engine.post_image(resolve(None), stored, 1, stored.size, head.grey)
        return stored

    def draft(self, mode, size):
        """Pillow's draft contract, relative to the original image: the same
        reduction (8, 4, 2 or 1) and size arithmetic as Pillow's for a plain
        JPEG of the original size, "L" or "YCbCr" for a colour file when asked,
        and (mode, box) with the box in the reduced image's coordinates. A
        reduction of 2 or more decodes the stored JPEG with libjpeg's DCT
        scaling and skips PostNet (POST_AT_REDUCED_SIZE); no reduction keeps the
        full decode through PostNet. A second call returns None, as Pillow's."""
        if self._jpegplus_data is None or self._stored is None:
            return super().draft(mode, size)
        if len(self._stored[2]) != 1 or self.decoderconfig:
            return None
        original = self.size
        if self.mode == "RGB" and mode in ("L", "YCbCr"):
            self._mode = mode
        reduction = 1
        if size:
            scale = min(original[0] // size[0], original[1] // size[1])
            reduction = next((s for s in (8, 4, 2) if scale >= s), 1)
            self._size = ((original[0] + reduction - 1) // reduction, (original[1] + reduction - 1) // reduction)
        self._reduction = reduction
        self.decoderconfig = (reduction, 0)
        return self.mode, (0, 0, original[0] / reduction, original[1] / reduction)


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
    if options.get("subsampling", -1) not in SUBSAMPLING_420:
        return f"subsampling={options['subsampling']!r}"
    for key in PILLOW_ONLY_OPTIONS:
        if options.get(key):
            return key
    for key in PILLOW_ONLY_WHEN_GIVEN:
        if key in options:
            return key
    if min(im.size) < 1:
        return "empty image"  # Pillow raises its own error
    return None


def progressive_option(options: dict) -> bool | None:
    """The layout a save asks for, read as Pillow reads it (progressive or its
    old spelling progression): True, False when given and false, None when not
    given at all (jpegplus writes the smaller file)."""
    if options.get("progressive") or options.get("progression"):
        return True
    if "progressive" in options or "progression" in options:
        return False
    return None


def save_options(encoderinfo: dict) -> dict:
    """A save's options over the register() defaults. The rate options
    (RATE_OPTIONS) count as one: a save that gives any of them drops the
    defaults' (a save's target_size overrides a default quality)."""
    defaults = _registered["defaults"]
    if any(k in encoderinfo for k in RATE_OPTIONS):
        defaults = {k: v for k, v in defaults.items() if k not in RATE_OPTIONS}
    return {**defaults, **encoderinfo}


def _save(im: Image.Image, fp, filename) -> None:
    """Pillow save handler for "JPEG": jpegplus unless pillow_only_reason says otherwise."""
    if bypassed():
        return _registered["save"](im, fp, filename)
    options = save_options(im.encoderinfo)
    keep = bool(options.get("keep_metadata", False))
    reason = pillow_only_reason(im, options)
    targets = [k for k in RATE_OPTIONS[1:] if options.get(k) is not None]
    if reason is not None and targets:
        raise ValueError(f"{targets[0]} needs jpegplus's own writer, which this save cannot use ({reason})")
    if reason is not None:
        # Pillow's writer, with im.info's metadata added only when keep_metadata opts in
        copied = {k: v for k, v in metadata_from(im, {}, True).items() if k not in options} if keep else {}
        im.encoderinfo = {**copied, **options}
        return _registered["save"](im, fp, filename)
    from . import codec

    meta = {k: options[k] for k in METADATA_KEYS if k in options}
    data = codec.encode(im, options.get("quality"), target_size=options.get("target_size"),
                        target_psnr=options.get("target_psnr"), scale=options.get("scale"),
                        progressive=progressive_option(options), keep_metadata=keep,
                        subsampling=None if options.get("subsampling", -1) in (-1, None) else "4:2:0", **meta)
    fp.write(data)


# ---------------------------------------------------------------- registration

def register(**defaults) -> None:
    """Make Pillow read and write jpegplus files under its "JPEG" format.

    `defaults` are save options used when a save does not give them, e.g.
    quality=70, scale=2, progressive=True, keep_metadata=True, or
    target_size=150_000. Calling again replaces them."""
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
