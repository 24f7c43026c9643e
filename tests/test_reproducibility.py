"""Reproducibility: two runs of the tiny DAG from scratch give the same results, and results/provenance.json
says where every output came from.

Run A is the session's ``tiny_run`` (the whole DAG). Run B starts from an empty copy of the workflow and builds
every variant's metrics (data, teacher, students, pruned and quantized variants, evaluation): everything
that does not depend on the machine's speed. Compared:

* the prepared data set (tensors) and its manifest,
* every variant's weights, by a hash of the state_dict tensors (fer.provenance.state_dict_sha256; the file
  bytes are compared too, for information, since torch.save need not be byte-stable),
* every variant's metrics JSON (accuracy, macro-F1, per-class figures, confusion matrix, size, MACs) and
  training history,

all without the machine-dependent fields (latency, throughput, wall-clock seconds), which are listed in
:data:`MACHINE_DEPENDENT` and never compared.
"""
from __future__ import annotations

import csv
import json
import re
from importlib import metadata
from pathlib import Path

import pytest
import torch

from conftest import copy_workflow, snakemake
from fer.report import provenance

# Keys whose values depend on the machine (speed, load, clock), not on the config and code.
MACHINE_DEPENDENT = re.compile(r"latency|_ms$|^ms_|seconds|time|throughput|per_s|fps|machine|host|cpu|recorded"
                               r"|created", re.IGNORECASE)


def without_machine_dependent(obj):
    """``obj`` without the keys matching :data:`MACHINE_DEPENDENT` (recursively)."""
    if isinstance(obj, dict):
        return {k: without_machine_dependent(v) for k, v in obj.items() if not MACHINE_DEPENDENT.search(str(k))}
    if isinstance(obj, list):
        return [without_machine_dependent(v) for v in obj]
    return obj


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [without_machine_dependent(r) for r in csv.DictReader(fh)]


# Run B rebuilds the variants whose training differs in kind (cross-entropy, KD, QAT after PTQ), not all of them:
# the others run the same code (scratch is kd's rule without the teacher input, the pruning fine-tune is KD's
# fit on a narrower net, PTQ is the QAT rule's first step), and the suite must stay short.
REPEATED = ("teacher", "kd", "ptq_kd_4")


def _variants(run: Path) -> list[str]:
    return sorted(p.stem for p in (run / "results" / "metrics").glob("*.json") if p.stem in REPEATED)


@pytest.fixture(scope="module")
def second_run(tiny_run, tmp_path_factory) -> Path:
    """Run B: the metrics of one variant of every kind (:data:`REPEATED`), from scratch, in a fresh copy."""
    wd = copy_workflow(tmp_path_factory.mktemp("repro") / "wf")
    targets = [f"results/metrics/{v}.json" for v in _variants(tiny_run)]
    assert set(_variants(tiny_run)) == set(REPEATED), "the tiny run lacks a variant kind that run B repeats"
    snakemake(wd, *targets, check=True)
    return wd


def test_same_data(tiny_run, second_run):
    a = torch.load(tiny_run / "results/data/dataset.pt", weights_only=True)
    b = torch.load(second_run / "results/data/dataset.pt", weights_only=True)
    assert provenance.tensors_sha256(a) == provenance.tensors_sha256(b)
    assert (tiny_run / "results/data/manifest.csv").read_text() == (second_run / "results/data/manifest.csv").read_text()


def test_same_weights(tiny_run, second_run):
    variants = _variants(tiny_run)
    assert {"teacher", "kd", "ptq_kd_4"} <= set(variants)
    differ, bytes_differ = [], []
    for v in variants:
        wa, wb = tiny_run / "weights" / f"{v}.pt", second_run / "weights" / f"{v}.pt"
        if provenance.state_dict_sha256(wa) != provenance.state_dict_sha256(wb):
            differ.append(v)
        if provenance.file_sha256(wa) != provenance.file_sha256(wb):
            bytes_differ.append(v)
    assert differ == [], f"weights differ between two runs of the same config: {differ}"
    print(f"state_dict hashes equal for {len(variants)} variants; file bytes differ for {bytes_differ or 'none'}")


