"""The original FER2013 file, ``fer2013.csv`` (``data.layout: fer2013-csv``): reading it, and writing one (the
built-in faces, :mod:`fer.data.synthetic`).

Format (Goodfellow et al. 2013, the Kaggle challenge's file): a header ``emotion,pixels,Usage`` (any column order;
names case-insensitive, spaces around them ignored, as in the ``icml_face_data.csv`` copy), then one row per
image: the emotion code (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral:
:data:`fer.data.classes.FER2013_CODES`), 2,304 pixel values 0..255 separated by spaces (48x48 gray, row by row)
and the split (``Training``, ``PublicTest``, ``PrivateTest`` -> train, val, test).

Bad rows: a row with the wrong number of fields, an emotion code that is not 0..6, an unknown Usage, pixel values
that are not integers, out of 0..255 or not 2,304 of them is a logged skip naming its line; a row whose emotion is
not in ``data.classes`` is skipped too (one summary line per code). A file with no usable row is a
:class:`~fer.errors.DataError`.

Speed and memory: the file (287 MB for the real one) is streamed row by row, and the pixels go into one
preallocated uint8 buffer sized from the file size (a valid row takes at least 4,608 bytes, so the buffer never
needs to grow; its untouched pages are never committed).
"""
from __future__ import annotations

import csv
import logging
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer import IMAGE_SIZE
from fer.data import classes as class_names
from fer.data.images import shown
from fer.errors import DataError

log = logging.getLogger("fer")

COLUMNS = ("emotion", "pixels", "Usage")
N_PIXELS = IMAGE_SIZE * IMAGE_SIZE
MIN_ROW_BYTES = 2 * N_PIXELS  # a digit and a separator per pixel
SHOWN_SKIPS = 100  # malformed rows logged one by one; the rest are counted in one line


@dataclass
class Rows:
    """The usable rows of a fer2013.csv, in file order."""

    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64, index into the class list
    splits: list        # (N,) "train" | "val" | "test" (from Usage)
    lines: list         # (N,) line number of each row in the file (the header is line 1)


def read(path, classes) -> Rows:
    """Every usable row of ``path`` (see module doc) with labels indexing ``classes``. :class:`DataError` when the
    file is missing, has no header with the three columns, or holds no usable row."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{shown(path)} is not a file: data.layout fer2013-csv reads the original fer2013.csv "
                        "(columns emotion,pixels,Usage); set data.path to it")
    code_label = class_names.fer2013_labels(classes)
    capacity = os.path.getsize(path) // MIN_ROW_BYTES + 1
    pixels = np.empty((capacity, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    labels: list[int] = []
    splits: list[str] = []
    lines: list[int] = []
    bad = 0
    left_out = {code: 0 for code in code_label}
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a pixels field is ~8 kB (the default limit is 128 kB)
    with open(path, newline="", encoding="utf-8", errors="replace") as fh, warnings.catch_warnings():
        # np.fromstring warns (and stops) at text that is not a number: that is a bad row here
        warnings.simplefilter("error", DeprecationWarning)
        reader = csv.reader(fh)
        header = next(reader, None)
        cols = {str(h).strip().lower(): i for i, h in enumerate(header or [])}
        missing = [c for c in COLUMNS if c.lower() not in cols]
        if missing:
            raise DataError(f"{shown(path)} has no column {', '.join(missing)} in its first line (found "
                            f"{header}); data.layout fer2013-csv reads the original fer2013.csv "
                            "(header emotion,pixels,Usage)")
        i_emotion, i_pixels, i_usage = (cols[c.lower()] for c in COLUMNS)
        n_fields = len(header)

        def skip(line: int, why: str) -> None:
            nonlocal bad
            bad += 1
            if bad <= SHOWN_SKIPS:
                log.warning("skipped %s line %d: %s", shown(path), line, why)

        for row in reader:
            line = reader.line_num
            if not row:
                continue  # a blank line (the file's last one)
            if len(row) != n_fields:
                skip(line, f"{len(row)} fields, expected {n_fields} ({','.join(header)})")
                continue
            code = row[i_emotion].strip()
            if not (code.isascii() and code.isdigit()) or int(code) not in code_label:
                skip(line, f"unknown emotion code {code[:20]!r} (expected 0..6: "
                           f"{', '.join(f'{i} {n}' for i, n in enumerate(class_names.FER2013_CODES))})")
                continue
            usage = class_names.FER2013_USAGE.get(row[i_usage].strip())
            if usage is None:
                skip(line, f"unknown Usage {row[i_usage].strip()[:30]!r} (expected "
                           f"{', '.join(class_names.FER2013_USAGE)})")
                continue
            try:
                values = np.fromstring(row[i_pixels], dtype=np.int64, sep=" ")
            except (ValueError, DeprecationWarning):
                skip(line, "pixel values are not integers separated by spaces")
                continue
            if values.size != N_PIXELS:
                skip(line, f"{values.size} pixel values, expected {N_PIXELS} ({IMAGE_SIZE}x{IMAGE_SIZE})")
                continue
            if values.min() < 0 or values.max() > 255:
                skip(line, "pixel values outside 0..255")
                continue
            label = code_label[int(code)]
            if label is None:
                left_out[int(code)] += 1
                continue
            n = len(labels)
            pixels[n] = values.reshape(IMAGE_SIZE, IMAGE_SIZE)
            labels.append(label)
            splits.append(usage)
            lines.append(line)
    if bad > SHOWN_SKIPS:
        log.warning("skipped %d more malformed rows of %s (the first %d are listed above)", bad - SHOWN_SKIPS,
                    shown(path), SHOWN_SKIPS)
    for code, n in left_out.items():
        if n:
            log.warning("skipped %d rows of emotion %d (%s) in %s: not one of data.classes (%s)", n, code,
                        class_names.FER2013_CODES[code], shown(path), ", ".join(classes))
    if not labels:
        raise DataError(f"no usable row in {shown(path)} ({bad} malformed rows skipped, see the log): "
                        "data.layout fer2013-csv reads the original fer2013.csv (emotion,pixels,Usage)")
    present = set(labels)
    for i, c in enumerate(classes):
        if i not in present:
            log.warning("class %r has no row in %s: the model will see no %s examples", c, shown(path), c)
    n = len(labels)
    return Rows(pixels[:n], np.asarray(labels, dtype=np.int64), splits, lines)


def write(path, rows) -> int:
    """Write a fer2013.csv from ``rows``, an iterable of ``(image (48, 48) uint8, emotion code 0..6, Usage)``
    (Usage: ``Training``, ``PublicTest`` or ``PrivateTest``), streamed and atomically (a temporary name, then
    renamed). Returns the number of rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    digits = [str(v) for v in range(256)]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, "w", newline="") as fh:
            fh.write(",".join(COLUMNS) + "\n")
            n = 0
            for img, code, usage in rows:
                fh.write(f"{int(code)},{' '.join([digits[v] for v in np.asarray(img).ravel().tolist()])},{usage}\n")
                n += 1
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n
