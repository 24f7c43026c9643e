"""The real Snakefile: lint, dry runs, the data rule on bad input, and the whole tiny synthetic DAG.

The end-to-end checks read the outputs of the session fixture ``tiny_run`` (tests/config/tiny.yaml run once
per session). They assert on what the config asks for (the variants found in results/metrics/ and the
summary), not on a fixed number of rules, since compressed variants and benchmarks add to the DAG.
"""
from __future__ import annotations

import csv
import json
import shutil
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import snakemake
from fer import checkpoints
from fer import CLASSES
from fer import variants
from test_data import class_value, face, make_folder, write_image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SUMMARY_COLUMNS = ["variant", "method", "setting", "params", "macs", "size_bytes", "accuracy", "macro_f1"]


def _out(proc) -> str:
    return proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------- lint and dry runs
def test_lint_is_clean(workflow):
    proc = snakemake(workflow, "--lint", configfile="config/demo.yaml")
    assert proc.returncode == 0, _out(proc)[-4000:]
    assert "Congratulations, your workflow is in a good condition" in _out(proc)


def test_dry_run_demo(workflow):
    proc = snakemake(workflow, "-n", configfile="config/demo.yaml")
    assert proc.returncode == 0, _out(proc)[-4000:]
    for rule in ("synthesize_faces", "prepare_data", "train_teacher", "train_student_kd", "summary"):
        assert rule in proc.stdout, rule


def test_dry_run_default_config_with_and_without_data(workflow):
    make_folder(workflow / "ck+", subjects=range(1, 13))
    proc = snakemake(workflow, "-n", configfile=None)  # config/config.yaml: data.path ck+
    assert proc.returncode == 0, _out(proc)[-4000:]
    assert "prepare_data" in proc.stdout and "synthesize_faces" not in proc.stdout

    shutil.rmtree(workflow / "ck+")
    proc = snakemake(workflow, "-n", configfile=None)
    out = _out(proc)
    assert proc.returncode != 0
    assert "data.path" in out and "ck+" in out and "does not exist" in out
    assert "CK+" in out and "make demo" in out and "config/demo.yaml" in out
    assert "Traceback" not in out


