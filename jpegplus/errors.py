"""Exceptions and warnings raised by jpegplus."""


class JpegPlusError(Exception):
    """Base class of every error jpegplus raises itself."""


class WeightsError(JpegPlusError):
    """The shipped weights are missing, damaged or do not match the manifest."""


class SegmentError(JpegPlusError):
    """A jpegplus APP segment is malformed."""


class SegmentWarning(UserWarning):
    """A jpegplus segment could not be trusted; the file was decoded as plain JPEG."""


class UnsupportedModeError(JpegPlusError, OSError):
    """JPEG cannot store this image mode (alpha, palette, 16-bit...). Also an
    OSError with Pillow's own message, which is what Pillow's JPEG writer raises."""


class EmptyImageError(JpegPlusError, ValueError):
    """A zero-width or zero-height image. Also a ValueError, as from Pillow's writer."""


class NotJpegError(JpegPlusError, OSError):
    """The bytes are an image, but not a JPEG. Also an OSError, like Pillow's
    UnidentifiedImageError."""


class TargetError(JpegPlusError, ValueError):
    """No quality 1..100 meets a target_size or target_psnr (jpegplus.target).
    `reachable` is the closest the encoder gets for this image: the smallest
    file in bytes (target_size) or the highest PSNR in dB (target_psnr). Also a
    ValueError: the target is a bad value for this image."""

    def __init__(self, message: str, reachable: float):
        super().__init__(message)
        self.reachable = reachable

    def __reduce__(self):  # picklable (process pools, Dask) with its reachable value
        return type(self), (str(self), self.reachable)


class ClusterError(JpegPlusError):
    """A Dask cluster cannot be used (jpegplus.distributed): Dask is not
    installed (pip install 'jpegplus[dask]'), or the scheduler cannot be reached."""
