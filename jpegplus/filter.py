"""jpegplus.Filter: a jpegplus round trip as one callable, for data pipelines.

    f = jpegplus.Filter(quality=60)
    f(pil_image)          # PIL.Image, same mode and size
    f(uint8_array)        # numpy uint8 (H, W), (H, W, 1|3|4)
    f(tensor)             # torch float (C, H, W) or (N, C, H, W) in 0..1, C = 1 or 3

Every call really encodes to jpegplus files (PreNet, libjpeg-turbo, APP9
segment) and decodes them (libjpeg-turbo, PostNet), so the result is what a
user of the delivered file sees. Inputs come back as the same type, shape and
dtype; an alpha channel is passed through untouched. PIL images and arrays go
through jpegplus.encode/decode; a torch batch runs as one batch through the
networks on the tensor's own device (the GPU if it lives there), with only the
JPEG coding itself on the CPU, image by image. `Filter` is a plain callable,
so it works as a torchvision `Compose` step.
"""
from __future__ import annotations

import copy
import io
import sys
import threading

import numpy as np
from PIL import Image, JpegImagePlugin

from .metadata import copy_info

_nets_lock = threading.Lock()
_nets_on_device: dict = {}  # (model_id, device) → (pre, post): copies of the shipped nets


class Filter:
    """A jpegplus encode + decode at `quality` (1..100, Pillow's meaning).

    `options` go to jpegplus.encode for PIL and numpy inputs (e.g. scale=2);
    torch inputs honour `scale` (None: per image, by the same rate–distortion
    rule as jpegplus.encode)."""

    def __init__(self, quality: int = 75, **options):
        if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
            raise ValueError(f"quality must be an integer 1..100, got {quality!r}")
        if options.get("scale") not in (None, 1, 2):
            raise ValueError(f"scale must be None, 1 or 2, got {options['scale']!r}")
        self.quality = int(quality)
        self.options = {"keep_metadata": False, **options}

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items() if k != "keep_metadata")
        return f"{type(self).__name__}(quality={self.quality}{opts})"

    def __call__(self, image):
        if isinstance(image, Image.Image):
            return self._pil(image)
        if isinstance(image, np.ndarray):
            return self._array(image)
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(image, torch.Tensor):
            return self._tensor(image)
        raise TypeError(f"Filter takes a PIL image, a numpy uint8 array or a torch tensor, got {type(image).__name__}")

    # ------------------------------------------------------------ PIL and numpy

    def _roundtrip(self, image) -> Image.Image:
        from . import codec

        return codec.decode(codec.encode(image, self.quality, **self.options))

    def _pil(self, image: Image.Image) -> Image.Image:
        if image.mode in ("RGB", "L"):
            out = self._roundtrip(image)
        elif image.mode in ("RGBA", "LA"):
            colour = self._roundtrip(image.convert(image.mode[:-1]))
            out = Image.merge(image.mode, (*colour.split(), image.getchannel("A")))
        else:
            raise ValueError(f"Filter takes PIL modes RGB, L, RGBA and LA, got {image.mode}")
        return copy_info(image, out)

    def _array(self, arr: np.ndarray) -> np.ndarray:
        if arr.dtype != np.uint8:
            raise TypeError(f"numpy input must be uint8, got {arr.dtype}")
        if arr.ndim == 2:
            return np.asarray(self._roundtrip(arr))
        if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
            raise ValueError(f"numpy input must be H×W or H×W×C with C in 1, 3, 4, got shape {arr.shape}")
        channels = arr.shape[2]
        colour = arr[:, :, 0] if channels == 1 else np.ascontiguousarray(arr[:, :, :3])
        out = np.asarray(self._roundtrip(colour))
        if channels == 1:
            return out[:, :, None]
        return np.concatenate([out, arr[:, :, 3:]], axis=2) if channels == 4 else out

    # ------------------------------------------------------------ torch

    def _tensor(self, x):
        import torch

        if not x.is_floating_point():
            raise TypeError(f"torch input must be a float tensor in 0..1, got {x.dtype}")
        if x.dim() not in (3, 4) or x.shape[-3] not in (1, 3):
            raise ValueError(f"torch input must be (C, H, W) or (N, C, H, W) with C = 1 or 3, got {tuple(x.shape)}")
        batch = x if x.dim() == 4 else x[None]
        with torch.no_grad():
            # Like any image file, the input is 8-bit first.
            rgb = (batch.float().clamp(0, 1) * 255).round().expand(-1, 3, -1, -1) / 255
            out = self._batch(rgb, grey=batch.shape[1] == 1)
        out = out.to(x.dtype)
        return out if x.dim() == 4 else out[0]

    def _batch(self, x, grey: bool):
        """(N, 3, H, W) float 0..1 on any device → the decoded batch, same shape and
        device ((N, 1, H, W) when grey), on uint8 levels."""
        import torch

        from .bundle import default_bundle
        from .codec import MULTIPLE, ladder_at

        bundle = default_bundle()
        n, _, h, w = x.shape
        row = ladder_at(bundle, self.quality)
        scale = self.options.get("scale")
        if scale is not None:
            scales = [scale]
        else:
            scales = [1, 2] if row["q2"] > 0 and min(h, w) >= 2 * MULTIPLE else [1]
        candidates = [self._at_scale(bundle, x, grey, s, row["q1"] if s == 1 or row["q2"] <= 0 else row["q2"])
                      for s in scales]
        if len(candidates) == 1:
            return candidates[0][0]
        ref = (x[:, :1] if grey else x) * 255
        costs = torch.stack([((rec * 255 - ref) ** 2).mean(dim=(1, 2, 3)).cpu()
                             + row["lambda"] * 8 * torch.tensor(sizes, dtype=torch.float32) / (h * w)
                             for rec, sizes in candidates])
        best = costs.argmin(dim=0).to(x.device)
        recs = torch.stack([rec for rec, _ in candidates])
        return recs[best, torch.arange(n, device=x.device)]

    def _at_scale(self, bundle, x, grey: bool, scale: int, jpeg_quality: int):
        """Round trip of the batch at one scale: (decoded batch, file sizes in bytes)."""
        import torch
        import torch.nn.functional as F

        from . import segment as seg
        from .codec import MULTIPLE, to_grey, write_file
        from .jpeg import read_tables
        from .tables import jpegplus_tables, quant_level

        n, _, h, w = x.shape
        pre, post = nets_on(bundle, x.device)
        t = bundle.manifest["tables"]
        tables = jpegplus_tables(jpeg_quality, t["flatness"], t["chroma_weight"])
        level = torch.full((n,), quant_level(tables), device=x.device)
        padded = F.pad(x, (0, -w % MULTIPLE, 0, -h % MULTIPLE), mode="replicate")
        sh, sw = -(-h // scale), -(-w // scale)
        stored = to_uint8(pre(padded, level, scale)[..., :sh, :sw])
        sizes, decoded, levels = [], [], []
        for pixels in stored:
            if grey:
                pixels = to_grey(pixels)
            data = write_file(bundle, pixels, tables, seg.Segment(scale, w, h, sw, sh, bundle.model_id, grey), {})
            sizes.append(len(data))
            im = JpegImagePlugin.JpegImageFile(io.BytesIO(data))
            im.load()
            levels.append(quant_level(read_tables(im)))
            decoded.append(np.asarray(im.convert("RGB")))
        y = torch.from_numpy(np.stack(decoded)).to(x.device).permute(0, 3, 1, 2).float() / 255
        y = F.pad(y, (0, -sw % (MULTIPLE // scale), 0, -sh % (MULTIPLE // scale)), mode="replicate")
        rec = post(y, torch.tensor(levels, device=x.device), scale)[..., :h, :w]
        rec = (rec.clamp(0, 1) * 255).round()
        if grey:
            rec = torch.from_numpy(np.stack([to_grey(a) for a in to_uint8(rec / 255)])).to(x.device)[:, None].float()
        return rec / 255, sizes


def to_uint8(t) -> np.ndarray:
    """float (N, 3, H, W) 0..1 on any device → uint8 (N, H, W, 3) on the CPU."""
    return (t.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def nets_on(bundle, device):
    """(PreNet, PostNet) of `bundle` on `device`: the shipped CPU modules, or
    copies made once per device (the shared CPU ones are never moved)."""
    if device.type == "cpu":
        return bundle.nets["pre"], bundle.nets["post"]
    key = (bundle.model_id, str(device))
    with _nets_lock:
        if key not in _nets_on_device:
            _nets_on_device[key] = tuple(copy.deepcopy(bundle.nets[k]).to(device).eval() for k in ("pre", "post"))
        return _nets_on_device[key]
