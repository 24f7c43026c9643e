"""An interrupted run: Ctrl-C and then SIGKILL in the middle of a training job, then the README's command again.

The rerun must finish, resume training from the per-epoch checkpoint (results/checkpoints/<variant>.pt), leave
no half-written file behind (every file loads, no *.part left over) and give the same weights and training
history as a run that was never interrupted.

Two interruptions of the same training job: first a hard kill of Snakemake alone (SIGKILL; its training job
must notice that Snakemake is gone and stop after saving its epoch, instead of running on as an orphan beside
the rerun; snakemake's lock stays behind and `snakemake --unlock` releases it, as its own message says), then
Ctrl-C (SIGINT to snakemake and its jobs) followed by SIGKILL for anything still running. The job's log keeps
the lines of every run, each rerun after a marker line.

The config is tests/config/tiny.yaml with a longer teacher (tiny model, many epochs), so that the kills land
in the middle of training; only the teacher's outputs are built, to keep the test short.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import TINY_CONFIG, copy_workflow
from fer import config as fer_config
from fer import logs
from fer.report import provenance
from fer import settings
from fer.stages.train import train_teacher

EPOCHS = 16
KILL_AFTER_EPOCH = 3
TARGET = "weights/teacher.pt"
TIMING_COLUMNS = ("seconds", "images_per_s")  # wall-clock figures: machine-dependent, never compared


def _config(path: Path) -> Path:
    cfg = yaml.safe_load(TINY_CONFIG.read_text())
    cfg["train"]["teacher"]["epochs"] = EPOCHS
    path.write_text(yaml.safe_dump(cfg))
    return path


def _readme_command(configfile: Path) -> list[str]:
    """The README's command (`snakemake --cores all --configfile ...`) with the teacher as the only target.
    No --rerun-incomplete: profiles/default (the workflow profile) sets it."""
    return [sys.executable, "-m", "snakemake", TARGET, "--cores", "all", "--configfile", str(configfile)]


def _env() -> dict:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def _history(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in csv.DictReader(fh)]


def _assert_everything_loads(wd: Path) -> None:
    """No half-written file: every file the workflow wrote opens as what its name says."""
    from PIL import Image

    for root in (wd / "results", wd / "weights"):
        for p in root.rglob("*"):
            if not p.is_file() or p.name.startswith(".") or "synthetic" in p.parts or "logs" in p.parts:
                continue
            if p.suffix == ".pt":
                torch.load(p, map_location="cpu", weights_only=True)
            elif p.suffix == ".json":
                json.loads(p.read_text())
            elif p.suffix == ".csv":
                with open(p, newline="") as fh:
                    rows = list(csv.reader(fh))
                assert rows and all(len(r) == len(rows[0]) for r in rows), p
            elif p.suffix == ".png":
                with Image.open(p) as im:
                    im.load()


def _terminal_signals() -> None:
    """In the child: SIGINT as in a terminal's foreground job. A test run started in the background by a
    non-interactive shell (`cmd &`, as some CI runners do) inherits SIGINT ignored, and Python then never
    raises KeyboardInterrupt, so Ctrl-C would not reach snakemake or its jobs."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(cmd, wd: Path, out: Path) -> subprocess.Popen:
    """Start ``cmd`` in its own process group (a terminal's foreground job: snakemake and its jobs)."""
    return subprocess.Popen(cmd, cwd=wd, stdout=open(out, "w"), stderr=subprocess.STDOUT, env=_env(),
                            start_new_session=True, preexec_fn=_terminal_signals)


def _saved_epochs(checkpoint: Path) -> int:
    """Epochs the per-epoch checkpoint on disk holds (0 when there is none yet). The file is replaced
    atomically, so every read sees a whole checkpoint."""
    if not checkpoint.is_file():
        return 0
    try:
        return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"]) + 1
    except FileNotFoundError:  # replaced between the check and the open: there is a newer one
        return _saved_epochs(checkpoint)


def _wait_for_saved_epoch(proc: subprocess.Popen, checkpoint: Path, epochs: int, out: Path) -> None:
    """Wait until the checkpoint on disk holds ``epochs`` finished epochs. The log line of an epoch comes
    before its checkpoint is written, so waiting for the log would race the save."""
    deadline = time.monotonic() + 300
    while _saved_epochs(checkpoint) < epochs:
        if proc.poll() is not None:
            pytest.fail(f"the run ended before epoch {epochs} was saved, so it could not be interrupted:\n"
                        + out.read_text()[-3000:])
        assert time.monotonic() < deadline, f"training did not save epoch {epochs} in time"
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(60)


