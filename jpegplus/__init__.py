"""jpegplus: smaller JPEG files at the same quality that stay plain JPEG.

    import jpegplus
    data = jpegplus.encode(image, quality=75)   # bytes of a plain JPEG (baseline or progressive)
    image = jpegplus.decode(data)               # full size, through PostNet
"""
import importlib

from .errors import JpegPlusError, SegmentError, SegmentWarning, WeightsError

# Loaded on first use, so `import jpegplus` stays fast (no torch) and changes nothing in Pillow.
_LAZY = {"encode": "codec", "decode": "codec", "save": "codec", "open": "codec",
         "register": "plugin", "unregister": "plugin", "Filter": "filter"}

__all__ = ["encode", "decode", "save", "open", "register", "unregister", "Filter",
           "JpegPlusError", "WeightsError", "SegmentError", "SegmentWarning"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'jpegplus' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))

__version__ = "0.1.0"
