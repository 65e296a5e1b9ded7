"""Smoke tests of the measurement scripts next to the tests (their main(argv), on the fixtures)."""
from __future__ import annotations

import re
from pathlib import Path

import check_cost  # tests/check_cost.py
import content_check  # tests/content_check.py
import enhance_gain  # tests/enhance_gain.py
import progressive_bytes  # tests/progressive_bytes.py
import thumbnails  # tests/thumbnails.py

FIXTURES = str(Path(__file__).parent / "fixtures")


def test_progressive_bytes(capsys):
    assert progressive_bytes.main([FIXTURES, "-q", "50", "-n", "1"]) == 0
    out = capsys.readouterr().out
    row = re.search(r"\| 50 \| ([\d,]+) \| ([\d,]+) \| [+-][\d.]+ % \| ([\d,]+) \|", out)
    base, prog, default = (int(g.replace(",", "")) for g in row.groups())
    assert default == min(base, prog) and "of 1 |" in out
    assert "every default file is the smaller of the two: True" in out


def test_thumbnails(capsys):
    assert thumbnails.main([FIXTURES, "-q", "50", "-n", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("| 50 |") == len(thumbnails.BOXES) and " dB, " in out


def test_check_cost(capsys):
    assert check_cost.main([FIXTURES, "-n", "1"]) == 0
    out = capsys.readouterr().out
    for task in ("seal v1", "seal v2", "verify, file as written", "progressive twin"):
        assert re.search(rf"{task}\s+\d+\.\d\d", out), task


def test_enhance_gain(capsys):
    assert enhance_gain.main([FIXTURES, "-q", "10"]) == 0
    gain = float(re.search(r"Pillow q10: enhance=True gain ([+-][\d.]+) dB", capsys.readouterr().out).group(1))
    assert gain > 0.2  # PostNet restores Pillow's own files at quality 10


def test_content_check(capsys):
    assert content_check.main([FIXTURES, "-q", "90", "-n", "1"]) == 0
    out = capsys.readouterr().out
    shown, post, pillow = (float(x) for x in re.search(r"\| 90 \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", out).groups())
    assert shown > post and shown > pillow - 1  # the stored image beats PostNet's on dithered black and white
    assert re.search(r"\| chart \| 90 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|", out)


def test_missing_folder_is_a_usage_error(tmp_path):
    for script in (progressive_bytes, thumbnails, check_cost, enhance_gain, content_check):
        assert script.main([str(tmp_path)]) == 2
