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
from jpegplus import requant as requant_mod
from jpegplus.bundle import ENV_VAR, default_bundle, load_bundle, weights_dir
from jpegplus.errors import JpegPlusError, WeightsError
from jpegplus.tables import jpegplus_tables

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


def expect_error(folder: Path, *fragments: str, runtime: str = "torch", precision: str | None = None) -> str:
    with pytest.raises(WeightsError) as info:
        load_bundle(folder, runtime=runtime, precision=precision)
    msg = str(info.value)
    assert HINT in msg
    for fragment in fragments:
        assert fragment in msg
    return msg


def test_copy_loads_and_checks_every_hash(folder):
    b = load_bundle(folder, runtime="torch")
    assert set(b.nets) == {"pre", "post"} and b.runtime == "torch"
    assert not any(net.training for net in b.nets.values())
    for entry in manifest_of(folder)["models"].values():
        assert hashlib.sha256((folder / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
        for graph in entry.get("onnx", {}).values():
            for g in (graph, graph.get("int8")):
                if g:
                    assert hashlib.sha256((folder / g["file"]).read_bytes()).hexdigest() == g["sha256"]


def test_default_runtime_is_onnx_and_graphs_cover_both_scales(folder):
    b = load_bundle(folder)
    assert b.runtime == "onnx" and type(b.nets["post"]).__name__ == "OnnxNet"
    for name in ("pre", "post"):
        entry = manifest_of(folder)["models"][name]
        bands = len(entry["config"].get("bounds", [])) + 1  # a BandedPostNet: both scales for every level band
        scales = [s for s in "12" if int(s) not in entry["config"].get("identity_scales", [])]  # none where it passes through
        assert sorted(entry["onnx"]) == sorted(f"{s}@{b}" if b else s for s in scales for b in range(bands))


def onnx_file(folder: Path, name: str, scale: str = "2") -> Path:
    return folder / manifest_of(folder)["models"][name]["onnx"][scale]["file"]


def test_missing_onnx_graph(folder):
    path = onnx_file(folder, "post")
    path.unlink()
    expect_error(folder, "missing", path.name, runtime="onnx", precision="float32")


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_flipped_byte_in_onnx_graph_is_caught_by_sha256(folder, precision):
    graph = manifest_of(folder)["models"]["pre"]["onnx"]["2"]
    path = folder / (graph["int8"]["file"] if precision == "int8" else graph["file"])  # the graph that precision loads
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    expect_error(folder, "damaged", "sha256", runtime="onnx", precision=precision)


def test_onnx_graph_that_does_not_load_even_with_a_matching_hash(folder):
    m = manifest_of(folder)
    path = onnx_file(folder, "post")
    path.write_bytes(path.read_bytes()[:5000])
    m["models"]["post"]["onnx"]["2"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    write_manifest(folder, m)
    expect_error(folder, "ONNX graph", "cannot be loaded", runtime="onnx", precision="float32")


def test_onnx_entry_malformed_or_leaving_the_folder(folder):
    m = manifest_of(folder)
    graph = dict(m["models"]["pre"]["onnx"]["2"])
    m["models"]["pre"]["onnx"]["2"]["file"] = "../" + graph["file"]
    write_manifest(folder, m)
    expect_error(folder, "not a file name")
    m["models"]["pre"]["onnx"] = {"3": graph}
    write_manifest(folder, m)
    expect_error(folder, "onnx")


def test_runtime_is_chosen_by_the_environment(folder, monkeypatch):
    from jpegplus import runtime

    monkeypatch.setenv(runtime.RUNTIME_VAR, "torch")
    assert load_bundle(folder).runtime == "torch"
    monkeypatch.setenv(runtime.RUNTIME_VAR, "tensorflow")
    with pytest.raises(ValueError, match="onnx, torch"):
        load_bundle(folder)
    monkeypatch.setenv(runtime.RUNTIME_VAR, "onnx")
    m = manifest_of(folder)
    del m["models"]["pre"]["onnx"]
    write_manifest(folder, m)
    with pytest.raises(runtime.RuntimeMissingError, match="no ONNX graphs"):
        load_bundle(folder)
    monkeypatch.delenv(runtime.RUNTIME_VAR)
    assert load_bundle(folder).runtime == "torch"  # a network without graphs: torch runs them all


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
    config = m["models"]["post"]["config"]
    config.get("net", config)["channels"] += 8  # a BandedPostNet's members' config
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


# ---------------------------------------------------------------- the typed manifest

@pytest.mark.parametrize("field, value, fragment", [
    ("ladder.q1", [0] * 100, "ladder"),                       # q1 below 1
    ("ladder.q2", [50.5] * 100, "ladder"),                    # not a whole quality
    ("ladder.lambda", [1.0] * 99, "ladder"),                  # a row short
    ("ladder.q444", [101] * 100, "ladder"),                   # beyond quality 100
    ("tables.chroma_444", "2", "tables"),
    ("tables.flatness", "0.3", "tables"),
    ("tables.deadzone", None, "tables"),
    ("model_id", 7, "model_id"),
    ("models.pre.sha256", None, "models.pre"),
])
def test_malformed_fields_are_named(folder, field, value, fragment):
    m = manifest_of(folder)
    *path, key = field.split(".")
    target = m
    for part in path:
        target = target[part]
    target[key] = value
    write_manifest(folder, m)
    with pytest.raises(WeightsError) as info:
        bundle_mod.read_manifest(folder)  # checked when read, before any network is loaded
    assert fragment in str(info.value) and HINT in str(info.value)


def test_manifest_types_read_what_the_json_says(folder):
    raw = manifest_of(folder)
    m = bundle_mod.read_manifest(folder)
    assert m.to_json() == raw  # nothing lost or added: export writes what loaders read
    row = m.ladder.row(10)
    assert (row.q1, row.q2, row.lam, row.q444) == tuple(raw["ladder"][k][9] for k in ("q1", "q2", "lambda", "q444"))
    for bad in (0, 101):
        with pytest.raises(ValueError):
            m.ladder.row(bad)
    t = raw["tables"]
    assert np.array_equal(m.tables.tables(50), jpegplus_tables(50, t["flatness"], t["chroma_weight"]))
    assert np.array_equal(m.tables.tables(50, "4:4:4"),
                          jpegplus_tables(50, t["flatness"], t["chroma_weight"] * t["chroma_444"]))
    sharp = {"sharp": t["sharp"]} if "sharp" in t else {}  # named only when set
    assert m.tables.requant == {"deadzone": t["deadzone"], "eob": t["eob"], **sharp}
    assert m.models["post"].file == raw["models"]["post"]["file"]
    assert load_bundle(folder).manifest == m


def test_older_manifest_without_requantisation_means_libjpegs_quantiser(folder):
    m = manifest_of(folder)
    del m["tables"]["deadzone"], m["tables"]["eob"]
    m["tables"].pop("sharp", None)
    write_manifest(folder, m)
    family = bundle_mod.read_manifest(folder).tables
    assert family.requant == {"deadzone": 0.5, "eob": 0.0} and family.sharp == 0
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert family.requantise(rgb, family.tables(50)) is rgb  # libjpeg's own rounding: the input itself


def test_sharp_chroma_share_round_trips_and_reaches_the_requantisation(folder):
    m = manifest_of(folder)
    m["tables"]["sharp"] = 0.5
    write_manifest(folder, m)
    family = bundle_mod.read_manifest(folder).tables
    assert family.requant["sharp"] == 0.5 and family.to_json() == m["tables"]
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    t = family.tables(80)
    assert (family.requantise(rgb, t) != requant_mod.requantise(rgb, t, family.deadzone, family.eob)).any()


def test_older_manifest_without_444_never_tries_it(folder):
    m = manifest_of(folder)
    del m["ladder"]["q444"], m["tables"]["chroma_444"]
    write_manifest(folder, m)
    read = bundle_mod.read_manifest(folder)
    assert read.ladder.q444 == (0,) * 100 and read.tables.chroma_444 == 2.0


def test_source_checkout_without_install_names_the_fix():
    # A checkout that was never installed has no jpegplus.weights package (weights/ is mapped on install).
    import os
    import site
    import subprocess
    import sys

    repo = Path(jpegplus.__file__).parent.parent
    code = ("import sys; sys.path[:0] = sys.argv[1:]; "
            "from jpegplus.bundle import weights_dir; from jpegplus.errors import WeightsError\n"
            "try:\n    weights_dir()\nexcept WeightsError as e:\n    print(e)")
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    # -S: no site-packages .pth files, so no editable-install finder; numpy and Pillow come from the path
    out = subprocess.run([sys.executable, "-S", "-c", code, str(repo), *site.getsitepackages()],
                         capture_output=True, text=True, env=env, cwd=repo)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "not installed" in out.stdout and "pip install -e ." in out.stdout
    assert f"{ENV_VAR}={repo / 'weights'}" in out.stdout