def test_prepare_rule_on_empty_bad_and_conflicting_data(workflow):
    """Through the real rule: an empty ck+/ fails with help, bad files are logged skips, a cross-class
    duplicate fails naming both files; never a traceback in the log."""
    target = "results/data/manifest.csv"
    log = workflow / "results" / "logs" / "prepare_data.log"

    proc = snakemake(workflow, target, configfile=None)  # ck+/ holds only its README
    assert proc.returncode != 0
    text = log.read_text()
    assert "no class folders in ck+" in text and "make demo" in text and "ck+/README.md" in text
    assert "Traceback" not in text and "unexpected error" not in text

    ck = workflow / "ck+"
    counts = make_folder(ck, subjects=range(1, 16))
    (ck / "happy" / "S099_001_00000001.png").write_bytes(b"")
    (ck / "fear" / "S099_002_00000001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (ck / "fear" / "notes.txt").write_text("x")
    write_image(ck / "Neutral" / "S099_003_00000001.png", face(5))
    write_image(ck / "stray.png", face(5))
    proc = snakemake(workflow, target, configfile=None)
    assert proc.returncode == 0, _out(proc)[-4000:]
    text = log.read_text()
    for msg in ("skipped empty (0-byte) file", "skipped unreadable image", "skipped non-image file",
                "skipped unknown folder", "skipped stray file"):
        assert msg in text, msg
    with open(workflow / target, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == sum(counts.values())
    assert all(Path(r["file"]).parent.name == r["class"] for r in rows)

    a = ck / "anger" / "S020_001_00000001.png"
    write_image(a, face(class_value("anger")))
    shutil.copy(a, ck / "surprise" / "S021_001_00000001.png")
    proc = snakemake(workflow, target, configfile=None)
    assert proc.returncode != 0
    text = log.read_text()
    assert "labelled anger" in text and "S021_001_00000001.png" in text and "delete the wrong copy" in text
    assert "Traceback" not in text and "unexpected error" not in text


# ------------------------------------------------------------------------------------------ end to end
def _variants(wd: Path) -> list[str]:
    return sorted(p.stem for p in (wd / "results" / "metrics").glob("*.json"))


def _is_png(path: Path) -> bool:
    if not path.is_file() or path.read_bytes()[:8] != PNG_SIGNATURE:
        return False
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        return im.width > 50 and im.height > 50


def test_tiny_run_summary(tiny_run):
    df = pd.read_csv(tiny_run / "results" / "summary.csv")
    for c in SUMMARY_COLUMNS:
        assert c in df.columns, c
    found = _variants(tiny_run)
    assert {"teacher", "kd", "scratch"} <= set(found)
    assert sorted(df["variant"].unique()) == found  # one variant per metrics file, none missing
    for v, rows in df.groupby("variant"):
        for c in SUMMARY_COLUMNS[1:]:  # benchmark rows repeat the variant's own columns unchanged
            assert rows[c].nunique(dropna=False) == 1, (v, c)
        assert rows["method"].iloc[0] == variants.describe(v)["method"]
    per = df.drop_duplicates("variant").set_index("variant")
    assert ((per["accuracy"] >= 0) & (per["accuracy"] <= 1)).all()
    assert ((per["macro_f1"] >= 0) & (per["macro_f1"] <= 1)).all()
    assert (per["params"] > 0).all() and (per["macs"] > 0).all() and (per["size_bytes"] > 0).all()
    assert per.loc["teacher", "params"] > per.loc["kd", "params"] == per.loc["scratch", "params"]
    assert per.loc["teacher", "macs"] > per.loc["kd", "macs"]


def _manifest(wd):
    with open(wd / "results" / "data" / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_tiny_run_metrics(tiny_run):
    rows = _manifest(tiny_run)
    n_test = sum(r["split"] == "test" for r in rows)
    assert n_test > 0
    for v in _variants(tiny_run):
        m = json.loads((tiny_run / "results" / "metrics" / f"{v}.json").read_text())
        assert m["variant"] == v
        assert 0 <= m["accuracy"] <= 1 and 0 <= m["macro_f1"] <= 1
        assert set(m["per_class_recall"]) == set(CLASSES)
        cm = m["confusion_matrix"]
        assert len(cm) == 7 and all(len(r) == 7 for r in cm)
        assert sum(map(sum, cm)) == n_test == m["test_images"]
        assert sum(cm[i][i] for i in range(7)) / n_test == pytest.approx(m["accuracy"])
        test_counts = [sum(r["split"] == "test" and r["class"] == c for r in rows) for c in CLASSES]
        assert [sum(r) for r in cm] == test_counts  # rows are the true classes


def test_tiny_run_data_and_weights(tiny_run):
    rows = _manifest(tiny_run)
    where = defaultdict(set)
    for r in rows:
        where[r["subject"]].add(r["split"])
    assert all(len(s) == 1 for s in where.values())
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    ds = torch.load(tiny_run / "results" / "data" / "dataset.pt", weights_only=True)
    assert ds["images"].dtype == torch.uint8 and len(ds["images"]) == len(rows)
    assert [CLASSES[i] for i in ds["labels"].tolist()] == [r["class"] for r in rows]

    x = ds["images"][:4]
    for v in _variants(tiny_run):
        path = tiny_run / "weights" / f"{v}.pt"
        ck = torch.load(path, weights_only=True)
        assert ck["variant"] == v and "state_dict" in ck and "arch" in ck
        from fer.models import training

        assert training.predict_logits(checkpoints.load_model(path), x).shape == (4, 7)
    assert not list((tiny_run / "results" / "checkpoints").glob("*.pt"))  # removed after a complete run


def test_tiny_run_plots_and_logs(tiny_run):
    res = tiny_run / "results"
    for v in variants.FLOAT_BASE:
        assert _is_png(res / "plots" / "training" / f"{v}.png"), v
        hist = list(csv.DictReader(open(res / "training" / f"{v}.csv")))
        assert [int(h["epoch"]) for h in hist] == [1, 2]  # tiny.yaml: 2 epochs
    for v in _variants(tiny_run):
        assert _is_png(res / "plots" / "confusion" / f"{v}.png"), v
    logs = res / "logs"
    names = ["prepare_data", "train_teacher", "train_student_kd", "train_student_scratch", "summary",
             *[f"evaluate_{v}" for v in _variants(tiny_run)]]
    for name in names:
        log = logs / f"{name}.log"
        assert log.is_file() and log.stat().st_size > 0, name
        assert "Traceback" not in log.read_text(), name
    assert "subjects, per class" in (logs / "prepare_data.log").read_text()
    assert "best validation accuracy" in (logs / "train_student_kd.log").read_text()
    # the KD fine-tunes (pruning, budget pruning, QAT) read the teacher logits the KD student's job recorded,
    # in other processes, and every check of them against the teacher held
    rec = torch.load(res / "training" / "teacher_logits.pt", weights_only=True)
    n_train = int((torch.load(res / "data" / "dataset.pt", weights_only=True)["split"] == 0).sum())
    assert rec["logits"].shape == (2, n_train, 7)  # 2 epochs, every training image, 7 classes
    for name in ("prune_student_medium", "prune_budget_macs200k", "quantize_student_4"):
        text = (logs / f"{name}.log").read_text()
        assert "recorded by an earlier KD run of the same batch stream" in text, name
        assert "differ from the teacher's" not in text and "another batch stream" not in text, name
