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
