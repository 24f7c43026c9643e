"""Cross-validation by subject through the DAG (data.split.folds): every image is predicted exactly once, by a
model that never saw its subject; the aggregated table and the paired comparisons are what their files say.

The DAG test runs tests/config/tiny.yaml + tests/config/tiny_cv.yaml (3 folds; teacher, kd, scratch,
fp16_kd) up to results/cv/comparisons.csv once per session.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from conftest import TINY_CONFIG, TINY_CV_CONFIG, snakemake
from fer.report import crossval

CV_CONFIG = TINY_CV_CONFIG
FOLDS = 3
VARIANTS = ["teacher", "kd", "scratch", "fp16_kd"]


def _cv(wd: Path, *args, **kw):
    return snakemake(wd, *args, "--configfile", TINY_CONFIG, CV_CONFIG, configfile=None, **kw)


@pytest.fixture
def cv_run(tiny_cv_run) -> Path:
    return tiny_cv_run  # conftest: shared with the SLURM suite


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------------------------ the DAG
def test_every_image_is_predicted_once_by_a_model_that_never_saw_its_subject(cv_run):
    ds = torch.load(cv_run / "results/data/dataset.pt", weights_only=True)
    n = len(ds["labels"])
    for v in VARIANTS:
        seen = np.zeros(n, dtype=int)
        for f in range(FOLDS):
            fold_ds = torch.load(cv_run / f"results/folds/{f}/data/dataset.pt", weights_only=True)
            split = fold_ds["split"].numpy()
            trained_on = {s for s, k in zip(fold_ds["subjects"], split) if k in (0, 1)}  # training and selection
            preds = _rows(cv_run / f"results/folds/{f}/predictions/{v}.csv")
            assert preds, (v, f)
            for r in preds:
                i = int(r["index"])
                seen[i] += 1
                assert r["subject"] == ds["subjects"][i] and int(r["label"]) == int(ds["labels"][i])
                assert r["subject"] not in trained_on, f"{v} fold {f} was trained on subject {r['subject']}"
                assert split[i] == 2
            m = json.loads((cv_run / f"results/folds/{f}/metrics/{v}.json").read_text())
            assert m["fold"] == f and m["test_images"] == len(preds)
        assert (seen == 1).all(), f"{v}: images predicted {sorted(set(seen.tolist()))} times"


def test_folds_partition_the_subjects_and_validation_is_the_next_fold(cv_run):
    ds = torch.load(cv_run / "results/data/dataset.pt", weights_only=True)
    folds = ds["folds"].numpy()
    subjects = np.array(ds["subjects"])
    assert set(folds.tolist()) == set(range(FOLDS))
    for s in set(subjects):
        assert len(set(folds[subjects == s].tolist())) == 1, s  # a subject lives in one fold
    for f in range(FOLDS):
        split = torch.load(cv_run / f"results/folds/{f}/data/dataset.pt", weights_only=True)["split"].numpy()
        assert np.array_equal(split == 2, folds == f) and np.array_equal(split == 1, folds == (f + 1) % FOLDS)
        manifest = _rows(cv_run / f"results/folds/{f}/data/manifest.csv")
        assert [r["split"] for r in manifest] == [("train", "val", "test")[s] for s in split]


def test_summary_is_the_mean_over_folds_with_a_t_interval_and_pooled_figures(cv_run):
    summary = pd.read_csv(cv_run / "results/cv/summary.csv").set_index("variant")
    assert list(summary.index) == VARIANTS
    n = len(torch.load(cv_run / "results/data/dataset.pt", weights_only=True)["labels"])
    for v in VARIANTS:
        accs, preds = [], []
        for f in range(FOLDS):
            accs.append(json.loads((cv_run / f"results/folds/{f}/metrics/{v}.json").read_text())["accuracy"])
            preds += _rows(cv_run / f"results/folds/{f}/predictions/{v}.csv")
        r = summary.loc[v]
        half = stats.t.ppf(0.975, FOLDS - 1) * np.std(accs, ddof=1) / math.sqrt(FOLDS)
        assert r["accuracy"] == pytest.approx(np.mean(accs))
        assert (r["accuracy_ci_low"], r["accuracy_ci_high"]) == pytest.approx((np.mean(accs) - half,
                                                                               np.mean(accs) + half))
        assert r["pooled_accuracy"] == pytest.approx(np.mean([p["label"] == p["prediction"] for p in preds]))
        cm = json.loads(r["pooled_confusion_matrix"])
        assert sum(map(sum, cm)) == n == r["test_images"]
        assert r["folds"] == FOLDS and "t-interval over folds" in r["interval"]
        assert f"{FOLDS}-fold" in r["protocol"]


def test_comparisons_are_paired_per_fold_with_interval_test_and_verdict(cv_run):
    comp = pd.read_csv(cv_run / "results/cv/comparisons.csv")
    acc = comp[comp["metric"] == "accuracy"].set_index("comparison")
    assert set(acc.index) == {"teacher - kd", "kd - scratch", "fp16_kd - kd"}
    for name, r in acc.iterrows():
        v, base = name.split(" - ")
        diffs = [json.loads((cv_run / f"results/folds/{f}/metrics/{v}.json").read_text())["accuracy"]
                 - json.loads((cv_run / f"results/folds/{f}/metrics/{base}.json").read_text())["accuracy"]
                 for f in range(FOLDS)]
        assert json.loads(r["per_fold_diff"]) == pytest.approx(diffs, abs=1e-6)
        assert r["mean_diff"] == pytest.approx(np.mean(diffs))
        assert r["ci_low"] <= r["mean_diff"] <= r["ci_high"]
        assert r["verdict"] == crossval.verdict(r["ci_low"], r["ci_high"])
        assert 0 <= r["t_test_p"] <= 1 and 0 <= r["wilcoxon_p"] <= 1
        assert r["seeds"] == 1 and r["noise"].startswith("split noise only"), r["noise"]


def test_with_repeat_seeds_a_comparison_pairs_the_folds_means_over_seeds():
    """Seeds: each fold's figure is the mean over its seeds before the pairing, and the noise column says
    that the interval now holds training noise too."""
    rows = [{"variant": v, "fold": f, "seed": s, "accuracy": acc, "macro_f1": acc, "test_images": 10,
             "test_subjects": 2}
            for f in range(3) for s in (0, 1)
            for v, acc in (("kd", 0.5 + 0.1 * f + 0.02 * s), ("scratch", 0.4 + 0.1 * f + 0.06 * s))]
    comp = crossval.compare(rows, {"kd": "scratch"}).set_index("metric").loc["accuracy"]
    assert json.loads(comp["per_fold_diff"]) == pytest.approx([0.08] * 3)
    assert comp["seeds"] == 2 and comp["noise"].startswith("split and training noise"), comp["noise"]


def test_the_summary_table_of_a_cross_validated_study_carries_the_intervals(cv_run, tmp_path):
    from fer.stages.evaluate import summary

    df = summary(metric_files=[], cv_summary=cv_run / "results/cv/summary.csv", benchmark_files=[], export_files=[],
                 out_csv=tmp_path / "summary.csv")
    assert list(df["variant"]) == VARIANTS
    assert {"accuracy", "accuracy_ci_low", "accuracy_ci_high", "macro_f1_ci_low", "pooled_accuracy"} <= set(df.columns)


def test_changing_the_seed_reruns_training_but_not_the_data(cv_run):
    proc = _cv(cv_run, "results/cv/summary.csv", "-n", "--config", "seed=5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "train_teacher" in proc.stdout and "split_fold" not in proc.stdout and "prepare_data" not in proc.stdout
    proc = _cv(cv_run, "results/cv/summary.csv", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_changing_the_folds_reruns_the_split_and_everything_after_it(cv_run):
    proc = _cv(cv_run, "results/cv/summary.csv", "-n", "--config", "data={split: {folds: 4}}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rule in ("prepare_data", "split_fold", "train_teacher", "cv_summary"):
        assert rule in proc.stdout, rule
    assert "synthesize_faces" not in proc.stdout  # the images themselves do not depend on the folds


def test_repeat_seeds_are_a_wildcard_too(workflow):
    proc = _cv(workflow, "results/cv/summary.csv", "-n", "--config", "seeds=[1,2]")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = dict(line.split()[:2] for line in proc.stdout.splitlines() if line.strip().startswith("train_teacher "))
    assert jobs == {"train_teacher": str(FOLDS * 2)}
    assert "results/folds/2/seed2/weights/teacher.pt" in proc.stdout
    bad = _cv(workflow, "-n", "--config", "seeds=[1,2]", "data={split: {folds: 0}}")
    assert bad.returncode != 0 and "config key seeds" in bad.stdout + bad.stderr


def test_more_folds_than_subjects_is_one_clear_line(workflow):
    proc = _cv(workflow, "results/data/dataset.pt", "--config", "data={split: {folds: 30}}")
    out = (workflow / "results/logs/prepare_data.log").read_text()
    assert proc.returncode != 0 and "data.split.folds=30 but" in out and "at most 24 folds" in out
    assert "Traceback" not in out


# ----------------------------------------------------------------------------------------------- statistics
def test_t_interval_and_paired_comparison_by_hand():
    ci = crossval.t_interval([0.8, 0.9, 1.0])
    half = 4.302652729911275 * 0.1 / math.sqrt(3)  # t(0.975, 2) = 4.3027
    assert ci["mean"] == pytest.approx(0.9) and ci["ci_high"] - ci["mean"] == pytest.approx(half)
    assert crossval.paired([0.1, 0.12, 0.11, 0.09])["verdict"] == "better"
    assert crossval.paired([-0.1, -0.12, -0.11, -0.09])["verdict"] == "worse"
    same = crossval.paired([0.0, 0.0, 0.0])
    assert same["verdict"] == "no detectable difference" and same["t_test_p"] == 1.0
    assert crossval.paired([0.1, -0.1, 0.05])["verdict"] == "no detectable difference"
    assert crossval.paired([0.2])["verdict"] == "too few folds"


def test_out_of_fold_check_refuses_a_duplicate_or_a_leak():
    preds = pd.DataFrame({"variant": "kd", "seed": 0, "index": [0, 1, 2, 3], "fold": [0, 0, 1, 1],
                          "label": 0, "prediction": 0})
    crossval.check_out_of_fold(preds, [0, 0, 1, 1], 4)
    with pytest.raises(ValueError, match="not predicted exactly once"):
        crossval.check_out_of_fold(preds.assign(index=[0, 0, 2, 3]), [0, 0, 1, 1], 4)
    with pytest.raises(ValueError, match="another fold's model"):
        crossval.check_out_of_fold(preds, [0, 1, 1, 1], 4)


# ------------------------------------------------------------------------------ a separate test folder
def test_a_separate_test_folder_is_every_folds_external_test_set(tmp_path):
    """data.test_path with folds: the folds are drawn over data.path's subjects only; the separate folder's
    images are in no fold and are the "external" split of every fold; each fold's model is evaluated on them
    too (external_* in its metrics, mean and interval over folds in the table); the out-of-fold check ignores
    them."""
    from fer.data import datasets, splits, synthetic
    from fer.models import nets
    from fer import checkpoints
    from fer.settings import Split
    from fer.stages.evaluate import evaluate

    synthetic.generate(tmp_path / "main", n_subjects=9, seed=1, progress=False)
    synthetic.generate(tmp_path / "ext", n_subjects=3, seed=2, first_subject=50, progress=False)
    split = Split(train=0.7, val=0.15, test=0.15, seed=0, folds=3)
    datasets.prepare(tmp_path / "main", tmp_path / "ds.pt", tmp_path / "m.csv", split, test_root=tmp_path / "ext")
    ds = datasets.load_prepared(tmp_path / "ds.pt")
    ext = np.array([s.startswith("S05") for s in ds["subjects"]])
    assert ext.any() and (ds["folds"].numpy()[ext] == -1).all() and (ds["folds"].numpy()[~ext] >= 0).all()
    assert set(ds["folds"].numpy()[~ext]) == {0, 1, 2}
    rows = []
    for fold in range(FOLDS):
        fd = datasets.fold_dataset(ds, fold)
        sp = fd["split"].numpy()
        assert (sp[ext] == splits.EXTERNAL).all() and not (sp[~ext] == splits.EXTERNAL).any()
        torch.save(fd, tmp_path / f"fold{fold}.pt")
        model = nets.FERNet(channels=[4, 8, 8], hidden=16, dropout=0.1).eval()
        checkpoints.save_checkpoint(tmp_path / f"kd{fold}.pt", "kd", nets.current_arch(model), model.state_dict(),
                                    {"seed": 0})
        out = evaluate(variant="kd", weights=tmp_path / f"kd{fold}.pt", dataset=tmp_path / f"fold{fold}.pt", device="cpu",
                       out_metrics=tmp_path / f"m{fold}.json", out_predictions=tmp_path / f"p{fold}.csv",
                       out_confusion=tmp_path / f"c{fold}.png")
        assert out["external_images"] == int(ext.sum()) and out["test_images"] == int((sp == 2).sum())
        assert 0.0 <= out["external_accuracy"] <= 1.0
        p = pd.read_csv(tmp_path / f"p{fold}.csv").assign(variant="kd", fold=fold, seed=0)
        assert not ext[p["index"].to_numpy()].any()  # the fold's own test subjects only
        rows.append((out, p))
    preds = pd.concat([p for _, p in rows])
    crossval.check_out_of_fold(preds, ds["folds"].numpy(), len(ds["labels"]))
    table = crossval.summarize([r for r, _ in rows], preds, ["kd"], FOLDS, [])
    r = table.iloc[0]
    assert r["external_accuracy"] == pytest.approx(np.mean([o["external_accuracy"] for o, _ in rows]))
    assert r["external_images"] == int(ext.sum()) and "external_accuracy_ci_low" in table
    manifest = pd.read_csv(tmp_path / "m.csv")
    assert set(manifest.loc[manifest["source"] == "test", "split"]) == {"external"}
