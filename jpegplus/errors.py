"""Exceptions and warnings raised by jpegplus."""


class JpegPlusError(Exception):
    """Base class of every error jpegplus raises itself."""


class WeightsError(JpegPlusError):
    """The shipped weights are missing, damaged or do not match the manifest."""


class SegmentError(JpegPlusError):
    """A jpegplus APP segment is malformed."""


class SegmentWarning(UserWarning):
    """A jpegplus segment could not be trusted; the file was decoded as plain JPEG."""
