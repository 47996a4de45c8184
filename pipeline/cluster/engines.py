"""GPU workers on SLURM or PBS through dask-jobqueue, from a cluster profile (:mod:`.profile`).

``--cluster PROFILE.yaml`` starts the Dask scheduler in this process and submits one batch
job per worker; every run of the command then reaches it by its address, as with
``--scheduler``, and the jobs are cancelled when the command ends. Each job holds:

- one GPU (``--gres=gpu:1`` on SLURM, ``ngpus=1`` in PBS's ``select``), and one worker
  process (``processes=1``) advertising ``resources={"GPU": 1}``, the resource the tile
  tasks ask for, with ``threads`` task threads out of the job's ``cores``;
- the worker's memory limit (``memory``), and the job's memory request as the site wants
  it: ``--mem`` by default, or ``--mem-per-gpu`` (then ``--mem`` is dropped: SLURM rejects
  the two together);
- the prologue, environment and env file, and ``TMPDIR`` / ``--local-directory`` on the
  node's scratch disk.

The model plugin is registered by each run on whatever cluster it reaches, so nothing of
the model is in the job script.

Traps this avoids, each met by users of dask-jobqueue:

- ``memory`` is both the worker's limit and SLURM's ``--mem``: on a site that allocates
  memory per GPU, jobs are rejected (``mutually exclusive``) or get the wrong amount;
  ``mem_per_gpu`` skips ``--mem`` (``job_directives_skip``) and asks ``--mem-per-gpu``.
- ``job_directives_skip`` drops every directive *line containing* a given string:
  ``--mem`` would also drop ``--mem-per-gpu`` if that were written by dask-jobqueue;
  s2c-batch adds its own directives after the skip, so they are never dropped.
- ``cores`` is also the worker's thread count: a GPU job with 8 cores would run 8 tasks
  at once on one GPU. The job's CPUs are asked separately (``job_cpu``, or PBS's ``ncpus``)
  and the worker gets ``threads``.
- A rejected job script is not an error dask-jobqueue raises: the command would wait for
  workers that never come. On SLURM the script is checked first with
  ``sbatch --test-only`` and a rejection is a config error naming the profile.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from dask.utils import parse_bytes

from s2c_batch.pipeline.cluster.profile import ClusterProfile
from s2c_batch.pipeline.errors import ClusterError, ConfigError

log = logging.getLogger(__name__)


def gpu_directives(profile: ClusterProfile) -> list[str]:
    """The directives that ask for one GPU and the memory the way the profile says."""
    if profile.engine == "slurm":
        out = [profile.gpu_directive or "--gres=gpu:1", f"--cpus-per-task={profile.cores}"]
        if profile.mem_per_gpu:
            out.append(f"--mem-per-gpu={profile.mem_per_gpu}")
        return out + list(profile.directives)
    return list(profile.directives)


def pbs_select(profile: ClusterProfile) -> str:
    """PBS's resource statement: one chunk with the job's cores, one GPU and the memory."""
    gpu = profile.gpu_directive or "ngpus=1"
    gb = max(1, -(-parse_bytes(profile.memory) // 2**30))
    return f"select=1:ncpus={profile.cores}:{gpu}:mem={gb}gb"


def jobqueue_cluster_kwargs(profile: ClusterProfile) -> dict[str, Any]:
    """Keyword arguments of ``SLURMCluster`` / ``PBSCluster`` for the profile (nothing started)."""
    kwargs: dict[str, Any] = {
        "cores": profile.threads,  # dask-jobqueue's cores = the worker's threads
        "processes": 1,  # one worker per job = per GPU
        "memory": profile.memory,
        "walltime": profile.walltime,
        "job_script_prologue": profile.job_prologue,
        "worker_extra_args": ["--resources", "GPU=1"],
        "job_name": "s2c-worker",
        "scheduler_options": {"dashboard_address": ":0",
                              **({"host": profile.scheduler_host} if profile.scheduler_host else {})},
    }
    for key, value in (("queue", profile.queue), ("account", profile.account), ("python", profile.python),
                       ("interface", profile.interface), ("log_directory", profile.log_directory),
                       ("local_directory", profile.scratch)):
        if value is not None:
            kwargs[key] = value
    skip = set(profile.skip_directives)
    if profile.engine == "slurm":
        skip.add("--cpus-per-task")  # written with the job's cores in gpu_directives
        if profile.mem_per_gpu:
            skip.add("--mem=")  # SLURM: --mem and --mem-per-gpu are mutually exclusive
        kwargs["job_extra_directives"] = gpu_directives(profile)
    else:
        kwargs["resource_spec"] = pbs_select(profile)
        kwargs["job_extra_directives"] = gpu_directives(profile)
    kwargs["job_directives_skip"] = sorted(skip)
    return kwargs


def make_jobqueue_cluster(profile: ClusterProfile) -> Any:
    """The dask-jobqueue cluster of the profile, scheduler started, no job submitted yet."""
    from dask_jobqueue import PBSCluster, SLURMCluster

    cls = SLURMCluster if profile.engine == "slurm" else PBSCluster
    return cls(**jobqueue_cluster_kwargs(profile))


def check_job_script(profile: ClusterProfile, script: str) -> None:
    """Let SLURM judge the job script without submitting it (``sbatch --test-only``).

    Raises:
        ConfigError: sbatch rejects the script (the message quotes it).
    """
    if profile.engine != "slurm":
        return
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(script)
    try:
        done = subprocess.run(["sbatch", "--test-only", f.name], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cluster profile {profile.source}: cannot run sbatch ({exc}); run on a machine "
                          "that submits SLURM jobs (a login node)") from exc
    finally:
        os.unlink(f.name)
    if done.returncode != 0:
        msg = (done.stderr or done.stdout).strip().splitlines()
        raise ConfigError(f"cluster profile {profile.source}: SLURM rejects the worker job "
                          f"({msg[-1] if msg else 'exit ' + str(done.returncode)}); fix the profile "
                          "(skip_directives, mem_per_gpu, directives, queue)")


@contextlib.contextmanager
def start_engine(profile: ClusterProfile) -> Iterator[str]:
    """Start the scheduler here, submit the worker jobs, and yield the scheduler's address.

    The jobs are cancelled, and the scheduler closed, on exit.

    Raises:
        ConfigError: the batch system rejects the job script.
        ClusterError: fewer than ``min_workers`` joined within ``start_timeout_s``.
    """
    from distributed import Client

    cluster = make_jobqueue_cluster(profile)
    try:
        script = cluster.job_script()
        log.info("worker job script:\n%s", script)
        check_job_script(profile, script)
        cluster.scale(jobs=profile.workers)
        with Client(cluster) as client:
            _wait_for_workers(client, profile)
            log.info("dashboard: %s", client.dashboard_link)
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()


def _wait_for_workers(client: Any, profile: ClusterProfile) -> None:
    deadline = time.monotonic() + profile.start_timeout_s
    while True:
        n = len(client.scheduler_info(n_workers=-1).get("workers", {}))
        if n >= profile.min_workers:
            log.info("%d of %d worker jobs joined", n, profile.workers)
            return
        if time.monotonic() > deadline:
            raise ClusterError(
                f"cluster profile {profile.source}: {n} of {profile.min_workers} workers joined within "
                f"{profile.start_timeout_s:.0f} s; check the queue ({shlex.join(_queue_command(profile))}) and "
                "the jobs' output files (log_directory), or raise start_timeout_s"
            )
        time.sleep(1.0)


def _queue_command(profile: ClusterProfile) -> list[str]:
    return ["squeue", "--me"] if profile.engine == "slurm" else ["qstat", "-u", os.environ.get("USER", "$USER")]
