"""A site's cluster profile (``--cluster PROFILE.yaml``): how GPU workers are started on a batch system.

A profile says *where the workers come from*, not what a run computes, so it is a file of
its own rather than a section of the run config: the same ``configs/default.yaml`` runs on
a laptop, on SLURM at one site and on PBS at another; the profile holds the site's
partition, account, GPU directive and scratch path, and none of it enters a run's
fingerprint or ``run.json``. Kubernetes has no profile: the Dask operator deploys the
cluster from manifests (``deploy/kubernetes/``) and runs reach it with ``--scheduler``.

Every worker is one batch job holding one GPU: ``gpus_per_job`` is fixed at one, the
worker advertises ``resources={"GPU": 1}`` (the tile tasks ask for it) and runs
``threads`` threads (one for the GPU task, one reading and writing blocks).

Example (``deploy/slurm/gpu.yaml``)::

    engine: slurm
    workers: 8
    queue: gpu
    cores: 8
    memory: 60GiB
    mem_per_gpu: 60G
    walltime: "08:00:00"
    scratch: $TMPDIR
    prologue: [module load cuda/12.4, source /opt/s2c/bin/activate]
    env: {AWS_PROFILE: nightly}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from s2c_batch.pipeline.errors import ConfigError

#: Engines a profile may name.
ENGINES = ("slurm", "pbs")

#: Names of environment variables a profile may not set: secrets belong in each job's own
#: environment (an ``env_file`` readable only by its owner, the site's secret store), never
#: in a profile that is shared, logged and printed in job scripts.
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE|CREDENTIAL_?KEY|ACCESS_KEY_ID", re.IGNORECASE)


@dataclass(frozen=True)
class ClusterProfile:
    """Where GPU workers come from on a batch system (one job = one worker = one GPU).

    Attributes:
        engine: ``slurm`` or ``pbs`` (both through dask-jobqueue).
        workers: worker jobs to start (= GPUs).
        min_workers: workers that must have joined before the run starts (the rest join as
            the queue lets them).
        start_timeout_s: seconds to wait for ``min_workers`` (queue wait included).
        queue: the partition (SLURM) or queue (PBS).
        account: the account / project charged, if the site wants one.
        walltime: each job's time limit (``HH:MM:SS``); a night's batch outlives none of them
            without ``--resume``: size it with ``s2c-batch plan --calibrate``.
        cores: CPU cores per job (the worker's threads, GDAL's reads and COG compression).
        threads: the worker's task threads (2: the GPU task and a reader/writer).
        memory: the worker's memory limit for Dask (``60GiB``); on SLURM also ``--mem``
            unless ``mem_per_gpu`` is given.
        mem_per_gpu: SLURM ``--mem-per-gpu`` instead of ``--mem`` (sites that require it reject
            both at once: ``--mem, --mem-per-cpu, and --mem-per-gpu are mutually exclusive``).
        gpu_directive: how a job asks for its GPU; ``None`` = ``--gres=gpu:1`` (SLURM) or
            ``ngpus=1`` in the ``select`` statement (PBS).
        scratch: the worker's local directory (spill, COG temporaries; ``TMPDIR`` is set to
            it), e.g. ``$TMPDIR`` or ``/local/$SLURM_JOB_ID``; expanded by the job's shell.
        python: the workers' Python (``None`` = this one, for a shared installation).
        prologue: shell lines run before the worker (``module load``, activating a venv).
        env: environment variables exported in each job (no secrets: they are refused).
        env_file: a file of ``KEY=VALUE`` lines sourced by each job: where credentials go.
        directives: extra scheduler directives (``--constraint=a100``, ``-l place=excl``).
        skip_directives: directives dask-jobqueue writes that the site rejects
            (``job_directives_skip``: every line containing one of these is dropped).
        scheduler_host: the address workers reach this machine's scheduler at (a login
            node's interface); ``None`` = dask-jobqueue's choice.
        interface: the network interface of the scheduler and workers (``ib0``).
        log_directory: where the jobs' output files go (``None`` = the batch system's default,
            the folder the command runs in).
    """

    engine: str
    workers: int = 1
    min_workers: int = 1
    start_timeout_s: float = 3600.0
    queue: str | None = None
    account: str | None = None
    walltime: str = "08:00:00"
    cores: int = 4
    threads: int = 2
    memory: str = "32GiB"
    mem_per_gpu: str | None = None
    gpu_directive: str | None = None
    scratch: str | None = None
    python: str | None = None
    prologue: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    env_file: str | None = None
    directives: tuple[str, ...] = ()
    skip_directives: tuple[str, ...] = ()
    scheduler_host: str | None = None
    interface: str | None = None
    log_directory: str | None = None
    source: str = "<profile>"

    def __post_init__(self) -> None:
        where = f"cluster profile {self.source}"
        if self.engine not in ENGINES:
            raise ConfigError(f"{where}: engine must be one of {', '.join(ENGINES)}, got {self.engine!r} "
                              "(Kubernetes: deploy deploy/kubernetes/ and pass --scheduler)")
        for name in ("workers", "min_workers", "cores", "threads"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{where}: {name} must be >= 1, got {getattr(self, name)!r}")
        if self.min_workers > self.workers:
            raise ConfigError(f"{where}: min_workers ({self.min_workers}) exceeds workers ({self.workers})")
        if self.threads > self.cores:
            raise ConfigError(f"{where}: threads ({self.threads}) exceeds the job's cores ({self.cores})")
        if not re.fullmatch(r"\d+(:\d\d){0,2}", self.walltime):
            raise ConfigError(f"{where}: walltime must be HH:MM:SS, got {self.walltime!r}")
        if self.mem_per_gpu is not None and self.engine != "slurm":
            raise ConfigError(f"{where}: mem_per_gpu is SLURM's --mem-per-gpu; on {self.engine} memory "
                              "goes into the select statement: remove it")
        bad = sorted(k for k in self.env if SECRET_NAME.search(k))
        if bad:
            raise ConfigError(f"{where}: env may not hold secrets ({', '.join(bad)}): job scripts and logs show "
                              "it; put them in a file only you can read and name it as env_file")
        for k in self.env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k):
                raise ConfigError(f"{where}: env name {k!r} is not a shell variable name")

    @property
    def job_prologue(self) -> list[str]:
        """The shell lines each job runs before its worker: prologue, env file, variables, scratch."""
        lines = list(self.prologue)
        if self.env_file:
            lines += ["set -a", f". {self.env_file}", "set +a"]
        lines += [f"export {k}={_quote(v)}" for k, v in sorted(self.env.items())]
        if self.scratch:
            lines += [f'mkdir -p "{self.scratch}"', f'export TMPDIR="{self.scratch}"']
        return lines


def _quote(value: str) -> str:
    """A double-quoted shell word that still expands ``$VARS`` of the job's environment."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`") + '"'


