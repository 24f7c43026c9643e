"""Process safety (fer.jobs): one writer per checkpoint, and a training job that stops when the Snakemake that
started it is gone — then a rerun resumes and ends with the same weights as an uninterrupted run."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
import torch

from fer import jobs
from fer.errors import BusyError, OrphanedError
from fer.models import training

from test_train import _fit, _same_weights  # noqa: F401  (the toy training set-up)


def test_second_writer_waits_then_gives_up_naming_the_holder(tmp_path):
    target = tmp_path / "ck.pt"
    with jobs.exclusive(target, "first"):
        assert (tmp_path / "ck.pt.lock").read_text().strip() != ""
        with pytest.raises(BusyError, match=r"ck\.pt is being written by another process \(pid \d+\).*kill \d+"):
            with jobs.exclusive(target, "second", wait_s=0.3):
                pass
    assert not (tmp_path / "ck.pt.lock").exists()  # released and removed
    with jobs.exclusive(target, "third", wait_s=0):  # free again
        pass


def test_second_writer_goes_on_once_the_first_lets_go(tmp_path):
    target, order = tmp_path / "ck.pt", []
    held = threading.Event()

    def first():
        with jobs.exclusive(target, "first"):
            held.set()
            time.sleep(0.6)
            order.append("first done")

    t = threading.Thread(target=first)
    t.start()
    held.wait(5)
    with jobs.exclusive(target, "second", wait_s=10):
        order.append("second in")
    t.join()
    assert order == ["first done", "second in"]


def test_fit_refuses_a_checkpoint_another_process_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "LOCK_WAIT_S", 0.2)
    ck = tmp_path / "ck.pt"
    with jobs.exclusive(ck, "an orphan"):
        with pytest.raises(BusyError, match="ck.pt is being written by another process"):
            _fit(checkpoint=ck)
    assert not ck.exists()


def test_parent_watch_tells_a_dead_parent_from_a_reused_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for _ in range(100):  # /proc entry appears with the process
            st = jobs._stat(proc.pid)
            if st:
                break
            time.sleep(0.01)
        me = (proc.pid, st[1])
        assert jobs.alive(me) and jobs.alive(None)
        assert not jobs.alive((proc.pid, st[1] + 1))  # same pid, another start time: another process
    finally:
        proc.kill()
        proc.wait()
    assert not jobs.alive(me)
    assert jobs.watched_parent() is None  # pytest was not started by Snakemake


def test_training_stops_when_snakemake_is_gone_and_the_rerun_matches(tmp_path, monkeypatch):
    """An orphaned training job saves the epoch it finished and stops with one line; the rerun resumes there
    and gives the weights of a run that was never interrupted."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    time.sleep(0.2)
    parent = (proc.pid, jobs._stat(proc.pid)[1])
    monkeypatch.setattr(jobs, "watched_parent", lambda: parent)
    ck = tmp_path / "ck.pt"
    real_save = training.files.save_torch

    def save_then_kill(path, obj):  # "Snakemake" is killed while epoch 1 is written
        real_save(path, obj)
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    monkeypatch.setattr(training.files, "save_torch", save_then_kill)
    with pytest.raises(OrphanedError, match=r"the Snakemake that started this job \(pid \d+\) is gone; stopped "
                                            r"after epoch 1, saved in .*ck\.pt: rerun Snakemake to resume"):
        _fit(checkpoint=ck, epochs=3)
    assert int(torch.load(ck, weights_only=True)["epoch"]) == 0  # epoch 1 (0-based 0) kept
    monkeypatch.setattr(jobs, "watched_parent", lambda: None)
    resumed, r = _fit(checkpoint=ck, epochs=3)
    whole, _ = _fit(epochs=3)
    assert _same_weights(resumed, whole) and len(r["history"]) == 3


def test_a_rerun_keeps_the_log_of_the_unfinished_run_after_a_marker(tmp_path):
    """Snakemake deletes a job's log before it runs it: the lines of an unfinished run come back from the
    journal, then the marker; a run that ended well leaves no journal, so the next run starts afresh."""
    from fer import logs

    path = tmp_path / "logs" / "train.log"
    logs.setup(path).info("epoch 1 of the first run")  # ... killed here
    path.unlink()  # what Snakemake does before the rerun
    logs.setup(path).info("epoch 2 of the rerun")
    text = path.read_text()
    assert "epoch 1 of the first run" in text and text.count(logs.RERUN_MARKER) == 1
    assert text.index("first run") < text.index(logs.RERUN_MARKER) < text.index("of the rerun")
    assert "first run" not in logs.last_run(text) and "epoch 2 of the rerun" in logs.last_run(text)
    logs.finished(path)
    assert not logs.unfinished_path(path).exists()
    path.unlink()
    logs.setup(path).info("a forced run after a good one")
    assert logs.RERUN_MARKER not in path.read_text() and "first run" not in path.read_text()
    logs.finished(path)
    logs.setup(None)  # detach the file handlers
