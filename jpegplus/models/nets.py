"""PreNet and PostNet: the learned halves around the real JPEG codec.

Images are float tensors (N, 3, H, W) in 0..1. `level` is the per-sample
quantisation level (N,) from tables.quant_level; `scale` is 1 or 2. A
network takes `full_chroma` (N,) last, 1 where the file stores its chroma at
4:4:4, 0 at 4:2:0 (None: all 0), so every one is called alike; only a PostNet
whose `takes_chroma` is true reads it.
Full-size H, W must be multiples of 16 (the codec pads).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..tables import band_groups
from .blocks import Trunk, bicubic_up2, condition_maps, pixel_unshuffle, trunk_convs


class PreNet(nn.Module):
    """Full-size RGB → RGB at 1/scale: a learned residual over the identity
    (scale 1) or over a 2×2 area downsample (scale 2). One trunk, one head per scale.

    `identity_scales`: the scales at which it returns its input unchanged (only 1
    can be), its learned head there kept but unused; the runtimes skip it there
    (runtime.OnnxNet.passes_through, TorchNet.passes_through) and training.export
    writes no graph for it. Model 5ad268ed's PreNet earned nothing at scale 1
    (training.prenet_check: −0.33 % BD-rate without it on whole val/ images) and
    cost 26 ms/MP per candidate."""

    def __init__(self, channels: int = 32, depth: int = 3, identity_scales=()):
        super().__init__()
        self.identity_scales = tuple(int(s) for s in identity_scales)
        if set(self.identity_scales) - {1}:
            raise ValueError(f"PreNet can pass its input through at scale 1 only, not {self.identity_scales}")
        self.config = {"channels": channels, "depth": depth,
                       **({"identity_scales": list(self.identity_scales)} if self.identity_scales else {})}
        self.trunk = Trunk(48 + 2, 48, channels, depth)
        self.head2 = nn.Conv2d(channels, 12, 3, padding=1)
        nn.init.zeros_(self.head2.weight)
        nn.init.zeros_(self.head2.bias)

    def reach(self, scale: int) -> int:
        """Input pixels of context an output pixel depends on, each side: each 3×3
        conv at ¼ resolution reaches 4 pixels, the unshuffle cell 3 more, and the
        2×2 pooling at scale 2 one more."""
        if scale in self.identity_scales:
            return 0
        return 4 * trunk_convs(self.trunk) + 3 + (scale - 1)

    def forward(self, x: torch.Tensor, level: torch.Tensor, scale: int, full_chroma=None) -> torch.Tensor:
        if scale in self.identity_scales:
            return x
        u = pixel_unshuffle(x, 4) - 0.5  # centred input: trains several times faster than 0..1
        flag = torch.full_like(level, float(scale == 2))
        feats = self.trunk.features(torch.cat([u, condition_maps(u, level, flag)], 1))
        if scale == 1:
            return x + F.pixel_shuffle(self.trunk.head(feats), 4)
        return F.avg_pool2d(x, 2) + F.pixel_shuffle(self.head2(feats), 2)


class PostNet(nn.Module):
    """Decoded RGB at 1/scale → full-size RGB: bicubic ×scale, then a learned
    residual that upsamples detail and removes block and ringing artifacts."""

    def __init__(self, channels: int = 64, depth: int = 5):
        super().__init__()
        self.config = {"channels": channels, "depth": depth}
        self.trunk = Trunk(48 + 2, 48, channels, depth)

    def reach(self, scale: int) -> int:
        """Input pixels of context an output pixel depends on, each side. At scale
        2 the trunk runs on a 2× bicubic upsample: its reach halves, plus 2 pixels
        of bicubic taps."""
        full = 4 * trunk_convs(self.trunk) + 3
        return full if scale == 1 else -(-full // 2) + 2

    def forward(self, y: torch.Tensor, level: torch.Tensor, scale: int, full_chroma=None) -> torch.Tensor:
        base = y if scale == 1 else bicubic_up2(y)
        u = pixel_unshuffle(base, 4) - 0.5  # centred input: trains several times faster than 0..1
        flag = torch.full_like(level, float(scale == 2))
        return base + F.pixel_shuffle(self.trunk(torch.cat([u, condition_maps(u, level, flag)], 1)), 4)


class BlockPostNet(nn.Module):
    """Decoded RGB at 1/scale → full-size RGB (PostNet v2): bicubic ×scale, then a
    learned residual from two paths that meet in the middle.

    - detail path at ½ resolution (pixel-unshuffle by 2: 12 values per cell,
      `channels` wide), where ringing and fine texture live;
    - context path at ⅛ resolution (a 4×4 stride-4 conv from the detail path):
      one position per 8×8 block of a scale-1 file, so `context` channels see
      whole blocks and `context_depth` 3×3 convs reach 8 px further each, cheaply.
      Its transposed conv back to ½ resolution tells the detail path each
      pixel's place in its block, which is what deblocking needs.

    Multiply-adds per output pixel ≈ 9·c²/4·(2·detail_depth + 1) + 9·k²/64·context_depth
    + 2·16·c·k/64 (c = channels, k = context); the defaults ≈ 22 k.

    chroma_flag=True adds a third condition plane beside the level and the
    scale flag: whether the file stores full-resolution (4:4:4) chroma, which
    a 4:2:0-trained network would otherwise sharpen and harm.

    film=K > 0 lets the conditions set the context path's per-channel scales
    and shifts too (Film: K knots of the level, and the flags), so that each
    quality band gets weights of its own. Only at ⅛ resolution, where they
    cost about 2 % of the graph's time: at ½ resolution each would be a pass
    over the feature map that ONNX Runtime does not fold into its blocked
    convolutions (Films on every layer: +6 to +15 %).
    """

    def __init__(self, channels: int = 32, context: int = 128, detail_depth: int = 2, context_depth: int = 4,
                 chroma_flag: bool = False, film: int = 0):
        super().__init__()
        self.config = {"channels": channels, "context": context, "detail_depth": detail_depth,
                       "context_depth": context_depth}
        # optional keys only when set, so older configs (and their hashes) stay as they were
        if chroma_flag:
            self.config["chroma_flag"] = True
        if film:
            self.config["film"] = film
        c, k = channels, context
        self.stem = nn.Conv2d(12 + 2 + int(chroma_flag), c, 3, padding=1)
        self.detail_in = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for _ in range(detail_depth))
        self.down = nn.Conv2d(c, k, 4, stride=4)
        self.context = nn.ModuleList(nn.Conv2d(k, k, 3, padding=1) for _ in range(context_depth))
        self.up = nn.ConvTranspose2d(k, c, 4, stride=4)
        self.detail_out = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for _ in range(detail_depth))
        self.head = nn.Conv2d(c, 12, 3, padding=1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        for m in (self.up, self.head):  # a fresh network is the identity around its skips
            nn.init.zeros_(m.weight)
        # the down conv's and each context conv's Film (none without `film`: no state, older hashes kept)
        self.films = nn.ModuleList(Film(film, 2 + int(chroma_flag), k) for _ in range(1 + context_depth) if film)

    def reach(self, scale: int) -> int:
        """Input pixels of context an output pixel depends on, each side."""
        d = len(self.detail_in)
        # detail convs reach 2 px each, the unshuffle cell 1 px, a block's 8×8 cell 7 px on the way down and up
        full = 2 * (2 * d + 2) + 1 + 14 + 8 * len(self.context)  # in pixels of the ×scale base
        return full if scale == 1 else -(-full // 2) + 2  # bicubic ×2 adds 2 input pixels of taps

    @property
    def takes_chroma(self) -> bool:
        """Whether forward reads `full_chroma` (the network was built with chroma_flag)."""
        return self.stem.in_channels == 12 + 3

    def forward(self, y: torch.Tensor, level: torch.Tensor, scale: int,
                full_chroma: torch.Tensor | None = None) -> torch.Tensor:
        base = y if scale == 1 else bicubic_up2(y)
        u = pixel_unshuffle(base, 2) - 0.5  # centred input
        conditions = [level, torch.full_like(level, float(scale == 2))]
        if self.takes_chroma:
            conditions.append(torch.zeros_like(level) if full_chroma is None else full_chroma.to(level))
        films = list(self.films) or [None] * (1 + len(self.context))

        def mod(film, h):  # a context layer's conditioned scale and shift, where the network has them
            return h if film is None else film(h, *conditions)
        f = F.relu(self.stem(torch.cat([u, condition_maps(u, *conditions)], 1)))
        for conv in self.detail_in:
            f = F.relu(conv(f))
        g = F.relu(mod(films[0], self.down(f)))
        for conv, film in zip(self.context, films[1:]):
            g = F.relu(g + mod(film, conv(g)))
        f = F.relu(f + self.up(g))
        for conv in self.detail_out:
            f = F.relu(conv(f))
        return base + F.pixel_shuffle(self.head(f), 2)


class BandedPostNet(nn.Module):
    """One BlockPostNet per band of quantisation levels: the file's level picks
    the member (tables.band_groups: band i holds levels from bounds[i - 1] up to
    bounds[i]), so each quality band gets a whole network of its own at the
    decode cost of one. Members share the shape (`net`, BlockPostNet's config);
    each is trained on its band's files alone (training/train_post.py --levels).
    """

    def __init__(self, bounds: list[float], net: dict):
        super().__init__()
        if not all(0 < a < b < 1 for a, b in zip([1e-9, *bounds], [*bounds, 1 - 1e-9])):
            raise ValueError(f"bounds must rise strictly inside 0..1, got {bounds!r}")
        self.config = {"bounds": [float(b) for b in bounds], "net": dict(net)}
        self.bands = nn.ModuleList(BlockPostNet(**net) for _ in range(len(bounds) + 1))

    def reach(self, scale: int) -> int:
        return self.bands[0].reach(scale)

    @property
    def takes_chroma(self) -> bool:
        return self.bands[0].takes_chroma

    def forward(self, y: torch.Tensor, level: torch.Tensor, scale: int,
                full_chroma: torch.Tensor | None = None) -> torch.Tensor:
        groups = band_groups(level.detach().float().cpu().numpy(), self.config["bounds"])
        if len(groups) == 1:
            return self.bands[groups[0][0]](y, level, scale, full_chroma)
        out = None
        for b, rows in groups:
            rows = torch.from_numpy(rows).to(y.device)
            part = self.bands[b](y[rows], level[rows], scale, None if full_chroma is None else full_chroma[rows])
            out = part.new_empty((len(y), *part.shape[1:])) if out is None else out
            out[rows] = part
        return out


class Film(nn.Module):
    """A layer's per-sample, per-channel scale and shift from the conditions:
    h·(1 + γ) + β, with (γ, β) linear in K hat functions of the level (knots
    evenly over 0..1, so per-knot values interpolated linearly) and in the
    flags. Zero-initialised: a new one is the identity."""

    def __init__(self, knots: int, flags: int, channels: int):
        super().__init__()
        self.knots = knots
        self.linear = nn.Linear(knots + flags - 1, 2 * channels)  # the level itself is not a flag
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, h: torch.Tensor, level: torch.Tensor, *flags: torch.Tensor) -> torch.Tensor:
        """h (N, C, H, W); level and flags (N,) → (N, C, H, W)."""
        centres = torch.linspace(0, 1, self.knots, device=level.device, dtype=level.dtype)
        hats = (1 - (level[:, None] - centres).abs() * (self.knots - 1)).clamp(min=0)
        gamma, beta = self.linear(torch.cat([hats, *(f[:, None] for f in flags)], 1)).to(h)[..., None, None].chunk(2, 1)
        return h * (1 + gamma) + beta


def with_film(net: BlockPostNet, knots: int) -> BlockPostNet:
    """A copy of `net` with conditioned scales and shifts (Film, zero-initialised):
    the same function as `net` until trained."""
    if len(net.films):
        return net
    wide = BlockPostNet(**{**net.config, "film": knots}).to(net.stem.weight.device)
    missing, _ = wide.load_state_dict(net.state_dict(), strict=False)
    assert all(k.startswith("films.") for k in missing)
    return wide


def with_deeper_context(net: BlockPostNet, depth: int) -> BlockPostNet:
    """A copy of `net` whose context path has `depth` residual convolutions: the
    new ones come last, zero-initialised (and their Films, where the network has
    them, the identity), so each adds nothing, g + conv(g) = g, and the copy is
    the same function as `net` until trained. Each costs 9·k²/64 multiply-adds
    per output pixel (k = context channels: 2.3 k at 128, about a tenth of the
    default network's) and widens the reach by 8 px."""
    if depth < len(net.context):
        raise ValueError(f"context depth {depth} is below the network's {len(net.context)}")
    deep = BlockPostNet(**{**net.config, "context_depth": depth}).to(net.stem.weight.device)
    missing, unexpected = deep.load_state_dict(net.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("context.", "films.")) for k in missing), missing
    for conv in deep.context[len(net.context):]:
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)
    return deep


def with_chroma_flag(net: BlockPostNet) -> BlockPostNet:
    """A copy of `net` that also takes the 4:4:4 flag, its stem's (and its
    Films') new input weights zero: the same function as `net` for either flag
    until trained. The flag is the last input of each."""
    if net.takes_chroma:
        return net
    wide = BlockPostNet(**net.config, chroma_flag=True).to(net.stem.weight.device)
    state = dict(net.state_dict())
    for k in ["stem.weight"] + [k for k in state if k.startswith("films.") and k.endswith(".linear.weight")]:
        w = state[k]
        state[k] = torch.cat([w, torch.zeros_like(w[:, :1])], 1)
    wide.load_state_dict(state)
    return wide
