"""The encoder's decisions, in one place, and the network passes they drive.

    quality ─► ladder row (Manifest.ladder.row)
            ─► candidates: scale 1 at q1; scale 2 at q2 where the row offers it
               and the image is big enough; scale 1 with 4:4:4 chroma at q444
               where the row offers it and the image has colour (a forced
               scale or subsampling narrows them: see candidates)
            ─► per candidate: PreNet ─► requantisation ─► JPEG with the family's
               tables at that internal quality (baseline or progressive, the
               smaller unless the caller forces one) ─► sealed APP9 segment
            ─► closed loop (several candidates): decode each file as jpegplus.decode
               does, cost = MSE + λ·bpp per image, keep the cheapest file

jpegplus.encode (one image, tiled networks, bounded memory), jpegplus.Filter
(a torch batch through the networks at once, on the batch's device) and
training/calibrate.py all go through `encode` or `encode_candidate`; they
differ only in how the networks run (TiledNets, BatchNets). The decoder and the
Pillow plugin run PostNet through `post_image`.

Images are uint8 (H, W, 3) RGB; grey images come as three equal channels and
are stored as grey JPEGs. MSE is in 0..255 levels², rate in bits per original pixel.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, JpegImagePlugin

from . import segment as seg
from .bundle import Bundle, LadderRow
from .errors import JpegPlusError
from .jpeg import encode_array, read_tables, subsampling_of
from .runtime import one_blas_thread, pool
from .requant import RGB_TO_YCC, YCC_TO_RGB
from .tables import quant_level
from .tiling import run_tiled

MULTIPLE = 16  # full-size tensors are padded to this, so scale 2 keeps 8-px alignment
# Relative RD-cost gap without PostNet beyond which encode skips the full closed loop. On val/ (14 images ×
# qualities 1, 4, … 19 and 70, 80, 90: 140 cases with scale 2 or 4:4:4 offered; python -m training.fold_check
# --every 3, model b6096d0d): at 0.05, 72 % of choices are made without PostNet and 2 differ from the full loop's
# (+0.001 % RD cost); at 0.02, 90 % and 9 (+0.007 %); at 0 (the proxy alone), 13 (+0.017 %). 0: no encode runs
# PostNet. At 0.02 half the Kodak images ran it on both candidates at quality 90; at 0 (a ladder recalibrated
# for it) quality-90 encodes took 363 → 201 ms/MP on Kodak (mean), and Kodak's BD-rate read −37.8 / −29.4 / −29.8 %
# against −37.8 / −29.3 / −29.8 at 0.02 (docs/history.md, model d33d215b's networks).
FOLD_MARGIN = 0.0
ROWS = 256     # rows per chunk when comparing or converting whole images (bounded memory)
# A PostNet that reads the 4:4:4 flag (shipped from model 739a1da7) restores 4:4:4 files whole. On 21 val/
# images stored as 4:4:4 files (python -m training.check_444 --every 2), whole / luma alone, dB over the plain
# decode: level 0.76: +1.08 / +0.66, 0.70: +0.93 / +0.55, 0.63: +0.71 / +0.41, 0.50: +0.30 / +0.16, 0.31:
# −0.02 / −0.00. For a PostNet without it (the ablation pair, older models), these are the quantisation levels
# (tables.quant_level) below which a 4:4:4 file keeps its own chroma after PostNet (with_chroma_of), and below
# which it skips PostNet (the plain decode). Measured on 8 val/ images stored at 4:4:4, PostNet whole / on luma
# alone, dB over the plain decode:
#   level 0.68: +0.58 / +0.38, 0.65: +0.48 / +0.33, 0.59: +0.29 / +0.24, 0.55: +0.13 / +0.18, 0.43: −0.33 / +0.02
# (jpegplus files; the fixtures at 0.34: luma alone −0.00 / −0.09 / −0.05); Pillow's own 4:4:4 files: 0.69:
# +0.19 / +0.19, 0.52: −0.25 / −0.01, 0.27: −0.77 / −0.10.
KEEP_444_CHROMA_BELOW = 0.57
SKIP_444_POSTNET_BELOW = 0.42


# ---------------------------------------------------------------- decisions

@dataclass(frozen=True)
class Candidate:
    """One way to store an image: at 1/scale of its size, at internal JPEG
    quality 1..100, with chroma at `subsampling` (jpeg.SUBSAMPLINGS)."""
    scale: int
    quality: int
    subsampling: str = "4:2:0"


def shows_as_stored(bilevel: bool, scale: int | None) -> bool:
    """Whether an image is coded to be shown as stored (segment.AS_STORED, scale
    1, no PostNet at decode): black-and-white inputs (Pillow's mode 1, usually
    dithered), unless scale 2 is forced. PostNet learnt from photos; on 6
    dithered val/ images it takes the stored image from 21.6 / 30.8 / 41.7 dB
    to 20.1 / 28.1 / 35.8 at quality 10 / 50 / 90 (tests/content_check.py)."""
    return bilevel and scale != 2


def candidates(row: LadderRow, size: tuple[int, int], scale: int | None = None,
               grey: bool = False, subsampling: str | None = None, bilevel: bool = False) -> list[Candidate]:
    """What the encoder tries for an image of `size` (w, h) pixels: scale 1;
    scale 2 where the row offers it (q2 > 0) and the short side is at least
    2·MULTIPLE; scale 1 with 4:4:4 chroma where the row offers it (q444 > 0)
    and the image is in colour. A forced `scale` keeps that scale's candidates
    (scale 2: 4:2:0 at q2, or q1 where the row has no q2); a forced
    `subsampling` "4:2:0" drops 4:4:4. Both forced, (1, "4:4:4") is the 4:4:4
    candidate alone (rate control probes it). Images shown as stored (shows_as_stored)
    are coded at scale 1."""
    if shows_as_stored(bilevel, scale):
        scale = 1
    if scale is not None and subsampling == "4:4:4":
        return [Candidate(1, row.q444 or row.q1, "4:4:4")]
    if scale == 2:
        return [Candidate(2, row.q2 if row.q2 > 0 else row.q1)]
    options = [Candidate(1, row.q1)]
    if scale is None and row.q2 > 0 and min(size) >= 2 * MULTIPLE:
        options.append(Candidate(2, row.q2))
    if row.q444 > 0 and not grey and subsampling != "4:2:0":
        options.append(Candidate(1, row.q444, "4:4:4"))
    return options


def proxy_decides(costs: np.ndarray, margin: float | None = None) -> np.ndarray:
    """The fold's rule. costs: (candidates, images) RD costs scored without
    PostNet. True (per image) where the cheapest costs more than `margin`
    (None: FOLD_MARGIN) less than every other, so PostNet need not run to choose."""
    margin = FOLD_MARGIN if margin is None else margin
    ranked = np.sort(np.asarray(costs, float), axis=0)
    return ranked[1] > ranked[0] * (1 + margin)


def stored_size(size: tuple[int, int], scale: int) -> tuple[int, int]:
    """(w, h) of the JPEG image that stores an original of `size` (w, h) at `scale`."""
    return -(-size[0] // scale), -(-size[1] // scale)


def rd_cost(mse, nbytes, pixels: int, lam: float):
    """The closed loop's cost: MSE (0..255 levels²) + λ · bits per original pixel."""
    return mse + lam * 8 * nbytes / pixels


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) → (H, W) exactly as Pillow's convert("L"), a band of rows at a time."""
    out = np.empty(rgb.shape[:2], np.uint8)
    for r in range(0, rgb.shape[0], ROWS):
        out[r:r + ROWS] = np.asarray(Image.fromarray(rgb[r:r + ROWS]).convert("L"))
    return out


