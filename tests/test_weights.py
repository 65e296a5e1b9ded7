"""Weights: sha256-checked, never unpickled, and every failure is a WeightsError
that says how to fix it. Damage is done to a copy of weights/ in tmp_path."""
from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

import jpegplus
from jpegplus import bundle as bundle_mod
from jpegplus.bundle import ENV_VAR, default_bundle, load_bundle, weights_dir
from jpegplus.errors import JpegPlusError, WeightsError

HINT = "JPEGPLUS_WEIGHTS"  # every message names a way out


@pytest.fixture
def folder(tmp_path) -> Path:
    dst = tmp_path / "weights"
    shutil.copytree(weights_dir(), dst, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return dst


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def write_manifest(folder: Path, manifest: dict) -> None:
    (folder / "manifest.json").write_text(json.dumps(manifest))


def expect_error(folder: Path, *fragments: str) -> str:
    with pytest.raises(WeightsError) as info:
        load_bundle(folder)
    msg = str(info.value)
    assert HINT in msg
    for fragment in fragments:
        assert fragment in msg
    return msg


def test_copy_loads_and_checks_every_hash(folder):
    b = load_bundle(folder)
    assert set(b.nets) == {"pre", "post"}
    assert not any(net.training for net in b.nets.values())
    for entry in manifest_of(folder)["models"].values():
        assert hashlib.sha256((folder / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]


def test_missing_manifest(tmp_path):
    expect_error(tmp_path, "no weights manifest", str(tmp_path / "manifest.json"))


def test_damaged_manifest(folder):
    (folder / "manifest.json").write_text('{"models": ')
    expect_error(folder, "manifest", "damaged")


def test_manifest_without_ladder(folder):
    m = manifest_of(folder)
    del m["ladder"]
    write_manifest(folder, m)
    expect_error(folder, "ladder")


def test_missing_file(folder):
    (folder / manifest_of(folder)["models"]["post"]["file"]).unlink()
    expect_error(folder, "missing", "post-")


def test_flipped_byte_is_caught_by_sha256(folder):
    path = folder / manifest_of(folder)["models"]["pre"]["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    expect_error(folder, "damaged", "sha256")


def test_truncated_file(folder):
    path = folder / manifest_of(folder)["models"]["post"]["file"]
    path.write_bytes(path.read_bytes()[:1000])
    expect_error(folder, "damaged")


class Boom:
    """Unpickling this would create the marker file."""
    marker = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_with_matching_hash_is_refused_not_executed(folder, tmp_path):
    # Even if an attacker also rewrites the manifest's sha256, a pickle is never loaded.
    marker = tmp_path / "pwned"
    Boom.marker = str(marker)
    m = manifest_of(folder)
    path = folder / m["models"]["pre"]["file"]
    path.write_bytes(pickle.dumps({"trunk.head.weight": Boom()}))
    m["models"]["pre"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    write_manifest(folder, m)
    expect_error(folder, "not a readable safetensors file", "never unpickles")
    assert not marker.exists()


def test_tensors_that_do_not_fit_the_config(folder):
    m = manifest_of(folder)
    m["models"]["post"]["config"]["channels"] += 8
    write_manifest(folder, m)
    expect_error(folder, "does not fit", "PostNet")


def test_unknown_class_and_bad_config(folder):
    m = manifest_of(folder)
    m["models"]["pre"]["class"] = "ResNet"
    write_manifest(folder, m)
    expect_error(folder, "ResNet")
    m["models"]["pre"]["class"] = "PreNet"
    m["models"]["pre"]["config"]["colour"] = 1
    write_manifest(folder, m)
    expect_error(folder, "colour")


def test_file_name_may_not_leave_the_folder(folder):
    m = manifest_of(folder)
    m["models"]["pre"]["file"] = "../weights/" + m["models"]["pre"]["file"]
    write_manifest(folder, m)
    expect_error(folder, "not a file name")


def test_env_var_points_encode_at_a_broken_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(WeightsError, match="no weights manifest"):
        jpegplus.encode(np.zeros((8, 8, 3), np.uint8))
    assert isinstance(WeightsError("x"), JpegPlusError)


def test_default_bundle_is_cached_per_folder(folder, monkeypatch):
    monkeypatch.setattr(bundle_mod, "_cache", {})
    monkeypatch.setenv(ENV_VAR, str(folder))
    first = default_bundle()
    assert default_bundle() is first
    monkeypatch.delenv(ENV_VAR)
    assert default_bundle() is not first
