"""Shipped weights: a manifest, sha256-checked safetensors files, loaded once per process.

weights/manifest.json names each network with its class (a key of
jpegplus.models.MODELS), config, file and sha256, plus the quantisation-table
family and the quality ladder. Tensors are read with safetensors, which never
executes code from the file.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load_file

from .errors import WeightsError
from .models import build

ENV_VAR = "JPEGPLUS_WEIGHTS"
FIX_HINT = ("Reinstall jpegplus (pip install --force-reinstall jpegplus), restore weights/ from the repository "
            "(git checkout -- weights), or set JPEGPLUS_WEIGHTS to a folder holding a good manifest.json.")


def weights_dir() -> Path:
    """Folder of manifest.json: $JPEGPLUS_WEIGHTS, else the packaged jpegplus.weights."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return Path(str(resources.files("jpegplus.weights")))


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Bundle:
    """The loaded networks (eval mode, CPU) with the manifest that describes them."""
    manifest: dict
    nets: dict

    @property
    def model_id(self) -> str:
        return self.manifest["model_id"]


def load_net(folder: Path, entry: dict) -> torch.nn.Module:
    """One network from a manifest entry: file present, sha256 as listed,
    safetensors (no pickle), tensors that fit `class(**config)`."""
    name = entry["file"]
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        raise WeightsError(f"weights manifest names {name!r}, not a file name inside {folder}. {FIX_HINT}")
    path = folder / name
    if not path.is_file():
        raise WeightsError(f"weights file {path} is missing. {FIX_HINT}")
    digest = sha256_of(path)
    if digest != entry["sha256"]:
        raise WeightsError(f"weights file {path} is damaged: sha256 {digest[:16]}… does not match the manifest "
                           f"({str(entry['sha256'])[:16]}…). {FIX_HINT}")
    try:
        net = build(entry["class"], entry["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"weights manifest entry for {path.name} cannot build "
                           f"{entry['class']!r} with {entry['config']!r}: {e}. {FIX_HINT}") from None
    try:
        tensors = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise WeightsError(f"weights file {path} is not a readable safetensors file ({e}); "
                           f"jpegplus never unpickles weights. {FIX_HINT}") from None
    try:
        net.load_state_dict(tensors)
    except RuntimeError as e:  # wrong keys or shapes: a manifest/file mismatch
        raise WeightsError(f"weights file {path} does not fit {entry['class']}({entry['config']}): {e}. {FIX_HINT}") from None
    return net.eval().to(memory_format=torch.channels_last)  # ≈ 25 % faster convolutions on CPU (oneDNN)


def check_manifest(manifest, path: Path) -> None:
    """WeightsError unless `manifest` has the fields the codec reads: model_id,
    models, tables (flatness, chroma_weight) and a 100-row ladder (q1, q2, lambda)."""
    def number(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    problems = []
    if not isinstance(manifest.get("model_id"), str):
        problems.append("model_id")
    if not isinstance(manifest.get("models"), dict):
        problems.append("models")
    tables = manifest.get("tables")
    if not isinstance(tables, dict) or not all(number(tables.get(k)) for k in ("flatness", "chroma_weight")):
        problems.append("tables")
    ladder = manifest.get("ladder")
    rows = [ladder.get(k) for k in ("q1", "q2", "lambda")] if isinstance(ladder, dict) else [None]
    if not all(isinstance(r, list) and len(r) == 100 and all(number(v) for v in r) for r in rows) \
            or not all(1 <= q <= 100 for q in rows[0]) or not all(0 <= q <= 100 for q in rows[1]):
        problems.append("ladder (100 rows of q1 1..100, q2 0..100, lambda)")
    if problems:
        raise WeightsError(f"weights manifest {path} is incomplete or malformed: check {', '.join(problems)}. "
                           f"{FIX_HINT}")


def load_bundle(folder: Path | None = None, names=("pre", "post")) -> Bundle:
    """Read the manifest and load the named networks, checking each sha256.

    Every failure (missing or damaged manifest or file, wrong hash, a file that
    is not safetensors, tensors that do not fit) is a WeightsError whose message
    says how to fix it."""
    folder = Path(folder) if folder else weights_dir()
    path = folder / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"no weights manifest at {path}. {FIX_HINT}") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WeightsError(f"weights manifest {path} is damaged: {e}. {FIX_HINT}") from None
    if not isinstance(manifest, dict):
        raise WeightsError(f"weights manifest {path} is not a JSON object. {FIX_HINT}")
    check_manifest(manifest, path)
    try:
        nets = {n: load_net(folder, manifest["models"][n]) for n in names}
    except (KeyError, TypeError) as e:
        raise WeightsError(f"weights manifest {path} lacks {e}. {FIX_HINT}") from None
    return Bundle(manifest, nets)


_lock = threading.Lock()
_cache: dict = {}


def default_bundle() -> Bundle:
    """The shipped bundle, loaded once per process (thread-safe)."""
    key = str(weights_dir())
    with _lock:
        if key not in _cache:
            _cache[key] = load_bundle(Path(key))
        return _cache[key]


def save_net(net: torch.nn.Module, folder: Path, stem: str) -> dict:
    """Write `net` as <stem>-<sha8>.safetensors and return its manifest entry."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{stem}.tmp"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    digest = sha256_of(tmp)
    final = folder / f"{stem}-{digest[:8]}.safetensors"
    os.replace(tmp, final)
    return {"class": type(net).__name__, "config": net.config, "file": final.name, "sha256": digest}
