"""The synthetic face generator: layout, determinism, atomic writes, class balance, learnability."""
from __future__ import annotations

import hashlib
import os
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


from fer import CLASSES
from fer.data import preprocess, synthetic  # noqa: E402

NAME = re.compile(r"^S(\d{3,})_(\d{3})_(\d{8})\.png$")


def _tree(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn") / "set"
    stats = synthetic.generate(out, n_subjects=8, seed=5, progress=False)
    return out, stats


def test_layout_names_and_images(small_set):
    out, stats = small_set
    assert sorted(p.name for p in out.iterdir()) == sorted(CLASSES)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) == stats["images"] == sum(stats["per_class"].values()) > 0
    assert {c: len(list((out / c).iterdir())) for c in CLASSES} == stats["per_class"]
    seqs = defaultdict(list)
    for p in files:
        m = NAME.match(p.name)
        assert m, p.name
        subject, sequence, frame = map(int, m.groups())
        seqs[(subject, sequence)].append((frame, p.parent.name))
        with Image.open(p) as im:
            assert im.format == "PNG" and im.mode == "L" and im.size == (48, 48)
    assert {s for s, _ in seqs} == set(range(1, 9)) and stats["subjects"] == 8
    assert len(seqs) == stats["sequences"]
    per_subject_classes = defaultdict(list)
    for (subject, _), frames in seqs.items():
        # one class per sequence, the last `frames` consecutive frames
        assert len({c for _, c in frames}) == 1
        nums = sorted(f for f, _ in frames)
        assert nums == list(range(nums[0], nums[0] + 3))
        per_subject_classes[subject].append(frames[0][1])
    for classes in per_subject_classes.values():  # at most one sequence per expression per subject
        assert len(classes) == len(set(classes))


def test_same_seed_gives_identical_files_and_other_seed_differs(small_set, tmp_path):
    out, _ = small_set
    again = tmp_path / "again"
    synthetic.generate(again, n_subjects=8, seed=5, progress=False, batch=7)  # other batching, same pixels
    assert _tree(again) == _tree(out)
    other = tmp_path / "other"
    synthetic.generate(other, n_subjects=8, seed=6, progress=False)
    assert _tree(other) != _tree(out)


def _named(n, seed):
    return {(r["cls"], r["subject"], r["sequence"], r["frame"]): img.tobytes()
            for r, img in synthetic.iter_faces(n, seed=seed, frames=1)}


def test_subjects_do_not_depend_on_set_size():
    few, more = _named(3, 2), _named(5, 2)
    assert few and all(more[k] == v for k, v in few.items())


def test_options_frames_classes_and_validation(tmp_path):
    stats = synthetic.generate(tmp_path / "s", n_subjects=4, seed=0, frames=5, classes=("happy", "surprise"),
                               rates={"happy": 1.0, "surprise": 1.0}, size=32, progress=False)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["happy", "surprise"]
    assert stats["per_class"] == {"happy": 20, "surprise": 20}
    with Image.open(next((tmp_path / "s" / "happy").iterdir())) as im:
        assert im.size == (32, 32)
    with pytest.raises(ValueError):
        synthetic.generate(tmp_path / "x", n_subjects=1, classes=("joy",), progress=False)
    with pytest.raises(ValueError):
        synthetic.generate(tmp_path / "x", n_subjects=1, frames=0, progress=False)


def test_intensity_rises_within_a_sequence():
    recs = synthetic.subject_plan(7, seed=1, frames=4)
    by_seq = defaultdict(list)
    for r in recs:
        by_seq[r["sequence"]].append((r["frame"], r["intensity"]))
    for frames in by_seq.values():
        levels = [t for _, t in sorted(frames)]
        assert all(b > a for a, b in zip(levels, levels[1:]))


def test_class_frequencies_follow_ckplus():
    # Only the plans (no drawing): cheap for many subjects.
    n = 1000
    counts = Counter(r["cls"] for s in range(1, n + 1) for r in synthetic.subject_plan(s, seed=0, frames=1))
    assert min(counts, key=counts.get) == "contempt"
    assert max(counts, key=counts.get) == "surprise"
    assert sorted(counts, key=counts.get)[-2] == "happy"
    for c in CLASSES:  # close to CK+'s rates per subject
        assert abs(counts[c] / n - synthetic.CKPLUS_RATES[c]) < 0.05


