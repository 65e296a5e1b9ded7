"""Batch conversion on a Dask cluster (jpegplus.distributed): a LocalCluster of
two worker processes gives the local pool's files byte for byte, and a worker
that dies in the middle of writing a file loses nothing and leaves nothing."""
import os
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from jpegplus import batch, cli

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """in/: the three fixtures and six variants of them: nine 192×128 or 128×192 PNGs, three in a sub-folder."""
    root = tmp_path_factory.mktemp("dask")
    (root / "in" / "sub").mkdir(parents=True)
    for i in range(3):
        im = Image.open(FIXTURES / f"val{i}.png").convert("RGB")
        im.save(root / "in" / f"val{i}.png")
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / "in" / "sub" / f"flip{i}.png")
        if i < 2:
            im.transpose(Image.Transpose.ROTATE_90).save(root / "in" / f"rot{i}.png")
    im.convert("L").save(root / "in" / "grey.png")
    return root


@pytest.fixture(scope="module")
def pool_files(folder):
    """The local pool's files (-j 2), by relative path."""
    assert cli.main(["encode", str(folder / "in"), "-o", str(folder / "pool"), "-j", "2", "-q", "40"]) == 0
    return files(folder / "pool")


@pytest.fixture(scope="module")
def cluster():
    dd = pytest.importorskip("dask.distributed")
    started = time.perf_counter()
    with dd.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c, \
            dd.Client(c) as client:
        print(f"LocalCluster of 2 workers up in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        yield c, client


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_cluster_gives_the_local_pools_files(folder, pool_files, cluster, capsys):
    c, client = cluster
    capsys.readouterr()
    started = time.perf_counter()
    rc = cli.main(["encode", str(folder / "in"), "-o", str(folder / "dask"), "-q", "40",
                   "--dask", c.scheduler_address])
    seconds = time.perf_counter() - started
    out = capsys.readouterr().out
    got = files(folder / "dask")
    assert rc == 0 and len(got) == 9 and "9 of 9 files" in out and "than Pillow at quality 40" in out
    assert got == pool_files  # byte for byte, no temporary file beside them
    print(f"Dask, 2 workers: {len(got)} files in {seconds:.1f} s, same bytes as -j 2: {got == pool_files}",
          file=sys.stderr)


def test_a_worker_dying_mid_write_loses_no_file_and_leaves_no_partial_file(folder, pool_files, cluster,
                                                                          monkeypatch):
    from jpegplus import distributed

    c, client = cluster
    removed = []
    sweep = batch.remove_leftovers
    monkeypatch.setattr(batch, "remove_leftovers", lambda jobs: removed.append(sweep(jobs)) or removed[-1])
    client.wait_for_workers(2)
    pids = client.run(os.getpid)
    victim = sorted(pids)[0]
    # The victim exits at once, without cleanup, in its first write: the data is in
    # the temporary file, not yet renamed (os._exit takes the fd as its exit code).
    client.run(setattr, os, "fsync", os._exit, workers=[victim])
    started = time.perf_counter()
    done = distributed.convert(client, "encode", [str(folder / "in")], str(folder / "killed"), quality=40)
    seconds = time.perf_counter() - started
    assert pids[victim] not in client.run(os.getpid).values()  # the victim really died (its nanny restarted it)
    assert removed == [1]  # ... leaving its temporary file, which the run removed
    assert not done.failed and len(done.results) == 9 and done.summary().startswith("9 of 9 files")
    assert files(folder / "killed") == pool_files  # every file, whole; no .part left behind
    print(f"Dask, a worker killed mid-write: {len(done.results)} files in {seconds:.1f} s, same bytes as -j 2",
          file=sys.stderr)


def test_decode_and_failures_on_the_cluster(folder, pool_files, cluster, capsys):
    from jpegplus import distributed

    c, client = cluster
    (folder / "bad").mkdir()
    (folder / "bad" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    for name in ("val0.jpg", "val1.jpg"):
        (folder / "bad" / name).write_bytes(pool_files[name])
    done = distributed.convert(client, "decode", [str(folder / "bad")], str(folder / "png"), keep_going=True)
    assert len(done.failed) == 1 and "broken.jpg" in done.failed[0].src
    assert done.summary() == ("2 of 3 files: 0.05 MP written (49,152 pixels, "
                              f"{sum(p.stat().st_size for p in (folder / 'png').iterdir()):,} bytes), 1 failed")
    assert sorted(p.name for p in (folder / "png").iterdir()) == ["val0.png", "val1.png"]
    with pytest.raises(ValueError, match="overwrite"):
        distributed.convert(client, "encode", [str(folder / "pool")], str(folder / "pool"))
    with pytest.raises(ValueError, match="give one of quality, target_size"):
        distributed.convert(client, "encode", [str(folder / "in")], str(folder / "x"), quality=50, target_size=9000)


def test_usage_errors_before_any_cluster(folder, capsys):
    for argv in (["encode", str(folder / "in"), "-o", str(folder / "x"), "--dask", "local:0"],
                 ["encode", "-", "-o", "-", "--dask", "local:1"],
                 ["encode", str(folder / "in"), "-o", str(folder / "x"), "-j", "2", "--dask", "local:1"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2, argv
    assert not (folder / "x").exists()


def test_without_dask_one_line_names_the_extra(folder, monkeypatch, capsys):
    for name in ("dask", "dask.distributed", "distributed"):
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    assert cli.main(["encode", str(folder / "in"), "-o", str(folder / "none"), "--dask", "local:2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'jpegplus[dask]'" in err[0], err
    assert not (folder / "none").exists()
