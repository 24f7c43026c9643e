"""Shared test helpers: the repo's paths, a throwaway copy of the workflow, and a snakemake runner."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

TINY_CONFIG = REPO / "tests" / "config" / "tiny.yaml"
TINY_CV_CONFIG = REPO / "tests" / "config" / "tiny_cv.yaml"  # merged over TINY_CONFIG: 3 folds, short variant list
WORKFLOW_PARTS = ("Snakefile", "rules", "scripts", "config", "envs", "report", "profiles", "ck+")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slurm: needs the local SLURM cluster (opt-in: FER_TEST_SLURM=1; root; see tests/test_slurm.py)"
    )


def copy_workflow(dest: Path) -> Path:
    """Copy the workflow (code and config, no results) into ``dest`` so a test run cannot touch the repo."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy2(src, dest / part)
    return dest


def snakemake(workdir: Path, *args, configfile: Path | str | None = TINY_CONFIG, timeout: float = 900,
              env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -m snakemake`` in ``workdir`` (output captured, text)."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2"]
    if configfile:  # one token: --configfile takes several values and would swallow the targets
        cmd += [f"--configfile={configfile}"]
    cmd += [str(a) for a in args]
    full_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    full_env.update(env or {})
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture
def workflow(tmp_path) -> Path:
    """A fresh copy of the workflow in a temporary folder."""
    return copy_workflow(tmp_path / "wf")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The whole tiny synthetic DAG, run once per test session; tests read its outputs (do not modify). Its
    benchmark jobs run beside the others (``--set-threads benchmark=1``; a real run reserves every core for
    each, tests/test_bench.py checks that): the suite needs their rows, not quiet-machine latencies."""
    wd = copy_workflow(tmp_path_factory.mktemp("tiny") / "wf")
    snakemake(wd, "--set-threads", "benchmark=1", check=True)
    return wd


@pytest.fixture(scope="session")
def tiny_cv_run(tmp_path_factory) -> Path:
    """The tiny DAG with 3-fold cross-validation (TINY_CONFIG + TINY_CV_CONFIG) up to results/cv/comparisons.csv,
    run once per session (tests/test_crossval.py; the local reference of the SLURM suite); do not modify."""
    wd = copy_workflow(tmp_path_factory.mktemp("cv") / "wf")
    snakemake(wd, "results/cv/comparisons.csv", "--configfile", TINY_CONFIG, TINY_CV_CONFIG, configfile=None,
              check=True)
    return wd
