"""The wheel built from the repository: every file under weights/ (sub-folders
included) ships as jpegplus.weights, and a plain install asks only for what the
runtime needs: ONNX Runtime, no torch (torch sits in the torch extra, the
benchmark's packages in the bench extra)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import jpegplus

REPO = Path(jpegplus.__file__).parent.parent
RUNTIME = {"numpy", "pillow", "onnxruntime", "threadpoolctl", "tqdm"}
TORCH = {"torch", "safetensors"}
BENCH = {"jpegplus", "opencv-python-headless", "scipy", "matplotlib", "ssimulacra2"}  # jpegplus[torch]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """A wheel built from a copy of the sources (the build writes nothing into the checkout)."""
    pytest.importorskip("setuptools")
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for folder in ("jpegplus", "weights"):
        shutil.copytree(REPO / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(root / "out")], check=True, capture_output=True)
    [path] = (root / "out").glob("jpegplus-*.whl")
    return zipfile.ZipFile(path)


def test_every_weight_file_ships(wheel):
    names = set(wheel.namelist())
    weights = [p for p in (REPO / "weights").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    expected = {f"jpegplus/weights/{p.relative_to(REPO / 'weights').as_posix()}" for p in weights}
    assert "jpegplus/weights/ablation-nofake/manifest.json" in expected  # the benchmark's ablation pair
    assert expected <= names, sorted(expected - names)
    assert {"jpegplus/engine.py", "jpegplus/evaluation/bench.py", "jpegplus/data/sample.png"} <= names


def test_plain_install_requires_only_the_runtime(wheel):
    [meta] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    requires = [line.split(":", 1)[1].strip() for line in wheel.read(meta).decode().splitlines()
                if line.startswith("Requires-Dist:")]

    def name(req: str) -> str:
        return req.split(";")[0].split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()

    plain = {name(r) for r in requires if "extra ==" not in r}
    def extra(label: str) -> set[str]:
        return {name(r) for r in requires if f'extra == "{label}"' in r.replace("'", '"')}

    assert plain == RUNTIME
    assert extra("torch") == TORCH
    assert extra("bench") == BENCH