def load_profile(path: str | Path) -> ClusterProfile:
    """Read a profile YAML file.

    Raises:
        ConfigError: the file is missing or unreadable, a key is unknown (the valid ones
            are listed) or a value is out of range.
    """
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read cluster profile {str(p)!r} ({exc.strerror or exc}); "
                          "give the path of a profile YAML (examples in deploy/)") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"cluster profile {str(p)!r} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"cluster profile {str(p)!r} must be a mapping of keys (engine, workers, ...)")
    return profile_from_dict(raw, source=str(p))


def profile_from_dict(raw: dict[str, Any], *, source: str = "<profile>") -> ClusterProfile:
    """A profile from plain data (a parsed YAML mapping).

    Raises:
        ConfigError: unknown keys or bad values.
    """
    valid = [f.name for f in fields(ClusterProfile) if f.name != "source"]
    unknown = sorted(set(raw) - set(valid))
    if unknown:
        raise ConfigError(f"cluster profile {source}: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"valid keys: {', '.join(valid)}")
    if "engine" not in raw:
        raise ConfigError(f"cluster profile {source}: 'engine' is required ({' or '.join(ENGINES)})")
    values = dict(raw)
    for key in ("prologue", "directives", "skip_directives"):
        if key in values:
            v = values[key]
            values[key] = (v,) if isinstance(v, str) else tuple(str(x) for x in (v or ()))
    if "env" in values:
        if not isinstance(values["env"], dict):
            raise ConfigError(f"cluster profile {source}: env must be a mapping NAME: value")
        values["env"] = {str(k): str(v) for k, v in values["env"].items()}
    for key in ("memory", "mem_per_gpu", "walltime", "queue", "account"):
        if values.get(key) is not None:
            values[key] = str(values[key])
    try:
        return ClusterProfile(**values, source=source)
    except TypeError as exc:  # pragma: no cover - keys are checked above
        raise ConfigError(f"cluster profile {source}: {exc}") from exc
