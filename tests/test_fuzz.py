"""Fuzz decode with hypothesis: a few hundred mutated jpegplus files and segments
per CI run (the property and the mutations live in tests/fuzz.py, whose
script runs 10 000+ cases)."""
from __future__ import annotations

import io
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from PIL import Image

import jpegplus
from jpegplus import segment as seg
from jpegplus.errors import SegmentWarning

import fuzz  # tests/fuzz.py


@settings(max_examples=300, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(fuzz.cases)
def test_decode_of_mutated_files_behaves(case):
    fuzz.check(fuzz.mutate(*case))


@pytest.mark.parametrize("base", range(4))
def test_base_files_are_trusted_jpegplus(base):
    data = fuzz.base_files()[base]
    assert fuzz.check(data) == "jpegplus decode"


def test_resealed_field_is_a_valid_liar():
    # The mutation that rewrites a field *and* the check value must produce a
    # segment that passes verification, or the fuzzer would never test liars.
    data = fuzz.base_files()[1]  # colour, scale 2, 40x24
    liar = fuzz.set_field(data, "width", 39, reseal=True)
    payload = seg.find(Image.open(io.BytesIO(liar)).applist)
    seg.verify(liar, payload)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert jpegplus.decode(liar).size == (39, 24)
    assert fuzz.check(liar) == "jpegplus decode"
    unsealed = fuzz.set_field(data, "width", 39, reseal=False)
    with pytest.warns(SegmentWarning):
        assert jpegplus.decode(unsealed).size == (20, 12)


def test_oracle_catches_a_decoder_that_ignores_damage(monkeypatch):
    # A test that cannot fail is a defect: a decoder that trusts any segment must be caught.
    damaged = fuzz.apply(fuzz.base_files()[0], ("segment_flip", len(seg.IDENT) + 20, 1))  # the model id
    assert fuzz.check(damaged) == "plain decode, warned"
    monkeypatch.setattr(seg, "read", lambda im, data: seg.parse(seg.find(im.applist)))
    with pytest.raises(fuzz.FuzzFailure):
        fuzz.check(fuzz.set_field(fuzz.base_files()[1], "width", 39, reseal=False))


def test_fuzz_script_smoke(capsys):
    assert fuzz.main(["--cases", "15"]) == 0
    out = capsys.readouterr().out
    assert "fuzz: 15 cases" in out and "0 failures" in out
