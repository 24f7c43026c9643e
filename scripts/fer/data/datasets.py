"""Data preparation: a data folder (or fer2013.csv) -> one uint8 tensor file + a manifest CSV, with
subject-independent splits.

Layouts (``data.layout``): ``class-folders`` reads ``<root>/<class>/*.png|jpg|jpeg`` with the class folders of
``data.classes`` (names case-insensitive, common spellings matched: :mod:`fer.data.classes`), as the Kaggle
"CK+48" copy of CK+ ships it; ``split-folders`` reads ``<root>/{train,val,test}/<class>/*`` and keeps that split;
``fer2013-csv`` reads the original fer2013.csv (:mod:`fer.data.fer2013`) and keeps its Usage split. File names
``S010_004_00000017.png`` carry subject ``S010`` and sequence ``004``; splits are drawn by subject so frames of one
subject never sit in two splits.

Which files are read is :func:`fer.data.images.list_files` (also rule prepare_data's input list); each is decoded by
:func:`fer.data.images.read_image`, the reader the inference app uses too.

Bad input (see docs/data.md, "Bad input"): each case is either a clear :class:`DataError` naming the file and what
to do, or a logged skip; never a traceback and never a silently wrong label.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fer import CLASSES, IMAGE_SIZE
from fer import files
from fer.data import fer2013, images, preprocess
from fer.data import CKPLUS_HELP, splits
from fer.data.images import shown
from fer.errors import DataError, ImageReadError
from fer.settings import Split

IMAGE_SUFFIXES = images.IMAGE_SUFFIXES
SPLITS = splits.SPLITS
LAYOUTS = ("class-folders", "split-folders", "fer2013-csv")
SUBJECT_RE = re.compile(r"^(?P<subject>S\d+)_(?P<sequence>\d+)(?:_(?P<frame>\d+))?", re.IGNORECASE)

log = logging.getLogger("fer")


@dataclass
class Record:
    path: Path
    label: int
    subject: str
    sequence: str
    subject_from_name: bool
    source: str = "main"
    orig_size: str = ""
    orig_mode: str = ""
    image: np.ndarray | None = field(default=None, repr=False)


def parse_name(path: Path, source: str = "main") -> tuple[str, str, bool]:
    """``(subject, sequence, from_name)``; a name without a CK+ subject id is its own group (named after the
    file, its class folder and, outside the main folder, its source, so that two such files never share one)."""
    m = SUBJECT_RE.match(path.stem)
    if m:
        return m["subject"].upper(), m["sequence"], True
    prefix = "file:" if source == "main" else f"file:{source}:"
    return f"{prefix}{path.parent.name}/{path.name}", path.stem, False


def _read_image(path: Path) -> tuple[np.ndarray, str, str] | None:
    """Decode one image file (:func:`fer.data.images.read_image`, the reader the app uses too) -> (48x48
    uint8, original size, original mode); None (logged) if unusable."""
    try:
        pic = images.read_image(path)
    except ImageReadError as exc:
        log.warning("skipped %s", exc)
        return None
    arr = pic.pixels
    if arr.ndim not in (2, 3) or arr.shape[0] < 8 or arr.shape[1] < 8:
        log.warning("skipped %s: image of shape %s is too small or not 2-D", shown(path), arr.shape)
        return None
    img = preprocess.to_model_image(arr, "RGB", IMAGE_SIZE)
    return img, pic.size, pic.mode


def scan(root: str | Path, source: str = "main", classes=CLASSES) -> list[Record]:
    """Read every usable image below ``root``: the files :func:`fer.data.images.list_files` lists for ``classes``
    (see module doc); every other entry is a logged skip. Raises :class:`DataError`."""
    root = Path(root)
    listing = images.list_files(root, classes)
    for line in listing.skipped:
        log.warning("%s", line)
    for idx, folders in sorted(listing.folders.items()):
        if len(folders) > 1:
            raise DataError(f"two folders name class {classes[idx]!r}: {shown(folders[0])} and {shown(folders[1])}. "
                            "Merge them into one folder.")
    dirs = {idx: folders[0] for idx, folders in listing.folders.items()}
    if not dirs:
        raise DataError(f"no class folders in {shown(root)}. " + CKPLUS_HELP.format(root=root))
    for idx, cls in enumerate(classes):
        if idx not in dirs:
            log.warning("class folder %r is missing in %s: the model will see no %s examples", cls, shown(root), cls)
    records: list[Record] = []
    resized = converted = 0
    # One buffer for the pixels of every candidate file (records hold views into it): a FER2013-sized set is
    # one 80 MB array instead of 35,000 small ones.
    pixels = np.empty((len(listing.used()), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for idx, folder in sorted(dirs.items()):
        kept = 0
        for p in listing.files.get(idx, []):
            got = _read_image(p)
            if got is None:
                continue
            img, size, mode = got
            resized += size != f"{IMAGE_SIZE}x{IMAGE_SIZE}"
            converted += mode != "L"
            subject, sequence, from_name = parse_name(p, source)
            row = len(records)
            pixels[row] = img
            records.append(Record(p, idx, subject, sequence, from_name, source, size, mode, pixels[row]))
            kept += 1
        if kept == 0:
            log.warning("class folder %s holds no usable image", shown(folder))
    if not records:
        raise DataError(f"no usable images in {shown(root)}. " + CKPLUS_HELP.format(root=root))
    if resized:
        log.info("%d images were not %dx%d and were resized (area resampling)", resized, IMAGE_SIZE, IMAGE_SIZE)
    if converted:
        log.info("%d images were not 8-bit grayscale and were converted to it", converted)
    no_subject = [r for r in records if not r.subject_from_name]
    if no_subject:
        log.warning("%d file names carry no CK+ subject id (e.g. %s): each such file is its own group in the "
                    "split, so frames of one person may land in two splits", len(no_subject),
                    shown(no_subject[0].path.name))
    return records


def scan_csv(path, classes) -> list[Record]:
    """The usable rows of a fer2013.csv (:func:`fer.data.fer2013.read`) as records: source = the row's split
    (train/val/test from Usage), file = ``<path>:<line>``, each row its own group (the file names no subject)."""
    rows = fer2013.read(path, classes)
    log.info("%s: %d usable rows; it names no subjects, so each image is its own group", shown(path),
             len(rows.labels))
    return [Record(Path(f"{path}:{line}"), int(label), f"row:{line}", "", False, split, "48x48", "L", rows.images[i])
            for i, (label, split, line) in enumerate(zip(rows.labels.tolist(), rows.splits, rows.lines))]


def drop_duplicates(records: list[Record], classes=CLASSES, conflicts: str = "error") -> list[Record]:
    """Identical pixels twice: same class -> keep the first (logged); different classes -> DataError naming both
    files (``conflicts="error"``: a folder's user deletes the wrong copy), or every copy dropped with a logged
    line (``conflicts="skip"``: the rows of one CSV, e.g. FER2013's blank and repeated frames, cannot be
    fixed by deleting a file)."""
    seen: dict[str, Record] = {}
    kept, conflicting = [], set()
    for r in records:
        digest = hashlib.sha1(r.image.tobytes()).hexdigest()
        first = seen.get(digest)
        if first is None:
            seen[digest] = r
            kept.append((digest, r))
        elif first.label == r.label:
            log.warning("skipped duplicate image %s (same pixels as %s)", shown(r.path), shown(first.path))
        elif conflicts == "skip":
            log.warning("skipped %s and every copy of its pixels: labelled %s there and %s in %s", shown(r.path),
                        classes[r.label], classes[first.label], shown(first.path))
            conflicting.add(digest)
        else:
            raise DataError(f"the same image is labelled {classes[first.label]} ({shown(first.path)}) and "
                            f"{classes[r.label]} ({shown(r.path)}): delete the wrong copy")
    if conflicting:
        log.warning("skipped %d images labelled with two classes (every copy)", len(conflicting))
    return [r for digest, r in kept if digest not in conflicting]


# ---------------------------------------------------------------------------------------------- prepare
def read_layout(root, layout: str, classes, test_root=None) -> list[Record]:
    """Every usable image of ``root`` in ``layout`` (and of ``test_root``, class-folders only), in order: the
    main folder then the test folder (class-folders, sources ``main`` and ``test``), or the dataset's own
    splits train, val, test (sources ``train``, ``val``, ``test``)."""
    if layout == "fer2013-csv":
        return scan_csv(root, classes)
    if layout == "split-folders":
        folders, skipped = images.split_folders(root)
        for line in skipped:
            log.warning("%s", line)
        if "val" not in folders:
            log.info("no val/ folder in %s: validation is drawn from train/ by subject (data.split.train/val)",
                     shown(root))
        return [r for split, folder in folders.items() for r in scan(folder, split, classes)]
    if layout != "class-folders":
        raise ValueError(f"unknown data.layout {layout!r}; expected one of {LAYOUTS}")
    return scan(root, "main", classes) + (scan(test_root, "test", classes) if test_root else [])


def prepare(root, out_tensor, out_manifest, split_cfg: Split, test_root=None, classes=CLASSES,
            layout: str = "class-folders") -> dict:
    """Scan, de-duplicate, split and write ``out_tensor`` (torch file) and ``out_manifest`` (CSV).

    ``classes`` (data.classes) names the labels in order; ``layout`` (data.layout) is how ``root`` holds them.
    With ``test_root`` (data.test_path, class-folders only) or a layout with its own split, the test images are
    given: with folds as well, the folds are drawn over the other images' subjects only and the given test set is
    every fold's extra ``external`` test set (fold -1, :data:`fer.data.splits.EXTERNAL`). A layout's own
    validation split is kept (without folds); where it has none, validation is drawn from train by subject."""
    classes = list(classes)
    records = drop_duplicates(read_layout(root, layout, classes, test_root), classes,
                              conflicts="skip" if layout == "fer2013-csv" else "error")
    own = layout != "class-folders"
    given_test = own or bool(test_root)
    main = [r for r in records if r.source != "test"] if given_test else records
    test = [r for r in records if r.source == "test"] if given_test else []
    if given_test:
        named = {r.subject for r in main if r.subject_from_name} & {r.subject for r in test if r.subject_from_name}
        if named:
            where = f"{root}/train and {root}/test" if own else f"{root} and in the test folder {test_root}"
            raise DataError(f"subjects {sorted(named)[:5]} appear both in {where}: a subject-independent test set "
                            "must hold other subjects")
    if own and not split_cfg.folds:
        val = [r for r in main if r.source == "val"]
        named = {r.subject for r in main if r.subject_from_name and r.source == "train"} & \
            {r.subject for r in val if r.subject_from_name}
        if named:
            raise DataError(f"subjects {sorted(named)[:5]} appear both in {root}/train and {root}/val: a "
                            "subject-independent validation set must hold other subjects")
    records = main + test
    fold_of = None
    if split_cfg.folds:
        _check_enough_subjects(main, split_cfg.folds, root)
        main_folds = splits.kfold_groups([r.subject for r in main], [r.label for r in main], split_cfg.folds,
                                         split_cfg.seed)
        fold_of = np.concatenate([main_folds, np.full(len(test), -1)]).astype(np.int8)
        split = splits.fold_split(fold_of, 0, split_cfg.folds)
    elif own and any(r.source == "val" for r in main):  # the dataset's own train/val/test
        split = np.array([SPLITS.index(r.source) for r in records], dtype=np.int8)
    elif given_test:  # validation drawn from the training images by subject, the test set as given
        cfg = dataclasses.replace(split_cfg, folds=0, test=0.0)
        s_main = splits.assign_splits([r.subject for r in main], [r.label for r in main], cfg)
        split = np.concatenate([s_main, np.full(len(test), 2, dtype=np.int8)])
    else:
        split = splits.assign_splits([r.subject for r in records], [r.label for r in records], split_cfg)
    n_groups = len({r.subject for r in records})
    for i, name in enumerate(SPLITS):
        if not (split == i).any():
            raise DataError(f"the {name} split is empty: {n_groups} subjects (groups of images) are too few for "
                            f"data.split {split_cfg.as_dict()}; add subjects or change the split fractions/folds")
    images = torch.from_numpy(pack_images(records))
    labels = torch.tensor([r.label for r in records], dtype=torch.int64)
    split_t = torch.from_numpy(split.astype(np.int8))
    subjects = [r.subject for r in records]
    splits.check_subject_independent(subjects, split)
    payload = {"images": images, "labels": labels, "split": split_t, "classes": classes, "subjects": subjects,
               "layout": layout}
    if fold_of is not None:
        # cross-validation: the fold of every image (by subject; -1: the given test set); `split` is fold 0's,
        # the others follow (fer.data.splits.fold_split)
        payload["folds"] = torch.from_numpy(fold_of)
        payload["k"] = int(split_cfg.folds)
    files.save_torch(out_tensor, payload)
    with files.atomic_path(out_manifest) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "class", "label", "subject", "sequence", "split", "subject_from_filename",
                    "source", "orig_size", "orig_mode"])
        for r, s in zip(records, split):
            w.writerow([str(r.path), classes[r.label], r.label, r.subject, r.sequence, splits.SPLIT_NAMES[s],
                        int(r.subject_from_name), r.source, r.orig_size, r.orig_mode])
    stats = splits.split_stats(labels.numpy(), split, subjects, classes)
    for s in stats:
        log.info("%-8s: %4d images, %3d subjects, per class %s", s, stats[s]["images"], stats[s]["subjects"],
                 stats[s]["per_class"])
    return stats


def _check_enough_subjects(records: list[Record], folds: int, root) -> None:
    n_groups = len({r.subject for r in records})
    if n_groups < folds:
        raise DataError(f"data.split.folds={folds} but {root} holds only {n_groups} subjects (groups "
                        f"of images): every fold needs its own subjects; use at most {n_groups} folds")


def pack_images(records: list[Record]) -> np.ndarray:
    """The records' images as one (N, 48, 48) uint8 array (a copy; the records' ``image`` views are released)."""
    if not records:
        return np.empty((0, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    out = np.stack([r.image for r in records])
    for r in records:
        r.image = None
    return out


def load_prepared(path) -> dict:
    """The prepared dataset: images (N,48,48) uint8, labels (N,), split (N,) int8, classes (the names of the
    labels, data.classes), subjects; a file that is not one is a :class:`DataError` naming it. Readers of a model
    compare its class list with ``classes`` (:func:`fer.checkpoints.load_checkpoint`)."""
    try:
        ds = files.load_torch(path)
    except Exception as exc:  # truncated, not a torch file, objects weights_only refuses
        raise DataError(f"{path} is damaged or not a prepared dataset ({type(exc).__name__}): delete it and "
                        f"rebuild it (`snakemake --cores all {path}`)") from None
    if not isinstance(ds, dict) or not {"images", "labels", "split"} <= set(ds):
        raise DataError(f"{path} is not a prepared dataset: delete it and rebuild it "
                        f"(`snakemake --cores all {path}`)")
    if not isinstance(ds.get("classes"), list) or len(ds["classes"]) < 2:
        raise DataError(f"{path} names no class list (written by an older version?): delete it and rebuild it "
                        f"(`snakemake --cores all {path}`)")
    return ds


def fold_dataset(ds: dict, fold: int) -> dict:
    """Cross-validation fold ``fold`` of a prepared dataset (:func:`prepare` with ``data.split.folds``): the same
    images with that fold's split (:func:`fer.data.splits.fold_split`)."""
    if "folds" not in ds:
        raise DataError("the prepared dataset has no folds (data.split.folds is 0): prepare it again with folds")
    out = dict(ds)
    out["split"] = torch.from_numpy(splits.fold_split(ds["folds"].numpy(), fold, int(ds["k"])))
    out["fold"] = int(fold)
    splits.check_subject_independent(ds["subjects"], out["split"].numpy())
    return out


def train_val(path) -> tuple[dict, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(dataset, train_x, train_y, val_x, val_y)`` of a prepared dataset, for the training rules;
    :class:`DataError` if the train or validation split is empty."""
    ds = load_prepared(path)
    tx, ty = subset(ds, "train")
    vx, vy = subset(ds, "val")
    if len(tx) == 0 or len(vx) == 0:
        raise DataError(f"{path}: the train and validation splits must not be empty (train {len(tx)}, "
                        f"val {len(vx)}); use more subjects or other split fractions")
    return ds, tx, ty, vx, vy


def subset(ds: dict, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    m = ds["split"] == SPLITS.index(split)
    return ds["images"][m], ds["labels"][m]
