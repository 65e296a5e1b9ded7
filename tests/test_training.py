"""The v2 training path: the smoke preset (the GPU preset in miniature, on the CPU),
resumable checkpoints, and BlockPostNet's stated reach."""
from __future__ import annotations

import json
import os

import pytest
import torch

import numpy as np

from jpegplus.bundle import load_bundle, read_manifest
from jpegplus.models import build

from training import calibrate, rebuild
from training.calibrate import BLEND_TO, Curves, bpp, build_ladder, rate_budgets
from training.common import load_checkpoint, restore_net

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def test_smoke_preset_trains_and_resumes(tmp_path, capsys):
    args = ["--preset", "smoke", "--out", str(tmp_path), "--train-data", FIXTURES, "--val-data", FIXTURES]
    rebuild.main(args)
    ckpt = load_checkpoint(str(tmp_path / "post_v2.pt"))
    assert ckpt["step"] > 5
    net = restore_net(ckpt["models"]["post"])
    assert type(net).__name__ == "BlockPostNet" and net.takes_chroma  # the presets train with the 4:4:4 flag
    assert net.config["film"] == 9 and len(net.films) == 1 + net.config["context_depth"]  # and with Films
    assert ckpt["extra"]["wall_s"] == pytest.approx(0.15 * 60, abs=5)  # the --minutes budget
    log = json.loads((tmp_path / "rebuild-smoke.json").read_text())
    assert set(log) == {"pack", "val_pack", "post_v2", "export"}
    assert ckpt["extra"]["runs"][0]["hardware"].endswith("1 torch thread(s)")
    assert {k: ckpt["extra"]["runs"][0][k] for k in ("batch", "crop", "reuse")} == {"batch": 2, "crop": 64, "reuse": 2}
    capsys.readouterr()
    rebuild.main(args)  # a second run finds every stage done
    assert capsys.readouterr().out.count("done already") == 4

    # Exported with the shipped PreNet, FakeCodec, tables and ladder: a bundle the codec loads.
    shipped, exported = read_manifest(), read_manifest(tmp_path / "weights")
    assert exported.models["pre"].sha256 == shipped.models["pre"].sha256
    assert exported.models["post"].class_name == "BlockPostNet"
    assert exported.ladder == shipped.ladder and exported.tables == shipped.tables
    assert exported.training["post"]["step"] == ckpt["step"]
    assert type(load_bundle(tmp_path / "weights", runtime="torch").nets["post"]).__name__ == "BlockPostNet"
    assert load_bundle(tmp_path / "weights", runtime="onnx").nets["post"].takes_chroma  # the graphs' "chroma" input


def test_rate_budgets_fall_to_the_floor_below_blend_quality():
    anchor = np.linspace(0.3, 4.0, 100)  # Pillow's mean bpp per quality
    budget = rate_budgets(anchor, floor_bpp=0.08)
    assert budget[0] == pytest.approx(0.08)
    assert np.all(np.diff(budget) > 0)  # quality keeps its order
    assert np.all(budget <= anchor)
    assert np.array_equal(budget[BLEND_TO - 1:], anchor[BLEND_TO - 1:])
    assert np.array_equal(rate_budgets(anchor, floor_bpp=None), anchor)


def test_ladder_budgets_mean_bits_per_pixel_as_the_bench_does():
    # A small and a big image: 4 000 and 40 000 bytes at internal quality 50 are 2 bpp each.
    small, big = np.zeros((125, 128, 3)), np.zeros((1250, 128, 3))
    assert bpp(4000, small) == bpp(40000, big) == 2.0
    g = [10, 50, 90]
    r1 = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 4.0]])  # bpp per image on the grid
    p1 = np.array([[30.0, 35.0, 40.0]] * 2)
    r2 = np.array([[0.5, 1.5, 2.5]] * 2)
    ladder = build_ladder(np.full(100, 2.0), Curves(g, r1, p1), Curves(g, r2, p1 - 10), margin_db=1.5)
    assert ladder.q1[60] == 50  # mean bpp 2.0 at 50, above it beyond
    assert ladder.q2[60] == 0  # scale 2 is 10 dB below: never tried
    ladder = build_ladder(np.full(100, 2.0), Curves(g, r1, p1), Curves(g, r2, p1 - 1), margin_db=1.5)
    assert ladder.q2[60] == 70  # within the margin, at q1's mean bpp (2.0: halfway from 50 to 90)


@pytest.mark.parametrize("scale", [1, 2])
def test_block_postnet_is_identity_at_start_and_local(scale):
    torch.manual_seed(0)
    net = build("BlockPostNet", {"channels": 16, "context": 32, "detail_depth": 1, "context_depth": 2}).eval()
    side = 128 // scale
    y = torch.rand(1, 3, side, side)
    with torch.no_grad():
        base = net(y, torch.tensor([0.3]), scale)
        torch.nn.init.normal_(net.up.weight, std=0.1)
        torch.nn.init.normal_(net.head.weight, std=0.1)
        out = net(y, torch.tensor([0.3]), scale)
        y2 = y.clone()
        y2[..., 0, 0] += 0.5  # one input pixel in the corner
        changed = (net(y2, torch.tensor([0.3]), scale) - out).abs().amax(1)[0] > 1e-6
    plain = y if scale == 1 else torch.nn.functional.interpolate(y, scale_factor=2, mode="bicubic", align_corners=False)
    assert torch.allclose(base, plain, atol=1e-6)  # zero-initialised output: the bicubic base
    rows, cols = torch.nonzero(changed, as_tuple=True)
    reach_out = net.reach(scale) * scale  # in output pixels
    assert rows.max() <= reach_out and cols.max() <= reach_out
    assert rows.max() >= reach_out // 3  # the stated reach is not wildly loose



