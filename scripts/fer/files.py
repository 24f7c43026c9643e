"""Atomic file writes: every output appears whole or not at all, and torch files load with
``torch.load(weights_only=True)``."""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import tempfile
from pathlib import Path


def remove_stale_parts(path: str | os.PathLike) -> int:
    """Delete temporary files that an earlier, killed writer of ``path`` left behind (``.<name>.*.part``).

    A SIGKILL between the write and the rename leaves such a file; it never looks like the output itself
    (hidden name, ``.part`` suffix), and the next write of the same output removes it. Only one job writes a
    given output at a time, so the files found belong to dead writers.
    """
    path = Path(path)
    n = 0
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.part"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
            n += 1
    return n




def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, clean: bool = False):
    """Yield a temporary path in the destination folder; rename it onto ``path`` only on success.

    ``clean=True`` first removes temporary files of ``path`` left by killed writers (:func:`remove_stale_parts`);
    it lists the folder, so it is meant for outputs, not for thousands of files written into one folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if clean:
        remove_stale_parts(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; an output gets what the umask says
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path, text: str) -> None:
    with atomic_path(path, clean=True) as tmp:
        tmp.write_text(text)


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_torch(path, obj) -> None:
    # through a file handle: torch.save names the zip archive after a path it is given (here the random
    # temporary name), so the same tensors would give different bytes; a handle gives the fixed name "archive"
    import torch  # here, not at the top: the jobs that write only JSON, CSV and figures never load torch

    with atomic_path(path, clean=True) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


def load_torch(path):
    """``torch.load(weights_only=True)`` with a clear error for a missing file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return torch.load(path, map_location="cpu", weights_only=True)


def file_digest(path, full: bool = False) -> str:
    """The first 16 hex digits of a file's SHA-256 (resume keys: a change of an input restarts training);
    ``full``: all 64 (content hashes recorded beside an artefact)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest() if full else h.hexdigest()[:16]
