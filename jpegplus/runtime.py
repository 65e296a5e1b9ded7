"""How the networks run: ONNX Runtime on the CPU (the default), or torch.

A plain `pip install jpegplus` has onnxruntime and no torch: PreNet and PostNet
run from the `.onnx` graphs that training.export writes beside the safetensors
files (one graph per network and scale, listed with its sha256 in the manifest).
torch (`pip install 'jpegplus[torch]'`) runs the same networks from the
safetensors files: the GPU path (`Filter` on CUDA tensors, `decode(device=...)`)
and training use it. The two agree within TOLERANCE levels after rounding to
uint8 (tests/test_runtime.py). Where the manifest also lists int8 graphs
(PreNet's and PostNet's), ONNX Runtime runs those on CPUs with 8-bit dot
products (VNNI, or AVX2's pairwise ones), where they pay, and the float32 ones elsewhere
($JPEGPLUS_PRECISION=int8 or float32 decides instead): the PSNR between their
outputs and the float32 graphs' is at least INT8_MIN_PSNR dB
(training/int8_check.py measures their cost in BD-rate on val/).

Which runtime a bundle uses: $JPEGPLUS_RUNTIME ("onnx" or "torch") when set;
else ONNX Runtime when it is installed and the manifest lists graphs for every
network asked for; else torch. Nothing here imports onnxruntime or torch until
a network is loaded, so `import jpegplus` and `register()` stay light.

Arrays handed to a network are float32 (N, 3, H, W) in 0..1 with per-sample
levels float32 (N,) (tables.quant_level); `scale` is 1 or 2. A PostNet that
`takes_chroma` also gets full_chroma float32 (N,): 1 for files stored at 4:4:4
(the graph's "chroma" input); other networks ignore it.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

from .tables import band_groups
from .views import averaged

RUNTIME_VAR = "JPEGPLUS_RUNTIME"
RUNTIMES = ("onnx", "torch")
PRECISION_VAR = "JPEGPLUS_PRECISION"
PRECISIONS = ("int8", "float32")
TOLERANCE = 1  # max |onnx float32 − torch| per uint8 output value, 0..255 levels
INT8_MIN_PSNR = 45.0  # int8 graphs against the float32 ones on the same input: PSNR between the two outputs
TORCH_EXTRA = "pip install 'jpegplus[torch]'"

_threads = 0  # intra-op threads for networks loaded from now on; 0: the runtime's default (physical cores)


class RuntimeMissingError(ImportError):
    """Neither runtime that a request needs is installed; the message names the package to install."""


def installed(name: str) -> bool:
    """Whether `name` ("onnx" or "torch") can be imported, without importing it."""
    return importlib.util.find_spec("onnxruntime" if name == "onnx" else "torch") is not None


def require_torch(what: str) -> None:
    """RuntimeMissingError, naming the extra, unless torch is installed; `what` is the request that needs it."""
    if not installed("torch"):
        raise RuntimeMissingError(f"{what} needs torch, which is not installed: {TORCH_EXTRA}")


def choose(has_graphs: bool) -> str:
    """The runtime for networks whose manifest entries all list ONNX graphs
    (has_graphs) or not: $JPEGPLUS_RUNTIME, else "onnx" where it can run, else "torch"."""
    forced = os.environ.get(RUNTIME_VAR, "").strip().lower()
    if forced:
        if forced not in RUNTIMES:
            raise ValueError(f"{RUNTIME_VAR} must be one of {', '.join(RUNTIMES)}, got {forced!r}")
        if forced == "onnx" and not has_graphs:
            raise RuntimeMissingError(f"{RUNTIME_VAR}=onnx, but these weights list no ONNX graphs "
                                      f"(export them with python -m training.export)")
        if not installed(forced):
            raise RuntimeMissingError(f"{RUNTIME_VAR}={forced}, but it is not installed: " +
                                      ("pip install onnxruntime" if forced == "onnx" else TORCH_EXTRA))
        return forced
    if has_graphs and installed("onnx"):
        return "onnx"
    if installed("torch"):
        return "torch"
    if has_graphs:
        raise RuntimeMissingError("jpegplus runs its networks with onnxruntime, which is not installed: "
                                  "pip install onnxruntime (or reinstall jpegplus)")
    raise RuntimeMissingError(f"these weights list no ONNX graphs, so their networks need torch: {TORCH_EXTRA}")


# x86 8-bit multiply-adds, where the int8 graphs pay: VNNI's dot products, and AVX2's pairwise ones (vpmaddubsw;
# the graphs' reduce_range keeps them exact there, jpegplus/bundle.py)
INT8_CPU_FLAGS = ("avx512_vnni", "avx_vnni", "avx2")


def cpu_has_int8_dot(cpuinfo: str | None = None) -> bool:
    """Whether this CPU has 8-bit dot-product instructions (INT8_CPU_FLAGS: VNNI,
    or AVX2), read from the flags of /proc/cpuinfo (or the text `cpuinfo`). There
    the shipped int8 graphs ran faster than float32 on two threads: with VNNI
    PostNet 1.35×, PreNet 2.9× (training/int8_check.py); on an AMD EPYC with AVX2
    alone, model 0d361be8's two-view decode of Kodak 1.19–1.23× (medians over the
    24 images, quality 75 and 10). False where the flags cannot be read (not
    Linux), or on other CPUs (ARM), where it was not measured."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                  if line.startswith("flags") and ":" in line), [])
    return any(f in flags for f in INT8_CPU_FLAGS)