def shipped_post_run(tmp_path) -> tuple[list, object]:
    """(train_post arguments that go on from the shipped PostNet, tiny pack and val crops of the fixtures
    written into tmp_path, batch 2 of 64², one thread; the network those arguments train): with a
    BandedPostNet, its last member (--levels 0.65 1: the coarsest band)."""
    from jpegplus.bundle import weights_dir
    from training import make_pack

    make_pack.main(["--data", FIXTURES, "--crops", "4", "--size", "64", "--compact", "--out", str(tmp_path / "p.npz")])
    make_pack.main(["--data", FIXTURES, "--centre", "1", "--size", "64", "--out", str(tmp_path / "v.npy")])
    shipped = load_bundle(names=("post",), runtime="torch").nets["post"]
    band = ["--levels", "0.65", "1"] if hasattr(shipped, "bands") else []  # a BandedPostNet: go on with one member
    args = ["--init", str(weights_dir()), "--pack", str(tmp_path / "p.npz"), *band, "--val", str(tmp_path / "v.npy"),
            "--batch", "2", "--crop", "64", "--threads", "1", "--eval-every", "1000"]
    return args, shipped.bands[-1] if band else shipped


def test_a_run_can_start_from_shipped_weights(tmp_path):
    from training import train_post

    args, shipped = shipped_post_run(tmp_path)
    out = str(tmp_path / "post.pt")
    train_post.main([*args, "--out", out, "--steps", "2", "--lr", "0"])
    trained = load_checkpoint(out)["models"]["post"]
    assert trained["class"] == type(shipped).__name__ and trained["config"] == shipped.config
    assert all(torch.equal(v, shipped.state_dict()[k]) for k, v in trained["state"].items())  # lr 0: unchanged
    events = [json.loads(line) for line in open(out + ".log")]
    start, done = events[0], events[-1]
    assert start["init_gain_db"] == done["gain_db"]  # the running check's baseline is the network it starts from

    # --chroma-flag widens the stem by one zero-initialised input: the 4:4:4 flag (nets.with_chroma_flag).
    train_post.main([*args, "--chroma-flag", "--out", out + "w", "--steps", "2", "--lr", "0", "--share-444", "1"])
    from jpegplus.models.nets import with_chroma_flag

    wide = load_checkpoint(out + "w")["models"]["post"]
    assert wide["config"] == {**shipped.config, "chroma_flag": True}
    want = with_chroma_flag(shipped).state_dict()  # the shipped one itself where it reads the flag already
    assert all(torch.equal(v, want[k]) for k, v in wide["state"].items())
    unflagged = build("BlockPostNet", {k: v for k, v in shipped.config.items() if k != "chroma_flag"})
    assert not with_chroma_flag(unflagged).stem.weight[:, -1].any()  # a new input starts at zero

    # --context-depth adds zero-initialised residual convolutions at the end of the context path: the same function.
    depth = len(shipped.context) + 2
    train_post.main([*args, "--context-depth", str(depth), "--out", out + "d", "--steps", "2", "--lr", "0"])
    deep = restore_net(load_checkpoint(out + "d")["models"]["post"]).eval()
    assert deep.config == {**shipped.config, "context_depth": depth}
    y, level = torch.rand(2, 3, 48, 40), torch.tensor([0.3, 0.7])
    with torch.no_grad():
        for scale in (1, 2):
            torch.testing.assert_close(deep(y, level, scale), shipped.eval()(y, level, scale), rtol=0, atol=1e-6)
    assert not any(conv.weight.any() for conv in deep.context[len(shipped.context):])
    assert deep.reach(1) == shipped.reach(1) + 16  # 8 px more context per convolution


def test_bf16_on_the_cpu_changes_the_arithmetic_not_the_training(tmp_path):
    """--bf16 runs the CPU steps under bfloat16 autocast (as a GPU always does): the
    same seeded steps end near the float32 ones, and not exactly on them."""
    from training import train_post

    args, shipped = shipped_post_run(tmp_path)
    start = shipped.state_dict()
    states = {}
    for name, extra in (("float32", []), ("bf16", ["--bf16"])):
        out = str(tmp_path / f"{name}.pt")
        train_post.main([*args, "--out", out, "--steps", "3", "--lr", "1e-4", *extra])
        ckpt = load_checkpoint(out)
        assert ckpt["extra"]["runs"][-1]["bf16"] == bool(extra)
        states[name] = ckpt["models"]["post"]["state"]

    def distance(a, b):
        return float(sum(((a[k].float() - b[k].float()) ** 2).sum() for k in a)) ** 0.5

    moved, apart = distance(states["float32"], start), distance(states["bf16"], states["float32"])
    assert 0 < apart < 0.5 * moved, (apart, moved)


