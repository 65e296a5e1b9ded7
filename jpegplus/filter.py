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

import sys

import numpy as np
from PIL import Image

from .metadata import copy_info


class Filter:
    """A jpegplus encode + decode at `quality` (1..100, Pillow's meaning).

    `bundle` is the weights to use (None: the shipped ones), as for
    jpegplus.encode. `options` go to jpegplus.encode for PIL and numpy inputs
    (e.g. scale=2); torch inputs honour `scale` (None: per image, by the
    encoder's own closed-loop choice, jpegplus.engine)."""

    def __init__(self, quality: int = 75, *, bundle=None, **options):
        if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
            raise ValueError(f"quality must be an integer 1..100, got {quality!r}")
        if options.get("scale") not in (None, 1, 2):
            raise ValueError(f"scale must be None, 1 or 2, got {options['scale']!r}")
        self.quality = int(quality)
        self.bundle = bundle
        self.options = {"keep_metadata": False, **options}

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items() if k != "keep_metadata")
        if self.bundle is not None:
            opts += f", bundle={self.bundle!r}"
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

        return codec.decode(codec.encode(image, self.quality, bundle=self.bundle, **self.options), bundle=self.bundle)

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

        from . import engine
        from .bundle import resolve

        if not x.is_floating_point():
            raise TypeError(f"torch input must be a float tensor in 0..1, got {x.dtype}")
        if x.dim() not in (3, 4) or x.shape[-3] not in (1, 3):
            raise ValueError(f"torch input must be (C, H, W) or (N, C, H, W) with C = 1 or 3, got {tuple(x.shape)}")
        batch = x if x.dim() == 4 else x[None]
        grey = batch.shape[1] == 1
        bundle = resolve(self.bundle)
        with torch.no_grad():
            # Like any image file, the input is 8-bit first.
            rgb = (batch.float().clamp(0, 1) * 255).round().expand(-1, 3, -1, -1) / 255
            coded = engine.encode(bundle, engine.BatchNets(bundle, rgb), grey, self.quality,
                                  self.options.get("scale"), {}, keep_rec=True)
        recs = np.stack([engine.to_grey(c.rec)[:, :, None] if grey else c.rec for c in coded])
        out = (torch.from_numpy(recs).to(x.device).permute(0, 3, 1, 2).float() / 255).to(x.dtype)
        return out if x.dim() == 4 else out[0]