def test_same_metrics(tiny_run, second_run):
    for v in _variants(tiny_run):
        a = json.loads((tiny_run / "results/metrics" / f"{v}.json").read_text())
        b = json.loads((second_run / "results/metrics" / f"{v}.json").read_text())
        assert "accuracy" in a and "macro_f1" in a and "confusion_matrix" in a
        assert without_machine_dependent(a) == without_machine_dependent(b), v


def test_same_training_histories(tiny_run, second_run):
    histories = sorted(h for h in (tiny_run / "results" / "training").glob("*.csv") if h.stem in REPEATED)
    assert [h.stem for h in histories] == ["kd", "teacher"]
    for h in histories:
        a, b = _csv_rows(h), _csv_rows(second_run / "results" / "training" / h.name)
        assert a == b, h.name
        assert a and "seconds" not in a[0] and "val_acc" in a[0]


# ------------------------------------------------------------------------------------------ provenance
def test_provenance_records_every_output(tiny_run):
    doc = json.loads((tiny_run / "results/provenance.json").read_text())
    outputs, envs = doc["outputs"], doc["environments"]
    assert doc["config"]["data"]["source"] == "synthetic" and doc["config"]["train"]["teacher"]["epochs"] >= 1
    for v in _variants(tiny_run):
        for f in (f"weights/{v}.pt", f"results/metrics/{v}.json"):
            assert f in outputs, f
            entry = outputs[f]
            assert entry["rule"] and not entry.get("stale"), (f, entry)
            assert entry["sha256"] == provenance.file_sha256(tiny_run / f)
            env = envs[entry["environment"]]
            assert env["packages"]["torch"] == metadata.version("torch")
            code = env["code"]
            assert re.fullmatch(r"[0-9a-f]{64}", code["workflow_sha256"])
            assert code["git_commit"] is None  # the test copy is not a git checkout: the file hash identifies it
    teacher = outputs["weights/teacher.pt"]
    assert teacher["rule"] == "train_teacher"
    assert teacher["config"]["hp"]["epochs"] == doc["config"]["train"]["teacher"]["epochs"]
    assert teacher["config"]["arch"] == doc["config"]["models"]["teacher"]
    assert teacher["content_sha256"] == provenance.state_dict_sha256(tiny_run / "weights/teacher.pt")
    # the walk reaches the data preparation behind every model
    assert outputs["results/data/dataset.pt"]["rule"] == "prepare_data"
    assert outputs["results/data/dataset.pt"]["config"]["split"] == doc["config"]["data"]["split"]
    assert "machine_dependent" in doc


def test_provenance_job_records_agree_between_runs(tiny_run, second_run):
    """The job records of run B (the rules it ran) match run A's: same params, code, packages and results."""
    a = provenance.load_job_records(tiny_run / provenance.JOBS_DIR)
    b = provenance.load_job_records(second_run / provenance.JOBS_DIR)
    weights = [f for f in b if f.startswith("weights/")]
    assert weights
    for f in weights + [f for f in b if f.startswith("results/metrics/")]:
        ra, rb = a[f], b[f]
        assert ra["rule"] == rb["rule"] and ra["params"] == rb["params"], f
        assert ra["environment"]["code"] == rb["environment"]["code"], \
            f"{f}: the workflow files differ between the two copies (edited while the tests ran?)"
        assert ra["environment"]["packages"] == rb["environment"]["packages"], f
        if f.endswith(".pt"):
            assert ra["output"][f]["content_sha256"] == rb["output"][f]["content_sha256"], f


def test_code_version_in_git_and_outside(tmp_path):
    """In a git checkout: commit and dirty flag; outside: only the hash of the workflow files."""
    import shutil
    import subprocess

    wd = copy_workflow(tmp_path / "wf")
    outside = provenance.code_version(wd)
    assert outside["git_commit"] is None and outside["git_dirty"] is None
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(git + ["init", "-q"], cwd=wd, check=True)
    subprocess.run(git + ["add", "Snakefile", "rules", "scripts", "envs", "config"], cwd=wd, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "x"], cwd=wd, check=True)
    provenance.code_version.cache_clear()
    clean = provenance.code_version(wd)
    assert re.fullmatch(r"[0-9a-f]{40}", clean["git_commit"]) and clean["git_dirty"] is False
    assert clean["workflow_sha256"] == outside["workflow_sha256"]
    (wd / "rules" / "data.smk").write_text((wd / "rules" / "data.smk").read_text() + "\n# edited\n")
    provenance.code_version.cache_clear()
    dirty = provenance.code_version(wd)
    assert dirty["git_commit"] == clean["git_commit"] and dirty["git_dirty"] is True
    assert dirty["workflow_sha256"] != clean["workflow_sha256"]
    provenance.code_version.cache_clear()