def test_interrupted_training_resumes_and_matches_an_uninterrupted_run(tmp_path):
    wd = copy_workflow(tmp_path / "wf")
    cfg = _config(tmp_path / "long_teacher.yaml")
    cmd = _readme_command(cfg)
    log = wd / "results" / "logs" / "train_teacher.log"
    checkpoint = wd / "results" / "checkpoints" / "teacher.pt"
    lock_dir = wd / ".snakemake" / "locks"

    # 1. kill -9 of snakemake alone in the middle of train_teacher: the job must not run on as an orphan
    out1 = tmp_path / "run1.txt"
    proc = _start(cmd, wd, out1)
    try:
        _wait_for_saved_epoch(proc, checkpoint, KILL_AFTER_EPOCH, out1)
        proc.kill()
        proc.wait(60)
        deadline = time.monotonic() + 120
        while _group_alive(proc.pid):  # the training job stops by itself after its next epoch
            assert time.monotonic() < deadline, "the training job kept running after snakemake was killed"
            time.sleep(0.1)
    finally:
        _kill_group(proc)
    assert re.search(r"the Snakemake that started this job \(pid \d+\) is gone; stopped after epoch \d+",
                     log.read_text()), log.read_text()[-3000:]
    # what is on disk after the kill (a later epoch may have been saved between the poll and the kill)
    first_saved = _saved_epochs(checkpoint)  # the checkpoint is written atomically: it loads
    assert KILL_AFTER_EPOCH <= first_saved < EPOCHS, f"{first_saved}/{EPOCHS} epochs saved at the kill"
    assert not (wd / TARGET).exists(), "the teacher's weights exist although its job was killed"
    _assert_everything_loads(wd)
    # snakemake had no chance to release its lock: `snakemake --unlock` (what its own message says) first
    assert any(lock_dir.glob("*.lock"))
    unlock = subprocess.run(cmd + ["--unlock"], cwd=wd, capture_output=True, text=True, env=_env(), timeout=300)
    assert unlock.returncode == 0, (unlock.stdout + unlock.stderr)[-3000:]

    # 2. the README's command again, interrupted like Ctrl-C in a terminal (SIGINT to snakemake and its
    #    jobs), then SIGKILL for anything still running
    out2 = tmp_path / "run2.txt"
    proc = _start(cmd, wd, out2)
    try:
        _wait_for_saved_epoch(proc, checkpoint, first_saved + 2, out2)
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
    finally:
        _kill_group(proc)
    # the rerun resumed from exactly what the first kill left on disk; the first run's lines are kept
    text = log.read_text()
    assert f"teacher: resuming after epoch {first_saved} " in logs.last_run(text), text[-3000:]
    assert f"teacher epoch 1/{EPOCHS} " in text and text.count(logs.RERUN_MARKER) == 1
    second_saved = _saved_epochs(checkpoint)
    assert first_saved + 2 <= second_saved < EPOCHS, (f"{second_saved}/{EPOCHS} epochs saved at Ctrl-C:\n"
                                                      + out2.read_text()[-3000:] + "\n" + text[-2000:])
    assert not (wd / TARGET).exists()
    assert not any(lock_dir.glob("*.lock")), "snakemake kept its lock after Ctrl-C"
    _assert_everything_loads(wd)

    # 3. the README's command once more: finishes, resuming from the checkpoint (Snakemake 9 needs
    #    --rerun-incomplete for the outputs it marked incomplete: profiles/default sets it)
    proc = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    whole = log.read_text()
    assert whole.count(logs.RERUN_MARKER) == 2 and f"teacher epoch 1/{EPOCHS} " in whole  # nothing lost
    text = logs.last_run(whole)
    # resumed from the last *saved* epoch: not one before it (work lost), not one after it (a skipped epoch)
    assert re.findall(r"teacher: resuming after epoch (\d+)", text) == [str(second_saved)], text[-3000:]
    assert f"teacher epoch {second_saved}/{EPOCHS} " not in text
    assert f"teacher epoch {second_saved + 1}/{EPOCHS} " in text
    assert f"teacher epoch 1/{EPOCHS} " not in text  # the finished epochs were not trained again
    assert f"teacher epoch {EPOCHS}/{EPOCHS} " in text
    assert not checkpoint.exists()  # removed once the job completed
    leftovers = [str(p.relative_to(wd)) for p in wd.rglob("*.part")]
    assert leftovers == []
    _assert_everything_loads(wd)

    # 3. an uninterrupted run of the same job (same code, data file, params and thread count) gives the same
    #    weights and history
    config = fer_config.load(yaml.safe_load(cfg.read_text()), wd)
    ref = tmp_path / "reference"
    threads = torch.get_num_threads()
    torch.set_num_threads(min(int(config["threads"]), os.cpu_count() or 1))
    try:
        train_teacher(dataset=wd / "results" / "data" / "dataset.pt",
                      arch=settings.Arch.of(config["models"]["teacher"]), hp=settings.TrainHP.of(config["train"]["teacher"]),
                      augment=settings.Augment.of(config["augment"]), seed=config["seed"],
                      precision=config["train"]["precision"], device=config["train"]["device"],
                      checkpoint=ref / "checkpoint.pt", out_weights=ref / "teacher.pt",
                      out_history=ref / "teacher.csv", out_plot=ref / "teacher.png")
    finally:
        torch.set_num_threads(threads)
    assert provenance.state_dict_sha256(wd / TARGET) == provenance.state_dict_sha256(ref / "teacher.pt")
    assert _history(wd / "results" / "training" / "teacher.csv") == _history(ref / "teacher.csv")
    assert len(_history(ref / "teacher.csv")) == EPOCHS
