"""Evaluation, apart from the runtime: the benchmark (`jpegplus bench`), the
codecs it compares (peers), its metrics and its plot.

It needs the bench extra, `pip install 'jpegplus[bench]'` (matplotlib, scipy,
opencv-python-headless, and ssimulacra2, whose scores each run cross-checks its
own faster SSIMULACRA2 against; without it the run says so); encode, decode,
the Pillow plugin, Filter and the rest of the command line do not.
"""
from __future__ import annotations

import importlib

EXTRA = "jpegplus[bench]"
EXTRA_MODULES = {"cv2": "opencv-python-headless", "matplotlib": "matplotlib", "scipy": "scipy"}  # module: package


def missing_extra() -> str | None:
    """None when the bench extra is installed, else one line naming what to install."""
    missing = []
    for module, package in EXTRA_MODULES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(package)
    if not missing:
        return None
    return f"bench needs the bench extra: pip install '{EXTRA}' (missing: {', '.join(missing)})"
