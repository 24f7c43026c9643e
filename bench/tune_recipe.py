"""Recipe tuning by cross-validation by subject, without ever looking at a test fold.

    .venv/bin/python bench/tune_recipe.py --data ../shared/datasets/ckplus-dev --config recipe.yaml \
        [--folds 0,1,2,...] [--variants teacher,kd,scratch] [--threads 2] [--out tune.csv] [--test] \
        [--student-seeds 0,1,2] [--teachers RUN_DIR]

The data folder is prepared once (as ``prepare_data`` does, with ``data.split.folds`` of the config) and every
asked fold is trained in this process with the config's recipe (config/config.yaml with ``--config`` merged
over it, validated like a workflow run). For fold f the models train on the folds other than f and f + 1.

**The tuning score never uses the test fold f.** It is the accuracy on fold f + 1 (the validation subjects) of
the model of the *last* epoch: no epoch is picked on those subjects, so the score is an unbiased estimate of
accuracy on new people, and comparing recipes by its mean over folds (with a 95% t-interval) is a
cross-validated comparison. The workflow itself picks the best validation epoch (``best_val_acc``, printed
too: it is optimistic by the max over epochs). ``--test`` also prints the test fold's accuracy of the
best-epoch model: use it only once, for the final before/after report, never to choose a recipe.

Training noise: ``--student-seeds`` trains every student variant once per seed (the teacher with the config's
``seed``); ``--teachers RUN_DIR`` distils from the teachers of a workflow run instead of training them here
(``RUN_DIR/results/folds/<f>/weights/teacher.pt``, e.g. bench/cv_study.py's workdir; refused when that run's
fold holds other images). A student trained here with the run's seed equals the run's own (``fit()`` seeds
every generator it draws from).

Columns: fold, variant, seed, val_last (the tuning score), val_last_flip (the same with the horizontal-flip
test-time average), best_epoch, best_val, test, test_flip (with ``--test``), seconds.
"""
from __future__ import annotations

import argparse
import csv
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from fer import config as fer_config
from fer.data import datasets
from fer.models import nets, training
from fer.report import crossval
from fer.settings import KD, Arch, Augment, Split, TrainHP
from fer.stages.train import frozen_teacher


def accuracy(model, x, y, flip: bool) -> float:
    logits = training.predict_logits(model, x)
    if flip:
        logits = (logits.softmax(1) + training.predict_logits(model, x.flip(-1)).softmax(1))
    return float((logits.argmax(1) == y).float().mean())


def _cache_path(cache_dir: Path, cfg: dict, fold: int, variant: str, ds) -> Path | None:
    """Where a trained teacher of this recipe and fold is kept (students are not cached)."""
    if variant != "teacher":
        return None
    key = training.fingerprint({"models": cfg["models"]["teacher"], "train": cfg["train"]["teacher"],
                                "augment": cfg["augment"], "seed": cfg["seed"], "precision": cfg["train"]["precision"],
                                "split": cfg["data"]["split"], "fold": fold, "n": len(ds["labels"]),
                                "subjects": sorted(set(ds["subjects"]))})
    return Path(cache_dir, f"teacher_{key}.pt")


def _run_teacher(run_dir: Path, fold: int, fd: dict, tx):
    """The teacher of ``fold`` from a workflow run, checked to have trained on this fold's training images."""
    folder = Path(run_dir, "results", "folds", str(fold))
    run_data = folder / "data" / "dataset.pt"
    rx, _ = datasets.subset(datasets.load_prepared(run_data), "train")
    if rx.shape != tx.shape or not torch.equal(rx, tx):
        raise SystemExit(f"--teachers: {run_data} holds other training images than fold {fold} here "
                         "(another data folder or data.split?)")
    return frozen_teacher(folder / "weights" / "teacher.pt", fd["classes"], run_data)  # as the KD stage loads it


