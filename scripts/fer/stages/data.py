"""Rules synthesize_faces (the built-in faces) and prepare_data (image folders -> one tensor file and a
manifest, split by subject)."""
from __future__ import annotations

import json
import logging

from fer.data import datasets, synthetic
from fer.settings import Split, Synthetic

log = logging.getLogger("fer")


def synthesize_faces(*, settings: Synthetic, out_dir) -> dict:
    """Rule synthesize_faces: procedurally drawn 48x48 faces in the CK+ folder layout -> results/synthetic/."""
    log.info("synthetic faces -> %s with %s", out_dir, json.dumps(settings.as_dict(), sort_keys=True))
    # tqdm only when stderr is a terminal (progress=None), so parallel jobs do not garble the console
    stats = synthetic.generate(out_dir, n_subjects=int(settings.subjects), seed=int(settings.seed),
                               frames=int(settings.frames), jitter=float(settings.jitter), progress=None)
    log.info("done: %s", json.dumps(stats))
    return stats


def prepare_data(*, root, test_root, split: Split, out_dataset, out_manifest) -> dict:
    """Rule prepare_data: ``root`` (and an optional separate test folder) -> results/data/dataset.pt +
    manifest.csv, split by subject."""
    log.info("preparing %s%s", root, f" (test set: {test_root})" if test_root else "")
    return datasets.prepare(root, out_dataset, out_manifest, split, test_root=test_root or None)