def test_ladder_fits_the_closed_loops_mix_not_each_scale_alone():
    g = [10, 50, 90]
    r1 = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    p1 = np.array([[25.0, 28.0, 31.0]] * 2)
    # Scale 2: the first image's file is a little bigger than its scale-1 file but far better, so the closed
    # loop takes it; the second's is tiny and bad. The scale-2 mean is within q1's everywhere, the mix's is not.
    r2 = np.array([[1.1, 2.1, 3.1], [0.1, 0.3, 0.5]])
    p2 = np.array([[40.0, 45.0, 50.0], [20.0, 22.0, 24.0]])
    c1, c2 = Curves(g, r1, p1), Curves(g, r2, p2)
    ladder = build_ladder(np.full(100, 2.0), c1, c2, margin_db=100.0)
    row = ladder.row(60)
    assert row.q1 == 50 and 0 < row.q2 < 50
    offered = [(row.q1, c1), (row.q2, c2)]
    assert calibrate.mix_rate(row.lam, offered) <= 2.0 < calibrate.mix_rate(row.lam, [offered[0], (row.q2 + 1, c2)])


def test_the_mix_follows_the_folds_proxy_where_it_decides(monkeypatch):
    from jpegplus import engine

    monkeypatch.setattr(engine, "FOLD_MARGIN", 0.02)  # a margin that leaves close calls to the full loop

    g = [10, 50, 90]
    r1, p1 = np.array([[1.0, 2.0, 3.0]] * 2), np.array([[25.0, 28.0, 31.0]] * 2)
    r2, p2 = np.array([[1.1, 2.1, 3.1]] * 2), np.array([[40.0, 45.0, 50.0]] * 2)  # with PostNet: scale 2 wins
    lam = 50.0
    offered = lambda proxy2: [(50, Curves(g, r1, p1, p1)), (50, Curves(g, r2, p2, proxy2))]
    assert calibrate.mix_rate(lam, offered(None)) == pytest.approx(2.1)  # no proxy: the full loop's choice
    # Plainly decoded, scale 2 looks far worse (the proxy decides: it keeps scale 1) for the first image only;
    # for the second the two proxy costs are within the fold's margin, so the full loop decides.
    mse = lambda db: 255.0**2 / 10 ** (db / 10)
    tie = 10 * np.log10(255.0**2 / (mse(28.0) - lam * 0.1))  # scale 2's plain decode: the same proxy cost
    assert not engine.proxy_decides([[mse(28.0) + lam * 2.0], [mse(tie) + lam * 2.1]])[0]
    proxy2 = np.array([[15.0, 18.0, 21.0], [tie - 3, tie, tie + 3]])
    assert calibrate.mix_rate(lam, offered(proxy2)) == pytest.approx((2.0 + 2.1) / 2)



def test_real_check_lowers_a_quality_whose_mix_overshoots(monkeypatch):
    import dataclasses

    from jpegplus.bundle import Ladder

    n = 100
    ladder = Ladder((50,) * n, (0,) * 9 + (30,) + (0,) * 79 + (80,) + (0,) * 10, (1.0,) * n, (0,) * 89 + (70,) + (0,) * 10)
    assert calibrate.lowered(ladder, 10).row(10).q2 == 29
    ordered = dataclasses.replace(ladder, q2=(25,) * 9 + (26,) + ladder.q2[10:])
    assert calibrate.lowered(ordered, 10).q2[:10] == (25,) * 10  # lower qualities never above it
    assert calibrate.lowered(calibrate.lowered(ordered, 10), 10).q2[:10] == (24,) * 10
    assert calibrate.lowered(ladder, 90).row(90) == dataclasses.replace(ladder.row(90), q2=79)  # q2 before q444
    assert calibrate.lowered(ladder, 50) is None  # 4:2:0 at scale 1 alone: nothing to lower
    no_q2 = dataclasses.replace(ladder, q2=(0,) * n)
    assert calibrate.lowered(no_q2, 90).row(90).q444 == 69

    def fake_check(bundle, images, q, anchor_bpp, anchor_psnr):  # overshoots until q2 is 27 or lower
        return {"quality": q, "bytes_ratio": 1.0 + 0.01 * max(bundle.manifest.ladder.row(q).q2 - 27, 0)}

    monkeypatch.setattr(calibrate, "check_quality", fake_check)
    bundle = load_bundle(names=())
    bundle = dataclasses.replace(bundle, manifest=dataclasses.replace(bundle.manifest, ladder=ladder))
    rows = [fake_check(bundle, None, q, None, None) for q in (10, 50)]
    assert rows[0]["bytes_ratio"] == pytest.approx(1.03)
    fixed, rows = calibrate.enforce(bundle, None, None, None, rows)
    assert fixed.manifest.ladder.row(10).q2 == 27 and rows[0]["bytes_ratio"] == 1.0
    assert fixed.manifest.ladder.row(50) == ladder.row(50)
    _, capped = calibrate.enforce(bundle, None, None, None, [fake_check(bundle, None, 10, None, None)], max_steps=1)
    assert capped[0]["bytes_ratio"] == pytest.approx(1.02)  # gives up after max_steps

def test_prenet_stage_trains_prenet_alone_and_resumes(tmp_path, fixture_images):
    from training import train_pre

    pack = tmp_path / "crops.npy"
    np.save(pack, np.stack([im[:64, :64] for im in fixture_images]))
    args = ["--steps", "3", "--batch", "2", "--crop", "32", "--threads", "1", "--eval-every", "3",
            "--pack", str(pack), "--val", FIXTURES, "--out", str(tmp_path / "pre.pt")]
    train_pre.main(args)
    ckpt = load_checkpoint(str(tmp_path / "pre.pt"))
    assert ckpt["step"] == 3 and set(ckpt["models"]) == {"pre"}
    shipped = load_bundle(names=("pre",), runtime="torch").nets["pre"].state_dict()
    trained = restore_net(ckpt["models"]["pre"]).state_dict()
    assert any(not torch.equal(shipped[k], trained[k]) for k in shipped)  # PreNet moved
    log = [json.loads(line) for line in open(str(tmp_path / "pre.pt") + ".log")]
    assert set(log[0]["shipped_real_cost"]) == {f"s{s}q{q}" for s, q in train_pre.EVAL}
    train_pre.main(args[:1] + ["5"] + args[2:])  # resumes at step 3
    assert load_checkpoint(str(tmp_path / "pre.pt"))["step"] == 5


