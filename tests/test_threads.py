"""Threads: encoding and decoding from several threads at once gives the same
bytes and pixels as running serially, and the weights load once per process."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import jpegplus
from jpegplus import bundle as bundle_mod

FIXTURES = Path(__file__).parent / "fixtures"
JOBS = [(name, quality, scale) for name in ("val0", "val1", "val2") for quality, scale in ((40, None), (75, 1), (90, 2))]


@pytest.fixture(scope="module")
def images() -> dict:
    return {name: Image.open(FIXTURES / f"{name}.png").convert("RGB").crop((0, 0, 96, 64))
            for name in ("val0", "val1", "val2")}


def encode_job(images, job) -> bytes:
    name, quality, scale = job
    return jpegplus.encode(images[name], quality, scale=scale)


def test_parallel_encode_and_decode_equal_serial(images):
    serial = [encode_job(images, job) for job in JOBS]
    serial_pixels = [np.asarray(jpegplus.decode(d)) for d in serial]
    work = JOBS * 2
    with ThreadPoolExecutor(max_workers=6) as pool:
        parallel = list(pool.map(lambda job: encode_job(images, job), work))
        pixels = list(pool.map(lambda d: np.asarray(jpegplus.decode(d)), parallel))
    for i, (data, px) in enumerate(zip(parallel, pixels)):
        assert data == serial[i % len(JOBS)], JOBS[i % len(JOBS)]
        assert np.array_equal(px, serial_pixels[i % len(JOBS)])


def test_default_bundle_loads_once_under_contention(monkeypatch):
    monkeypatch.setattr(bundle_mod, "_cache", {})
    calls = []
    real = bundle_mod.load_bundle

    def slow_load(folder):
        calls.append(threading.get_ident())
        time.sleep(0.2)  # widen the window a missing lock would let other threads through
        return real(folder)

    monkeypatch.setattr(bundle_mod, "load_bundle", slow_load)
    start = threading.Barrier(8)

    def get():
        start.wait()
        return bundle_mod.default_bundle()

    with ThreadPoolExecutor(max_workers=8) as pool:
        bundles = list(pool.map(lambda _: get(), range(8)))
    assert len(calls) == 1
    assert all(b is bundles[0] for b in bundles)


def test_blas_stays_one_thread_until_the_caller_of_the_fan_out_leaves():
    """engine.side_by_side holds numpy's BLAS to one thread while the encode's candidates requantise side by
    side, each inside its own runtime.one_blas_thread: the first of them to leave does not restore the BLAS;
    the caller, leaving last, does."""
    from threadpoolctl import ThreadpoolController, threadpool_info

    from jpegplus import engine

    def blas_threads():  # numpy's own BLAS: the one our products run on (torch and scipy may bring others)
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas" and "numpy" in i["filepath"]]

    if not blas_threads():
        pytest.skip("numpy has no BLAS of its own that threadpoolctl sees")
    first_out, seen = threading.Event(), {}

    def candidate(k: int) -> list[int]:
        with engine.one_blas_thread():
            if k == 1:
                first_out.wait()  # candidate 0 leaves first
            inside = blas_threads()
        if k == 0:
            first_out.set()
        else:
            seen["after both left"] = blas_threads()
        return inside

    with ThreadpoolController().limit(limits=2, user_api="blas"):  # what a user's process may have set
        assert blas_threads() == [2] * len(blas_threads())
        inside = engine.side_by_side(candidate, [0, 1], 1, "candidates")
        assert blas_threads() == [2] * len(blas_threads())
    assert inside == [[1] * len(blas_threads())] * 2
    assert seen["after both left"] == [1] * len(blas_threads())
