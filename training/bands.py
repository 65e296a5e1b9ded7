"""Assemble level-band specialists into one BandedPostNet checkpoint.

Each member is a training.train_post checkpoint trained on its band's files
alone (--levels LO HI); the bounds split the quantisation level (tables.quant_level,
0..1) into the bands, lowest level (finest quality) first. The result is a
train_post-style checkpoint that training.evaluate_post and training.export
read like any other:

    python -m training.bands runs/band_hi.pt runs/band_lo.pt --out runs/banded.pt   # --bounds 0.7
    python -m training.bands runs/top.pt runs/mid.pt weights@1 --out runs/three.pt   # LEVEL_BOUNDS

A member FOLDER@B is band B of the BandedPostNet in weights folder FOLDER,
kept as it is (its training record from the manifest, marked "kept": the
model card does not count its steps and minutes again): a split band needs
no new run for the bands it leaves alone.

Each member must have trained on at least its band (its --levels may reach
a margin beyond the bounds, so that files near a bound are not at the edge
of what their member saw), and all must share the BlockPostNet config.
"""
from __future__ import annotations

import argparse

from jpegplus.bundle import load_bundle, read_manifest
from jpegplus.errors import WeightsError
from jpegplus.models.nets import BandedPostNet
from training.common import load_checkpoint, restore_net, save_checkpoint

# The recipe's split of the quantisation level into three bands, finest first: internal quality 81 and up (level
# below 0.55: user quality 63 and up at 4:2:0 on the ladder, 71 and up at 4:4:4, scale ½ at 13–14), 55–80, and 54
# and below (user quality 20 and below); each band holds every kind of file (scale 1 and 2, 4:4:4, standard
# tables) whose level falls in it.
LEVEL_BOUNDS = (0.55, 0.7)
# Each band's member's file mix (train_post's --share-444, --scale2-share), finest band first: the closed loop
# stores most of the finest band's files at 4:4:4, and few at scale ½.
BAND_MIX = (("--share-444", "0.5", "--scale2-share", "0.1"), ("--share-444", "0.25"), ("--share-444", "0.25"))
MARGIN = 0.05  # how far beyond its bounds a member trains (levels), so files near a bound are not at its edge


def band_range(bounds: list[float], band: int) -> tuple[float, float]:
    """The levels band `band` of `bounds` covers: (low, high), 0..1 at the ends."""
    edges = [0.0, *bounds, 1.0]
    return edges[band], edges[band + 1]


def training_levels(bounds, band: int, margin: float = MARGIN) -> tuple[float, float]:
    """The levels (LO, HI) band `band`'s member trains on: its band, `margin` wider inside 0..1."""
    lo, hi = band_range(list(bounds), band)
    return max(0.0, round(lo - margin, 6)), min(1.0, round(hi + margin, 6))


def member_of(net, levels) -> tuple[int, object]:
    """(band, member) of BandedPostNet `net` that a run on the levels range
    `levels` (LO, HI: a member's training range, its band and a margin) goes on
    with: the one band the range covers, or else the one band it lies within,
    give or take MARGIN (a narrower band split out of it, with its own margin:
    the member is where the split starts); ValueError if neither picks exactly one."""
    bounds = net.config["bounds"]
    ranges = [band_range(bounds, b) for b in range(len(net.bands))]
    covered = [b for b, (lo, hi) in enumerate(ranges) if levels[0] <= lo + 1e-9 and hi - 1e-9 <= levels[1]]
    within = [b for b, (lo, hi) in enumerate(ranges)
              if lo - MARGIN - 1e-9 <= levels[0] and levels[1] <= hi + MARGIN + 1e-9]
    picked = covered if covered else within
    if len(picked) != 1:
        raise ValueError(f"levels {tuple(levels)} cover {len(covered)} bands of {bounds} and lie within "
                         f"{len(within)}, not one: pick one band's range (and a margin), one of " + ", ".join(
                             "{:g} {:g}".format(*training_levels(bounds, b)) for b in range(len(net.bands)))
                         + ", or a range inside one band")
    return picked[0], net.bands[picked[0]]


def load_member(source: str):
    """(BlockPostNet, training record {"step", "config", ...}) of a member: a
    train_post checkpoint, or FOLDER@B (band B of a weights folder's banded
    PostNet, its record marked "kept"); SystemExit saying what is missing."""
    ckpt = load_checkpoint(source)
    if ckpt is not None:
        return restore_net(ckpt["models"]["post"]), {"step": ckpt["step"], "config": ckpt["config"], **ckpt["extra"]}
    folder, at, band = source.rpartition("@")
    if not (at and band.isdigit()):
        raise SystemExit(f"no checkpoint at {source}")
    try:
        post = load_bundle(folder, names=("post",), runtime="torch").nets["post"]
    except WeightsError as e:  # a missing or damaged folder: its message says how to mend it
        raise SystemExit(f"{source}: {e}") from e
    members, records = getattr(post, "bands", ()), read_manifest(folder).training.get("post", {}).get("bands", ())
    if int(band) >= len(members) or len(records) != len(members):
        raise SystemExit(f"{source}: the PostNet in {folder} has {len(members)} banded member(s) "
                         f"with training records, no band {band}")
    return members[int(band)], {**records[int(band)], "kept": source}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("members", nargs="+",
                    help="train_post checkpoints (or FOLDER@B: a shipped member kept), one per band, "
                         "lowest level first")
    ap.add_argument("--bounds", type=float, nargs="+", default=list(LEVEL_BOUNDS),
                    help="levels between the bands, rising")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if len(args.members) != len(args.bounds) + 1:
        raise SystemExit(f"{len(args.bounds)} bound(s) need {len(args.bounds) + 1} members, got {len(args.members)}")
    nets, records = zip(*(load_member(p) for p in args.members))
    for b, (path, record, net) in enumerate(zip(args.members, records, nets)):
        trained, (lo, hi) = tuple(record["config"].get("levels", (0.0, 1.0))), band_range(args.bounds, b)
        if not (trained[0] <= lo + 1e-9 and hi - 1e-9 <= trained[1]):
            raise SystemExit(f"{path} trained on levels {trained}, which do not cover band {b}'s {lo:g}..{hi:g}")
        if net.config != nets[0].config or type(net).__name__ != "BlockPostNet":
            raise SystemExit(f"{path}: members must be BlockPostNets of one config ({nets[0].config}), got {net.config}")
    banded = BandedPostNet(args.bounds, nets[0].config)
    for member, net in zip(banded.bands, nets):
        member.load_state_dict(net.state_dict())
    inits = {r["config"].get("init") for r in records}
    config = {"bounds": banded.config["bounds"], "members": args.members,
              **({"init": inits.pop()} if len(inits) == 1 and None not in inits else {})}
    # steps and wall time summed over the members trained for it (they may have run side by side)
    new = [r for r in records if "kept" not in r]
    save_checkpoint(args.out, sum(r["step"] for r in new), config, {"post": banded}, None,
                    {"wall_s": sum(r.get("wall_s", 0.0) for r in new), "bands": list(records)})
    print(f"wrote {args.out}: BandedPostNet, bounds {args.bounds}, members " + ", ".join(args.members))


if __name__ == "__main__":
    main()
