"""Image files: which files below a data folder data preparation uses, and the one reader of an image file.

:func:`list_files` is the single answer to "which files does data preparation read": :func:`fer.data.datasets.scan`
reads exactly these, and rule ``prepare_data`` lists exactly these as its input files (rules/common.smk), so a
file it ignores (``notes.txt``, ``neutral/``) never reruns the workflow. It is cheap to import (no torch, no
OpenCV): Snakemake imports it while it builds the DAG.

:func:`read_image` is the one reader of an image file, for data preparation and for the inference app's image
and folder sources. It applies a JPEG's EXIF orientation (``PIL.ImageOps.exif_transpose``), so a photo saved
sideways is the same upright picture in training and in the app, and it opens only regular files: a FIFO would
block the open forever, and opening a device can have side effects. Every file it cannot read is an
:class:`~fer.errors.ImageReadError` whose message names the file and the problem.
"""
from __future__ import annotations

import errno
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fer import CLASSES
from fer.data import CKPLUS_HELP, classes as class_names
from fer.errors import DataError, ImageReadError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}  # what data preparation reads (the app reads more kinds)
README_NAMES = {"readme.md", "readme.txt", "readme"}
_SPECIAL = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
            (stat.S_ISBLK, "block device"))
# decoding failures of a damaged or foreign file (PIL raises all of these for some broken input)
_DECODE_ERRORS = (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError, EOFError)


def shown(path) -> str:
    """``path`` for one log or error line: as it is, or escaped (``\\n``, ``\\udcff``) when it holds a line
    break, another control character or bytes that are not UTF-8."""
    text = str(path)
    return text if text.isprintable() else repr(text)[1:-1]