def test_collect_walks_job_records_and_flags_changed_files(tmp_path, monkeypatch):
    """fer.provenance.collect without Snakemake: fake job records for a two-step chain."""
    from types import SimpleNamespace

    monkeypatch.chdir(tmp_path)

    class Named(list):
        def __init__(self, **kw):
            super().__init__(kw.values())
            self._kw = kw

        def items(self):
            return self._kw.items()

        def __getattr__(self, name):
            return self._kw[name]

    def job(rule, inputs, outputs, params, wildcards=None):
        for f in outputs:
            Path(f).parent.mkdir(parents=True, exist_ok=True)
            if f.endswith(".pt"):
                torch.save({"format": "x", "state_dict": {"w": torch.arange(4.0)}}, f)
            else:
                Path(f).write_text(f"{rule} {f}\n")
        return provenance.record_job(SimpleNamespace(
            rule=rule, wildcards=Named(**(wildcards or {})), params=Named(**params), input=Named(**inputs),
            output=Named(**{f"o{i}": f for i, f in enumerate(outputs)}), threads=1))

    Path("src").mkdir()
    Path("src/a.png").write_text("image")
    job("prepare", {"images": ["src/a.png"]}, ["data/ds.pt", "data/manifest.csv"], {"split": {"train": 0.7}})
    job("train", {"dataset": "data/ds.pt"}, ["weights/m.pt", "training/m.csv"], {"hp": {"epochs": 3}},
        {"variant": "m"})
    Path("orphan.txt").write_text("made by hand")
    doc = provenance.collect(["weights/m.pt", "orphan.txt"], {"seed": 1}, "provenance.json")
    out = doc["outputs"]
    assert set(out) == {"weights/m.pt", "training/m.csv", "data/ds.pt", "data/manifest.csv", "orphan.txt"}
    assert out["weights/m.pt"]["config"] == {"hp": {"epochs": 3}} and out["weights/m.pt"]["wildcards"] == {"variant": "m"}
    assert out["data/ds.pt"]["rule"] == "prepare" and out["orphan.txt"]["rule"] is None
    assert out["weights/m.pt"]["content_sha256"] == provenance.tensors_sha256({"w": torch.arange(4.0)})
    assert not any(e.get("stale") for e in out.values())
    assert json.loads(Path("provenance.json").read_text())["config"] == {"seed": 1}

    Path("data/manifest.csv").write_text("edited by hand\n")
    out = provenance.collect(["weights/m.pt"], {}, "provenance.json")["outputs"]
    assert out["data/manifest.csv"]["stale"] is True and not out["data/ds.pt"].get("stale")


def test_pack_images_gives_the_records_pixels_in_order():
    """fer.data.datasets.pack_images: the records' pixels, in order, as one array; the views are released."""
    import numpy as np

    from fer.data import datasets

    buf = np.empty((6, 48, 48), dtype=np.uint8)
    buf[:] = np.arange(6, dtype=np.uint8)[:, None, None] * 40
    ref = buf.copy()
    recs = [datasets.Record(Path(f"{i}.png"), 0, "S001", "001", True, image=buf[i]) for i in (0, 2, 3, 5)]
    out = datasets.pack_images(recs)
    assert out.shape == (4, 48, 48) and np.array_equal(out, ref[[0, 2, 3, 5]])
    assert all(r.image is None for r in recs)
    other = [datasets.Record(Path("a.png"), 0, "S001", "001", True, image=ref[4].copy()),
             datasets.Record(Path("b.png"), 0, "S001", "001", True, image=ref[1].copy())]
    assert np.array_equal(datasets.pack_images(other), ref[[4, 1]])
