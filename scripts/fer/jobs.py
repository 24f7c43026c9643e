"""Process safety of a job that writes a resumable output (a training run's per-epoch checkpoint).

Two rules, one mechanism each:

* **One writer per output**: :func:`exclusive` holds an advisory lock (``flock``) on ``<output>.lock`` while
  the job writes; a second process (a rerun started beside an orphaned job) waits for it to let go, then goes
  on from what it left — or gives up with a :class:`~fer.errors.BusyError` naming the holder's pid.
* **No orphans**: :func:`watched_parent` finds the Snakemake process that started this job; :func:`alive`
  tells whether it still runs (same pid *and* start time, so a reused pid does not count). A training loop
  checks it after every epoch and stops (:class:`~fer.errors.OrphanedError`) once Snakemake is gone, after
  saving that epoch — so a rerun resumes exactly there and ends with the same bytes as an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import time
from pathlib import Path

from fer.errors import BusyError

log = logging.getLogger("fer")

LOCK_WAIT_S = 300.0  # how long a second writer waits: an orphan stops at its next epoch's end (seconds)
POLL_S = 0.25


def _stat(pid: int) -> tuple[int, int] | None:
    """``(ppid, start time in clock ticks)`` of ``pid`` from /proc, or None if it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the name (field 2) may hold spaces and parentheses
    return int(fields[1]), int(fields[19])


def _is_snakemake(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(os.path.basename(a.decode(errors="replace")).startswith("snakemake") for a in argv[:3])


def watched_parent() -> tuple[int, int] | None:
    """``(pid, start time)`` of the nearest ancestor that is Snakemake (``snakemake ...`` or ``python -m
    snakemake ...``), or None when this process was not started by Snakemake (a test, a notebook) or /proc is
    not there."""
    pid = os.getppid()
    for _ in range(32):  # a job is a few levels below Snakemake (a shell, a script wrapper)
        st = _stat(pid)
        if st is None or pid <= 1:
            return None
        if _is_snakemake(pid):
            return pid, st[1]
        pid = st[0]
    return None


def alive(parent: tuple[int, int] | None) -> bool:
    """Whether the process :func:`watched_parent` found still runs (True when there is none to watch)."""
    if parent is None:
        return True
    st = _stat(parent[0])
    return st is not None and st[1] == parent[1]


def _holder(fh) -> str:
    with contextlib.suppress(OSError, ValueError):
        fh.seek(0)
        return fh.read().strip() or "unknown"
    return "unknown"


def _same_file(fh, path: Path) -> bool:
    try:
        return os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def exclusive(path, what: str, wait_s: float | None = None):
    """Hold the lock of ``path`` (``<path>.lock``, holding the pid) for the block. If another process holds
    it, wait up to ``wait_s`` seconds (:data:`LOCK_WAIT_S`) for it to end, then raise :class:`BusyError`."""
    wait_s = LOCK_WAIT_S if wait_s is None else wait_s
    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(lock_path, "a+")
    try:
        deadline, told = time.monotonic() + wait_s, False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if _same_file(fh, lock_path):
                    break
                fh.close()  # the holder removed the file as it let go: lock the one at the path now
                fh = open(lock_path, "a+")
                continue
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
            holder = _holder(fh)
            if time.monotonic() >= deadline:
                raise BusyError(f"{what}: {path} is being written by another process (pid {holder}), e.g. a job "
                                f"left running by a Snakemake that was killed; wait for it to end or stop it "
                                f"(kill {holder}), then rerun")
            if not told:
                log.warning("%s: %s is being written by pid %s; waiting up to %.0f s for it to stop", what, path,
                            holder, wait_s)
                told = True
            time.sleep(POLL_S)
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        with contextlib.suppress(OSError):
            lock_path.unlink()  # still held: a process that opens it now gets a fresh file
        fh.close()