# ------------------------------------------------------------------------------------------ file types
def path_kind(path) -> tuple[str, str]:
    """``("file", "")`` for a regular file, ``("folder", "")`` for a folder (both after following symlinks),
    else ``("other", why)``: a broken symlink, a symlink loop, a FIFO, a socket, a device ... Never opens it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            try:
                target = shown(os.readlink(path))
            except OSError:
                target = "?"
            return "other", f"broken symlink (its target {target} does not exist); fix or delete the link"
        return "other", "no such file"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "other", "symlink loop (following the link leads back to it); fix or delete the link"
        return "other", f"cannot be read ({exc.strerror or type(exc).__name__})"
    if stat.S_ISREG(st.st_mode):
        return "file", ""
    if stat.S_ISDIR(st.st_mode):
        return "folder", ""
    kind = next((name for test, name in _SPECIAL if test(st.st_mode)), "special file")
    return "other", f"not a regular file ({kind}); only image files are read"


def _valid_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in the name (Python keeps them as surrogates)
        return False
    return True


# --------------------------------------------------------------------------------------------- listing
@dataclass
class Listing:
    """What :func:`list_files` found below a data folder."""

    root: Path
    folders: dict[int, list[Path]]  # class index -> the folder(s) naming it (two are an error in scan)
    files: dict[int, list[Path]]    # class index -> the image files data preparation reads, sorted
    skipped: list[str]              # one line per entry left out, naming it and why (scan logs them)

    def used(self) -> list[Path]:
        """Every file data preparation reads: adding, removing or changing one of them reruns it."""
        return [p for idx in sorted(self.files) for p in self.files[idx]]


def _entries(folder: Path, skipped: list[str]) -> list[Path]:
    """The entries of ``folder``, sorted, hidden ones left out; none (and a skip line) if it cannot be listed."""
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as exc:
        skipped.append(f"skipped folder {shown(folder)}: it cannot be listed ({exc.strerror or type(exc).__name__});"
                       " check its permissions")
        return []


def list_files(root, classes=CLASSES) -> Listing:
    """The files data preparation reads below ``root``: ``<root>/<class>/*.png|jpg|jpeg`` for the class folders
    of ``classes`` (``data.classes``; folder names case-insensitive, common spellings by
    :func:`fer.data.classes.index_of`), regular files only (a symlink to one is fine), hidden files left out.
    Every other entry is a line in ``skipped``. :class:`DataError` if ``root`` is not a folder."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"data folder {shown(root)} does not exist. " + CKPLUS_HELP.format(root=root))
    if not root.is_dir():
        raise DataError(f"data path {shown(root)} is not a folder. " + CKPLUS_HELP.format(root=root))
    out = Listing(root, {}, {}, [])
    for entry in _entries(root, out.skipped):
        kind, why = path_kind(entry)
        idx = class_names.index_of(entry.name, classes) if kind == "folder" else None
        if kind == "other":
            out.skipped.append(f"skipped {shown(entry)}: {why}")
        elif kind == "file":
            if entry.name.lower() not in README_NAMES:
                out.skipped.append(f"skipped stray file at the top of {shown(root)}: {shown(entry.name)} "
                                   "(images belong in <class>/ folders)")
        elif idx is None:
            out.skipped.append(f"skipped unknown folder {shown(entry)}: not one of the {len(classes)} classes "
                               f"of data.classes ({', '.join(classes)})")
        else:
            out.folders.setdefault(idx, []).append(entry)
    for idx, folders in sorted(out.folders.items()):
        for folder in folders:
            out.files.setdefault(idx, []).extend(_image_files(folder, out.skipped))
    return out


# data.layout split-folders: <root>/<split>/<class>/*; the names each split's folder may have
SPLITS_ORDER = ("train", "val", "test")
SPLIT_FOLDER_NAMES = {"train": ("train", "training"), "val": ("val", "valid", "validation"),
                      "test": ("test", "testing")}


def split_folders(root) -> tuple[dict[str, Path], list[str]]:
    """``({split: folder}, skipped lines)`` of a split-folders data folder (``data.layout: split-folders``):
    ``<root>/train``, ``<root>/val`` (optional) and ``<root>/test``, names case-insensitive. Any other entry at
    the top is a skip line; two folders for one split, or no train/ or no test/ folder, is a :class:`DataError`."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {shown(root)} does not exist or is not a folder (data.layout split-folders "
                        "reads <path>/train/<class>/*, <path>/val/<class>/* and <path>/test/<class>/*)")
    found: dict[str, Path] = {}
    skipped: list[str] = []
    for entry in _entries(root, skipped):
        kind, why = path_kind(entry)
        split = next((s for s, names in SPLIT_FOLDER_NAMES.items() if entry.name.lower() in names), None)
        if kind == "other":
            skipped.append(f"skipped {shown(entry)}: {why}")
        elif kind == "file":
            if entry.name.lower() not in README_NAMES:
                skipped.append(f"skipped stray file at the top of {shown(root)}: {shown(entry.name)} "
                               "(data.layout split-folders: images belong in <split>/<class>/ folders)")
        elif split is None:
            skipped.append(f"skipped unknown folder {shown(entry)}: not a split folder (train, val or test)")
        elif split in found:
            raise DataError(f"two folders name the {split} split: {shown(found[split])} and {shown(entry)}. "
                            "Merge them into one folder.")
        else:
            found[split] = entry
    for split in ("train", "test"):
        if split not in found:
            raise DataError(f"no {split}/ folder in {shown(root)}: data.layout split-folders reads "
                            f"{shown(root)}/train/<class>/* and {shown(root)}/test/<class>/* (val/ is optional; "
                            "without it validation is drawn from train/)")
    return {s: found[s] for s in SPLITS_ORDER if s in found}, skipped


def data_files(root, classes=CLASSES, layout: str = "class-folders") -> list[Path]:
    """Every file data preparation reads for ``data.path`` in ``layout`` (the rule's input list): the image files
    of :func:`list_files` (of each split folder with split-folders), or the CSV file itself (fer2013-csv)."""
    if layout == "fer2013-csv":
        return [Path(root)] if Path(root).is_file() else []
    if layout == "split-folders":
        if not Path(root).is_dir():
            return []
        try:
            folders, _ = split_folders(root)
        except DataError:
            return []  # prepare_data says what is wrong
        return [p for folder in folders.values() for p in list_files(folder, classes).used()]
    return list_files(root, classes).used() if Path(root).is_dir() else []


def _image_files(folder: Path, skipped: list[str]) -> list[Path]:
    files = []
    for p in _entries(folder, skipped):
        if not _valid_utf8(p.name):
            skipped.append(f"skipped {shown(p)}: its name is not valid UTF-8; rename it")
            continue
        kind, why = path_kind(p)
        if kind == "folder":
            skipped.append(f"skipped nested folder {shown(p)} (images must sit directly in {shown(folder)})")
        elif kind == "other":
            skipped.append(f"skipped {shown(p)}: {why}")
        elif p.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(f"skipped non-image file {shown(p)} (expected .png, .jpg or .jpeg)")
        else:
            files.append(p)
    return files


# ---------------------------------------------------------------------------------------------- reader
@dataclass(frozen=True)
class Picture:
    """A decoded image file, upright (EXIF orientation applied)."""

    pixels: np.ndarray  # (H, W) or (H, W, C), channels in RGB(A) order, dtype as decoded (uint8, uint16, ...)
    size: str           # "WxH", upright
    mode: str           # the PIL mode stored in the file ("L", "RGB", "P", "I;16", "CMYK" ...)


def read_image(path) -> Picture:
    """Decode one image file (any format PIL reads). :class:`ImageReadError` if it is not a regular file, is
    empty or cannot be decoded; the message names the file and what to do."""
    kind, why = path_kind(path)
    if kind != "file":
        raise ImageReadError(f"{shown(path)}: {why or 'a folder, not an image file'}")
    try:
        # O_NONBLOCK: should the path have become a FIFO since the check, the open returns instead of blocking
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ImageReadError(f"unreadable image {shown(path)} ({type(exc).__name__}): check its permissions") \
            from None
    with open(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ImageReadError(f"{shown(path)}: not a regular file; only image files are read")
        if st.st_size == 0:
            raise ImageReadError(f"empty (0-byte) file {shown(path)}: delete it or export it again")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(fh) as im:
                    im.load()
                    mode = im.mode
                    im = ImageOps.exif_transpose(im)
                    if mode in ("P", "PA"):
                        im = im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
                    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                        im = im.convert("RGB")
                    pixels = np.asarray(im)
                    size = f"{im.width}x{im.height}"
        except _DECODE_ERRORS as exc:
            raise ImageReadError(f"unreadable image {shown(path)} ({type(exc).__name__}): re-export or delete it") \
                from None
    return Picture(pixels, size, mode)
