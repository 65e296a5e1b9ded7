"""The one name map of jpegplus networks. A checkpoint stores {"class": name,
"config": kwargs}; `build(name, config)` = MODELS[name](**config) rebuilds it."""
from __future__ import annotations

from .fakecodec import FakeCodec
from .nets import BandedPostNet, BlockPostNet, PostNet, PreNet

MODELS: dict[str, type] = {"PreNet": PreNet, "PostNet": PostNet, "BlockPostNet": BlockPostNet,
                          "BandedPostNet": BandedPostNet, "FakeCodec": FakeCodec}


def build(name: str, config: dict):
    if name not in MODELS:
        raise KeyError(f"unknown model class {name!r}; known: {sorted(MODELS)}")
    return MODELS[name](**config)
