"""Logging set-up shared by the rule scripts: one logger to the rule's log file and to the terminal.

Snakemake deletes a rule's log file before it runs the job, so a rerun after Ctrl-C, a kill or a crash would
lose the lines of the run before it (the epochs it trained, the error it hit). So every line also goes to a
hidden journal beside the log (``.<log name>.unfinished``) that lives until the job ends well
(:func:`finished`); a rerun starts its log with the journal's lines and a :data:`RERUN_MARKER` line.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import sys
from pathlib import Path

_FMT = "%(asctime)s %(levelname)s %(message)s"
RERUN_MARKER = "==== rerun"


def last_run(text: str) -> str:
    """The lines of a log file's last run (after its last :data:`RERUN_MARKER` line)."""
    i = text.rfind(RERUN_MARKER)
    return text if i < 0 else text[text.find("\n", i) + 1:]


def setup(log_path=None, name: str = "fer", level=logging.INFO) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.setLevel(level)
    logger.handlers.clear()
    logger.propagate = False
    fmt = logging.Formatter(_FMT, datefmt="%H:%M:%S")
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(fmt)
    logger.addHandler(stream)
    if log_path:
        path, journal = Path(log_path), unfinished_path(log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        earlier = journal.read_text(errors="replace") if journal.is_file() else ""
        if earlier:
            when = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
            marker = f"{RERUN_MARKER} {when} pid {os.getpid()}: the lines above are from an earlier run ====\n"
            with open(journal, "a") as fh:
                fh.write(marker)
            with open(path, "a") as fh:
                fh.write(earlier + ("" if earlier.endswith("\n") else "\n") + marker)
        for target in (path, journal):
            fh = logging.FileHandler(target, mode="a")
            fh.setFormatter(fmt)
            logger.addHandler(fh)
    return logger


def unfinished_path(log_path) -> Path:
    """The journal of a job's log while the job has not ended well (see the module docstring)."""
    p = Path(log_path)
    return p.with_name(f".{p.name}.unfinished")


def finished(log_path, name: str = "fer") -> None:
    """The job ended well: drop its journal, so that the next (forced) run starts a fresh log."""
    logger = logging.getLogger(name)
    journal = unfinished_path(log_path).resolve()
    for h in list(logger.handlers):
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename).resolve() == journal:
            logger.removeHandler(h)
            h.close()
    journal.unlink(missing_ok=True)


def get(name: str = "fer") -> logging.Logger:
    return logging.getLogger(name)