def squared_error(rec: np.ndarray, ref: np.ndarray) -> float:
    """Mean squared error (0..255 levels²) of two same-shape uint8 arrays, by bands of rows."""
    total = 0
    for r in range(0, rec.shape[0], ROWS):
        d = rec[r:r + ROWS].astype(np.int32) - ref[r:r + ROWS]
        total += int(np.einsum("i,i->", d.ravel(), d.ravel(), dtype=np.int64))  # "...,...->" fails on numpy 2.4
    return total / rec.size


def image_error(rec: np.ndarray, ref: np.ndarray, grey: bool) -> float:
    """MSE of a reconstruction (H, W, 3) against the input (H, W, 3); grey: of their L channels."""
    return squared_error(to_grey(rec), ref[:, :, 0]) if grey else squared_error(rec, ref)


# ---------------------------------------------------------------- how the networks run

class TiledNets:
    """PreNet and PostNet on one image at a time, tile by tile (jpegplus.tiling):
    memory bounded by the tile; the bundle's runtime on the CPU, or its torch
    modules on `device`; each averages its views, as the bundle says
    (jpegplus.views). `images`: the uint8 (H, W, 3) inputs to encode."""

    def __init__(self, bundle: Bundle, images=(), tile: int | None = None, device=None):
        if device is None or str(device) == "cpu":
            self.pre_net, self.post_net, self.device = bundle.nets.get("pre"), bundle.nets.get("post"), None
        else:
            self.pre_net, self.post_net = (bundle.torch_net(k, device) for k in ("pre", "post"))
            self.device = device
        self.images = list(images)
        self.tile = tile
        self.views, self.pre_views = bundle.views, bundle.pre_views

    def pre(self, level: float, scale: int, size: tuple[int, int]) -> list[np.ndarray]:
        """Each input through PreNet: uint8 (h, w, 3) of `size` (w, h)."""
        return [run_tiled(self.pre_net, im, level, scale, size, multiple=MULTIPLE, upsamples=False, tile=self.tile,
                          device=self.device, views=self.pre_views) for im in self.images]

    @property
    def takes_chroma(self) -> bool:
        """Whether PostNet reads the 4:4:4 flag (nets.BlockPostNet chroma_flag)."""
        return getattr(self.post_net, "takes_chroma", False)

    def post(self, stored: list, levels: list, scale: int, size: tuple[int, int],
             full_chroma: list | None = None) -> list[np.ndarray]:
        """Decoded stored images (uint8 RGB) through PostNet: uint8 (H, W, 3) of `size` (w, h).
        `full_chroma`: per image, whether its file is 4:4:4 (None: none is)."""
        flags = full_chroma or [False] * len(stored)
        return [run_tiled(self.post_net, s, level, scale, size, multiple=MULTIPLE // scale, upsamples=True,
                          tile=self.tile, device=self.device, full_chroma=f, views=self.views)
                for s, level, f in zip(stored, levels, flags)]


