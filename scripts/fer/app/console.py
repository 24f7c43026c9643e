"""What every part of the app shares: warnings on stderr, and OpenCV kept quiet while we decide what to say."""
from __future__ import annotations

import contextlib
import sys

import cv2


def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def quiet_opencv():
    """Silence OpenCV's own warnings (e.g. "can't open camera by index") while we decide what to report."""
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    if log is None:
        yield
        return
    old = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        log.setLogLevel(old)
