"""A real single-node SLURM on 127.0.0.1 for the tests: munged, slurmctld and slurmd, all in one folder.

Debian's ``slurm-wlm`` and ``munge`` (the README's setup installs them as root). Everything the
daemons write (key, sockets, state, spool, logs, pid files) lives in the folder the test gives;
the ports are free ones of 127.0.0.1; the node has this machine's cores, half its memory, and
one GPU ``gres`` backed by ``/dev/null`` (a count, not a device: jobs that ask for
``--gres=gpu:1`` are scheduled and get ``CUDA_VISIBLE_DEVICES=0``, and torch sees no CUDA).
``SLURM_CONF`` in :attr:`SlurmLocal.env` points ``sbatch``, ``squeue`` and ``scancel`` at it.

:func:`start_slurm` raises :class:`SlurmUnavailable` with the reason when the binaries are
missing, this is not root, or the daemons do not come up; the tests skip with it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "sinfo", "scontrol")


class SlurmUnavailable(RuntimeError):
    """SLURM cannot run here; the message says why (the tests' skip reason)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SlurmLocal:
    """A running single-node SLURM; :meth:`stop` ends its daemons."""

    root: Path
    node: str
    env: dict[str, str] = field(default_factory=dict)
    pid_files: tuple[Path, ...] = ()

    def stop(self) -> None:
        """Cancel every job, then stop slurmd, slurmctld and munged (by their pid files)."""
        subprocess.run(["scancel", "--user", "root"], env=self.env, capture_output=True, timeout=30, check=False)
        for pid_file in self.pid_files:
            try:
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)
            except (OSError, ValueError, IndexError):
                pass
        time.sleep(0.5)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the daemons' logs (for failure messages)."""
        out = []
        for name in ("munged.log", "slurmctld.log", "slurmd.log"):
            path = self.root / name
            if path.exists():
                out.append(f"--- {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(out)


def start_slurm(root: Path, *, timeout: float = 60.0) -> SlurmLocal:
    """Start munged, slurmctld and slurmd under ``root`` and wait until the node is idle.

    Raises:
        SlurmUnavailable: why SLURM cannot run here (missing packages, not root, a daemon
            that does not start: its log is quoted).
    """
    missing = [d for d in DAEMONS if shutil.which(d) is None and not Path(f"/usr/sbin/{d}").exists()]
    if missing:
        raise SlurmUnavailable(f"SLURM/munge not installed (no {', '.join(missing)}): "
                               "apt-get install slurm-wlm munge (the README's setup does, as root)")
    if os.geteuid() != 0:
        raise SlurmUnavailable("the single-node SLURM of the tests runs its daemons as root")
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o711)  # munged wants its socket's folder searchable, not writable, by others
    node = socket.gethostname().split(".")[0]
    for sub in ("state", "spool", "jobs"):
        (root / sub).mkdir(exist_ok=True)
    key, sock = root / "munge.key", root / "munge.sock"
    env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
    mem_mb = _mem_total_mb() // 2
    (root / "slurm.conf").write_text(f"""\
ClusterName=s2ctest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={sock}
CredType=cred/munge
StateSaveLocation={root / 'state'}
SlurmdSpoolDir={root / 'spool'}
SlurmctldPidFile={root / 'slurmctld.pid'}
SlurmdPidFile={root / 'slurmd.pid'}
SlurmctldLogFile={root / 'slurmctld.log'}
SlurmdLogFile={root / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
SlurmdTimeout=300
GresTypes=gpu
NodeName={node} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} RealMemory={mem_mb} Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
""")
    (root / "gres.conf").write_text(f"NodeName={node} Name=gpu File=/dev/null\n")
    cluster = SlurmLocal(root, node, env, tuple(root / f for f in ("slurmd.pid", "slurmctld.pid", "munged.pid")))
    try:
        _run(["mungekey", "--create", f"--keyfile={key}", "--force"], env)
        _run(["munged", "--force", f"--socket={sock}", f"--key-file={key}", f"--log-file={root / 'munged.log'}",
              f"--pid-file={root / 'munged.pid'}", f"--seed-file={root / 'munged.seed'}"], env)
        conf = str(root / "slurm.conf")
        _run(["slurmctld", "-f", conf], env)
        _run(["slurmd", "-f", conf], env)
        deadline = time.monotonic() + timeout
        while True:
            state = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True,
                                   timeout=30).stdout.strip()
            if state.startswith(("idle", "mixed")):
                return cluster
            if "drain" in state or "inval" in state:
                subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], env=env,
                               capture_output=True, timeout=30, check=False)
            if time.monotonic() > deadline:
                raise SlurmUnavailable(f"the SLURM node did not become idle within {timeout:.0f} s "
                                       f"(state {state!r}):\n{cluster.log_tail()}")
            time.sleep(0.5)
    except SlurmUnavailable:
        cluster.stop()
        raise
    except (OSError, subprocess.SubprocessError) as exc:
        cluster.stop()
        raise SlurmUnavailable(f"SLURM did not start ({exc}):\n{cluster.log_tail()}") from exc


def _run(cmd: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise SlurmUnavailable(f"{cmd[0]} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()}")


def _mem_total_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 4096