def batch_to_images(t) -> np.ndarray:
    """A batch: torch float (N, 3, H, W) in 0..1 on any device → uint8 (N, H, W, 3) on the CPU."""
    return (t.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


class BatchNets:
    """PreNet and PostNet on a whole batch at once, untiled, on the batch's device:
    jpegplus.Filter on torch tensors. On the CPU the bundle's own runtime runs
    them (ONNX Runtime by default); on another device (the GPU), its torch modules.
    Each averages its views, as the bundle says (jpegplus.views).
    `x`: torch float (N, 3, H, W) on 8-bit levels (k/255)."""

    def __init__(self, bundle: Bundle, x):
        from .runtime import runner

        if x.device.type == "cpu":
            self.pre_net, self.post_net = (runner(bundle.nets[k]) for k in ("pre", "post"))
        else:
            self.pre_net, self.post_net = (runner(bundle.torch_net(k, x.device), x.device) for k in ("pre", "post"))
        self.x = x
        self.images = list(batch_to_images(x))
        self.views, self.pre_views = bundle.views, bundle.pre_views

    @property
    def takes_chroma(self) -> bool:
        """Whether PostNet reads the 4:4:4 flag (nets.BlockPostNet chroma_flag)."""
        return self.post_net.takes_chroma

    def _run(self, net, x, levels, scale: int, full_chroma=None, views: int = 1):
        """net on a torch batch x (N, 3, h, w) with levels (N,) (and PostNet's 4:4:4 flags (N,), or None), the
        mean over `views` views (jpegplus.views): the output as float32 on x's device. Tensors cross to numpy
        only when the network is an ONNX Runtime one."""
        import torch

        from .runtime import TorchNet

        if isinstance(net, TorchNet):
            with torch.inference_mode():
                return net.tensors(x, levels, scale, full_chroma, views)
        flags = None if full_chroma is None else full_chroma.cpu().numpy()
        return torch.from_numpy(net.infer(x.cpu().numpy(), levels.cpu().numpy(), scale, flags, views)).to(x.device)

    def pre(self, level: float, scale: int, size: tuple[int, int]) -> list[np.ndarray]:
        import torch
        import torch.nn.functional as F

        if self.pre_net.passes_through(scale):  # the batch itself, as run_tiled hands back its input
            return list(self.images)
        n, _, h, w = self.x.shape
        padded = F.pad(self.x, (0, -w % MULTIPLE, 0, -h % MULTIPLE), mode="replicate")
        y = self._run(self.pre_net, padded, torch.full((n,), float(level)), scale, views=self.pre_views)
        return list(batch_to_images(y[..., :size[1], :size[0]]))

    def post(self, stored: list, levels: list, scale: int, size: tuple[int, int],
             full_chroma: list | None = None) -> list[np.ndarray]:
        import torch
        import torch.nn.functional as F

        sh, sw = stored[0].shape[:2]
        y = torch.from_numpy(np.stack(stored)).to(self.x.device).permute(0, 3, 1, 2).float() / 255
        y = F.pad(y, (0, -sw % (MULTIPLE // scale), 0, -sh % (MULTIPLE // scale)), mode="replicate")
        flags = None if full_chroma is None else torch.tensor(full_chroma, dtype=torch.float32)
        rec = self._run(self.post_net, y, torch.tensor(levels, dtype=torch.float32), scale, flags, self.views)
        return list(batch_to_images(rec[..., :size[1], :size[0]]))


# ---------------------------------------------------------------- encode

# Up to this many pixels, independent work runs side by side on threads (libjpeg, numpy and the runtimes
# release the GIL): both JPEG layouts of a stored image, and the candidates of an encode (each its PreNet,
# requantisation, layouts and proxy decode). Above it, one after the other, as each holds its own copies of the
# image: a 100-megapixel encode peaked at 2.5 GB with its layouts at once against 2.2 GB one after the other
# (tests/stress.py).
AT_ONCE_PIXELS = 16_000_000


def side_by_side(fn, items: list, pixels: int, name: str = "work") -> list:
    """[fn(item) for item in items], on runtime.pool(name)'s threads where
    `pixels` (what each call holds copies of) is at most AT_ONCE_PIXELS;
    numpy's BLAS held to one thread meanwhile (runtime.one_blas_thread)."""
    if len(items) > 1 and pixels <= AT_ONCE_PIXELS:
        with one_blas_thread():
            return list(pool(name).map(fn, items))
    return [fn(item) for item in items]


def layouts(progressive: bool | None) -> tuple[bool, ...]:
    """The JPEG layouts to write (False: baseline, True: progressive): the one
    the caller forces, or both (None), of which the smaller file is kept."""
    return (False, True) if progressive is None else (bool(progressive),)


def encode_stored(bundle: Bundle, stored: np.ndarray, tables: np.ndarray, head: seg.Segment, meta: dict,
                  progressive: bool | None = None, subsampling: str = "4:2:0") -> bytes:
    """The jpegplus bytes of PreNet's output (uint8 (h, w, 3), or (h, w) grey):
    the family's requantisation, JPEG with `tables` and chroma at `subsampling`
    (baseline, progressive, or the smaller of the two when `progressive` is
    None; both hold the same coefficients), the sealed segment."""
    stored = bundle.manifest.tables.requantise(stored, tables, subsampling)
    extra = head.pack()

    def write(p: bool) -> bytes:
        return encode_array(stored, tables, extra=extra, progressive=p, subsampling=subsampling, **meta)

    files = side_by_side(write, layouts(progressive), stored.shape[0] * stored.shape[1])
    return seg.seal(min(files, key=len), head)  # a tie keeps baseline, the first


def encode_candidate(bundle: Bundle, nets, grey: bool, candidate: Candidate, meta: dict,
                     progressive: bool | None = None, as_stored: bool = False) -> list[bytes]:
    """The jpegplus file of each of `nets.images` (one size) at one candidate;
    `meta` is Pillow's metadata save options (jpegplus.metadata), `progressive`
    the layout (see encode_stored); `as_stored` (scale 1) marks the files to be
    shown without PostNet (segment.AS_STORED)."""
    h, w = nets.images[0].shape[:2]
    tables = bundle.manifest.tables.tables(candidate.quality, candidate.subsampling)
    sw, sh = stored_size((w, h), candidate.scale)
    head = seg.Segment(candidate.scale, w, h, sw, sh, bundle.model_id, grey, as_stored=as_stored)
    stored = nets.pre(quant_level(tables), candidate.scale, (sw, sh))
    return [encode_stored(bundle, to_grey(s) if grey else s, tables, head, meta, progressive, candidate.subsampling)
            for s in stored]


@dataclass
class Coded:
    """One encoded image: its file, and (when asked for) what decoding it gives,
    uint8 (H, W, 3) (grey files: before the L conversion)."""
    data: bytes
    rec: np.ndarray | None = None


def encode(bundle: Bundle, nets, grey: bool, quality: int, scale: int | None, meta: dict, *,
           keep_rec: bool = False, progressive: bool | None = None, subsampling: str | None = None,
           fold: bool = True, bilevel: bool = False) -> list[Coded]:
    """Encode each of `nets.images` (uint8 (H, W, 3), one size) at user quality
    1..100: every candidate the ladder row offers, and per image the one with
    the lowest MSE + λ·bpp. keep_rec=True also returns each chosen file's
    reconstruction (decoded once here, as the closed loop needs it anyway).
    `progressive`: the JPEG layout (None: the smaller of baseline and progressive);
    `subsampling` "4:2:0" keeps 4:4:4 out of the candidates (None: the ladder decides).

    fold=True first scores the candidates without PostNet (plain decode, bicubic
    ×2 at scale 2): where one costs FOLD_MARGIN less than every other, it is kept
    without running PostNet on any; only close calls (at margin 0, exact ties)
    get the full closed loop.
    fold=False always runs it (training/fold_check.py measures the difference).
    bilevel=True (Pillow's mode 1): see shows_as_stored."""
    h, w = nets.images[0].shape[:2]
    row = bundle.manifest.ladder.row(quality)
    options = candidates(row, (w, h), scale, grey, subsampling, bilevel)
    everyone = list(range(len(nets.images)))
    files = [None] * len(options)  # per candidate, each image's file
    kept = {}  # (candidate, image) → reconstruction, kept for keep_rec only

    def costs_of(k: int, rec_fn, which, keep: bool = False) -> list[float]:
        """RD costs of candidate k's files of images `which`, reconstructed by rec_fn."""
        part = [files[k][i] for i in which]
        recs = rec_fn(part, options[k].scale)
        if keep:
            kept.update({(k, i): rec for i, rec in zip(which, recs)})
        return [rd_cost(image_error(rec, nets.images[i], grey), len(data), h * w, row.lam)
                for i, rec, data in zip(which, recs, part)]

    def plain(part, s):
        return [plain_image(d, s, (w, h)) for d in part]

    def full(part, s):
        return reconstruct(nets, part, s, (w, h))

    def first_pass(k: int) -> list[float] | None:
        """Candidate k's files and, where the fold scores several candidates, their costs without PostNet."""
        files[k] = encode_candidate(bundle, nets, grey, options[k], meta, progressive,
                                    shows_as_stored(bilevel, scale))
        return costs_of(k, plain, everyone) if fold and len(options) > 1 else None

    each = range(len(options))
    pixels = h * w * len(everyone)
    proxy = side_by_side(first_pass, each, pixels, "candidates")  # one candidate's reconstructions alive per thread
    if len(options) == 1:
        recs = reconstruct(nets, files[0], options[0].scale, (w, h)) if keep_rec else [None] * len(files[0])
        return [Coded(data, rec) for data, rec in zip(files[0], recs)]

    best = np.zeros(len(everyone), int)
    close = everyone
    if fold:
        proxy = np.array(proxy).reshape(len(options), len(everyone))
        best = np.argmin(proxy, axis=0)
        close = [i for i, decided in zip(everyone, proxy_decides(proxy)) if not decided]
    if close:
        costs = side_by_side(lambda k: costs_of(k, full, close, keep_rec), each, pixels, "candidates")
        best[close] = np.argmin(np.array(costs).reshape(len(options), len(close)), axis=0)
    coded = [Coded(files[b][i], kept.get((b, i))) for i, b in enumerate(best)]
    if keep_rec:
        for k, candidate in enumerate(options):
            mine = [i for i in everyone if best[i] == k and coded[i].rec is None]
            for i, rec in zip(mine, reconstruct(nets, [coded[i].data for i in mine], candidate.scale, (w, h))):
                coded[i].rec = rec
    return coded


# ---------------------------------------------------------------- decode

@dataclass(frozen=True)
class Stored:
    """A decoded JPEG as PostNet takes it: its pixels uint8 RGB (h, w, 3), the
    quantisation level of its tables (what conditions PostNet), whether its
    chroma is stored at full resolution (4:4:4), and whether its segment asks
    for it as it is (segment.AS_STORED)."""
    pixels: np.ndarray
    level: float
    full_chroma: bool = False
    as_stored: bool = False


def stored_pixels(im: Image.Image) -> Stored:
    """A loaded JPEG as PostNet takes it."""
    try:
        level = quant_level(read_tables(im))
    except ValueError as e:
        raise JpegPlusError(f"cannot enhance this JPEG: {e}") from None
    return Stored(np.asarray(im if im.mode == "RGB" else im.convert("RGB")), level, subsampling_of(im) == "4:4:4",
                  seg.asks_as_stored(im))


def own_file(data: bytes) -> Stored:
    """A file this process just wrote, as PostNet takes it (stored_pixels).
    Opened without Pillow's decompression-bomb check: the bytes are our own."""
    im = JpegImagePlugin.JpegImageFile(io.BytesIO(data))
    im.load()
    return stored_pixels(im)


def with_chroma_of(rec: np.ndarray, stored: np.ndarray) -> np.ndarray:
    """PostNet's luma with the stored image's own chroma (JFIF YCbCr), uint8
    (H, W, 3) each, the same size; in bands of ROWS rows (bounded memory).
    PostNet learnt mostly from 4:2:0 files, whose chroma it sharpens; on the
    full-resolution chroma of a finely quantised 4:4:4 file that harms
    (KEEP_444_CHROMA_BELOW)."""
    out = np.empty_like(rec)
    for r in range(0, rec.shape[0], ROWS):
        ycc = stored[r:r + ROWS].astype(np.float32) @ RGB_TO_YCC.T
        ycc[..., 0] = rec[r:r + ROWS].astype(np.float32) @ RGB_TO_YCC[0]
        out[r:r + ROWS] = np.clip(np.rint(ycc @ YCC_TO_RGB.T), 0, 255)
    return out


def postnet_use(stored: Stored, scale: int, takes_chroma: bool = False) -> str:
    """How PostNet restores a decoded file: "whole"; "luma" (its luma, the file's
    own chroma: a 4:4:4 file finer than KEEP_444_CHROMA_BELOW); or "none" (the
    plain decode: a file whose segment asks for it as stored, or a 4:4:4 file
    finer than SKIP_444_POSTNET_BELOW). A PostNet that takes the 4:4:4 flag
    (takes_chroma) restores every other file whole."""
    if stored.as_stored:
        return "none"
    if takes_chroma or scale != 1 or not stored.full_chroma or stored.level >= KEEP_444_CHROMA_BELOW:
        return "whole"
    return "luma" if stored.level >= SKIP_444_POSTNET_BELOW else "none"


def restore(nets, stored: list[Stored], scale: int, size: tuple[int, int]) -> list[np.ndarray]:
    """Decoded JPEGs through PostNet (`nets`: TiledNets or BatchNets) at `scale`,
    original `size` (w, h): uint8 (H, W, 3) each, as postnet_use says: the one
    decision decode and the closed loop share."""
    uses = [postnet_use(s, scale, nets.takes_chroma) for s in stored]
    run = [i for i, use in enumerate(uses) if use != "none"]
    recs = dict(zip(run, nets.post([stored[i].pixels for i in run], [stored[i].level for i in run], scale, size,
                                   [stored[i].full_chroma for i in run]) if run else []))
    out = []
    for i, (s, use) in enumerate(zip(stored, uses)):
        if use == "none":
            out.append(s.pixels[:size[1], :size[0]])  # scale 1: the stored image is the original's size
        else:
            out.append(with_chroma_of(recs[i], s.pixels) if use == "luma" else recs[i])
    return out


def reconstruct(nets, files: list[bytes], scale: int, size: tuple[int, int]) -> list[np.ndarray]:
    """What decode gives for files this process just wrote at `scale`, original
    `size` (w, h): uint8 (H, W, 3) each (grey files: before the L conversion)."""
    if not files:
        return []
    return restore(nets, [own_file(d) for d in files], scale, size)


def plain_image(data: bytes, scale: int, size: tuple[int, int]) -> np.ndarray:
    """A file this process just wrote as a plain viewer shows it, at original
    `size` (w, h): the stored pixels, bicubic ×2 at scale 2 (Pillow), cropped.
    uint8 (H, W, 3). The closed loop's cheap proxy (encode's fold)."""
    pixels = own_file(data).pixels
    if scale != 1:
        sh, sw = pixels.shape[:2]
        pixels = np.asarray(Image.fromarray(pixels).resize((sw * scale, sh * scale), Image.BICUBIC))
    return pixels[:size[1], :size[0]]


def post_image(bundle: Bundle, im: Image.Image, scale: int, size: tuple[int, int], grey: bool, *,
               tile: int | None = None, device=None) -> Image.Image:
    """PostNet on a loaded JPEG, tiled: its stored pixels → the full-size image of
    `size` (w, h); on `device` through torch when one is given (see TiledNets)."""
    [out] = restore(TiledNets(bundle, tile=tile, device=device), [stored_pixels(im)], scale, size)
    return Image.fromarray(to_grey(out) if grey else out)
