"""Training and evaluation scripts for jpegplus (run as `python -m training.NAME`).

Training runs from a checkout and reads the shipped model (its manifest's table
family, --init weights). Where jpegplus was never installed (a bare GPU
machine), the checkout's weights/ is that model: JPEGPLUS_WEIGHTS is set to it
for this process and the steps it starts, unless it is set already."""
import importlib.util
import os
from pathlib import Path

from jpegplus.bundle import ENV_VAR

if not os.environ.get(ENV_VAR) and importlib.util.find_spec("jpegplus.weights") is None:
    os.environ[ENV_VAR] = str(Path(__file__).resolve().parent.parent / "weights")
