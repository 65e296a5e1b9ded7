"""Shipped weights: a manifest, sha256-checked network files, loaded once per process.

weights/manifest.json names each network with its class (a key of
jpegplus.models.MODELS), config, safetensors file and sha256, and (PreNet,
PostNet) its ONNX graphs, one per scale, each with its sha256 and reach; plus
the quantisation-table family and the quality ladder. It is read and checked
once, here, into small frozen types (Manifest, NetEntry, OnnxGraph,
TableFamily, Ladder); no other module reads the JSON. Reading a manifest needs
neither torch nor onnxruntime. Networks load through jpegplus.runtime: ONNX
Runtime from the graphs, or torch from the safetensors files (read with
safetensors, which never executes code from the file).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from . import views as jpegplus_views
from .errors import WeightsError
from .requant import requantise
from .tables import jpegplus_tables

ENV_VAR = "JPEGPLUS_WEIGHTS"
FIX_HINT = ("Reinstall jpegplus (pip install --force-reinstall jpegplus), restore weights/ from the repository "
            "(git checkout -- weights), or set JPEGPLUS_WEIGHTS to a folder holding a good manifest.json.")
LADDER_ROWS = 100  # one row per user quality 1..100


def weights_dir() -> Path:
    """Folder of manifest.json: $JPEGPLUS_WEIGHTS, else the packaged jpegplus.weights.

    WeightsError (with the fix) when jpegplus is imported from a source
    checkout that was never installed: weights/ becomes jpegplus.weights only
    on installation."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    try:
        return Path(str(resources.files("jpegplus.weights")))
    except ModuleNotFoundError:
        checkout = Path(__file__).resolve().parent.parent / "weights"
        raise WeightsError(f"jpegplus.weights is not installed: jpegplus is imported from a source checkout "
                           f"({Path(__file__).resolve().parent}) that was never installed. Install it "
                           f"(pip install -e . in the repository, or make test), or set {ENV_VAR}={checkout}.") from None


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- the manifest, typed

def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _whole(v, lo: int, hi: int) -> bool:
    return _number(v) and float(v).is_integer() and lo <= v <= hi


