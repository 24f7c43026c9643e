"""Scale-out: the Snakemake profiles, and workflows run through SLURM with profiles/slurm.

The profile checks (dry runs) always run. The cluster tests are opt-in (root only; the first run installs
Debian packages): FER_TEST_SLURM=1 pytest -m slurm tests/test_slurm.py
Their session fixture brings a single-node cluster on localhost up with tools/slurm-local.sh
and takes it down again afterwards, unless it was already up before the session.

Cluster tests: a two-rule smoke workflow (tests/slurm_smoke/), and a subset of the real pipeline's tiny
synthetic DAG with 3 folds (data -> fold splits -> teachers -> KD students, evaluation) whose results must equal
a local run's; it prints both wall times and the scheduling overhead per job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_SCRIPT = ROOT / "tools" / "slurm-local.sh"
SLURM_PROFILE = ROOT / "profiles" / "slurm"
SMOKE_SNAKEFILE = ROOT / "tests" / "slurm_smoke" / "Snakefile"
STATE_DIR = Path(os.environ.get("FER_SLURM_STATE", "/tmp/fer-slurm"))
SLURM_CONF = STATE_DIR / "etc" / "slurm.conf"
# The jobs run `python` from PATH (the submitting environment is exported to them).
VENV_BIN = ROOT / ".venv" / "bin"
if not (VENV_BIN / "snakemake").exists():
    VENV_BIN = Path(sys.executable).parent

# Flags for the local cluster only; everything else comes from profiles/slurm.
# --slurm-no-account: there are no accounts here (plugin 2.8.0 defines the flag but does not read it yet;
# its account guess then fails harmlessly and it submits without -A).
# The status flags make a two-job workflow take ~30 s instead of ~2 min: the first status check comes
# 2 s after submission (the plugin then backs off by 10 s per round while a job is still running).
# --max-threads: the only node has this machine's cores; a job asking for more is accepted by sbatch
# but stays PENDING for ever.
LOCAL_CLUSTER_ARGS = [
    "--slurm-no-account",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--seconds-between-status-checks",
    "1",
    "--max-threads",
    str(os.cpu_count() or 1),
]

# Tests that need the local cluster carry @pytest.mark.slurm and this skip.
opt_in = pytest.mark.skipif(
    os.environ.get("FER_TEST_SLURM") != "1", reason="SLURM tests are opt-in: set FER_TEST_SLURM=1"
)

_SUBMITTED = re.compile(
    r"Job (?P<job>\d+) has been submitted with SLURM jobid (?P<slurm>[0-9_]+) "
    r"\(log: .*?/(?:rule|group)_(?P<rule>[^/]+)/"
)
_RUN_ID = re.compile(r"SLURM run ID: (\S+)")


@dataclasses.dataclass
class SlurmRun:
    """Outcome of one snakemake run on the SLURM executor."""

    command: list[str]
    returncode: int
    log: str
    run_id: str | None
    job_ids: dict[str, list[str]]  # rule name -> SLURM job ids, in submission order

    @property
    def all_job_ids(self) -> list[str]:
        return [job_id for ids in self.job_ids.values() for job_id in ids]


def slurm_env(cluster: bool = True) -> dict[str, str]:
    """Environment for snakemake and SLURM commands: the venv first on PATH, and the local cluster."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    if cluster:
        env["SLURM_CONF"] = str(SLURM_CONF)
    return env


def run_snakemake_on_slurm(
    snakefile: Path,
    workdir: Path,
    configfile: Path | None = None,
    targets: list[str] | tuple[str, ...] = (),
    extra_args: list[str] | tuple[str, ...] = (),
    timeout: int = 600,
    cwd: Path | None = None,
) -> SlurmRun:
    """Run `snakemake --profile profiles/slurm` with outputs in workdir; return the SLURM job ids per rule.

    The process runs in cwd (default: workdir). Snakemake ignores SIGTERM while it waits for jobs it
    has lost track of, so the call is wrapped in `timeout -k` (SIGKILL 10 s after the limit).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    command = [
        "timeout", "-k", "10", str(timeout),
        str(VENV_BIN / "snakemake"),
        *targets,  # before any option that takes several values (--configfile, --config) would swallow them
        "--snakefile", str(snakefile),
        "--directory", str(workdir),
        "--profile", str(SLURM_PROFILE),
        "--workflow-profile", "none",
        *LOCAL_CLUSTER_ARGS,
        "--nocolor",
    ]  # fmt: skip
    if configfile is not None:
        command += ["--configfile", str(configfile)]
    command += [*extra_args]
    proc = subprocess.run(
        command, cwd=cwd or workdir, env=slurm_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    job_ids: dict[str, list[str]] = {}
    for match in _SUBMITTED.finditer(proc.stdout):
        job_ids.setdefault(match["rule"], []).append(match["slurm"])
    run_id = _RUN_ID.search(proc.stdout)
    return SlurmRun(command, proc.returncode, proc.stdout, run_id[1] if run_id else None, job_ids)


def sacct_jobs(job_ids: list[str]) -> dict[str, dict[str, str]]:
    """Accounting records of the given jobs: job id -> {name, state, timelimit}."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(job_ids), "-o", "JobIDRaw,JobName,State,Timelimit"],
        env=slurm_env(), check=True, stdout=subprocess.PIPE, text=True, timeout=30,
    ).stdout  # fmt: skip
    records = {}
    for line in out.splitlines():
        job_id, name, state, timelimit = line.split("|")
        records[job_id] = {"name": name, "state": state, "timelimit": timelimit}
    return records