def test_every_preset_names_modules_and_configs_that_exist():
    import importlib

    from jpegplus.models import build

    for preset, stages in rebuild.PRESETS.items():
        for _, stage, _ in stages:
            for cmd in rebuild.side_by_side(stage):
                importlib.import_module(cmd[0])
                if "--config" in cmd:
                    net = build("BlockPostNet", json.loads(cmd[cmd.index("--config") + 1]))
                    assert net.reach(1) > 0, preset


def test_gpu_continue_trains_one_specialist_per_level_band_and_assembles_them():
    stages = {name: cmd for name, cmd, _ in rebuild.PRESETS["gpu-continue"]}
    members = rebuild.side_by_side(stages["members"])
    levels = [tuple(float(v) for v in cmd[cmd.index("--levels") + 1:][:2]) for cmd in members]
    assert levels[0][0] == 0 and levels[-1][1] == 1 and all(a[1] > b[0] for a, b in zip(levels, levels[1:]))  # overlap
    outs = [cmd[cmd.index("--out") + 1] for cmd in members]
    assert stages["bands"][1:1 + len(outs)] == outs  # members in band order, as training.bands wants them
    assert all(float(cmd[cmd.index("--minutes") + 1]) == 5 for cmd in members)  # side by side: each the 5 minutes
    # the members share the GPU machine's batch workers
    assert sum(int(cmd[cmd.index("--workers") + 1]) for cmd in members) == rebuild.GPU_WORKERS
    # each its band's file mix: the finest band's mostly 4:4:4, as the closed loop stores it
    for cmd, mix in zip(members, rebuild.BAND_MIX, strict=True):
        assert all(cmd[cmd.index(flag) + 1] == value for flag, value in zip(mix[::2], mix[1::2]))
    share_444 = [float(cmd[cmd.index("--share-444") + 1]) for cmd in members]
    assert share_444[0] > share_444[-1]


def test_training_reads_the_checkouts_weights_where_jpegplus_was_never_installed():
    """A bare GPU machine runs the presets from a copy of the checkout: no jpegplus.weights
    package, no JPEGPLUS_WEIGHTS. training sets it to the checkout's weights/ (the shipped model)."""
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    hide_install = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
                    "import os, jpegplus, training.common as c; "
                    "print(os.environ['JPEGPLUS_WEIGHTS'], jpegplus.__file__, c.FAMILY is not None)")
    env = {k: v for k, v in os.environ.items() if k != "JPEGPLUS_WEIGHTS"}
    out = subprocess.run([sys.executable, "-c", hide_install], cwd=repo, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    weights, package, family = out.stdout.split()
    assert weights == os.path.join(repo, "weights") and package.startswith(repo) and family == "True"
    env["JPEGPLUS_WEIGHTS"] = "/elsewhere"  # a folder the user chose stays theirs
    out = subprocess.run([sys.executable, "-c", "import os, training; print(os.environ['JPEGPLUS_WEIGHTS'])"],
                         cwd=repo, env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "/elsewhere", out.stderr


def test_gpu_more_goes_on_from_gpu_continues_export_and_keeps_its_record():
    first = {name: cmd for name, cmd, _ in rebuild.PRESETS["gpu-continue"]}
    stages = {name: cmd for name, cmd, _ in rebuild.PRESETS["gpu-more"]}
    tar = first["export"][first["export"].index("--out") + 1]
    assert stages["untar"] == ["tarfile", "-e", tar, "{out}"]  # gives {out}/weights
    members = rebuild.side_by_side(stages["members2"])
    assert len(members) == len(rebuild.BANDS)
    assert all(cmd[cmd.index("--init") + 1] == "{out}/weights" for cmd in members)
    assert stages["export"][stages["export"].index("--base") + 1] == "{out}/weights"  # the chain keeps round 1
    assert stages["export"][stages["export"].index("--out") + 1] != tar


def test_gpu_ceiling_trains_the_shipped_shape_beside_the_ceiling_with_one_recipe_and_slims_both():
    stages = {name: cmd for name, cmd, _ in rebuild.PRESETS["gpu-ceiling"]}
    shape, ceiling = rebuild.side_by_side(stages["pair"])

    def recipe(cmd):  # everything but the network's shape and where it goes
        skip = {cmd.index(k) + i for k in ("--config", "--out") if k in cmd for i in (0, 1)}
        return [c for i, c in enumerate(cmd) if i not in skip]
    assert recipe(shape) == recipe(ceiling) and "--config" not in shape
    assert json.loads(ceiling[ceiling.index("--config") + 1]) == json.loads(rebuild.CEILING)
    slimmed = [cmd[1] for cmd in rebuild.side_by_side(stages["slim"])]
    assert slimmed == [shape[shape.index("--out") + 1], ceiling[ceiling.index("--out") + 1]]


def test_a_stage_of_several_commands_runs_them_side_by_side_and_fails_if_one_fails(tmp_path):
    """run_stage on training.slim: both slim copies are written and rebuild a network as the full checkpoint
    does, with no optimiser state; a missing checkpoint fails the stage."""
    import subprocess

    import torch
    from jpegplus.models import build
    from training.common import save_checkpoint

    full = []
    for i in range(2):
        net = build("BlockPostNet", {"channels": 8, "context": 16, "detail_depth": 1, "context_depth": 1})
        opt = torch.optim.Adam(net.parameters())
        net(torch.rand(1, 3, 16, 16), torch.rand(1), 1).mean().backward()
        opt.step()
        full.append(str(tmp_path / f"full{i}.pt"))
        save_checkpoint(full[-1], 7 + i, {"lr": 1e-3}, {"post": net}, opt, {"wall_s": 3.0})
    rebuild.run_stage([["training.slim", f, "--out", f + ".slim"] for f in full])
    for i, f in enumerate(full):
        slim, ckpt = load_checkpoint(f + ".slim"), load_checkpoint(f)
        assert slim["optimizer"] is None and slim["step"] == 7 + i and slim["extra"] == ckpt["extra"]
        assert os.path.getsize(f + ".slim") < 0.5 * os.path.getsize(f)
        net = restore_net(slim["models"]["post"])
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), ckpt["models"]["post"]["state"].values()))
    with pytest.raises(subprocess.CalledProcessError):
        rebuild.run_stage([["training.slim", full[0], "--out", str(tmp_path / "a.pt")],
                           ["training.slim", str(tmp_path / "none.pt"), "--out", str(tmp_path / "b.pt")]])