@dataclass(frozen=True)
class TableFamily:
    """The quantisation tables jpegplus encodes with and the encoder's
    requantisation: the manifest's "tables".

    Tables are T = m·(S/m)^flatness with chroma weighted by chroma_weight
    (jpegplus.tables), and by chroma_444 more in 4:4:4 files, which hold four
    times the chroma coefficients; deadzone, eob and sharp are jpegplus.requant's
    options (absent in older manifests: 0.5, 0 and 0, libjpeg's own quantiser
    and 2×2 chroma averages)."""
    flatness: float
    chroma_weight: float
    deadzone: float = 0.5
    eob: float = 0.0
    chroma_444: float = 2.0
    sharp: float = 0.0

    def tables(self, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
        """Tables at internal JPEG quality 1..100 for a file of `subsampling`
        ("4:2:0" or "4:4:4"): int (2, 8, 8), natural order."""
        weight = self.chroma_weight * (self.chroma_444 if subsampling == "4:4:4" else 1.0)
        return jpegplus_tables(quality, self.flatness, weight)

    @property
    def requant(self) -> dict:
        """{"deadzone", "eob"[, "sharp" when set]}: the keyword options of jpegplus.requant.requantise."""
        return {"deadzone": self.deadzone, "eob": self.eob, **({"sharp": self.sharp} if self.sharp else {})}

    def requantise(self, image: np.ndarray, tables: np.ndarray, subsampling: str = "4:2:0") -> np.ndarray:
        """uint8 (H, W, 3) or (H, W) → the same, requantised for `tables` as the encoder does."""
        return requantise(image, tables, **self.requant, subsampling=subsampling)

    @classmethod
    def from_json(cls, raw) -> TableFamily:
        """From the manifest's "tables" object; ValueError if it is malformed."""
        optional = ("deadzone", "eob", "chroma_444", "sharp")
        if not isinstance(raw, dict) or not all(_number(raw.get(k)) for k in ("flatness", "chroma_weight")) \
                or not all(_number(raw[k]) for k in optional if k in raw):
            raise ValueError("tables (numbers flatness, chroma_weight; optional deadzone, eob, chroma_444, sharp)")
        return cls(**{k: float(raw[k]) for k in ("flatness", "chroma_weight") + optional if k in raw})

    def to_json(self) -> dict:
        return {"flatness": self.flatness, "chroma_weight": self.chroma_weight, "chroma_444": self.chroma_444,
                **self.requant}


@dataclass(frozen=True)
class LadderRow:
    """The encoder's settings for one user quality: internal JPEG quality at
    scale 1 (q1, 1..100), at scale 2 (q2, 1..100; 0 = scale 2 is never
    tried) and at scale 1 with 4:4:4 chroma (q444, likewise), and λ, the
    exchange rate of the closed-loop choice in MSE (0..255 levels²) per bit per pixel."""
    q1: int
    q2: int
    lam: float
    q444: int = 0


@dataclass(frozen=True)
class Ladder:
    """The quality ladder: one LadderRow per user quality 1..100 (the manifest's "ladder")."""
    q1: tuple[int, ...]
    q2: tuple[int, ...]
    lam: tuple[float, ...]
    q444: tuple[int, ...] = (0,) * LADDER_ROWS  # older manifests have none: 4:4:4 is never tried

    def row(self, quality: int) -> LadderRow:
        """The row for user quality 1..100 (Pillow's meaning)."""
        if not 1 <= quality <= len(self.q1):
            raise ValueError(f"quality must be 1..{len(self.q1)}, got {quality!r}")
        i = int(quality) - 1
        return LadderRow(self.q1[i], self.q2[i], self.lam[i], self.q444[i])

    @classmethod
    def from_json(cls, raw) -> Ladder:
        """From the manifest's "ladder" object; ValueError if it is malformed."""
        rows = [raw.get(k) for k in ("q1", "q2", "lambda")] if isinstance(raw, dict) else [None]
        rows.append(raw.get("q444", [0] * LADDER_ROWS) if isinstance(raw, dict) else None)
        if not all(isinstance(r, list) and len(r) == LADDER_ROWS and all(_number(v) for v in r) for r in rows) \
                or not all(_whole(q, 1, 100) for q in rows[0]) \
                or not all(_whole(q, 0, 100) for q in rows[1] + rows[3]):
            raise ValueError(f"ladder ({LADDER_ROWS} rows of q1 1..100, q2 0..100, lambda; optional q444 0..100)")
        return cls(tuple(int(q) for q in rows[0]), tuple(int(q) for q in rows[1]), tuple(rows[2]),
                   tuple(int(q) for q in rows[3]))

    def to_json(self) -> dict:
        return {"q1": list(self.q1), "q2": list(self.q2), "lambda": list(self.lam), "q444": list(self.q444)}


def _file_name(name) -> str:
    """`name` if it names a file inside the weights folder; ValueError otherwise."""
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        raise ValueError(f"{name!r}, not a file name inside the weights folder")
    return name


@dataclass(frozen=True)
class OnnxGraph:
    """A network's ONNX graph for one scale (inputs "image" (N, 3, H, W) float32
    in 0..1, "level" (N,) and, for a PostNet that takes the 4:4:4 flag,
    "chroma" (N,); output "out"), its sha256, and the network's
    reach(scale): the input pixels of context an output pixel depends on.
    `band`: for a BandedPostNet, the level band whose member the graph runs
    (the manifest's key "<scale>@<band>"; band 0: "<scale>").
    `int8`: optionally, (file, sha256) of the same graph with int8 convolutions
    (training/int8_check.py measures what it costs)."""
    scale: int
    file: str
    sha256: str
    reach: int
    int8: tuple[str, str] | None = None
    band: int = 0

    @property
    def key(self) -> str:
        """The graph's key in the manifest's "onnx" object."""
        return f"{self.scale}@{self.band}" if self.band else str(self.scale)

    @classmethod
    def from_json(cls, key: str, raw) -> OnnxGraph:
        shape = 'onnx: {"1"|"2"[@band]: {file, sha256, reach, optional int8: {file, sha256}}}'
        scale, _, band = key.partition("@")
        if scale not in ("1", "2") or (band and not (band.isdigit() and band[0] != "0")) \
                or not isinstance(raw, dict) or not isinstance(raw.get("sha256"), str) \
                or not _whole(raw.get("reach"), 0, 10_000):
            raise ValueError(shape)
        int8 = raw.get("int8")
        if int8 is not None:
            if not isinstance(int8, dict) or not isinstance(int8.get("sha256"), str):
                raise ValueError(shape)
            int8 = (_file_name(int8.get("file")), int8["sha256"])
        return cls(int(scale), _file_name(raw.get("file")), raw["sha256"], int(raw["reach"]), int8, int(band or 0))

    def to_json(self) -> dict:
        out = {"file": self.file, "sha256": self.sha256, "reach": self.reach}
        if self.int8:
            out["int8"] = {"file": self.int8[0], "sha256": self.int8[1]}
        return out


@dataclass(frozen=True)
class NetEntry:
    """One network of the manifest: its class (a key of jpegplus.models.MODELS),
    the config that rebuilds it (class(**config)), its safetensors file name and
    sha256, its ONNX graphs (none for networks only training runs), and how
    many views of its input it averages (jpegplus.views: PostNet's at decode,
    PreNet's at encode; the ladder was calibrated with them)."""
    class_name: str
    config: dict
    file: str
    sha256: str
    graphs: tuple[OnnxGraph, ...] = ()
    views: int = 1

    @classmethod
    def from_json(cls, raw) -> NetEntry:
        """From one "models" entry; ValueError if it is malformed."""
        if not isinstance(raw, dict) or not isinstance(raw.get("class"), str) \
                or not isinstance(raw.get("config"), dict) or not isinstance(raw.get("sha256"), str):
            raise ValueError("class, config, file and sha256")
        onnx = raw.get("onnx", {})
        if not isinstance(onnx, dict):
            raise ValueError('onnx: {"1"|"2": {file, sha256, reach}}')
        graphs = tuple(OnnxGraph.from_json(k, v) for k, v in sorted(onnx.items()))
        bounds = raw["config"].get("bounds", [])
        if not isinstance(bounds, list) or not all(_number(b) for b in bounds):
            raise ValueError("config.bounds: a list of levels")
        bands = len(bounds) + 1
        if graphs and {(g.scale, g.band) for g in graphs} != {(s, b) for s in {g.scale for g in graphs}
                                                              for b in range(bands)}:
            raise ValueError(f"onnx: one graph per scale and level band ({bands} band(s))")
        return cls(raw["class"], raw["config"], _file_name(raw.get("file")), raw["sha256"], graphs,
                   jpegplus_views.check(raw.get("views", 1)))

    def files(self) -> list[str]:
        """Every file of this network in the weights folder: safetensors, ONNX graphs, their int8 versions."""
        return [self.file, *(g.file for g in self.graphs), *(g.int8[0] for g in self.graphs if g.int8)]

    def to_json(self) -> dict:
        out = {"class": self.class_name, "config": self.config, "file": self.file, "sha256": self.sha256}
        if self.graphs:
            out["onnx"] = {g.key: g.to_json() for g in self.graphs}
        if self.views != 1:
            out["views"] = self.views
        return out


@dataclass(frozen=True)
class Manifest:
    """weights/manifest.json, checked: the networks, the table family and the
    ladder; `training` is the free-form record of how the networks were made."""
    model_id: str
    models: dict[str, NetEntry]
    tables: TableFamily
    ladder: Ladder
    training: dict = field(default_factory=dict)
    format: int = 1

    @classmethod
    def from_json(cls, raw, path: Path) -> Manifest:
        """Check a parsed manifest.json (read from `path`, for the messages):
        WeightsError naming every field that is missing or malformed."""
        if not isinstance(raw, dict):
            raise WeightsError(f"weights manifest {path} is not a JSON object. {FIX_HINT}")
        problems, parsed = [], {}
        if not isinstance(raw.get("model_id"), str):
            problems.append("model_id")
        models = raw.get("models")
        if not isinstance(models, dict):
            problems.append("models")
        else:
            parsed["models"] = {}
            for name, entry in models.items():
                try:
                    parsed["models"][name] = NetEntry.from_json(entry)
                except ValueError as e:
                    problems.append(f"models.{name} ({e})")
        for key, kind in (("tables", TableFamily), ("ladder", Ladder)):
            try:
                parsed[key] = kind.from_json(raw.get(key))
            except ValueError as e:
                problems.append(str(e))
        if problems:
            raise WeightsError(f"weights manifest {path} is incomplete or malformed: check {', '.join(problems)}. "
                               f"{FIX_HINT}")
        training = raw.get("training") if isinstance(raw.get("training"), dict) else {}
        return cls(raw["model_id"], parsed["models"], parsed["tables"], parsed["ladder"], training,
                   raw.get("format", 1))

    def to_json(self) -> dict:
        """The manifest.json object (keys in the order export writes them)."""
        return {"format": self.format, "model_id": self.model_id,
                "models": {k: v.to_json() for k, v in self.models.items()},
                "tables": self.tables.to_json(), "ladder": self.ladder.to_json(), "training": self.training}


def read_manifest(folder: Path | None = None) -> Manifest:
    """The checked manifest of `folder` (default weights_dir()); no torch needed.
    Every failure is a WeightsError whose message says how to fix it."""
    folder = Path(folder) if folder else weights_dir()
    path = folder / "manifest.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise WeightsError(f"no weights manifest at {path}. {FIX_HINT}") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise WeightsError(f"weights manifest {path} is damaged: {e}. {FIX_HINT}") from None
    return Manifest.from_json(raw, path)


# ---------------------------------------------------------------- networks

@dataclass(frozen=True, repr=False)
class Bundle:
    """The loaded networks with the manifest that describes them: `nets` maps a
    name to a runtime.OnnxNet (runtime "onnx") or a torch module in eval mode on
    the CPU (runtime "torch"); `folder` is where they were loaded from (None for
    networks built in memory); `views`: how many views of each decoded file
    PostNet restores and averages (jpegplus.views), `pre_views` how many views
    of each image PreNet downsamples and averages."""
    manifest: Manifest
    nets: dict
    folder: Path | None = None
    runtime: str = "torch"
    precision: str = "float32"  # "int8" where int8 ONNX graphs run
    views: int = 1
    pre_views: int = 1

    @property
    def model_id(self) -> str:
        return self.manifest.model_id

    def __repr__(self) -> str:
        return (f"Bundle(model_id={self.model_id!r}, nets={sorted(self.nets)}, runtime={self.runtime!r}"
                + (f", precision={self.precision!r}" if self.precision != "float32" else "")
                + (f", views={self.views})" if self.views != 1 else ")"))

    def torch_net(self, name: str, device):
        """Network `name` as a torch module on `device` (the GPU path): the bundle's
        own module (torch runtime, CPU), else one loaded from `folder` or copied,
        once per process and device (the shared modules are never moved).
        Needs torch (runtime.RuntimeMissingError naming the extra otherwise)."""
        from .runtime import OnnxNet, require_torch

        require_torch(f"running the networks on {str(device)!r}")
        import copy

        import torch

        device = torch.device(device)
        net = self.nets[name]
        if not isinstance(net, OnnxNet) and device.type == "cpu":
            return net
        key = (self.model_id, str(self.folder), name, str(device))
        with _lock:
            if key not in _on_device:
                module = load_net(Path(self.folder), self.manifest.models[name]) if isinstance(net, OnnxNet) \
                    else copy.deepcopy(net)
                _on_device[key] = module.to(device).eval()
            return _on_device[key]


def checked_file(folder: Path, name: str, sha256: str) -> Path:
    """folder/name after checking that it exists and has the manifest's sha256; WeightsError otherwise."""
    path = folder / name
    if not path.is_file():
        raise WeightsError(f"weights file {path} is missing. {FIX_HINT}")
    digest = sha256_of(path)
    if digest != sha256:
        raise WeightsError(f"weights file {path} is damaged: sha256 {digest[:16]}… does not match the manifest "
                           f"({sha256[:16]}…). {FIX_HINT}")
    return path


def onnx_net(entry: NetEntry, paths: dict):
    """A runtime.OnnxNet of manifest entry `entry` from graph files `paths`
    {(scale, band): path}: its reaches, level bands and pass-through scales
    as the entry and its config say (no sha256 check: load_onnx checks)."""
    from .runtime import OnnxNet

    return OnnxNet(paths, {g.scale: g.reach for g in entry.graphs}, entry.config.get("bounds", ()),
                   entry.config.get("identity_scales", ()))


def load_onnx(folder: Path, entry: NetEntry, precision: str = "int8"):
    """One network as a runtime.OnnxNet from its manifest entry's graphs (each
    sha256-checked): their int8 versions where the manifest lists them and
    `precision` is "int8", else the float32 ones."""
    paths = {(g.scale, g.band): checked_file(folder, *(g.int8 if g.int8 and precision == "int8" else (g.file, g.sha256)))
             for g in entry.graphs}
    try:
        return onnx_net(entry, paths)
    except Exception as e:  # onnxruntime raises its own error types for graphs it cannot load
        raise WeightsError(f"ONNX graph of {entry.file} cannot be loaded ({e}). {FIX_HINT}") from None


def load_net(folder: Path, entry: NetEntry):
    """One network (torch.nn.Module) from a manifest entry: file present, sha256
    as listed, safetensors (no pickle), tensors that fit `class(**config)`."""
    import torch
    from safetensors.torch import load_file

    from .models import build

    path = checked_file(folder, entry.file, entry.sha256)
    try:
        net = build(entry.class_name, entry.config)
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"weights manifest entry for {path.name} cannot build "
                           f"{entry.class_name!r} with {entry.config!r}: {e}. {FIX_HINT}") from None
    try:
        tensors = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise WeightsError(f"weights file {path} is not a readable safetensors file ({e}); "
                           f"jpegplus never unpickles weights. {FIX_HINT}") from None
    try:
        net.load_state_dict(tensors)
    except RuntimeError as e:  # wrong keys or shapes: a manifest/file mismatch
        raise WeightsError(f"weights file {path} does not fit {entry.class_name}({entry.config}): {e}. "
                           f"{FIX_HINT}") from None
    return net.eval().to(memory_format=torch.channels_last)  # ≈ 25 % faster convolutions on CPU (oneDNN)


