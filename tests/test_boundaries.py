"""Module boundaries: no import circle, torch only once pixels are coded, one
trust check for segments, one encoder engine that every caller shares."""
from __future__ import annotations

import ast
import io
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jpegplus
from jpegplus import cli, engine
from jpegplus import segment as seg
from jpegplus.bundle import LadderRow
from jpegplus.errors import SegmentError, SegmentWarning

PACKAGE = Path(jpegplus.__file__).parent
FIXTURES = Path(__file__).parent / "fixtures"


def local_imports(path: Path, top_level_only: bool) -> set[str]:
    """jpegplus modules that `path` imports (relative imports), at module level or anywhere."""
    package = path.parent.relative_to(PACKAGE.parent).as_posix().replace("/", ".")
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            target = f"{base}.{node.module}" if node.module else base
            if node.module:
                found.add(target)
            else:
                found.update(f"{base}.{a.name}" for a in node.names)
    return found


def module_name(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")


def test_no_import_circle():
    # Imports among jpegplus modules, deferred ones inside functions included, form no cycle
    # (a depth-first search finds no back edge).
    graph = {module_name(p): local_imports(p, top_level_only=False) for p in PACKAGE.rglob("*.py")}
    state: dict[str, int] = {}

    def visit(node, trail):
        state[node] = 1
        for nxt in graph.get(node, ()):
            assert state.get(nxt) != 1, f"import circle: {' -> '.join(trail + [nxt])}"
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
    assert "jpegplus.engine" in graph["jpegplus.codec"]  # the graph is really read


def test_codec_never_imports_the_plugin():
    # Not even inside a function: the bypass flag lives below both, in jpegplus.jpeg.
    for name in ("codec", "engine", "segment", "jpeg"):
        assert "jpegplus.plugin" not in local_imports(PACKAGE / f"{name}.py", top_level_only=False), name


def test_opening_through_the_plugin_imports_no_runtime_until_load(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpegplus.encode(np.asarray(Image.open(FIXTURES / "val1.png").convert("RGB")), 60, scale=2))
    code = ("import sys, jpegplus; from PIL import Image; jpegplus.register(); "
            f"im = Image.open({str(path)!r}); "
            "assert type(im).__name__ == 'JpegPlusImageFile' and im.size == (192, 128), (type(im), im.size); "
            "assert im.jpegplus_segment.scale == 2; "
            "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules, 'runtime imported by open'; "
            "im.load(); assert 'onnxruntime' in sys.modules and im.size == (192, 128); "
            "assert 'torch' not in sys.modules, 'torch imported by load'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_info_and_reading_a_manifest_import_no_torch(tmp_path):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpegplus.encode(np.zeros((32, 32, 3), np.uint8), 60))
    code = ("import sys; from jpegplus import cli; from jpegplus.bundle import read_manifest; "
            f"assert cli.describe(open({str(path)!r}, 'rb').read())['jpegplus']['intact']; "
            "assert read_manifest().ladder.row(75).q1 >= 1; "
            "assert 'torch' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_plain_install_needs_no_bench_extra(tmp_path):
    # Without OpenCV, scipy and matplotlib: encode, decode, the plugin, Filter and the CLI work,
    # and `jpegplus bench` fails with one line that names the extra.
    code = ("import sys; sys.modules.update(dict.fromkeys(['cv2', 'scipy', 'matplotlib'], None)); "
            "import io, numpy as np, jpegplus; from PIL import Image; from jpegplus import cli; "
            "rgb = np.asarray(Image.open(sys.argv[1]).convert('RGB')); data = jpegplus.encode(rgb, 50); "
            "assert jpegplus.decode(data).size == (192, 128); "
            "jpegplus.register(); im = Image.open(io.BytesIO(data)); im.load(); assert im.size == (192, 128); "
            "assert jpegplus.Filter(50)(rgb).shape == rgb.shape; "
            "assert cli.main(['demo', '--out', sys.argv[2], '-q', '30']) == 0; "
            "assert cli.main(['bench', sys.argv[2]]) == 2")
    out = subprocess.run([sys.executable, "-c", code, str(FIXTURES / "val1.png"), str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == ["jpegplus bench needs the bench extra: pip install 'jpegplus[bench]' "
                                               "(missing: opencv-python-headless, matplotlib, scipy)"]


# ---------------------------------------------------------------- one trust check

def damaged_files() -> dict[str, bytes]:
    """A trusted file and three that carry a segment the decoder must not trust."""
    rgb = np.asarray(Image.open(FIXTURES / "val0.png").convert("RGB"))[:48, :64]
    good = jpegplus.encode(rgb, 50, scale=2)
    scan = bytearray(good)
    scan[-20] ^= 0xFF  # the entropy-coded data changed: the check value no longer matches
    with Image.open(io.BytesIO(good)) as im:
        marker = good[good.find(b"\xff\xe9"):]
        marker = marker[:4 + int.from_bytes(marker[2:4], "big") - 2]
        buf = io.BytesIO()
        im.convert("L").save(buf, "JPEG", quality=90, extra=marker)  # re-encoded grey, segment kept
    future = bytearray(good)
    at = good.find(seg.IDENT) + len(seg.IDENT)
    future[at] = seg.FORMAT_VERSION + 1
    return {"good": good, "scan": bytes(scan), "re-encoded grey": buf.getvalue(), "future": bytes(future)}


@pytest.mark.parametrize("name", ["good", "scan", "re-encoded grey", "future"])
def test_every_caller_agrees_on_trust(name):
    data = damaged_files()[name]
    trusted = name == "good"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = jpegplus.decode(data)
    assert any(issubclass(w.category, SegmentWarning) for w in caught) == (not trusted)
    assert out.size == ((64, 48) if trusted else Image.open(io.BytesIO(data)).size)
    assert cli.describe(data)["jpegplus"].get("intact", False) == trusted
    if trusted:
        assert seg.of_bytes(data).scale == 2
    else:
        with pytest.raises(SegmentError):
            seg.of_bytes(data)
    jpegplus.register()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert (type(Image.open(io.BytesIO(data))).__name__ == "JpegPlusImageFile") == trusted
    finally:
        jpegplus.unregister()


def test_no_segment_is_none_not_an_error():
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "JPEG")
    assert seg.of_bytes(buf.getvalue()) is None


# ---------------------------------------------------------------- the engine's decisions

@pytest.mark.parametrize("row, size, scale, expected", [
    (LadderRow(40, 70, 100.0), (192, 128), None, [(1, 40), (2, 70)]),
    (LadderRow(80, 0, 9.0, 70), (192, 128), None, [(1, 80), (1, 70, "4:4:4")]),  # the row offers 4:4:4
    (LadderRow(40, 70, 9.0, 30), (192, 31), None, [(1, 40), (1, 30, "4:4:4")]),
    (LadderRow(80, 0, 9.0, 70), (192, 128), 1, [(1, 80), (1, 70, "4:4:4")]),  # scale 1 forced: 4:4:4 stays
    (LadderRow(40, 70, 9.0, 70), (192, 128), 2, [(2, 70)]),        # scale 2 is 4:2:0
    (LadderRow(40, 0, 100.0), (192, 128), None, [(1, 40)]),        # the row never offers scale 2
    (LadderRow(40, 70, 100.0), (192, 31), None, [(1, 40)]),        # too small to halve
    (LadderRow(40, 70, 100.0), (192, 128), 2, [(2, 70)]),
    (LadderRow(40, 0, 100.0), (192, 128), 2, [(2, 40)]),           # forced scale 2 without a q2
    (LadderRow(40, 70, 100.0), (192, 128), 1, [(1, 40)]),
])
def test_candidates(row, size, scale, expected):
    got = [(c.scale, c.quality) + ((c.subsampling,) if c.subsampling != "4:2:0" else ())
           for c in engine.candidates(row, size, scale)]
    assert got == expected


def test_grey_images_are_never_offered_444():
    assert [c.subsampling for c in engine.candidates(LadderRow(80, 0, 9.0, 70), (192, 128), grey=True)] == ["4:2:0"]


def test_rd_cost_is_mse_plus_lambda_bpp():
    assert engine.rd_cost(10.0, 1000, 100 * 80, 4.0) == pytest.approx(10.0 + 4.0 * 8 * 1000 / 8000)


def test_encode_runs_no_postnet_to_choose_between_candidates(monkeypatch):
    """FOLD_MARGIN is 0: the plain decode's cost decides every choice (but an
    exact tie), so an encode that tries scale ½ or 4:4:4 never runs PostNet."""
    from jpegplus.bundle import default_bundle

    rgb = np.asarray(Image.open(FIXTURES / "val0.png").convert("RGB"))
    ladder = default_bundle().manifest.ladder
    offered = [next(q for q in range(1, 101) if ladder.row(q).q2 > 0),  # scale 1 against scale ½
               next(q for q in range(1, 101) if ladder.row(q).q444 > 0)]  # 4:2:0 against 4:4:4
    runs = []  # how many files each PostNet run restored

    def reconstruct(nets, files, *args):
        runs.append(len(files))
        return [np.zeros_like(rgb)] * len(files)

    monkeypatch.setattr(engine, "reconstruct", reconstruct)
    for q in offered:
        assert len(engine.candidates(ladder.row(q), rgb.shape[1::-1])) == 2
        jpegplus.encode(rgb, q)
    assert runs == []
    monkeypatch.setattr(engine, "FOLD_MARGIN", 1e9)  # the premise: with every call close, the full loop runs
    jpegplus.encode(rgb, offered[0])
    assert runs == [1, 1]


def test_fold_decides_only_when_the_best_is_clear_of_every_other():
    costs = np.array([[100.0, 100.0, 100.0], [106.0, 104.0, 200.0], [300.0, 300.0, 104.0]])  # 3 candidates × 3 images
    assert engine.proxy_decides(costs, 0.05).tolist() == [True, False, False]
    assert engine.proxy_decides(costs[:2], 0.05).tolist() == [True, False, True]
