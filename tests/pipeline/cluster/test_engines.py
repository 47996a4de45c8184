"""Cluster profiles and GPU workers on a batch system: job scripts, and a real SLURM on 127.0.0.1.

The SLURM tests start munged, slurmctld and slurmd (``tests/slurmcluster.py``) and run a
scene through dask-jobqueue's ``SLURMCluster`` from a ``--cluster`` profile; they skip,
naming the reason, where SLURM is not installed or cannot start.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from s2c_batch.pipeline.cli import main
from s2c_batch.pipeline.cluster.engines import jobqueue_cluster_kwargs, make_jobqueue_cluster, start_engine
from s2c_batch.pipeline.cluster.profile import load_profile, profile_from_dict
from s2c_batch.pipeline.errors import ConfigError

from slurmcluster import SlurmLocal, SlurmUnavailable, start_slurm
from testutils import SMALL, assert_equals_oracle, cva_oracle, make_pair, read_band, run_small

REPO = Path(__file__).resolve().parents[3]


def _script(**raw: object) -> str:
    cluster = make_jobqueue_cluster(profile_from_dict({"scheduler_host": "127.0.0.1", **raw}))
    try:
        return str(cluster.job_script())
    finally:
        cluster.close()


def test_slurm_script__one_gpu_worker_per_job_with_the_gpu_resource_and_its_threads() -> None:
    script = _script(engine="slurm", cores=8, threads=2, memory="60GiB", queue="gpu", account="p1")
    lines = script.splitlines()
    assert "#SBATCH --gres=gpu:1" in lines and "#SBATCH --cpus-per-task=8" in lines
    assert "#SBATCH -p gpu" in lines and "#SBATCH -A p1" in lines
    assert sum(line.startswith("#SBATCH --cpus-per-task") for line in lines) == 1
    worker = lines[-1]
    assert "--nthreads 2" in worker and "--resources GPU=1" in worker and "--memory-limit 60.00GiB" in worker
    assert any(line.startswith("#SBATCH --mem=") for line in lines)


def test_slurm_script__mem_per_gpu_replaces_mem() -> None:
    """SLURM rejects --mem with --mem-per-gpu: the profile's mem_per_gpu drops --mem, keeps the worker's limit."""
    lines = _script(engine="slurm", memory="60GiB", mem_per_gpu="60G").splitlines()
    assert "#SBATCH --mem-per-gpu=60G" in lines
    assert not any(line.startswith("#SBATCH --mem=") for line in lines)
    assert "--memory-limit 60.00GiB" in lines[-1]


def test_slurm_script__skip_directives_drop_what_the_site_rejects_but_never_ours() -> None:
    lines = _script(engine="slurm", skip_directives=["-t ", "--gres"], directives=["--constraint=a100"]).splitlines()
    assert not any(line.startswith("#SBATCH -t ") for line in lines)
    assert "#SBATCH --gres=gpu:1" in lines and "#SBATCH --constraint=a100" in lines


def test_pbs_script__gpu_cores_and_memory_in_one_select() -> None:
    lines = _script(engine="pbs", cores=8, threads=2, memory="60GiB", queue="gpuq").splitlines()
    assert "#PBS -l select=1:ncpus=8:ngpus=1:mem=60gb" in lines and "#PBS -q gpuq" in lines
    assert "--nthreads 2" in lines[-1] and "--resources GPU=1" in lines[-1]


def test_profile__environment_env_file_and_scratch_in_the_job() -> None:
    script = _script(engine="slurm", env={"AWS_PROFILE": "nightly"}, env_file="~/.s2c/aws.env",
                     scratch="/local/$SLURM_JOB_ID", prologue=["module load cuda/12.4"])
    assert 'export AWS_PROFILE="nightly"' in script and ". ~/.s2c/aws.env" in script
    assert 'export TMPDIR="/local/$SLURM_JOB_ID"' in script and "--local-directory /local/$SLURM_JOB_ID" in script
    assert script.index("module load cuda/12.4") < script.index("distributed.cli.dask_worker")


@pytest.mark.parametrize(("raw", "message"), [
    ({"engine": "kubernetes"}, "engine must be one of slurm, pbs"),
    ({"engine": "slurm", "gpus": 2}, "unknown key(s) 'gpus'"),
    ({"engine": "slurm", "env": {"AWS_SECRET_ACCESS_KEY": "x"}}, "may not hold secrets (AWS_SECRET_ACCESS_KEY)"),
    ({"engine": "pbs", "mem_per_gpu": "8G"}, "mem_per_gpu is SLURM's"),
    ({"engine": "slurm", "threads": 4, "cores": 2}, "threads (4) exceeds the job's cores (2)"),
    ({"engine": "slurm", "walltime": "8h"}, "walltime must be HH:MM:SS"),
    ({"workers": 2}, "'engine' is required"),
])
def test_profile__bad_values_are_config_errors_naming_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        profile_from_dict(raw, source="p.yaml")
    assert message in str(err.value) and "p.yaml" in str(err.value)


def test_profile__example_profiles_in_deploy_load() -> None:
    found = sorted(p for engine in ("slurm", "pbs") for p in (REPO / "deploy" / engine).glob("*.yaml"))
    profiles = [load_profile(p) for p in found]
    assert {p.engine for p in profiles} == {"slurm", "pbs"}
    for profile in profiles:
        jobqueue_cluster_kwargs(profile)  # builds without error


# --- a real single-node SLURM ------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmLocal]:
    """munged, slurmctld and slurmd on 127.0.0.1 (skips with the reason where they cannot run)."""
    root = Path(tempfile.mkdtemp(prefix="s2c-slurm-"))  # short: munged's socket path has a length limit
    try:
        cluster = start_slurm(root)
    except SlurmUnavailable as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(str(exc))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])
        try:
            yield cluster
        finally:
            cluster.stop()
            shutil.rmtree(root, ignore_errors=True)


def _profile_file(folder: Path, slurm: SlurmLocal, **extra: object) -> Path:
    raw = {"engine": "slurm", "workers": 1, "cores": 1, "threads": 1, "memory": "3GiB", "mem_per_gpu": "3G",
           "walltime": "00:20:00", "queue": "debug", "scheduler_host": "127.0.0.1", "start_timeout_s": 120,
           "log_directory": str(slurm.root / "jobs"), "scratch": str(folder / "scratch"),
           "env": {"S2C_TEST_FROM_PROFILE": "yes"}, **extra}
    path = folder / "slurm.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.cluster
def test_slurm__a_scene_runs_on_gpu_worker_jobs_and_equals_the_oracle(slurm: SlurmLocal, tmp_path: Path) -> None:
    """SLURMCluster from a profile: a GPU job with --mem-per-gpu, a worker with GPU=1, the right products."""
    scene = make_pair(tmp_path, 300, 260, seed=5, nodata=0)
    profile = load_profile(_profile_file(tmp_path, slurm))
    with start_engine(profile) as address:
        from distributed import Client

        with Client(address) as client:
            workers = client.scheduler_info(n_workers=-1)["workers"].values()
            assert [w["resources"] for w in workers] == [{"GPU": 1}]
            env = client.run(lambda: {k: __import__("os").environ.get(k) for k in
                                      ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES", "S2C_TEST_FROM_PROFILE", "TMPDIR")})
        (seen,) = env.values()
        assert seen["SLURM_JOB_ID"] and seen["CUDA_VISIBLE_DEVICES"] == "0" and seen["S2C_TEST_FROM_PROFILE"] == "yes"
        assert seen["TMPDIR"] == str(tmp_path / "scratch")
        run_small(scene, tmp_path / "out", address)
    oracle = cva_oracle(*scene)
    got = {name: read_band(tmp_path / "out" / f"{name}.tif") for name in ("change_prob", "change_mask")}
    assert_equals_oracle(got, oracle)
    assert list((slurm.root / "jobs").glob("*.err")), "the worker job left no output file"


@pytest.mark.cluster
def test_slurm__cli_cluster_profile_runs_the_model_on_the_gpu_resource(slurm: SlurmLocal, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`s2c-batch run --cluster`: the model plugin loads on the job's worker, tile tasks take its GPU resource."""
    scene = make_pair(tmp_path, 300, 260, seed=3)
    profile = _profile_file(tmp_path, slurm, memory="6GiB", mem_per_gpu="6G")
    with pytest.raises(SystemExit) as done:
        main(["run", *map(str, scene), "--out", str(tmp_path / "out"), "--config", "tiny", "--cluster", str(profile),
              "--no-progress"])
    assert done.value.code == 0, capsys.readouterr().err
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["status"] == "complete" and record["path"] == "tiled"
    assert {"class_t1.tif", "class_t2.tif", "change_prob.tif"} <= {p.name for p in (tmp_path / "out").iterdir()}


@pytest.mark.cluster
def test_slurm__a_job_slurm_rejects_is_a_config_error_before_anything_waits(slurm: SlurmLocal, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """--mem (from memory) together with --mem-per-gpu: sbatch refuses; exit 2 naming the profile and the fix."""
    scene = make_pair(tmp_path, 64, 64, seed=1)
    profile = _profile_file(tmp_path, slurm, mem_per_gpu=None, directives=["--mem-per-gpu=1G"])
    with pytest.raises(SystemExit) as done:
        main(["run", *map(str, scene), "--out", str(tmp_path / "out"), "--config", "cva", *(
            a for s in SMALL for a in ("--set", s)), "--cluster", str(profile), "--no-progress"])
    err = capsys.readouterr().err
    assert done.value.code == 2, err
    assert "mutually exclusive" in err and str(profile) in err and "mem_per_gpu" in err
    assert not (tmp_path / "out").exists()