def load_bundle(folder: Path | None = None, names=("pre", "post"), runtime: str | None = None,
                precision: str | None = None, views: int | None = None) -> Bundle:
    """Read the manifest and load the named networks, checking each sha256, with
    `runtime` ("onnx" or "torch"; None: runtime.choose, ONNX Runtime where the
    manifest has graphs for all of them and it is installed). ONNX Runtime runs
    the int8 graphs the manifest lists unless `precision` is "float32" (None:
    runtime.precision(), $JPEGPLUS_PRECISION or "int8"). PostNet averages
    `views` views of each file (None: $JPEGPLUS_VIEWS, else the manifest's);
    PreNet the manifest's count.

    Every failure (missing or damaged manifest or file, wrong hash, a file that
    is not safetensors or ONNX, tensors that do not fit) is a WeightsError whose
    message says how to fix it; a runtime that is not installed is a
    runtime.RuntimeMissingError naming what to install."""
    from .runtime import choose, precision as default_precision

    folder = Path(folder) if folder else weights_dir()
    manifest = read_manifest(folder)
    missing = [n for n in names if n not in manifest.models]
    if missing:
        raise WeightsError(f"weights manifest {folder / 'manifest.json'} lacks {', '.join(map(repr, missing))}. "
                           f"{FIX_HINT}")
    views = jpegplus_views.check(views) if views is not None else \
        jpegplus_views.from_env(manifest.models["post"].views if "post" in manifest.models else 1)
    runtime = runtime or choose(all(manifest.models[n].graphs for n in names))
    if runtime == "onnx":
        precision = precision or default_precision()
        nets = {n: load_onnx(folder, manifest.models[n], precision) for n in names}
        if not any(g.int8 for n in names for g in manifest.models[n].graphs):
            precision = "float32"
    else:
        nets, precision = {n: load_net(folder, manifest.models[n]) for n in names}, "float32"
    pre_views = manifest.models["pre"].views if "pre" in manifest.models else 1
    return Bundle(manifest, nets, folder, runtime, precision, views, pre_views)