def precision() -> str:
    """Which ONNX graphs run where the manifest lists both: $JPEGPLUS_PRECISION,
    else "int8" on a CPU with 8-bit dot products (cpu_has_int8_dot), else "float32"."""
    value = os.environ.get(PRECISION_VAR, "").strip().lower() or ("int8" if cpu_has_int8_dot() else "float32")
    if value not in PRECISIONS:
        raise ValueError(f"{PRECISION_VAR} must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


def set_threads(n: int) -> None:
    """Intra-op threads (n ≥ 1) for every network loaded after this call, and for
    torch at once when it is already imported. Process-pool workers call it first."""
    global _threads
    _threads = int(n)
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(_threads)


def threads() -> int:
    """The intra-op thread count networks are loaded with (0: the runtime's default)."""
    return _threads


def workers() -> int:
    """Threads for the CPU work around the networks (requantisation bands): the
    set_threads value, else the CPUs this process may run on."""
    if _threads:
        return _threads
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_blas = {"controller": None, "limit": None, "users": 0}  # threadpoolctl's view of the BLAS loaded by then, found
# once (about 1 ms each time): numpy's own is always in it; BLAS libraries loaded later (torch's, scipy's) are not.
_blas_lock = threading.Lock()


@contextlib.contextmanager
def one_blas_thread():
    """A context in which numpy's BLAS runs single-threaded. Our matrices are
    small (n × 64 by 64 × 64 DCTs): a multi-threaded BLAS gains nothing on them
    and, when another process holds a core, its threads wait for each other:
    6× slower per product, 2.7× for a whole requantisation, measured on 2 cores.
    The parallelism comes from pool() instead. Contexts nest across threads:
    the first to enter sets the limit, the last to leave restores the BLAS as
    it was. numpy's OpenBLAS (0.3.31) ignored a count set from one thread
    while the thread that set the current count was alive, so work fanned
    out to threads runs inside its caller's context (engine.side_by_side):
    the caller enters first and leaves last."""
    with _blas_lock:
        if _blas["users"] == 0:
            if _blas["controller"] is None:
                from threadpoolctl import ThreadpoolController

                _blas["controller"] = ThreadpoolController()
            _blas["limit"] = _blas["controller"].limit(limits=1, user_api="blas")
        _blas["users"] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas["users"] -= 1
            if _blas["users"] == 0:
                _blas["limit"].restore_original_limits()


_pools: dict = {}
_pools_lock = threading.Lock()


def pool(name: str = "work"):
    """A thread pool of workers() threads, made once per name, size and process
    (a forked child makes its own: the parent's threads do not follow it).
    "work" runs leaf tasks (requantisation bands, JPEG layouts); a task that
    itself waits on "work" tasks runs in another pool ("candidates"), so that
    no pool's threads all wait on their own queue."""
    from concurrent.futures import ThreadPoolExecutor

    key = (os.getpid(), name, workers())
    with _pools_lock:
        if key not in _pools:
            _pools[key] = ThreadPoolExecutor(key[2], thread_name_prefix=f"jpegplus-{name}")
        return _pools[key]


class OnnxNet:
    """One network as ONNX Runtime sessions, one per scale (and, for a
    BandedPostNet, per level band: `bounds` from its config), built from
    sha256-checked graphs (jpegplus.bundle checks them), keyed (scale, band);
    thread-safe (ONNX Runtime's run is). `reaches` is the network's reach(scale)
    per scale, from the manifest; at `identity_scales` (its config's, see
    models.nets.PreNet) it has no graph and returns its input."""

    def __init__(self, graphs: dict[tuple[int, int], Path], reaches: dict[int, int], bounds=(), identity_scales=()):
        self.graphs = dict(graphs)
        self.sessions = self._sessions(_threads)
        self._narrow: dict[int, dict] = {}  # intra-op threads → sessions for views run side by side
        self._narrow_lock = threading.Lock()
        self.reaches, self.bounds = dict(reaches), tuple(bounds)
        self.identity_scales = tuple(identity_scales)
        self.takes_chroma = all("chroma" in {i.name for i in s.get_inputs()} for s in self.sessions.values())

    def _sessions(self, threads: int) -> dict:
        """One ONNX Runtime session per graph, with `threads` intra-op threads (0: its default)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # No busy-waiting after a run: the requantisation, libjpeg and numpy work between network calls
        # needs those cores (measured on Kodak, 2 cores: encode at quality 10 438 → 339 ms/MP).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return {s: ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
                for s, p in self.graphs.items()}

    def narrow_sessions(self, threads: int) -> dict:
        """Sessions of `threads` intra-op threads each, made once: what views run side by side on."""
        with self._narrow_lock:
            if threads not in self._narrow:
                self._narrow[threads] = self._sessions(threads)
            return self._narrow[threads]

    @classmethod
    def of(cls, folder: Path, graphs, bounds=(), identity_scales=()) -> OnnxNet:
        """From bundle.OnnxGraph entries whose files lie in `folder`, as they are
        (no sha256 check: a graph just exported, or one under test)."""
        return cls({(g.scale, g.band): Path(folder) / g.file for g in graphs}, {g.scale: g.reach for g in graphs},
                   bounds, identity_scales)

    def passes_through(self, scale: int) -> bool:
        """Whether the network returns its input unchanged at `scale`."""
        return scale in self.identity_scales

    def reach(self, scale: int) -> int:
        """Input pixels of context an output pixel depends on, each side (as the torch module's reach)."""
        return 0 if self.passes_through(scale) else self.reaches[scale]

    def infer(self, x: np.ndarray, levels: np.ndarray, scale: int, full_chroma=None, views: int = 1) -> np.ndarray:
        """float32 (N, 3, H, W) in 0..1, levels (N,) and, for a network that
        takes_chroma, full_chroma (N,) (None: all 0) → float32 output (N, 3, H', W'):
        the mean over `views` views of x (jpegplus.views). Views run side by side,
        as many as there are worker threads, each on sessions with its share of
        them: on 2 cores two one-thread runs do 13 % more work a second than two
        two-thread runs one after the other (Kodak decode, 2 views: 276 → 241 ms/MP)."""
        if self.passes_through(scale):
            return np.asarray(x, np.float32)
        if (scale, 0) not in self.sessions:
            raise ValueError(f"no ONNX graph for scale {scale}")
        side = min(views, workers())
        if side < 2:
            return averaged(lambda v: self._run(self.sessions, v, levels, scale, full_chroma), x, views)
        sessions = self.narrow_sessions(max(1, workers() // side))
        return averaged(lambda v: self._run(sessions, v, levels, scale, full_chroma), x, views,
                        side, pool("views").map)

    def _run(self, sessions: dict, x: np.ndarray, levels: np.ndarray, scale: int, full_chroma=None) -> np.ndarray:
        """One run of the graphs in `sessions` (see infer), each level band's rows through its member."""
        levels = np.asarray(levels, np.float32).reshape(-1)
        feed = {"image": np.ascontiguousarray(x, np.float32), "level": levels}
        if self.takes_chroma:
            feed["chroma"] = np.zeros_like(levels) if full_chroma is None else np.asarray(full_chroma, np.float32)
        groups = band_groups(levels, self.bounds)
        if len(groups) == 1:
            return sessions[scale, groups[0][0]].run(None, feed)[0]
        out = None
        for b, rows in groups:
            part = sessions[scale, b].run(None, {k: v[rows] for k, v in feed.items()})[0]
            out = np.empty((len(levels), *part.shape[1:]), np.float32) if out is None else out
            out[rows] = part
        return out


class TorchNet:
    """A torch network (net(x, level, scale) on tensors) run on numpy arrays, on `device`."""

    def __init__(self, module, device=None):
        import torch

        self.module = module
        self.device = torch.device(device or "cpu")

    def passes_through(self, scale: int) -> bool:
        """Whether the network returns its input unchanged at `scale` (its `identity_scales`)."""
        return scale in getattr(self.module, "identity_scales", ())

    def reach(self, scale: int) -> int:
        return self.module.reach(scale)

    @property
    def takes_chroma(self) -> bool:
        return getattr(self.module, "takes_chroma", False)

    def infer(self, x: np.ndarray, levels: np.ndarray, scale: int, full_chroma=None, views: int = 1) -> np.ndarray:
        """As OnnxNet.infer, through torch (inference mode; views one after the other)."""
        import torch

        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(self.device)
            return self.tensors(t, torch.from_numpy(np.asarray(levels, np.float32)), scale,
                                None if full_chroma is None else torch.from_numpy(np.asarray(full_chroma, np.float32)),
                                views).cpu().numpy()

    def tensors(self, x, levels, scale: int, full_chroma=None, views: int = 1):
        """The module on torch tensors, on this net's device: float32 output, the
        mean over `views` views of x (jpegplus.views). Call under inference_mode."""
        level = levels.to(self.device)
        flag = None if full_chroma is None else full_chroma.to(self.device)
        return averaged(lambda v: self.module(v, level, scale, flag).float(), x.to(self.device), views)


def runner(net, device=None):
    """What tiling runs: an OnnxNet as it is (CPU only), a torch module wrapped in TorchNet on `device`."""
    if isinstance(net, OnnxNet):
        if device is not None and str(device) != "cpu":
            raise ValueError("ONNX Runtime networks run on the CPU; a device needs the torch runtime")
        return net
    return TorchNet(net, device)
