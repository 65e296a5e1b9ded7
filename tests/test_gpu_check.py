"""training.gpu_check in its quick mode: on this CPU-only machine it skips the GPU
parts in one line and still measures Filter and decode on the CPU."""
import json

import pytest
import torch

from training import gpu_check


def test_finds_the_suites_gpu_test():
    assert "tests/test_filter.py::test_gpu_batch_stays_on_gpu" in gpu_check.gpu_tests()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only path")
def test_quick_run_on_the_cpu(tmp_path, capsys):
    assert gpu_check.main(["--quick", "--quality", "75", "10", "--json", str(tmp_path / "gpu.json")]) == 0
    out = capsys.readouterr().out
    assert out.count("no CUDA GPU") == 1 and "GPU tests (" not in out
    report = json.loads((tmp_path / "gpu.json").read_text())
    assert report["cuda"] is False and "gpu_tests" not in report
    for r in report["filter"]:
        assert r["batch"] == [2, 3, 64, 64] and r["megapixels"] == pytest.approx(2 * 64 * 64 / 1e6)
        assert r["on_device"] and r["max_level_difference_vs_cpu"] == 0  # the CPU against itself
        assert 0 < r["network_seconds"] < r["seconds"]
        assert r["cpu_coding_seconds"] == pytest.approx(r["seconds"] - r["network_seconds"])
        assert r["mp_per_s"] == pytest.approx(r["megapixels"] / r["seconds"])
    assert [r["quality"] for r in report["decode"]] == [75, 10]
    for r in report["decode"]:
        assert r["size"] == [128, 128] and 0 < r["postnet_ms_per_mp"] < r["ms_per_mp"]
        assert r["rest_ms_per_mp"] == pytest.approx(r["ms_per_mp"] - r["postnet_ms_per_mp"])
    assert f"decode q75, 128×128 ({report['decode'][0]['bytes']:,} bytes)" in out


def test_sample_crops_cover_any_size():
    crops = gpu_check.sample_crops(3, 600)  # larger than the sample's 512 rows: mirrored
    assert crops.shape == (3, 600, 600, 3) and crops.dtype.name == "uint8"
    assert not (crops[0] == crops[1]).all()
