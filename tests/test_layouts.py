"""Classes from the config and the data, the three data layouts, and the built-in data for each.

Unit tests run data preparation (fer.data.datasets.prepare) on small folders and CSV files drawn in tmp_path
(never a real dataset); one end-to-end test runs the tiny DAG on synthetic split-folders with a five-class list
that is not CK+'s (neutral included), then the inference app on what it built.
"""
from __future__ import annotations

import copy
import csv
import json
import logging
import shutil

import cv2
import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, TINY_CONFIG, snakemake
from fer import CLASSES
from fer import config as fer_config
from fer.data import classes as class_names
from fer.data import datasets, images, synthetic
from fer.errors import CheckpointError, ConfigError, DataError
from fer.settings import Split
from test_data import face, write_image

FER = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # FER2013's order
SPLIT = Split(train=0.7, val=0.15, test=0.15, seed=0, folds=0)


def _prepare(tmp_path, root, classes, layout, split=SPLIT, name="ds"):
    stats = datasets.prepare(root, tmp_path / f"{name}.pt", tmp_path / f"{name}.csv", split, classes=classes,
                             layout=layout)
    with open(tmp_path / f"{name}.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return torch.load(tmp_path / f"{name}.pt", weights_only=True), rows, stats


def _value(label: int) -> int:
    return 20 + 30 * label


# ------------------------------------------------------------------------------------------- class names
def test_spellings_of_one_expression_match_one_class():
    assert class_names.index_of("Angry", CLASSES) == 0 and class_names.index_of("anger", FER) == 0
    assert class_names.index_of("SADNESS", FER) == 4 and class_names.index_of("sad", CLASSES) == 5
    assert class_names.index_of("happiness", CLASSES) == 4 and class_names.index_of("surprised", FER) == 5
    assert class_names.index_of("neutral", CLASSES) is None and class_names.index_of("confused", FER) is None
    assert class_names.index_of("confused", ["confused", "calm"]) == 0  # any name of one's own
    with pytest.raises(ValueError, match="'anger' and 'Angry' name one class"):
        class_names.check(["anger", "happy", "Angry"])
    assert class_names.without_fer2013_code(CLASSES) == ["contempt"]


def test_class_folders_with_another_class_list_and_spellings(tmp_path, caplog):
    """Folders spelled otherwise than data.classes (Anger/ for angry, sadness/ for sad) are read as those classes,
    labelled in data.classes' order; a CK+ folder outside the list (contempt/) is a logged skip."""
    root = tmp_path / "data"
    names = {"Anger": 0, "happiness": 3, "sadness": 4, "neutral": 6, "contempt": None}
    for folder, label in names.items():
        for s in range(1, 9):
            write_image(root / folder / f"S{s:03d}_001_00000001.png", face(_value(label or 0)))
    caplog.set_level(logging.INFO, logger="fer")
    ds, rows, stats = _prepare(tmp_path, root, FER, "class-folders")
    assert ds["classes"] == FER and stats["train"]["per_class"].keys() == set(FER)
    assert "skipped unknown folder" in caplog.text and "contempt" in caplog.text
    assert "class folder 'disgust' is missing" in caplog.text
    for r, y, img in zip(rows, ds["labels"].tolist(), ds["images"]):
        assert FER.index(r["class"]) == y == names[r["file"].split("/")[-2]]
        assert int(img[10:, :].float().mean().round()) == _value(y)  # the pixels say which folder it came from
    assert images.data_files(root, FER) == images.list_files(root, FER).used()


# ------------------------------------------------------------------------------------------ split-folders
def _split_folders(root, splits=("train", "val", "test"), subjects=None, classes=FER[:3]):
    subjects = subjects or {"train": range(1, 9), "val": range(20, 23), "test": range(30, 33)}
    for split in splits:
        for s in subjects[split]:
            for label, cls in enumerate(classes):
                write_image(root / split / cls / f"S{s:03d}_001_0000000{label}.png", face(_value(label)))


def test_split_folders_keep_their_split_and_draw_validation_from_train(tmp_path, caplog):
    root = tmp_path / "sf"
    _split_folders(root)
    write_image(root / "extra" / "angry" / "x.png", face(3))  # unknown top-level folder
    (root / "notes.txt").write_text("x")
    caplog.set_level(logging.INFO, logger="fer")
    ds, rows, stats = _prepare(tmp_path, root, FER[:3], "split-folders")
    assert "skipped unknown folder" in caplog.text and "extra" in caplog.text and "skipped stray file" in caplog.text
    assert all(r["split"] == r["source"] == r["file"].split("/")[-3] for r in rows)  # the dataset's own split
    assert [stats[s]["images"] for s in ("train", "val", "test")] == [24, 9, 9]

    shutil.rmtree(root / "val")  # no val/: validation drawn from train/ by subject, test/ as it is
    ds, rows, stats = _prepare(tmp_path, root, FER[:3], "split-folders")
    assert "no val/ folder" in caplog.text
    assert {r["source"] for r in rows if r["split"] == "val"} == {"train"}
    assert all(r["split"] == "test" for r in rows if r["source"] == "test") and stats["val"]["images"] > 0
    by_subject = {}
    for r in rows:
        by_subject.setdefault(r["subject"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_subject.values())

    # folds: over train (+ val) subjects; test/ is every fold's external test set
    ds, rows, stats = _prepare(tmp_path, root, FER[:3], "split-folders", Split(0.7, 0.15, 0.15, 0, 3))
    assert int(ds["k"]) == 3 and set(ds["folds"][[r["source"] == "test" for r in rows]].tolist()) == {-1}
    assert stats["external"]["images"] == 9


def test_split_folders_bad_input(tmp_path):
    root = tmp_path / "sf"
    _split_folders(root, splits=("train",))
    with pytest.raises(DataError, match=r"no test/ folder in .*sf"):
        _prepare(tmp_path, root, FER[:3], "split-folders")
    _split_folders(root, splits=("test",), subjects={"test": [1]})  # subject S001 in train/ and test/
    with pytest.raises(DataError, match=r"subjects \['S001'\] appear both in .*train and .*test"):
        _prepare(tmp_path, root, FER[:3], "split-folders")
    shutil.rmtree(root / "test")
    _split_folders(root, splits=("test",), subjects={"test": [30]})
    shutil.copy(root / "train" / "angry" / "S001_001_00000000.png", root / "test" / "fear" / "copy.png")
    with pytest.raises(DataError, match=r"the same image is labelled angry .* and fear .*copy\.png"):
        _prepare(tmp_path, root, FER[:3], "split-folders")
    (root / "test" / "fear" / "copy.png").unlink()
    shutil.copy(root / "train" / "angry" / "S001_001_00000000.png", root / "test" / "angry" / "copy.png")
    (root / "test" / "fear" / "S030_001_00000002.png").write_bytes(b"\x89PNG garbage")
    _, rows, _ = _prepare(tmp_path, root, FER[:3], "split-folders")  # same class: the test copy is skipped
    assert not any(r["file"].endswith(("copy.png", "S030_001_00000002.png")) for r in rows)


# ------------------------------------------------------------------------------------------ fer2013-csv
def _pixels(value, uid):
    img = np.full(48 * 48, value, dtype=np.uint8)
    img[:12] = [(uid >> i) & 1 for i in range(12)]
    return " ".join(map(str, img.tolist()))


def test_fer2013_csv_rows_and_every_bad_row(tmp_path, caplog):
    path = tmp_path / "fer2013.csv"
    good = [(code, usage) for usage in ("Training",) * 4 + ("PublicTest", "PrivateTest") for code in range(7)]
    lines = ["emotion,pixels,Usage"] + [f"{c},{_pixels(_value(c), i)},{u}" for i, (c, u) in enumerate(good)]
    bad = {"wrong pixel count": f"0,{_pixels(20, 900)} 7,Training",
           "non-numeric": f"1,{_pixels(20, 901).replace(' 20 ', ' x ', 1)},Training",
           "unknown emotion code": f"9,{_pixels(20, 902)},Training",
           "unknown Usage": f"2,{_pixels(20, 903)},Validation",
           "out of range": f"3,{_pixels(20, 904).replace(' 20 ', ' 300 ', 1)},Training",
           "fields": "4,1 2 3"}
    first_bad = len(lines) + 1
    lines += list(bad.values())
    lines.append(f"2,{_pixels(_value(2), 2)},PrivateTest")  # the same pixels as a Training row of class 2
    lines.append(f"3,{_pixels(_value(1), 1)},PrivateTest")  # a Training row of class 1 (disgust), labelled happy
    path.write_text("\n".join(lines) + "\n")
    caplog.set_level(logging.INFO, logger="fer")
    classes = ["Anger", "disgust", "fear", "happiness", "sadness", "surprised"]  # no neutral: its rows are skipped
    ds, rows, stats = _prepare(tmp_path, path, classes, "fer2013-csv")
    for n, why in enumerate(("2305 pixel values, expected 2304", "pixel values are not integers",
                             "unknown emotion code '9'", "unknown Usage 'Validation'", "pixel values outside 0..255",
                             "2 fields, expected 3")):
        assert f"fer2013.csv line {first_bad + n}: {why}" in caplog.text, why
    assert "skipped 6 rows of emotion 6 (neutral)" in caplog.text
    assert "skipped duplicate image" in caplog.text and f"fer2013.csv:{len(lines) - 1}" in caplog.text
    # two labels for one image: every copy skipped (a CSV row cannot be deleted like a file), not an error
    assert (f"fer2013.csv:{len(lines)} and every copy of its pixels: labelled happiness there and disgust in "
            f"{path}:3") in caplog.text and "skipped 1 images labelled with two classes" in caplog.text
    assert not any(r["file"].endswith(":3") for r in rows)
    assert len(rows) == 6 * 6 - 1 and {r["split"] for r in rows} == {"train", "val", "test"}
    assert all(r["split"] == {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}[good[int(
        r["file"].rsplit(":", 1)[1]) - 2][1]] for r in rows)
    assert [classes.index(r["class"]) for r in rows] == ds["labels"].tolist()
    assert all(int(img[1:].float().mean().round()) == _value(y) for img, y in zip(ds["images"], ds["labels"]))

    path.write_text("emotion,pixels,Usage\n" + "\n".join(bad.values()) + "\n")
    with pytest.raises(DataError, match="no usable row in .*fer2013.csv"):
        _prepare(tmp_path, path, classes, "fer2013-csv")
    path.write_text("label,image\n0,1 2\n")
    with pytest.raises(DataError, match="has no column emotion, pixels, Usage"):
        _prepare(tmp_path, path, classes, "fer2013-csv")


# ----------------------------------------------------------------------------------- built-in data, config
@pytest.mark.parametrize("layout", synthetic.LAYOUTS)
def test_synthetic_faces_in_every_layout(tmp_path, layout):
    stats = synthetic.generate(tmp_path / "s", n_subjects=20, seed=2, classes=FER, layout=layout, progress=False)
    root = tmp_path / "s" / "fer2013.csv" if layout == "fer2013-csv" else tmp_path / "s"
    ds, rows, split_stats = _prepare(tmp_path, root, FER, layout)
    assert len(rows) == stats["images"] and ds["classes"] == FER
    assert {c: sum(r["class"] == c for r in rows) for c in FER} == stats["per_class"]
    if layout == "split-folders":  # the generator's split (14:3:3 subjects) is kept
        assert all(r["split"] == synthetic.split_of(int(r["subject"][1:])) for r in rows)
    if layout != "class-folders":
        assert all(r["split"] == r["source"] for r in rows) and split_stats["test"]["images"] > 0
    with pytest.raises(ValueError, match="no emotion code for \\['contempt'\\]"):
        synthetic.generate(tmp_path / "x", n_subjects=1, layout="fer2013-csv", progress=False)


BASE = fer_config.merge(fer_config.defaults(), yaml.safe_load(TINY_CONFIG.read_text()))


@pytest.mark.parametrize("data, key, text", [
    ({"classes": ["anger", "happy", "angry"]}, "data.classes", "'anger' and 'angry' name one class"),
    ({"classes": ["happy"]}, "data.classes", "too short"),
    ({"classes": ["happy", "confused"]}, "data.classes", "cannot draw ['confused']"),
    ({"layout": "fer2013-csv"}, "data.classes", "['contempt'] have no emotion code"),
    ({"layout": "split-folders", "test_path": "x"}, "data.test_path", "only with data.layout class-folders"),
    ({"layout": "fer2013-csv", "classes": FER, "source": "folder", "path": "nowhere.csv"}, "data.path",
     "file 'nowhere.csv' does not exist"),
    ({"layout": "flat"}, "data.layout", "is not one of"),
])
def test_bad_class_lists_and_layouts_are_config_errors(data, key, text):
    cfg = fer_config.merge(copy.deepcopy(BASE), {"data": data})
    with pytest.raises(ConfigError) as err:
        fer_config.validate(cfg, REPO / "config" / "schema.yaml", REPO)
    assert str(err.value).startswith(f"config key {key}") and text in str(err.value), err.value


# ------------------------------------------------------------------------------------------ end to end
def test_tiny_dag_on_split_folders_with_five_classes_and_the_app(workflow, tmp_path, capsys):
    """The tiny DAG (teacher and KD student: trained, evaluated, plotted, exported) on synthetic
    split-folders labelled by a five-class list of another order: metrics, plots, the ONNX sidecar and the app
    all name these classes; the model evaluated on a dataset of another class list is one error naming both
    lists. (The whole DAG with every variant runs in tests/test_workflow.py; this run is kept to a few jobs.)"""
    from fer.app import cli, sample_media
    from fer.stages.evaluate import evaluate

    classes = ["neutral", "happiness", "surprised", "sad", "angry"]
    over = {"data": {"layout": "split-folders", "classes": classes}}
    cfg = fer_config.merge(yaml.safe_load(TINY_CONFIG.read_text()), over)
    (workflow / "layouts.yaml").write_text(json.dumps(cfg))
    snakemake(workflow, "results/metrics/kd.json", "results/onnx/kd.onnx",
              "results/plots/confusion/kd.png", configfile="layouts.yaml", check=True)
    res = workflow / "results"
    assert sorted(p.name for p in (res / "synthetic").iterdir() if not p.name.startswith(".")) == \
        ["test", "train", "val"]
    ds = torch.load(res / "data" / "dataset.pt", weights_only=True)
    assert ds["classes"] == classes and ds["layout"] == "split-folders"
    with open(res / "data" / "manifest.csv", newline="") as fh:
        assert all(r["split"] == r["source"] for r in csv.DictReader(fh))
    for v in ("kd",):
        m = json.loads((res / "metrics" / f"{v}.json").read_text())
        assert m["classes"] == classes and list(m["per_class_recall"]) == classes, v
        assert len(m["confusion_matrix"]) == 5, v
        assert torch.load(workflow / "weights" / f"{v}.pt", weights_only=True)["classes"] == classes, v
    sidecar = json.loads((res / "onnx" / "kd.json").read_text())
    assert sidecar["classes"] == classes and sidecar["output"]["shape"] == ["batch", 5]

    astronaut = tmp_path / "astronaut.png"
    cv2.imwrite(str(astronaut), sample_media.astronaut_bgr())
    for runtime in ("torch", "onnx"):
        rc = cli.main(["--model", "kd", "--root", str(workflow), "--no-display", "--source", str(astronaut),
                       "--json", "--runtime", runtime])
        out = capsys.readouterr()
        assert rc == 0, out.err
        faces = [o for o in map(json.loads, out.out.splitlines()) if o["type"] == "face"]
        assert faces and all(f["label"] in classes and list(f["probs"]) == classes for f in faces), runtime

    # the five-class kd model on a CK+-labelled dataset: one line naming the weights, the data and both lists
    ck = tmp_path / "ck"
    synthetic.generate(ck, n_subjects=12, seed=3, progress=False)
    datasets.prepare(ck, tmp_path / "ck.pt", tmp_path / "ck.csv", SPLIT)
    with pytest.raises(CheckpointError) as err:
        evaluate(variant="kd", weights=workflow / "weights" / "kd.pt", dataset=tmp_path / "ck.pt",
                 out_metrics=tmp_path / "m.json", out_predictions=tmp_path / "p.csv", out_confusion=tmp_path / "c.png",
                 device="cpu")
    assert f"kd.pt was trained on the classes {classes}" in str(err.value)
    assert f"ck.pt holds the classes {list(CLASSES)}" in str(err.value)


def test_tiny_dag_on_a_fer2013_csv(workflow):
    """The fer2013-csv layout through the rules (synthetic CSV -> prepare_data), with FER2013's own seven classes
    (neutral, no contempt): the dataset's Training/PublicTest/PrivateTest split is kept and the prepared data
    name its classes (training does not depend on the layout: the split-folders test above trains). (split-folders runs the longer DAG above; class-folders is the tiny
    DAG of tests/test_workflow.py.)"""
    classes = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    cfg = fer_config.merge(yaml.safe_load(TINY_CONFIG.read_text()),
                           {"data": {"layout": "fer2013-csv", "classes": classes}})
    (workflow / "fer2013.yaml").write_text(json.dumps(cfg))
    snakemake(workflow, "results/data/manifest.csv", configfile="fer2013.yaml", check=True)
    res = workflow / "results"
    assert (res / "synthetic" / "fer2013.csv").read_text().splitlines()[0] == "emotion,pixels,Usage"
    with open(res / "data" / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["split"] for r in rows} == {"train", "val", "test"} and {r["class"] for r in rows} == set(classes)
    ds = torch.load(res / "data" / "dataset.pt", weights_only=True)
    assert ds["classes"] == classes and ds["layout"] == "fer2013-csv"
    assert [classes.index(r["class"]) for r in rows] == ds["labels"].tolist()