_lock = threading.Lock()
_cache: dict = {}      # weights folder → the default bundle
_on_device: dict = {}  # (model id, folder, name, device) → torch module: Bundle.torch_net's copies


def default_bundle() -> Bundle:
    """The shipped bundle, loaded once per process (thread-safe)."""
    key = str(weights_dir())
    with _lock:
        if key not in _cache:
            _cache[key] = load_bundle(Path(key))
        return _cache[key]


def resolve(bundle: Bundle | None) -> Bundle:
    """`bundle`, or the shipped one when None. Every caller goes through this
    one lookup of default_bundle, so a test replaces the shipped bundle in one place."""
    return bundle if bundle is not None else default_bundle()


def save_net(net, folder: Path, stem: str) -> NetEntry:
    """Write `net` (a torch.nn.Module with a `config`) as <stem>-<sha8>.safetensors; its manifest entry."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{stem}.tmp"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    digest = sha256_of(tmp)
    final = folder / f"{stem}-{digest[:8]}.safetensors"
    os.replace(tmp, final)
    return NetEntry(type(net).__name__, net.config, final.name, digest)


def export_onnx(net, folder: Path, stem: str, scales=(1, 2)) -> tuple[OnnxGraph, ...]:
    """Write `net` (a PreNet- or PostNet-like torch module, net(x, level, scale),
    or net(x, level, scale, full_chroma) where it takes_chroma: the graph's third
    input "chroma") as one ONNX graph per scale, <stem>-s<scale>-<sha8>.onnx,
    with dynamic batch, height and width; their OnnxGraph entries (reach from net.reach).
    None at the scales where the net passes its input through (its `identity_scales`).
    A BandedPostNet gets one graph per scale and member, <stem>-b<band>-s<scale>-<sha8>.onnx."""
    import copy

    import torch

    if hasattr(net, "bands"):  # the runtime picks the member by level (OnnxNet.infer), outside the graphs
        return tuple(dataclasses.replace(g, band=b) for b, member in enumerate(net.bands)
                     for g in export_onnx(member, folder, f"{stem}-b{b}", scales))

    net = copy.deepcopy(net).eval().to(memory_format=torch.contiguous_format)

    chroma = getattr(net, "takes_chroma", False)

    class AtScale(torch.nn.Module):
        def __init__(self, scale: int):
            super().__init__()
            self.net, self.scale = net, scale

        def forward(self, image, level, *full_chroma):
            return self.net(image, level, self.scale, *full_chroma)

    folder.mkdir(parents=True, exist_ok=True)
    graphs = []
    names = ["image", "level"] + (["chroma"] if chroma else [])
    for scale in (s for s in scales if s not in getattr(net, "identity_scales", ())):
        tmp = folder / f"{stem}-s{scale}.tmp"
        example = (torch.rand(1, 3, 64, 64), torch.tensor([0.5])) + ((torch.tensor([1.0]),) if chroma else ())
        torch.onnx.export(AtScale(scale).eval(), example, str(tmp), input_names=names,
                          output_names=["out"], opset_version=17, dynamo=False,
                          dynamic_axes={"image": {0: "n", 2: "h", 3: "w"}, **{k: {0: "n"} for k in names[1:]},
                                        "out": {0: "n", 2: "out_h", 3: "out_w"}})
        digest = sha256_of(tmp)
        final = folder / f"{stem}-s{scale}-{digest[:8]}.onnx"
        os.replace(tmp, final)
        graphs.append(OnnxGraph(scale, final.name, digest, int(net.reach(scale))))
    return tuple(graphs)


# Convolutions that stay float32 in int8 graphs, per network. PostNet's: the first, the last, and the one
# before the last. On model 98896977 (training.int8_check --keep-float, 10 val/ images) keeping one more
# convolution float32 took the int8 cost from +0.44 % BD-rate to +0.21 % (detail_out), +0.32 (detail_in), +0.39
# (up), +0.40 (down), +0.43 (each context layer); detail_out and detail_in both: +0.10 %, but 1.3× instead of
# 1.4× faster. With detail_out, on all 41 val/ images: +0.19 %, PSNR −0.008 to −0.014 dB at quality 10–90.
# PreNet's are all int8: keeping its first one float32 made it 1.05× faster instead of 1.7×, for nothing
# measurable (11 val/ images: +0.016 % against +0.015 % BD-rate of the whole system). On model 0aa72183
# (training.int8_check, all 41 val/ images) the whole system in int8 costs +0.24 %, PostNet alone +0.21 %;
# PreNet runs 79 → 27 ms/MP, PostNet 173 → 128.
INT8_FLOAT_CONVS = {"pre": (), "post": ("/net/stem/Conv", "/net/head/Conv", "/net/detail_out.0/Conv")}
# Activation ranges: this percentile of each tensor's calibration values, not its min..max. On model 98896977
# (training.int8_check, 21 val/ images, feeds of both level bands) int8 cost +0.44 % BD-rate against float32 at
# 99.99, +0.49 % at 99.9, +0.67 % at 99.999, +0.97 % with min..max (+1.45 % over 4x the crops: outliers widen
# it); with each band's graph calibrated on its own band's files, +0.375 % at 99.99 (+0.377 at 99.95, +0.566 at
# 99.999).
INT8_CALIBRATION_PERCENTILE = 99.99


def quantise_int8(src: Path, dst: Path, feeds: list[dict], keep_float=()) -> str:
    """Write the int8 version of ONNX graph `src` to `dst`; its sha256. Static
    per-channel quantisation (ONNX Runtime's quantize_static, QDQ, u8
    activations and s8 weights with reduce_range: exact on CPUs without VNNI too,
    and 8-bit weights measured no better),
    activation ranges from `feeds` (the graph's inputs), each the
    INT8_CALIBRATION_PERCENTILE of its values. Only convolutions are
    quantised, and not all: the graph's fixed ones (bicubic ×2, the one-hot
    unshuffle: nodes outside any module) and those named in `keep_float` stay
    float32, as do the additions, so the bicubic base and the residual sum stay exact
    (quantising them cost 2.4 dB at scale 2). Needs onnx (the train extra)."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Feeds(CalibrationDataReader):
        def __init__(self):
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    fixed = [n.name for n in onnx.load(str(src)).graph.node if n.name.startswith("/net/Conv")]
    quantize_static(str(src), str(dst), Feeds(), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.Percentile,
                    extra_options={"CalibPercentile": INT8_CALIBRATION_PERCENTILE},
                    op_types_to_quantize=["Conv", "ConvTranspose"], nodes_to_exclude=fixed + list(keep_float))
    return sha256_of(dst)
