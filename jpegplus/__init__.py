"""jpegplus: smaller JPEG files at the same quality that stay plain JPEG.

    import jpegplus
    data = jpegplus.encode(image, quality=75)   # bytes of a baseline JPEG
    image = jpegplus.decode(data)               # full size, through PostNet
"""
from .codec import decode, encode, open, save
from .errors import JpegPlusError, SegmentError, SegmentWarning, WeightsError

__all__ = ["encode", "decode", "save", "open", "JpegPlusError", "WeightsError", "SegmentError", "SegmentWarning"]
__version__ = "0.1.0"