@pytest.mark.parametrize("reuse", [1, 2, 4])
def test_reuse_sees_each_batch_once_per_mirror_and_resumes_in_step(reuse):
    from training.train_post import MIRRORS, views

    def made(first):  # batch i: crops whose pixels all hold i, one odd pixel to tell the mirrors apart
        i = first
        while True:
            x = np.full((2, 16, 16, 3), i, np.uint8)
            x[:, 0, 0] = 255
            yield x, x.copy(), np.full(2, i / 100, np.float32), 1, False
            i += 1

    def corner(t):  # which corner holds the odd pixel: the mirror applied
        return [(0, 0), (0, 15), (15, 0), (15, 15)].index(tuple(int(v) for v in torch.nonzero(t[0, 0] == 1)[0]))

    steps = [next(s) for s in [views(made, 0, reuse, torch.device("cpu"))] for _ in range(3 * reuse * reuse)]
    seen = [(round(level[0].item() * 100), corner(x)) for (x, y), level, _, _ in steps]
    assert all(torch.equal(x, y) for (x, y), *_ in steps)  # original and decoded get the same mirror
    assert sorted(seen) == sorted((b, m) for b in range(3 * reuse) for m in range(reuse))  # each batch, each mirror
    assert len(MIRRORS) == 4 and seen[:reuse] == [(b, 0) for b in range(reuse)]  # a batch's views are reuse steps apart
    for first in range(len(steps)):  # a resumed run continues the same sequence
        (x, _), level, _, _ = next(views(made, first, reuse, torch.device("cpu")))
        assert (round(level[0].item() * 100), corner(x)) == seen[first]


def test_evaluate_post_sets_postnets_side_by_side(capsys):
    from jpegplus.bundle import weights_dir
    from training import evaluate_post

    evaluate_post.main([str(weights_dir()), "--data", FIXTURES, "--n", "2", "--size", "64", "--threads", "1"])
    row = json.loads(capsys.readouterr().out)
    assert row["images"] == 2 and set(row["gain_db"]) == {name for name, *_ in evaluate_post.VAL_SETTINGS}
    assert row["gain_db"]["std10"] > 0.3  # the shipped PostNet restores plain JPEG at quality 10
    assert row["mean_db"] == pytest.approx(np.mean(list(row["gain_db"].values())), abs=1e-3)
    evaluate_post.main([str(weights_dir()), "--data", FIXTURES, "--n", "2", "--size", "64", "--threads", "1", "--fine"])
    row = json.loads(capsys.readouterr().out)
    assert row["settings"] == "fine" and list(row["gain_db"]) == [name for name, *_ in evaluate_post.FINE_SETTINGS]
    assert row["gain_db"]["std90"] > 0.0  # it restores Pillow's quality-90 files too, if little


