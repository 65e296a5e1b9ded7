from pathlib import Path

import numpy as np
import pytest
from PIL import Image

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def fixture_rgb() -> np.ndarray:
    """A 192×128 crop of a val/ photo, uint8 (128, 192, 3)."""
    return np.asarray(Image.open(FIXTURES / "val1.png").convert("RGB"))


@pytest.fixture(scope="session")
def fixture_images() -> list[np.ndarray]:
    return [np.asarray(Image.open(FIXTURES / f"val{i}.png").convert("RGB")) for i in range(3)]


@pytest.fixture(scope="session")
def offer_444():
    """offer_444(q): the shipped bundle with every ladder row offering 4:4:4 at internal quality q (0: never)."""
    import dataclasses

    from jpegplus.bundle import load_bundle

    real = load_bundle()

    def make(q444: int):
        ladder = dataclasses.replace(real.manifest.ladder, q444=(q444,) * 100)
        return dataclasses.replace(real, manifest=dataclasses.replace(real.manifest, ladder=ladder))

    return make


@pytest.fixture(scope="session")
def chroma_stripes() -> np.ndarray:
    """Red/blue one-pixel stripes over a grey ramp, uint8 (96, 128, 3): detail 4:2:0 cannot hold."""
    h, w = 96, 128
    arr = np.repeat(np.linspace(60, 200, w)[None, :, None], h, 0).repeat(3, 2)
    arr[:, ::2] += [60, -30, -60]
    arr[:, 1::2] += [-60, -30, 60]
    return np.clip(arr, 0, 255).astype(np.uint8)
