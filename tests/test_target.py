"""Target file size and target PSNR (jpegplus.target): the search on made-up
size curves that switch scale, then on real encodes of the fixtures."""
import io
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jpegplus
from jpegplus import target
from jpegplus.errors import JpegPlusError, TargetError
from jpegplus.evaluation.metrics import psnr

FIXTURES = Path(__file__).parent / "fixtures"
SWITCHING = 19  # the shipped ladder offers scale 2 up to this quality


class Fake:
    """A made-up encoder: at scale s, size and PSNR grow with quality (what the
    search assumes); the closed loop's choice `choice[q]` may switch scale at any
    quality up to SWITCHING, so the chosen file's size need not grow."""

    def __init__(self, choice: dict[int, int], size: dict[int, callable], psnr: dict[int, callable]):
        self.choice, self.size, self.psnr = choice, size, psnr
        self.calls = []

    def scales(self, q):
        return (1, 2) if q <= SWITCHING else (1,)

    def trial(self, q, forced):
        self.calls.append((q, forced))
        s = forced or self.choice.get(q, 1)
        return target.Trial(q, s, b"x" * self.size[s](q), self.psnr[s](q), forced is not None)

    def unforced(self, q):
        return self.trial(q, None)


def switching_fakes(count: int):
    rng = random.Random(11)
    for _ in range(count):
        a1, a2 = rng.randint(20, 80), rng.randint(5, 40)
        b1, b2 = rng.randint(200, 900), rng.randint(50, 600)
        choice = {q: rng.choice((1, 2)) for q in range(1, SWITCHING + 1)}
        size = {1: lambda q, a=a1, b=b1: b + a * q + (q * q) // 7, 2: lambda q, a=a2, b=b2: b + a * q}
        psnr = {1: lambda q, b=rng.uniform(20, 30): b + 0.2 * q, 2: lambda q, b=rng.uniform(18, 30): b + 0.1 * q}
        yield Fake(choice, size, psnr)


def test_fake_monotone_sizes_take_a_bisection():
    fake = Fake({}, {1: lambda q: 100 * q, 2: None}, {1: lambda q: q, 2: None})
    for n in (100, 5050, 5099, 9999, 10_000, 10**6):
        fake.calls.clear()
        found = target.search(target.Goal(size=n), fake.trial, lambda q: (1,))
        assert found.quality == min(100, n // 100) and len(found.data) <= n
        assert len(found.trials) == len(fake.calls) <= 8  # ⌈log2 100⌉ + 1


def test_fake_switching_sizes_give_the_highest_quality_that_fits():
    counts = []
    for fake in switching_fakes(40):
        sizes = {q: len(fake.unforced(q).data) for q in range(1, 101)}
        assert any(sizes[q + 1] < sizes[q] for q in range(1, 100))  # the curve really is not monotone
        for n in sorted(set(sizes.values()))[::3]:
            fake.calls.clear()
            found = target.search(target.Goal(size=n), fake.trial, fake.scales)
            assert found.quality == max(q for q, b in sizes.items() if b <= n)  # what trying all 100 gives
            assert len(found.data) <= n and found.data == fake.unforced(found.quality).data
            counts.append(len(found.trials))
    assert np.mean(counts) < 14 and max(counts) <= 40  # the search did not try every quality


def test_fake_switching_psnr_gives_the_lowest_quality_that_reaches_it_or_a_smaller_file():
    for fake in switching_fakes(40):
        trials = {q: fake.unforced(q) for q in range(1, 101)}
        for p in np.linspace(min(t.psnr for t in trials.values()), max(t.psnr for t in trials.values()), 9):
            found = target.search(target.Goal(psnr=p), fake.trial, fake.scales)
            lowest = min(q for q, t in trials.items() if t.psnr >= p)
            assert found.trial.psnr >= p and not found.trial.forced
            assert len(found.data) <= len(trials[lowest].data)
            assert found.quality == lowest or len(found.data) < len(trials[lowest].data)


def test_fake_target_out_of_reach():
    fake = Fake({}, {1: lambda q: 500 + q, 2: lambda q: 450 + q}, {1: lambda q: 30.0 + q / 10, 2: lambda q: 0})
    with pytest.raises(TargetError) as e:
        target.search(target.Goal(size=400), fake.trial, lambda q: (1,))
    assert e.value.reachable == 501 and "501 bytes (quality 1)" in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, JpegPlusError)
    with pytest.raises(TargetError) as e:
        target.search(target.Goal(psnr=45), fake.trial, lambda q: (1,))
    assert e.value.reachable == pytest.approx(40.0) and "40.00 dB (quality 100)" in str(e.value)


# ---------------------------------------------------------------- real encodes

@pytest.fixture(scope="module")
def photo():
    return Image.open(FIXTURES / "val2.png").convert("RGB")  # 192×128: scale 2 is offered up to quality 19


def test_target_size_is_the_highest_quality_that_fits(photo):
    for q in (8, 45):
        n = len(jpegplus.encode(photo, q)) + 40
        found = target.encode(photo, target.Goal(size=n))
        data = jpegplus.encode(photo, target_size=n)
        assert data == found.data == jpegplus.encode(photo, found.quality)  # exactly encode's file at that quality
        assert len(data) <= n and found.quality >= q
        assert len(jpegplus.encode(photo, found.quality + 1)) > n  # the next quality does not fit
        assert len(found.trials) <= 14  # a bisection, the other kinds' forced trials, a 4:4:4 stretch probe


def test_target_size_is_exact_where_the_closed_loop_switches_to_444(offer_444, chroma_stripes):
    bundle = offer_444(60)  # every quality offers 4:4:4 at internal 60 beside 4:2:0 at the ladder's q1
    sizes = {q: len(jpegplus.encode(chroma_stripes, q, bundle=bundle)) for q in range(40, 101, 4)}
    for n in (sizes[60] + 10, sizes[92] - 1):
        found = target.encode(chroma_stripes, target.Goal(size=n), bundle=bundle)
        assert len(found.data) <= n and found.data == jpegplus.encode(chroma_stripes, found.quality, bundle=bundle)
        higher = (len(jpegplus.encode(chroma_stripes, q, bundle=bundle)) for q in range(found.quality + 1, 101))
        assert all(size > n for size in higher)  # no higher quality fits
        assert (1, "4:4:4") in {t.kind for t in found.trials}


def test_target_psnr_is_reached_after_decoding(photo):
    ref = np.asarray(photo)
    found = target.encode(photo, target.Goal(psnr=33.0))
    assert psnr(ref, np.asarray(jpegplus.decode(found.data))) == pytest.approx(found.trial.psnr, abs=1e-9)
    assert found.trial.psnr >= 33.0 and found.data == jpegplus.encode(photo, target_psnr=33.0)
    below = jpegplus.encode(photo, found.quality - 1)  # the quality below misses, or is no smaller
    assert psnr(ref, np.asarray(jpegplus.decode(below))) < 33.0 or len(below) >= len(found.data)


def test_target_psnr_on_a_grey_image_is_measured_on_L():
    grey = Image.open(FIXTURES / "val0.png").convert("L")
    found = target.encode(grey, target.Goal(psnr=30.0))
    decoded = jpegplus.decode(found.data)
    assert decoded.mode == "L" and found.trial.psnr >= 30.0
    assert psnr(np.asarray(grey), np.asarray(decoded)) == pytest.approx(found.trial.psnr, abs=1e-9)


def test_targets_out_of_reach_and_bad_arguments(photo):
    smallest = len(jpegplus.encode(photo, 1))
    with pytest.raises(TargetError) as e:
        jpegplus.encode(photo, target_size=smallest - 1)
    assert e.value.reachable == smallest and f"{smallest:,} bytes" in str(e.value)
    with pytest.raises(TargetError, match="cannot be reached"):
        jpegplus.encode(photo, target_psnr=80)
    for kwargs in ({"quality": 50, "target_size": 10_000}, {"target_size": 10_000, "target_psnr": 30},
                   {"quality": 50, "target_psnr": 30}):
        with pytest.raises(ValueError, match="give one of quality, target_size and target_psnr"):
            jpegplus.encode(photo, **kwargs)
    for bad in (0, -5, 1.5, "150k", True):
        with pytest.raises(ValueError, match="target_size must be"):
            jpegplus.encode(photo, target_size=bad)
    for bad in (0, float("nan"), float("inf"), "38"):
        with pytest.raises(ValueError, match="target_psnr must be"):
            jpegplus.encode(photo, target_psnr=bad)
    with pytest.raises(ValueError, match="not mode CMYK"):
        jpegplus.encode(photo.convert("CMYK"), target_size=10_000)
    with pytest.raises(ValueError, match="scale must be"):
        jpegplus.encode(photo, target_size=10_000, scale=3)


def test_save_and_pillow_plugin_take_target_size(photo, tmp_path):
    n = len(jpegplus.encode(photo, 50))
    jpegplus.save(photo, tmp_path / "a.jpg", target_size=n)
    assert (tmp_path / "a.jpg").read_bytes() == jpegplus.encode(photo, target_size=n)
    jpegplus.register(quality=90)  # a default quality gives way to the save's own target
    try:
        buf = io.BytesIO()
        photo.save(buf, "JPEG", target_size=n)
        assert buf.getvalue() == jpegplus.encode(photo, target_size=n)
        jpegplus.register(target_size=n)  # and a default target to the save's own quality
        buf = io.BytesIO()
        photo.save(buf, "JPEG", quality=20)
        assert buf.getvalue() == jpegplus.encode(photo, 20)
        with pytest.raises(ValueError, match="target_size needs jpegplus's own writer"):
            photo.convert("CMYK").save(io.BytesIO(), "JPEG", target_size=n)
    finally:
        jpegplus.unregister()


def test_target_cost_script(capsys):
    sys.path.insert(0, str(Path(__file__).parent))
    import target_cost  # tests/target_cost.py, the README's measurement

    assert target_cost.main([str(FIXTURES), "-n", "1", "--bpp", "1", "--psnr"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| 1 bpp |"))
    encodes = [float(v) for v in row.split("|")[2:4]]
    assert 1 <= encodes[0] <= encodes[1] <= 12 and row.endswith("| 0 |")