def test_strength_check_fits_strengths_that_do_not_lose(capsys):
    from jpegplus.bundle import weights_dir
    from training import evaluate_post, strength_check

    strength_check.main([str(weights_dir()), "--data", FIXTURES, "--n", "2", "--size", "64", "--threads", "1"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["setting"] for r in rows] == [name for name, *_ in evaluate_post.VAL_SETTINGS]
    for r in rows:
        # a = 1 is on the strength grid, so the fitted strengths lose at most rounding noise against PostNet as it is
        assert r["image"] >= r["post"] - 0.02 and r["channel"] >= r["image"] - 0.02
        assert all(0 <= a <= 2 for p in r["channel_percentiles"] for a in p)
    assert np.mean([r["channel"] - r["post"] for r in rows]) > 0  # three numbers per image do pay something
    std10 = next(r for r in rows if r["setting"] == "std10")
    assert std10["post"] > 0.3  # the same figure evaluate_post gives (shared files and PostNet runs)


def test_export_tells_a_resumed_checkpoint_from_a_continued_run():
    from training.export import resumed

    first = {"hardware": "cpu", "from_step": 0, "lr": 1e-4}
    prev = {"runs": [first]}
    assert resumed(prev, {"runs": [first, {"hardware": "cpu", "from_step": 500, "lr": 1e-4}]})
    assert not resumed(prev, {"runs": [{"hardware": "cpu", "from_step": 0, "lr": 2e-4}]})  # --init: a new run
    assert not resumed({}, {"runs": [first]})  # a record from before runs were kept


def test_export_to_a_tar_writes_one_archive_of_the_weights_folder(tmp_path):
    import tarfile

    from training import export

    export.main(["--out", str(tmp_path / "gpu.tar")])  # identity networks: quick
    assert [p.name for p in tmp_path.iterdir()] == ["gpu.tar"]  # one file for $OUT, no folder left beside it
    with tarfile.open(tmp_path / "gpu.tar") as tar:
        tar.extractall(tmp_path / "x")
    folder = tmp_path / "x" / "gpu"
    manifest = read_manifest(folder)  # checks every named file's sha256
    named = {f for entry in manifest.models.values() for f in entry.files()}
    assert {p.name for p in folder.iterdir()} == named | {"manifest.json"}


def test_q1_narrows_the_quality_band_of_jpegplus_batches(tmp_path):
    from jpegplus.tables import quant_level
    from training import make_pack, train_post
    from training.common import FAMILY

    make_pack.main(["--data", FIXTURES, "--crops", "4", "--size", "64", "--compact", "--out", str(tmp_path / "p.npz")])
    options = {"seed": 1, "crop": 32, "batch": 3, "scale2_share": 0.0, "standard_share": 0.0, "share_444": 0.0,
               "levels": (0.0, 1.0)}
    train_post.init_maker(str(tmp_path / "p.npz"), None, {**options, "q1": (50, 50)})
    levels = {float(v) for i in range(4) for v in train_post.make_batch(i)[2]}
    assert levels == {np.float32(quant_level(FAMILY.tables(50)))}
    train_post.init_maker(str(tmp_path / "p.npz"), None, {**options, "q1": train_post.Q1})
    assert len({float(v) for i in range(4) for v in train_post.make_batch(i)[2]}) > 3  # the whole band


def test_levels_keep_every_kind_of_batch_inside_a_band_and_pick_a_banded_init_member(tmp_path):
    from jpegplus.models.nets import BandedPostNet
    from training import make_pack, train_post
    from training.bands import member_of

    make_pack.main(["--data", FIXTURES, "--crops", "4", "--size", "64", "--compact", "--out", str(tmp_path / "p.npz")])
    options = {"seed": 2, "crop": 32, "batch": 2, "scale2_share": 0.3, "standard_share": 0.3, "share_444": 0.5,
               "q1": train_post.Q1}
    for band in ((0.7, 1.0), (0.0, 0.7)):
        train_post.init_maker(str(tmp_path / "p.npz"), None, {**options, "levels": band})
        made = [train_post.make_batch(i) for i in range(12)]
        assert {(b[3], b[4]) for b in made} >= {(1, False), (2, False), (1, True)}  # every kind is drawn
        levels = np.concatenate([b[2] for b in made])
        assert levels.min() >= band[0] - 1e-6 and levels.max() <= band[1] + 1e-6 and np.ptp(levels) > 0.1

    assert train_post.qualities_in_band(train_post.Q2, False, "4:2:0", (0.0, 0.55))[1] == 95  # the finest band too
    with pytest.raises(SystemExit, match="--scale2-share 0"):  # no scale-½ file is that fine: say how to go on
        train_post.qualities_in_band(train_post.Q2, False, "4:2:0", (0.0, 0.2))

    net = BandedPostNet([0.7], {"channels": 4, "context": 8, "detail_depth": 1, "context_depth": 1})
    assert member_of(net, (0.7, 1.0)) == (1, net.bands[1]) and member_of(net, (0.0, 0.75))[0] == 0
    # a band split out of one, with its margin: (0.45, 0.75) is the middle of three bands, 0.5 and 0.7 apart
    assert member_of(net, (0.0, 0.55))[0] == 0 and member_of(net, (0.45, 0.75))[0] == 0
    assert member_of(net, (0.8, 1.0))[0] == 1
    for levels in ((0.0, 1.0), (0.6, 0.8)):  # both bands, or neither whole and across a bound
        with pytest.raises(ValueError, match="not one"):
            member_of(net, levels)


def test_bands_assembles_members_in_band_order_only(tmp_path):
    from jpegplus.models.nets import BlockPostNet
    from training import bands
    from training.common import save_checkpoint

    config = {"channels": 4, "context": 8, "detail_depth": 1, "context_depth": 1}
    paths = []
    for band, levels in enumerate(((0.0, 0.7), (0.7, 1.0))):
        torch.manual_seed(band)
        paths.append(str(tmp_path / f"b{band}.pt"))
        save_checkpoint(paths[-1], 10 + band, {"levels": list(levels), "init": "weights", "seed": band},
                        {"post": BlockPostNet(**config)}, None, {"wall_s": 60.0, "runs": []})
    out = str(tmp_path / "banded.pt")
    with pytest.raises(SystemExit, match="no checkpoint at"):
        bands.main([paths[0], str(tmp_path / "missing.pt"), "--bounds", "0.7", "--out", out])
    with pytest.raises(SystemExit, match="do not cover band 0"):
        bands.main([*paths[::-1], "--bounds", "0.7", "--out", out])
    bands.main([*paths, "--bounds", "0.7", "--out", out])
    ckpt = load_checkpoint(out)
    net = restore_net(ckpt["models"]["post"])
    assert type(net).__name__ == "BandedPostNet" and net.config == {"bounds": [0.7], "net": config}
    for b, path in enumerate(paths):
        member = restore_net(load_checkpoint(path)["models"]["post"])
        assert all(torch.equal(v, member.state_dict()[k]) for k, v in net.bands[b].state_dict().items())
    assert ckpt["config"]["init"] == "weights" and ckpt["step"] == 21 and ckpt["extra"]["wall_s"] == 120.0
    assert [r["config"]["levels"] for r in ckpt["extra"]["bands"]] == [[0.0, 0.7], [0.7, 1.0]]


def test_bands_keeps_a_shipped_member_as_it_is_beside_new_ones(tmp_path):
    """A band split: two new members for the finer levels, the shipped coarse member kept (FOLDER@B), its
    weights and record as shipped, its steps and minutes not counted again."""
    from jpegplus.bundle import load_bundle, weights_dir
    from training import bands
    from training.common import save_checkpoint

    shipped = load_bundle(names=("post",), runtime="torch").nets["post"]
    kept = read_manifest().training["post"]["bands"][-1]
    paths = []
    for name, levels in (("top", (0.0, 0.55)), ("mid", (0.45, 0.75))):
        net = build("BlockPostNet", shipped.bands[0].config)
        paths.append(str(tmp_path / f"{name}.pt"))
        save_checkpoint(paths[-1], 10, {"levels": list(levels), "init": "weights", "seed": 1},
                        {"post": net}, None, {"wall_s": 60.0, "runs": []})
    out, last = str(tmp_path / "three.pt"), f"{weights_dir()}@{len(shipped.bands) - 1}"
    with pytest.raises(SystemExit, match="no band 9"):
        bands.main([*paths, f"{weights_dir()}@9", "--bounds", "0.55", "0.7", "--out", out])
    with pytest.raises(SystemExit, match="no weights manifest"):
        bands.main([*paths, str(tmp_path / "nowhere@1"), "--bounds", "0.55", "0.7", "--out", out])
    bands.main([*paths, last, "--bounds", "0.55", "0.7", "--out", out])
    ckpt = load_checkpoint(out)
    net = restore_net(ckpt["models"]["post"])
    assert net.config["bounds"] == [0.55, 0.7] and len(net.bands) == 3
    assert all(torch.equal(v, shipped.bands[-1].state_dict()[k]) for k, v in net.bands[2].state_dict().items())
    assert ckpt["step"] == 20 and ckpt["extra"]["wall_s"] == 120.0  # the new members' alone
    records = ckpt["extra"]["bands"]
    assert records[2] == {**kept, "kept": last} and "kept" not in records[0]


def test_family_check_reads_the_fields_a_run_changes():
    from training.common import FAMILY
    from training.family_check import parse_run

    assert parse_run("weights@") == ("weights", FAMILY, True)
    assert parse_run("weights@pre=identity") == ("weights", FAMILY, False)
    source, family, with_pre = parse_run("runs/a@b.pt@flatness=0.1,sharp=0.5,pre=shipped")
    assert source == "runs/a@b.pt" and (family.flatness, family.sharp, family.eob) == (0.1, 0.5, FAMILY.eob)
    assert with_pre
    for bad in ("weights", "@sharp=1", "weights@colour=1", "weights@sharp=x", "weights@sharp", "weights@pre=none"):
        with pytest.raises(SystemExit, match="SOURCE@FIELD=VALUE"):
            parse_run(bad)


def test_model_card_reads_the_shipped_records_alone(tmp_path):
    """Without runs/ (a fresh checkout) the card still gives the rebuild's stage times, from the manifest's
    training record that exports carry, and one row per member of each banded PostNet run."""
    import shutil

    from jpegplus.bundle import weights_dir
    from training import model_card

    folder = tmp_path / "w"
    shutil.copytree(weights_dir(), folder, ignore=shutil.ignore_patterns("ablation-nofake", "*.onnx"))
    stages = read_manifest(folder).training["rebuild"]
    model_card.main(["--weights", str(folder), "--rebuild", str(tmp_path / "none.json"),
                     "--ladder", str(tmp_path / "none.json")])
    card = before = (folder / "MODEL_CARD.md").read_text()
    total = sum(s["wall_s"] for s in stages.values()) / 60
    assert f"Whole rebuild (all stages incl. the ablation and calibration): {total:.0f} min" in card
    assert "member 0 of a BandedPostNet" in card and "member 1 of a BandedPostNet" in card
    manifest = json.loads((folder / "manifest.json").read_text())  # a member kept by training.bands FOLDER@B
    bands = manifest["training"]["post"]["bands"]
    trained = next(b for b, record in enumerate(bands) if "kept" not in record)  # one that trained in this model
    bands[trained]["kept"] = f"weights@{trained}"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    model_card.main(["--weights", str(folder), "--rebuild", str(tmp_path / "none.json"),
                     "--ladder", str(tmp_path / "none.json")])
    card = (folder / "MODEL_CARD.md").read_text()
    assert f"the member trained above, kept as it was (weights@{trained}) | 0 |" in card
    assert card.count(" on x86_64 CPU") < before.count(" on x86_64 CPU")  # its runs are not listed again
    passes = bool(read_manifest(folder).models["pre"].config.get("identity_scales"))
    assert ("pre passes its input through unchanged at scale 1" in card) == passes
    views = read_manifest(folder).models["post"].views
    assert (f"post restores {views} views of each decoded file" in card) == (views > 1)


@pytest.mark.parametrize("band", [0, 1])
def test_postnet_calibration_feeds_hold_only_their_level_bands_files(band):
    """A BandedPostNet member's int8 graph is calibrated on the files it decodes: the other band's activations
    would widen its ranges."""
    from pathlib import Path

    from training.common import postnet_calibration_feeds

    fixtures = str(Path(__file__).parent / "fixtures")
    feeds = postnet_calibration_feeds(fixtures, 1, count=3, crop=64, band=band, bounds=(0.7,))
    levels = [float(f["level"][0]) for f in feeds]
    assert levels and all((lv >= 0.7) == bool(band) for lv in levels)
    with pytest.raises(ValueError, match="level band 1"):
        postnet_calibration_feeds(fixtures, 1, count=3, crop=64, band=1, bounds=(1.01,))


def test_prenet_check_arms_differ_at_scale_1_only(fixture_rgb):
    """training.prenet_check's two arms (the shipped PreNet's tensors, learned or passing through at scale 1)
    store the image itself at scale 1 (up to the requantisation) or PreNet's output, and both keep the learned
    downsampler at scale 2: their scale-1 files differ, their scale-2 files do not."""
    import jpegplus
    from training.prenet_check import ARMS, with_prenet_identity_scales

    shipped = load_bundle(runtime="torch")
    learned, bare = (with_prenet_identity_scales(shipped, ARMS[k]) for k in ("learned at scale 1", "identity at scale 1"))
    assert jpegplus.encode(fixture_rgb, 30, scale=2, bundle=bare) == jpegplus.encode(fixture_rgb, 30, scale=2, bundle=learned)
    ours, theirs = (jpegplus.encode(fixture_rgb, 60, scale=1, subsampling="4:2:0", bundle=b) for b in (bare, learned))
    assert ours != theirs
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(bare.nets["pre"](x, torch.tensor([0.5]), 1), x)
    assert not torch.equal(learned.nets["pre"](x, torch.tensor([0.5]), 1), x)


def test_export_passes_prenet_through_at_scale_1_on_request(tmp_path, fixture_rgb):
    """--pre-identity-scales 1 keeps PreNet's tensors, writes no scale-1 graph, and gives a new model id (the id
    covers configs as well as tensors); both runtimes then encode at scale 1 without a PreNet graph there."""
    import jpegplus
    from training import export

    for folder, extra in (("a", []), ("b", ["--pre-identity-scales", "1"])):
        torch.manual_seed(0)  # the same fresh networks both times
        export.main(["--out", str(tmp_path / folder), *extra])
    a, b = read_manifest(tmp_path / "a"), read_manifest(tmp_path / "b")
    assert a.models["pre"].sha256 == b.models["pre"].sha256 and a.model_id != b.model_id
    assert b.models["pre"].config["identity_scales"] == [1] and "identity_scales" not in a.models["pre"].config
    assert [g.scale for g in b.models["pre"].graphs] == [2] and [g.scale for g in a.models["pre"].graphs] == [1, 2]
    files = {r: jpegplus.encode(fixture_rgb, 60, scale=1, subsampling="4:2:0",
                                bundle=load_bundle(tmp_path / "b", runtime=r)) for r in ("onnx", "torch")}
    assert files["onnx"] == files["torch"]


def test_export_writes_postnet_views_and_keeps_the_bases(tmp_path):
    """--views goes into the manifest (and the model id: the same tensors decode differently); an export with
    --post and --base keeps the base's count unless --views says otherwise."""
    from training import export

    torch.manual_seed(0)
    export.main(["--out", str(tmp_path / "a")])
    torch.manual_seed(0)
    export.main(["--out", str(tmp_path / "b"), "--views", "4"])
    a, b = read_manifest(tmp_path / "a"), read_manifest(tmp_path / "b")
    assert (a.models["post"].views, b.models["post"].views) == (1, 4)
    assert a.models["post"].sha256 == b.models["post"].sha256 and a.model_id != b.model_id
    assert load_bundle(tmp_path / "b", names=("post",)).views == 4
    from jpegplus.models.nets import BlockPostNet
    from training.common import save_checkpoint

    ckpt = str(tmp_path / "post.pt")
    save_checkpoint(ckpt, 10, {"seed": 0, "init": "weights"},
                    {"post": BlockPostNet(channels=4, context=8, detail_depth=1, context_depth=1)}, None,
                    {"wall_s": 1.0, "runs": []})
    for extra, want in (([], 4), (["--views", "2"], 2)):
        export.main(["--out", str(tmp_path / "c"), "--base", str(tmp_path / "b"), "--post", ckpt, *extra])
        assert read_manifest(tmp_path / "c").models["post"].views == want
    # the same checkpoint exported again from those weights (two views, a new ladder): one record, not two
    export.main(["--out", str(tmp_path / "d"), "--base", str(tmp_path / "c"), "--post", ckpt])
    record = read_manifest(tmp_path / "d").training["post"]
    assert record == read_manifest(tmp_path / "c").training["post"] and "continued_from" not in record
    with pytest.raises(SystemExit):
        export.main(["--out", str(tmp_path / "c"), "--views", "3"])