def test_interrupted_run_leaves_no_partial_png(tmp_path, monkeypatch):
    run = tmp_path / "run"
    calls = {"n": 0}
    real_replace = os.replace

    def flaky_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C between writing and renaming
        real_replace(src, dst)

    monkeypatch.setattr(synthetic.os, "replace", flaky_replace)
    with pytest.raises(KeyboardInterrupt):
        synthetic.generate(run, n_subjects=5, seed=0, progress=False)
    monkeypatch.undo()
    files = [p for p in run.rglob("*") if p.is_file()]
    assert len(files) == 9
    for p in files:
        assert NAME.match(p.name)
        with Image.open(p) as im:
            im.load()
    # A rerun with clean_first completes the set; the result equals a fresh run.
    synthetic.generate(run, n_subjects=5, seed=0, progress=False, clean_first=True)
    fresh = tmp_path / "fresh"
    synthetic.generate(fresh, n_subjects=5, seed=0, progress=False)
    assert _tree(run) == _tree(fresh)


def test_clean_removes_only_generator_files(tmp_path):
    synthetic.generate(tmp_path, n_subjects=2, seed=0, classes=("anger",), rates={"anger": 1.0}, progress=False)
    keep = tmp_path / "anger" / "notes.txt"
    keep.write_text("mine")
    assert synthetic.clean(tmp_path, ("anger",)) == 6
    assert [p.name for p in (tmp_path / "anger").iterdir()] == ["notes.txt"]


def test_linear_model_learns_something_but_not_everything():
    """Multinomial logistic regression on raw pixels, split by subject: above chance, well below 100%."""
    images, labels, subjects = synthetic.load_arrays(150, seed=11, frames=1)
    train = subjects <= 90
    x = preprocess.to_tensor(images).flatten(1)
    x_train, y_train = x[torch.as_tensor(train)], torch.as_tensor(labels[train])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny problem: threads only add overhead on a shared machine
    try:
        torch.manual_seed(0)
        model = torch.nn.Linear(x.shape[1], len(CLASSES))
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        for _ in range(60):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x_train), y_train).backward()
            opt.step()
        with torch.no_grad():
            pred = model(x).argmax(1).numpy()
    finally:
        torch.set_num_threads(threads)
    train_acc = (pred[train] == labels[train]).mean()
    test_acc = (pred[~train] == labels[~train]).mean()
    majority = np.bincount(labels[~train]).max() / (~train).sum()
    assert train_acc > 0.9  # the model fits the training subjects ...
    assert test_acc < 0.95  # ... but pixels of unseen subjects are not linearly separable
    assert test_acc > max(1 / len(CLASSES), majority) + 0.05, (test_acc, majority)


def test_cli_and_stage_write_the_same_faces(tmp_path):
    import json
    import subprocess

    from fer.settings import Synthetic
    from fer.stages.data import synthesize_faces

    script = Path(__file__).resolve().parents[1] / "tools" / "make_synthetic.py"
    res = subprocess.run([sys.executable, str(script), str(tmp_path / "cli"), "--subjects", "2", "--seed", "3",
                          "--no-progress"], capture_output=True, text=True, check=True)
    stats = json.loads(res.stdout)
    assert stats["subjects"] == 2 and stats["images"] == len(list((tmp_path / "cli").rglob("*.png")))
    got = synthesize_faces(settings=Synthetic(subjects=2, seed=3, frames=3, jitter=1.0), classes=list(CLASSES),
                           layout="class-folders", out_dir=tmp_path / "smk")
    assert _tree(tmp_path / "smk") == _tree(tmp_path / "cli")
    assert got["images"] == stats["images"]
    bad = subprocess.run([sys.executable, str(script), str(tmp_path / "bad"), "--classes", "joy"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_rule_scripts_run_under_snakemake_preamble():
    # Snakemake prepends its own code to a `script:`, so a `from __future__` import would be a SyntaxError.
    for script in sorted((Path(__file__).resolve().parents[1] / "scripts").glob("*.py")):
        source = script.read_text()
        assert "from __future__" not in source, script.name
        compile("import sys\n" + source, script.name, "exec")
