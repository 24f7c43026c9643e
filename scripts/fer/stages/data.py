"""Rules synthesize_faces (the built-in faces) and prepare_data (image folders -> one tensor file and a
manifest, split by subject)."""
from __future__ import annotations

import csv
import json
import logging

import numpy as np

from fer import files
from fer.data import datasets, splits, synthetic
from fer.errors import DataError
from fer.settings import Split, Synthetic

log = logging.getLogger("fer")


def synthesize_faces(*, settings: Synthetic, classes: list, layout: str, out_dir) -> dict:
    """Rule synthesize_faces: procedurally drawn 48x48 faces of ``classes`` (data.classes) in ``layout``
    (data.layout) -> results/synthetic/."""
    log.info("synthetic faces -> %s with %s, classes %s, layout %s", out_dir,
             json.dumps(settings.as_dict(), sort_keys=True), ", ".join(classes), layout)
    # tqdm only when stderr is a terminal (progress=None), so parallel jobs do not garble the console
    stats = synthetic.generate(out_dir, n_subjects=int(settings.subjects), seed=int(settings.seed),
                               frames=int(settings.frames), jitter=float(settings.jitter), classes=classes,
                               layout=layout, progress=None)
    log.info("done: %s", json.dumps(stats))
    return stats


def prepare_data(*, root, test_root, split: Split, classes: list, layout: str, out_dataset, out_manifest) -> dict:
    """Rule prepare_data: ``root`` (and an optional separate test folder) in ``layout`` (data.layout), labelled
    by ``classes`` (data.classes) -> results/data/dataset.pt + manifest.csv, split by subject."""
    log.info("preparing %s (%s; classes %s)%s", root, layout, ", ".join(classes),
             f" (test set: {test_root})" if test_root else "")
    return datasets.prepare(root, out_dataset, out_manifest, split, test_root=test_root or None, classes=classes,
                            layout=layout)


def split_fold(*, fold: int, dataset, manifest, out_dataset, out_manifest) -> dict:
    """Rule split_fold: the prepared images with cross-validation fold ``fold``'s split (test: the fold's own
    subjects; validation: the next fold's; train: the rest) -> results/folds/<fold>/data/. A class that the
    fold's test subjects do not show is a logged warning (its recall is then undefined in that fold)."""
    ds = datasets.fold_dataset(datasets.load_prepared(dataset), fold)
    split = ds["split"].numpy()
    labels = ds["labels"].numpy()
    for name, idx in (("test", 2), ("validation", 1)):
        missing = [c for i, c in enumerate(ds["classes"]) if not ((split == idx) & (labels == i)).any()]
        if missing:
            log.warning("fold %d: the %s subjects show no %s (the %s split has %d images)", fold, name,
                        ", ".join(missing), name, int((split == idx).sum()))
    files.save_torch(out_dataset, ds)
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if len(rows) != len(split):
        raise DataError(f"{manifest} lists {len(rows)} images but {dataset} holds {len(split)}: "
                                 "rerun prepare_data")
    with files.atomic_path(out_manifest) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[*rows[0], "fold"])
        w.writeheader()
        for r, s, f in zip(rows, split, ds["folds"].tolist()):
            w.writerow({**r, "split": splits.SPLIT_NAMES[s], "fold": f})
    stats = splits.split_stats(labels, split, ds["subjects"], ds["classes"])
    for s in stats:
        log.info("fold %d %-5s: %4d images, %3d subjects", fold, s, stats[s]["images"], stats[s]["subjects"])
    return {"fold": fold, "sizes": np.bincount(split, minlength=3).tolist()}