def _cluster(command: str, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(CLUSTER_SCRIPT), command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node cluster; brought down at the end if this session started it."""
    if os.geteuid() != 0:
        pytest.fail("the SLURM tests start cluster daemons and need root")
    was_up = _cluster("status", 30).returncode == 0
    up = _cluster("up", 900)  # from scratch this includes apt-get install
    assert up.returncode == 0, f"slurm-local.sh up failed:\n{up.stdout}"
    yield SLURM_CONF
    if not was_up:
        down = _cluster("down", 120)
        assert down.returncode == 0, f"slurm-local.sh down failed:\n{down.stdout}"


def _dry_run(tmp_path: Path, *profile_args: str) -> subprocess.CompletedProcess:
    # Not pointed at the local cluster: the SLURM plugin runs `scontrol show config` whenever snakemake
    # starts, and that takes ~9 s when slurm.conf names a controller that is down.
    command = [str(VENV_BIN / "snakemake"), "--snakefile", str(SMOKE_SNAKEFILE), "--directory", str(tmp_path)]
    command += [*profile_args, "--dry-run", "--nocolor"]
    return subprocess.run(
        command, cwd=tmp_path, env=slurm_env(cluster=False), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=120,
    )  # fmt: skip


def _rule_resources(log: str) -> dict[str, str]:
    return dict(re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", log, re.M))


def test_slurm_profile_parses_and_sets_rule_resources(tmp_path):
    # Snakemake rejects unknown keys in a profile ("unrecognized arguments"), so this checks every key
    # against the installed snakemake and SLURM plugin.
    proc = _dry_run(tmp_path, "--profile", str(SLURM_PROFILE), "--workflow-profile", "none")
    assert proc.returncode == 0, proc.stdout[-4000:]
    resources = _rule_resources(proc.stdout)
    assert "runtime=360" in resources["train_teacher"]  # set-resources overrides the rule's runtime=5
    assert "mem_mb=200," in resources["train_teacher"]  # the rule's own mem_mb is kept
    assert "slurm_extra=--exclusive" in resources["benchmark"]
    assert "mem_mb=2000," in resources["all"] and "runtime=30" in resources["all"]  # default-resources


def test_default_profile_parses(tmp_path):
    # profiles/default is what a plain `snakemake` in the repository root picks up as workflow profile.
    proc = _dry_run(tmp_path, "--workflow-profile", str(ROOT / "profiles" / "default"))
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "workflow specific profile" in proc.stdout


def _daemon_pids(status: str) -> list[tuple[str, str]]:
    return re.findall(r"^(\S+)\s+running \(pid (\d+)\)", status, re.M)


@pytest.mark.slurm
@opt_in
def test_cluster_up_is_idempotent(slurm_cluster):
    before = _cluster("status", 30)
    again = _cluster("up", 120)
    after = _cluster("status", 30)
    assert again.returncode == 0, again.stdout
    assert before.returncode == after.returncode == 0, after.stdout
    assert len(_daemon_pids(before.stdout)) == 5
    assert _daemon_pids(after.stdout) == _daemon_pids(before.stdout), "`up` must not restart running daemons"
    assert re.search(r"\bidle\b", after.stdout)


@pytest.mark.slurm
@opt_in
def test_smoke_workflow_runs_through_slurm(slurm_cluster, tmp_path):
    run = run_snakemake_on_slurm(SMOKE_SNAKEFILE, tmp_path / "work", timeout=300)
    assert run.returncode == 0, f"snakemake failed ({run.returncode}):\n{run.log[-6000:]}"

    # Both jobs were submitted with sbatch; the local target rule `all` was not.
    assert set(run.job_ids) == {"train_teacher", "benchmark"}, run.log[-6000:]
    (teacher_id,) = run.job_ids["train_teacher"]
    (bench_id,) = run.job_ids["benchmark"]

    # SLURM's accounting saw them, under the run's job name, with the wall time from the profile.
    records = sacct_jobs(run.all_job_ids)
    assert set(records) == {teacher_id, bench_id}
    assert {r["state"] for r in records.values()} == {"COMPLETED"}
    assert {r["name"] for r in records.values()} == {run.run_id}
    assert records[teacher_id]["timelimit"] == "06:00:00"  # set-resources: train_teacher: runtime: 360
    assert records[bench_id]["timelimit"] == "01:00:00"  # set-resources: benchmark: runtime: 60

    # Each job recorded the SLURM job id it ran under and ran the project's venv Python: the shell rule
    # found it on PATH, the script rule got Snakemake's own interpreter.
    prefix = os.path.realpath(VENV_BIN.parent)
    results = tmp_path / "work" / "results"
    teacher = (results / "teacher.txt").read_text().split()
    assert teacher[:2] == ["train_teacher", teacher_id] and os.path.realpath(teacher[2]) == prefix
    lines = (results / "benchmark.txt").read_text().splitlines()
    assert len(lines) == 2 and lines[0].split() == teacher
    bench = lines[1].split()
    assert bench[:2] == ["benchmark", bench_id] and os.path.realpath(bench[2]) == prefix


# ------------------------------------------------------------------------------- the real pipeline on SLURM
# A subset of the tiny synthetic DAG with 3 cross-validation folds, each rule its own SLURM job:
# split_fold (x2) -> train_teacher (x2) -> (train_student_kd, which reads the teacher's weights written by another
# job | evaluate) (x2). The folds' jobs run side by side as far as the cluster allows. The faces and the prepared
# data set (synthesize_faces, prepare_data: the same script rules as split_fold, one job each) are copied from the
# local run with their times, so Snakemake sees them up to date: every level of the chain through sbatch costs
# until the executor's first status check after its jobs ended (checks come 2, 14, 36 s after submission), and
# the whole DAG has 60+ jobs, far too many for that overhead in a test.
# Wall time asked of SLURM: profiles/slurm set-resources for the training rules, else the rule's own runtime.
REAL_TIMELIMITS = {
    "split_fold": "00:05:00",
    "train_teacher": "06:00:00",
    "train_student_kd": "04:00:00",
    "evaluate": "00:10:00",
}
# Fields that measure the machine (speed, clock, host), never compared between runs.
_MACHINE_DEPENDENT = re.compile(r"latency|seconds|_ms$|time|throughput|per_s|host|recorded|created", re.I)


def _without_machine_dependent(obj):
    if isinstance(obj, dict):
        return {k: _without_machine_dependent(v) for k, v in obj.items() if not _MACHINE_DEPENDENT.search(k)}
    if isinstance(obj, list):
        return [_without_machine_dependent(v) for v in obj]
    return obj


def _tensors_sha256(obj) -> str:
    """Hash of the tensors (name, dtype, shape, values) and plain values in a (nested) dict from torch.load."""
    import torch

    digest = hashlib.sha256()

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key in sorted(value, key=str):
                walk(f"{prefix}/{key}", value[key])
        elif isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            digest.update(f"{prefix}|{t.dtype}|{tuple(t.shape)}|".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            digest.update(f"{prefix}|{value!r}|".encode())

    walk("", obj)
    return digest.hexdigest()


def _load(path: Path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def _history(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as fh:
        return [_without_machine_dependent(row) for row in csv.DictReader(fh)]


# Two of the three folds (each training rule, the evaluation, folds side by side), not all: every job through
# sbatch costs seconds of scheduling, and the suite must stay short.
FOLD_TARGETS = ("results/folds/0/metrics/teacher.json", "results/folds/1/metrics/teacher.json",
                "results/folds/1/weights/kd.pt")
FOLD_JOBS = {"split_fold": 2, "train_teacher": 2, "train_student_kd": 1, "evaluate": 2}
UPSTREAM = ("results/synthetic", "results/data")  # copied from the local run (see above)


@pytest.mark.slurm
@opt_in
def test_folds_through_slurm_match_a_local_run_and_report_the_overhead(slurm_cluster, tiny_cv_run, tmp_path):
    """Cross-validation on the cluster: every fold's jobs (split, training, evaluation; the shared data set
    comes from the local run) go through sbatch (the folds in parallel as far as the cluster allows) and give the
    local run's fold data, weights and metrics. The local run is the session's
    ``tiny_cv_run`` (the same configs, a superset of these targets), so the suite runs the folds locally once.
    With FER_SLURM_SEQUENTIAL=1 (figures, not a default test) a local run of exactly these targets runs first
    and the test prints both wall times, the speed-up and the scheduling overhead per job (one node with this
    machine's cores: the same parallelism as the local run, so the difference is what SLURM costs)."""
    import yaml

    from conftest import TINY_CONFIG, TINY_CV_CONFIG, copy_workflow, snakemake
    from fer import config as fer_config

    cfg = fer_config.merge(yaml.safe_load(TINY_CONFIG.read_text()), yaml.safe_load(TINY_CV_CONFIG.read_text()))
    config = tmp_path / "tiny_cv_merged.yaml"
    config.write_text(yaml.safe_dump(cfg))
    on_slurm = copy_workflow(tmp_path / "slurm")
    for folder in UPSTREAM:  # copy2 keeps the files' times: Snakemake sees these outputs up to date
        shutil.copytree(tiny_cv_run / folder, on_slurm / folder)
    sequential = os.environ.get("FER_SLURM_SEQUENTIAL") == "1"
    local, local_s = tiny_cv_run, None
    if sequential:
        local = copy_workflow(tmp_path / "local")
        for folder in UPSTREAM:
            shutil.copytree(tiny_cv_run / folder, local / folder)
        t = time.monotonic()
        local_proc = snakemake(local, *FOLD_TARGETS, "--configfile", config, configfile=None, timeout=600)
        local_s = time.monotonic() - t
        assert local_proc.returncode == 0, local_proc.stderr[-6000:]
    t0 = time.monotonic()
    run = run_snakemake_on_slurm(on_slurm / "Snakefile", on_slurm, configfile=config, targets=FOLD_TARGETS,
                                 timeout=900)
    slurm_s = time.monotonic() - t0
    assert run.returncode == 0, run.log[-6000:]
    assert {rule: len(ids) for rule, ids in run.job_ids.items()} == FOLD_JOBS, run.log[-6000:]
    n_jobs = sum(FOLD_JOBS.values())
    if local_s is not None:
        print(f"\n2 of 3 folds (teachers, a KD student, evaluation; tiny config), {n_jobs} jobs on {os.cpu_count()} cores, "
              f"one after the other: local {local_s:.0f} s, SLURM {slurm_s:.0f} s, speed-up {local_s / slurm_s:.2f}x, "
              f"overhead {(slurm_s - local_s) / n_jobs:+.1f} s per job")
    else:
        print(f"\n2 of 3 folds, {n_jobs} jobs through SLURM: {slurm_s:.0f} s (FER_SLURM_SEQUENTIAL=1 for the comparison)")
    # Every job went through sbatch (nothing ran as a local rule), and SLURM's accounting saw each one complete
    # under the run's name, with the wall time the profile (or the rule) asks for.
    assert not re.search(r"^localrule ", run.log, re.M), run.log[-6000:]
    records = sacct_jobs(run.all_job_ids)
    assert set(records) == set(run.all_job_ids)
    assert {job_id: r["state"] for job_id, r in records.items()} == dict.fromkeys(run.all_job_ids, "COMPLETED")
    assert {r["name"] for r in records.values()} == {run.run_id}
    for rule, ids in run.job_ids.items():
        assert {records[job_id]["timelimit"] for job_id in ids} == {REAL_TIMELIMITS[rule]}, rule
    # The same results as the local run: the folds' data sets, weights (state_dict tensors: torch.save need not
    # be byte-stable), training histories and metrics.
    for f in (0, 1):
        fold_data = f"results/folds/{f}/data/dataset.pt"
        assert _tensors_sha256(_load(on_slurm / fold_data)) == _tensors_sha256(_load(local / fold_data)), f
        for variant in ("teacher", "kd") if f == 1 else ("teacher",):
            history = f"results/folds/{f}/training/{variant}.csv"
            assert _history(on_slurm / history) == _history(local / history), (f, variant)
        if f == 1:
            a = _load(on_slurm / f"results/folds/{f}/weights/kd.pt")
            b = _load(local / f"results/folds/{f}/weights/kd.pt")
            assert _tensors_sha256(a["state_dict"]) == _tensors_sha256(b["state_dict"]), f"fold {f}: weights differ"
        ma = json.loads((on_slurm / f"results/folds/{f}/metrics/teacher.json").read_text())
        mb = json.loads((local / f"results/folds/{f}/metrics/teacher.json").read_text())
        assert ma["fold"] == mb["fold"] == f and ma["accuracy"] == mb["accuracy"]
        assert _without_machine_dependent(ma) == _without_machine_dependent(mb), f
