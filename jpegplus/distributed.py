"""Batch conversion on a Dask cluster (the optional extra: pip install 'jpegplus[dask]').

    jpegplus encode /shared/photos -o /shared/out -q 70 --dask tcp://scheduler:8786
    jpegplus encode photos/ -o out/ --dask local:4     # a LocalCluster of 4 worker processes

    from dask.distributed import Client
    from jpegplus import distributed
    with Client("tcp://scheduler:8786") as client:
        done = distributed.convert(client, "encode", ["/shared/photos"], "/shared/out", quality=70)
    print(done.summary())

The command line's own jobs, run as Dask tasks: the plan (outputs under -o,
never an input), the per-file work (jpegplus.batch.run_one: atomic write to a
temporary name and rename, one-line error per failed file), the progress bar
and the summary are jpegplus.batch's. Workers read the inputs and write the
outputs themselves, so every path must be one the workers can see (a shared
filesystem); paths are made absolute before they are sent. Each worker process
loads the weights once (SetUp, a worker plugin, also on a restarted worker).
A worker that dies mid-file loses nothing: Dask runs its tasks again on another
worker, and its temporary file is removed when the run ends.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import uuid

from . import batch
from .batch import Job, Result
from .errors import ClusterError

try:  # the optional extra; without it, dask_distributed() says what to install
    from distributed import WorkerPlugin
except ImportError:
    WorkerPlugin = object

EXTRA = "jpegplus[dask]"
LOCAL = "local:"
CONNECT_TIMEOUT = "20s"


def dask_distributed():
    """The dask.distributed module; ClusterError naming the extra when Dask is not installed."""
    try:
        import dask.distributed
    except ImportError as e:
        raise ClusterError(f"--dask needs Dask: pip install '{EXTRA}' (missing: {e.name or e})") from None
    return dask.distributed


@contextlib.contextmanager
def connect(address: str):
    """A Client for `address`: "local:N" starts a LocalCluster of N worker
    processes with one thread each (and stops it afterwards); anything else is
    a running scheduler's address. UsageError for a bad "local:N", ClusterError
    when Dask is missing or the scheduler cannot be reached."""
    workers = None
    if address.startswith(LOCAL):
        n = address[len(LOCAL):]
        if not n.isdigit() or int(n) < 1:
            raise batch.UsageError(f"--dask {address}: local:N takes a number of worker processes N >= 1")
        workers = int(n)
    dd = dask_distributed()
    with contextlib.ExitStack() as stack:
        if workers is not None:
            cluster = stack.enter_context(dd.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                          dashboard_address=None))
            client = stack.enter_context(dd.Client(cluster))
        else:
            try:
                client = stack.enter_context(dd.Client(address, timeout=CONNECT_TIMEOUT))
            except (OSError, TimeoutError, ValueError) as e:
                raise ClusterError(f"--dask {address}: cannot reach the scheduler ({batch.one_line(e)})") from None
        yield client


class SetUp(WorkerPlugin):
    """Worker plugin, run when a worker starts (a restarted one too): the
    networks' threads, and the weights loaded once (jpegplus.bundle.default_bundle
    caches them for the process). `threads` per network call, or None: the
    machine's cores shared out among the worker's task threads (one worker
    process per machine, as the README's cluster recipe starts them)."""

    def __init__(self, threads: int | None = None):
        self.threads = threads

    def setup(self, worker) -> None:
        batch.init_worker(self.threads or max(1, (os.cpu_count() or 1) // max(1, worker.state.nthreads)))


def local_threads(client) -> int | None:
    """Threads per network call for a LocalCluster's workers, which share this
    machine: its cores over all their task threads, as the local pool shares
    them (-j); None for any other cluster."""
    from distributed import LocalCluster

    if not isinstance(getattr(client, "cluster", None), LocalCluster):
        return None
    total = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())
    return max(1, (os.cpu_count() or 1) // max(1, total))


def check(jobs: list[Job]) -> None:
    """UsageError unless every job reads and writes files (workers have no stdin or stdout of ours)."""
    if any(batch.STDIO in (job.src, job.dst) for job in jobs):
        raise batch.UsageError("--dask works on files: stdin and stdout ('-') are not available to the workers")


def run(client, task: str, jobs: list[Job], options: dict, keep_going: bool, bar) -> list[Result]:
    """A runner for jpegplus.batch.run_jobs: the jobs on the cluster of
    `client`, one task each, the Results in completion order (a task lost with
    its workers, e.g. KilledWorker, becomes that file's one-line failure);
    stops at the first failure unless keep_going, cancelling what is left."""
    dd = dask_distributed()
    check(jobs)
    client.register_plugin(SetUp(local_threads(client)), name="jpegplus-setup")
    run_id = uuid.uuid4().hex[:8]
    futures = {client.submit(batch.run_one, task, Job(os.path.abspath(job.src), os.path.abspath(job.dst)), options,
                             key=f"jpegplus-{task}-{run_id}-{i}", pure=False): job
               for i, job in enumerate(jobs)}
    results = []
    try:
        for future in dd.as_completed(futures):
            results.append(outcome(future, futures[future]))
            bar.update()
            if results[-1].error and not keep_going:
                break
    finally:
        client.cancel(list(futures))
        batch.remove_leftovers(jobs)
    return results


def outcome(future, job: Job) -> Result:
    """A finished task's Result, under the job's own (relative) names."""
    try:
        result = future.result()
    except Exception as e:  # noqa: BLE001 - KilledWorker, CancelledError...: that file failed, one line
        return Result(job.src, job.dst, 0, 0, batch.one_line(e))
    return dataclasses.replace(result, src=job.src, dst=job.dst)


@dataclasses.dataclass(frozen=True)
class Conversion:
    """What convert did: the planned jobs and a Result per file done or failed
    (files not done, after a failure without keep_going, have none)."""
    task: str
    jobs: list[Job]
    results: list[Result]

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.error]

    def summary(self) -> str:
        """The command line's summary line."""
        return batch.summary(self.task, self.results, len(self.jobs))


def convert(client, task: str, inputs: list[str], out: str, *, keep_going: bool = False, progress: bool = False,
            **options) -> Conversion:
    """Convert files on the cluster of `client` (a dask.distributed.Client) as
    `jpegplus {task} INPUTS -o OUT --dask ...` does. `task` is "encode" or
    "decode"; `inputs` files, folders or glob patterns; `options` the
    command's: for encode quality, target_size (bytes), target_psnr (dB),
    scale, progressive, keep_metadata (default True, as the command keeps
    metadata); for decode format (default "PNG") and enhance. UsageError (a
    ValueError) for bad options, no inputs, or outputs that would overwrite
    an input."""
    options = batch.task_options(task, **options)
    jobs = batch.plan_task(task, inputs, out, options)
    return Conversion(task, jobs, batch.run_jobs(task, jobs, options, keep_going, progress,
                                                 functools.partial(run, client)))
