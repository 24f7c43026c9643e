"""Class lists: which names a data folder's class folders (or a fer2013.csv's emotion codes) may carry, and how
common spellings map onto the names in ``data.classes``.

The class list is data, not a constant: ``data.classes`` (config/config.yaml) names the classes and their order
(the index of a name is its label); data preparation stores the list in the prepared dataset, training in every
checkpoint, export in every ONNX sidecar, evaluation in every metrics file, and every later reader (evaluation,
plots, report, the inference app) takes the names from there. :data:`fer.CLASSES` is CK+'s list, the default of
``data.classes``, kept for the built-in faces and the tests.

Spellings: datasets name one expression differently (CK+ ``anger``/``sadness``, FER2013 and RAF-DB
``angry``/``sad``, AffectNet ``happiness``/``surprised`` ...). :data:`SYNONYMS` groups the common spellings of one
expression; a folder matches a configured class when both are in one group (case-insensitive), so
``data.classes: [angry, ...]`` reads a CK+ ``anger/`` folder and the other way round. Cheap to import (no torch).
"""
from __future__ import annotations

from collections.abc import Sequence

# One group per expression: the first name is the canonical one (the built-in faces draw by it).
SYNONYMS: tuple[tuple[str, ...], ...] = (
    ("anger", "angry"),
    ("contempt", "contemptuous"),
    ("disgust", "disgusted"),
    ("fear", "fearful", "afraid", "scared"),
    ("happy", "happiness"),
    ("sadness", "sad"),
    ("surprise", "surprised"),
    ("neutral", "neutrality"),
)
_CANON = {name: group[0] for group in SYNONYMS for name in group}

# The original fer2013.csv's emotion codes (Goodfellow et al. 2013; the Kaggle challenge's order).
FER2013_CODES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# Its Usage column -> our split names.
FER2013_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


def canonical(name: str) -> str:
    """The expression a class name stands for (``"Angry"`` -> ``"anger"``); an unknown name is itself,
    lower-cased (it matches a folder of exactly that name)."""
    key = str(name).strip().lower()
    return _CANON.get(key, key)


def index_of(name: str, classes: Sequence[str]) -> int | None:
    """The label of a folder name (or a fer2013 emotion name) in ``classes``, by synonym; None if none matches."""
    want = canonical(name)
    for i, c in enumerate(classes):
        if canonical(c) == want:
            return i
    return None


def check(classes: Sequence[str]) -> list[str]:
    """``classes`` as a list, or ValueError (one line) when it is not a usable class list: fewer than 2 names,
    an empty name, or two names for one expression (``anger`` and ``angry``) or spelled twice."""
    names = [str(c) for c in classes]
    if len(names) < 2:
        raise ValueError(f"needs at least 2 classes, got {names}")
    seen: dict[str, str] = {}
    for c in names:
        if not c.strip() or "/" in c or c.strip() != c:
            raise ValueError(f"{c!r} is not a usable class name (no empty names, slashes or outer spaces)")
        other = seen.get(canonical(c))
        if other is not None:
            raise ValueError(f"{other!r} and {c!r} name one class (spellings of one expression); keep one")
        seen[canonical(c)] = c
    return names


def fer2013_labels(classes: Sequence[str]) -> dict[int, int | None]:
    """fer2013.csv emotion code -> label in ``classes`` (None: an expression ``classes`` leaves out)."""
    return {code: index_of(name, classes) for code, name in enumerate(FER2013_CODES)}


def without_fer2013_code(classes: Sequence[str]) -> list[str]:
    """The names in ``classes`` that no fer2013.csv emotion code stands for (CK+'s ``contempt``)."""
    return [c for c in classes if index_of(c, FER2013_CODES) is None]


def mismatch(trained: Sequence[str], given: Sequence[str], what: str, where: str) -> str | None:
    """None when two class lists are equal, else the one-line reason naming both (used by every reader of a
    checkpoint, a prepared dataset or an ONNX sidecar)."""
    if list(trained) == list(given):
        return None
    return (f"{what} the classes {list(trained)}, but {where} holds {list(given)} (a model trained on one class "
            "list cannot be evaluated on another)")
