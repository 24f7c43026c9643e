"""Logging set-up shared by the rule scripts: one logger to the rule's log file and to the terminal."""
from __future__ import annotations

import logging
import sys

_FMT = "%(asctime)s %(levelname)s %(message)s"


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
        fh = logging.FileHandler(log_path, mode="w")
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    return logger


def get(name: str = "fer") -> logging.Logger:
    return logging.getLogger(name)
