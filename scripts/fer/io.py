"""Atomic file writes and the checkpoint format every variant uses.

A checkpoint is a plain dict ``{"format": ..., "variant": ..., "arch": {...}, "state_dict": {...},
"meta": {...}}`` with only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``. Quantized variants add a ``"quant"`` entry describing how to rebuild
the quantized module before loading its state_dict.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import torch

FORMAT = "fer-checkpoint/1"


def remove_stale_parts(path: str | os.PathLike) -> int:
    """Delete temporary files that an earlier, killed writer of ``path`` left behind (``.<name>.*.part``).

    A SIGKILL between the write and the rename leaves such a file; it never looks like the output itself
    (hidden name, ``.part`` suffix), and the next write of the same output removes it. Only one job writes a
    given output at a time, so the files found belong to dead writers.
    """
    path = Path(path)
    n = 0
    for stale in path.parent.glob(f".{glob_escape(path.name)}.*.part"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
            n += 1
    return n


def glob_escape(name: str) -> str:
    import glob

    return glob.escape(name)


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
    with atomic_path(path, clean=True) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


def load_torch(path):
    """``torch.load(weights_only=True)`` with a clear error for a missing file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return torch.load(path, map_location="cpu", weights_only=True)


def save_checkpoint(path, variant: str, arch: dict, state_dict: dict, meta: dict | None = None, **extra) -> None:
    obj = {"format": FORMAT, "variant": variant, "arch": dict(arch),
           "state_dict": {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()},
           "meta": dict(meta or {})}
    obj.update(extra)
    save_torch(path, obj)


def load_checkpoint(path) -> dict:
    ckpt = load_torch(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} checkpoint")
    return ckpt


def load_float_model(path):
    """Rebuild a float FERNet (teacher, students, pruned students) from its checkpoint, in eval mode."""
    from . import models

    ckpt = load_checkpoint(path)
    model = models.build(ckpt["arch"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()