def run_fold(ds, fold: int, cfg: dict, variants: list[str], want_test: bool, cache_dir: Path | None,
             student_seeds: list[int], teachers: Path | None) -> list[dict]:
    fd = datasets.fold_dataset(ds, fold)
    tx, ty = datasets.subset(fd, "train")
    vx, vy = datasets.subset(fd, "val")
    ex, ey = datasets.subset(fd, "test")
    augment = Augment.of(cfg["augment"])
    device = training.resolve_device(cfg["train"]["device"])
    rows = []
    teacher = _run_teacher(teachers, fold, fd, tx) if teachers else None
    runs = [(v, s) for v in variants for s in ([int(cfg["seed"])] if v == "teacher" else student_seeds)]
    for variant, seed in runs:
        kind = "teacher" if variant == "teacher" else "student"
        hp = TrainHP.of(cfg["train"][kind])
        arch = Arch.of(cfg["models"][kind])
        training.set_seed(seed)
        model = nets.FERNet(channels=arch.channels, hidden=arch.hidden, dropout=arch.dropout)
        kd = KD.of(cfg["kd"]) if variant == "kd" else None
        if variant == "kd" and teacher is None:
            raise SystemExit("--variants: kd needs teacher before it (or --teachers)")
        t0 = time.perf_counter()
        last = {}
        cached = _cache_path(cache_dir, cfg, fold, variant, ds) if cache_dir else None
        if cached is not None and cached.is_file():  # the same teacher recipe on the same fold: trained before
            saved = torch.load(cached, weights_only=True)
            model.load_state_dict(saved["state"])
            model.eval()
            rows.append(saved["row"])
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in saved["row"].items())
                  + " (cached)", flush=True)
            teacher = model
            for p in teacher.parameters():
                p.requires_grad_(False)
            continue

        def on_epoch(m, epoch, _last=last):  # the last epoch's weights, before fit() restores the best ones
            if epoch == hp.epochs:
                _last["val"] = accuracy(m, vx, vy, flip=False)
                _last["val_flip"] = accuracy(m, vx, vy, flip=True)

        result = training.fit(model, tx, ty, vx, vy, hp=hp, augment_cfg=augment, seed=seed,
                              teacher=teacher if kd else None, kd=kd, checkpoint=None,
                              desc=f"fold {fold} {variant}", data_key="", progress=False, on_epoch=on_epoch,
                              precision=training.resolve_precision(cfg["train"]["precision"], device),
                              device=device)
        row = {"fold": fold, "variant": variant, "seed": seed, "val_last": last["val"],
               "val_last_flip": last["val_flip"], "best_epoch": result["best_epoch"],
               "best_val": result["best_val_acc"], "seconds": round(time.perf_counter() - t0, 1)}
        if want_test:
            row["test"] = accuracy(model, ex, ey, flip=False)
            row["test_flip"] = accuracy(model, ex, ey, flip=True)
        rows.append(row)
        if cached is not None:
            torch.save({"state": model.state_dict(), "row": row}, cached)
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
        if variant == "teacher":
            teacher = model
            for p in teacher.parameters():
                p.requires_grad_(False)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="class-folder dataset (e.g. ../shared/datasets/ckplus-dev)")
    ap.add_argument("--config", help="override file merged over config/config.yaml (as --configfile)")
    ap.add_argument("--folds", help="comma-separated folds (default: all)")
    ap.add_argument("--variants", default="teacher,kd,scratch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--test", action="store_true", help="also the test fold (final report only, never to tune)")
    ap.add_argument("--out", help="CSV of the per-fold rows")
    ap.add_argument("--cache", help="folder keeping trained teachers per recipe and fold (reused by KD-only tries)")
    ap.add_argument("--student-seeds", help="comma-separated training seeds of the students (default: the config's)")
    ap.add_argument("--teachers", help="a workflow run's folder: distil from its fold teachers (not trained here)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    over = yaml.safe_load(Path(args.config).read_text()) if args.config else {}
    cfg = fer_config.load(fer_config.merge(over, {"data": {"path": args.data}}))
    training.set_threads(args.threads)
    cache_dir = Path(args.cache) if args.cache else None
    if cache_dir:
        cache_dir.mkdir(parents=True, exist_ok=True)
    split = Split.of(cfg["data"]["split"])
    if split.folds < 3:
        raise SystemExit("tune_recipe needs data.split.folds >= 3")
    with tempfile.TemporaryDirectory() as tmp:
        datasets.prepare(args.data, Path(tmp, "dataset.pt"), Path(tmp, "manifest.csv"), split)
        ds = datasets.load_prepared(Path(tmp, "dataset.pt"))
    folds = [int(f) for f in args.folds.split(",")] if args.folds else list(range(split.folds))
    variants = args.variants.split(",")
    student_seeds = [int(x) for x in args.student_seeds.split(",")] if args.student_seeds else [int(cfg["seed"])]
    teachers = Path(args.teachers) if args.teachers else None
    if teachers and "teacher" in variants:
        raise SystemExit("--teachers: the teachers come from that run; leave teacher out of --variants")
    print(f"# {args.config or 'config/config.yaml'}: {len(ds['labels'])} images, "
          f"{len(set(ds['subjects']))} subjects, {split.folds} folds, folds run {folds}", flush=True)
    rows = []
    for f in folds:
        rows += run_fold(ds, f, cfg, variants, args.test, cache_dir, student_seeds, teachers)
    if args.out:
        with open(args.out, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    cols = ["val_last", "val_last_flip", "best_val"] + (["test", "test_flip"] if args.test else [])
    for v, s in sorted({(r["variant"], r.get("seed", cfg["seed"])) for r in rows}):
        mine = [r for r in rows if r["variant"] == v and r.get("seed", cfg["seed"]) == s]
        parts = []
        for c in cols:
            ci = crossval.t_interval([r[c] for r in mine])
            parts.append(f"{c} {100 * ci['mean']:.1f} [{100 * ci['ci_low']:.1f}, {100 * ci['ci_high']:.1f}]")
        print(f"# {v:8s} seed {s} over {len(mine)} folds: " + "  ".join(parts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
