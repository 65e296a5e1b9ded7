"""A jpegplus file is a plain JPEG to standard tools: djpeg, jpeginfo, ImageMagick,
OpenCV and simplejpeg decode it (the stored image, at 1/scale), and ExifTool's
validator finds no error. System tools come from the Debian packages
libjpeg-turbo-progs, jpeginfo, imagemagick and libimage-exiftool-perl (.ci/run
installs them); a test skips when its tool is absent."""
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms, JpegImagePlugin

import jpegplus
from jpegplus.evaluation.metrics import psnr

FIXTURES = Path(__file__).parent / "fixtures"
AGREE_DB = 40  # another libjpeg build may round a little differently; a wrong decode is far below this
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/></x:xmpmeta>'


def full_exif() -> bytes:
    """EXIF with the tags ExifTool's validator requires of a JPEG, so that any
    remaining warning is about jpegplus itself."""
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x011A] = exif[0x011B] = 72.0
    exif[0x0128] = 2
    exif[0x0213] = 1
    ifd = exif.get_ifd(0x8769)
    ifd[0x9000] = b"0232"
    ifd[0x9101] = b"\x01\x02\x03\x00"
    ifd[0xA000] = b"0100"
    ifd[0xA001] = 1
    ifd[0xA002], ifd[0xA003] = 1, 1  # wrong on purpose: jpegplus sets the full size
    return exif.tobytes()


CASES = {
    "colour-scale1": dict(mode="RGB", scale=1),
    "colour-scale2-metadata": dict(mode="RGB", scale=2, metadata=True),
    "grey-scale2": dict(mode="L", scale=2),
}


@pytest.fixture(scope="module", params=list(CASES))
def jfile(request, tmp_path_factory):
    """(path, case, Pillow's decode of the stored image as uint8 (h, w[, 3]))."""
    case = CASES[request.param]
    src = Image.open(FIXTURES / "val2.png").convert(case["mode"])
    meta = {}
    if case.get("metadata"):
        meta = dict(exif=full_exif(), xmp=XMP, comment=b"jpegplus viewer test", dpi=(96, 96),
                    icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data = jpegplus.encode(src, 60, scale=case["scale"], **meta)
    path = tmp_path_factory.mktemp("viewers") / f"{request.param}.jpg"
    path.write_bytes(data)
    stored = JpegImagePlugin.JpegImageFile(io.BytesIO(data))
    expect = (-(-192 // case["scale"]), -(-128 // case["scale"]))
    assert stored.size == expect
    return path, case, np.asarray(stored)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: see this module's docstring)")
    return path


def imagemagick() -> list[str]:
    """The real ImageMagick (not a stand-in `convert` that only reads PNG)."""
    for cmd in (["magick"], ["/usr/bin/convert"], ["convert"]):
        exe = shutil.which(cmd[0])
        if exe and "ImageMagick" in subprocess.run([exe, "-version"], capture_output=True, text=True).stdout:
            return [exe]
    pytest.skip("ImageMagick is not installed (Debian package imagemagick)")


def agrees(decoded: np.ndarray, reference: np.ndarray) -> None:
    assert decoded.shape == reference.shape
    assert psnr(decoded, reference) > AGREE_DB


def from_pnm(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_djpeg(jfile):
    path, _, ref = jfile
    out = subprocess.run([tool("djpeg"), "-pnm", str(path)], capture_output=True, check=True)
    assert out.stderr == b""  # libjpeg prints warnings (corrupt data, extraneous bytes) on stderr
    agrees(from_pnm(out.stdout), ref)


def test_jpeginfo_check(jfile):
    path, _, ref = jfile
    out = subprocess.run([tool("jpeginfo"), "-c", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.rstrip().endswith("OK")
    assert re.search(rf"\b{ref.shape[1]} x +{ref.shape[0]}\b", out.stdout), out.stdout


def test_imagemagick(jfile):
    path, _, ref = jfile
    out = subprocess.run([*imagemagick(), str(path), "ppm:-"], capture_output=True, check=True)
    decoded = from_pnm(out.stdout)
    agrees(decoded if ref.ndim == 3 else decoded[:, :, 0], ref)


def test_opencv(jfile):
    cv2 = pytest.importorskip("cv2")
    path, _, ref = jfile
    flags = cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION
    decoded = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), flags)
    assert decoded is not None
    agrees(decoded[:, :, ::-1] if decoded.ndim == 3 else decoded, ref)


def test_simplejpeg(jfile):
    simplejpeg = pytest.importorskip("simplejpeg")
    path, _, ref = jfile
    data = path.read_bytes()
    h, w, _, _ = simplejpeg.decode_jpeg_header(data)
    assert (w, h) == (ref.shape[1], ref.shape[0])
    decoded = simplejpeg.decode_jpeg(data, colorspace="GRAY" if ref.ndim == 2 else "RGB")
    agrees(decoded.reshape(ref.shape), ref)


def test_exiftool_validate(jfile):
    path, case, _ = jfile
    out = subprocess.run([tool("exiftool"), "-validate", "-warning", "-a", str(path)],
                         capture_output=True, text=True)
    text = out.stdout + out.stderr
    assert out.returncode == 0 and "Error" not in text, text
    warnings = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Warning")]
    # The one thing ExifTool says about jpegplus: a segment it does not know, graded minor.
    about_us = [w for w in warnings if "APP9" in w or "jpegplus" in w.lower()]
    assert about_us == ["[minor] Unknown APP9 'jpegplus' segment"], text
    if not case.get("metadata"):
        assert warnings == about_us, text  # nothing else to say about a file jpegplus wrote alone
    else:
        tags = subprocess.run([tool("exiftool"), "-s", "-s", "-s", "-ExifImageWidth", "-ExifImageHeight",
                               "-ImageSize", str(path)], capture_output=True, text=True, check=True).stdout.split()
        assert tags == ["192", "128", "96x64"]  # EXIF: the full picture; the JPEG itself: the stored half
