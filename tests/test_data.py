"""Data preparation: folder layout, image conversion, bad input, subject-independent splits.

Every test image is drawn with PIL in tmp_path (never a real CK+ image). A class's images have a constant
gray level (``class_value``) plus a unique mark, so a test can tell from the pixels alone which folder an
image came from: a wrong label would show up as a pixel mean that belongs to another class.
"""
from __future__ import annotations

import csv
import io
import logging
import os
import struct
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fer import CLASSES
from fer.data import datasets, splits
from fer.settings import Split

MANIFEST_COLUMNS = {"file", "class", "subject", "sequence", "split"}
SPLIT_CFG = {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 3, "folds": 0}


# ------------------------------------------------------------------------------------------- helpers
def class_value(cls: str) -> int:
    """The gray level of every image drawn for ``cls`` (20, 50, ..., 200)."""
    return 20 + 30 * CLASSES.index(cls.lower())


_counter = iter(range(1, 10**9))


def face(value: int, size=(48, 48), uid: int | None = None) -> np.ndarray:
    """A constant image of ``value`` with a unique 12-bit mark in its first row (so no two are duplicates)."""
    uid = next(_counter) if uid is None else uid
    h, w = size[1], size[0]
    img = np.full((h, w), value, dtype=np.uint8)
    bits = [(uid >> i) & 1 for i in range(12)]
    img[0, :12] = np.where(bits, min(value + 12, 255), max(value - 12, 0))
    return img


def write_image(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


def make_folder(root: Path, subjects=range(1, 13), classes=CLASSES, frames: int = 2, per_subject=None,
                suffix=".png", folder_name=str) -> dict[str, int]:
    """A CK+-like folder: for each subject, ``frames`` frames of one sequence in each of its classes.

    ``per_subject(subject) -> classes`` chooses a subject's classes (default: classes[s % 7] and
    classes[(s + 3) % 7]). Returns the number of files per class."""
    counts: Counter = Counter()
    for s in subjects:
        chosen = per_subject(s) if per_subject else [classes[s % len(classes)], classes[(s + 3) % len(classes)]]
        for seq, cls in enumerate(chosen, start=1):
            for f in range(frames):
                p = root / folder_name(cls) / f"S{s:03d}_{seq:03d}_{f + 1:08d}{suffix}"
                write_image(p, face(class_value(cls)))
                counts[cls] += 1
    return dict(counts)


def png_claiming_size(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims ``width`` x ``height`` (header CRC fixed up)."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(buf, "PNG")
    raw = bytearray(buf.getvalue())
    raw[16:24] = struct.pack(">II", width, height)  # IHDR data starts after signature(8) + length(4) + type(4)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    return bytes(raw)


def read_manifest(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def prepare(tmp_path, root, split_cfg=SPLIT_CFG, test_root=None):
    out_t, out_m = tmp_path / "out" / "dataset.pt", tmp_path / "out" / "manifest.csv"
    stats = datasets.prepare(root, out_t, out_m, Split.of(dict(SPLIT_CFG, **split_cfg)), test_root=test_root)
    ds = torch.load(out_t, weights_only=True)
    return ds, read_manifest(out_m), stats


def assert_labels_match_pixels(ds, rows):
    """Every stored image's gray level is its label's class value, and the manifest agrees with the tensor."""
    assert len(rows) == len(ds["labels"]) == len(ds["images"])
    for i, r in enumerate(rows):
        label = int(ds["labels"][i])
        assert CLASSES[label] == r["class"]
        assert Path(r["file"]).parent.name.lower() == r["class"], r
        median = float(np.median(ds["images"][i].numpy()))
        assert abs(median - class_value(r["class"])) <= 3, (r["file"], median)


@pytest.fixture
def fer_log():
    """Records of the 'fer' logger (it may not propagate to the root logger, so caplog alone can miss it)."""
    records: list[logging.LogRecord] = []

    class _H(logging.Handler):
        def emit(self, record):
            records.append(record)

    logger = logging.getLogger("fer")
    handler, old_level = _H(level=logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)

    class _Log:
        def text(self, level=logging.DEBUG):
            return "\n".join(r.getMessage() for r in records if r.levelno >= level)

    yield _Log()
    logger.removeHandler(handler)
    logger.setLevel(old_level)


# -------------------------------------------------------------------------- layout and conversion
def test_prepare_writes_uint8_tensor_and_manifest(tmp_path):
    root = tmp_path / "ck"
    counts = make_folder(root)
    ds, rows, stats = prepare(tmp_path, root)
    n = sum(counts.values())
    assert ds["images"].dtype == torch.uint8 and tuple(ds["images"].shape) == (n, 48, 48)
    assert ds["labels"].dtype == torch.int64 and ds["split"].dtype == torch.int8
    assert list(ds["classes"]) == list(CLASSES)
    assert MANIFEST_COLUMNS <= set(rows[0])
    assert Counter(r["class"] for r in rows) == Counter(counts)
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert [datasets.SPLITS[int(s)] for s in ds["split"]] == [r["split"] for r in rows]
    assert list(ds["subjects"]) == [r["subject"] for r in rows]
    assert {r["subject"] for r in rows} == {f"S{s:03d}" for s in range(1, 13)}
    assert all(r["sequence"] in ("001", "002") for r in rows)
    assert sum(stats[s]["images"] for s in datasets.SPLITS) == n
    assert_labels_match_pixels(ds, rows)


def test_class_folders_case_insensitive_and_all_suffixes(tmp_path):
    root = tmp_path / "ck"
    names = {"anger": "Anger", "happy": "HAPPY", "surprise": "SurPrise"}
    for i, cls in enumerate(CLASSES):
        folder = root / names.get(cls, cls)
        for j, suffix in enumerate((".png", ".jpg", ".JPEG", ".PNG")):
            write_image(folder / f"S{i + 1:03d}_001_{j:08d}{suffix}", face(class_value(cls)))
    ds, rows, _ = prepare(tmp_path, root)
    assert Counter(r["class"] for r in rows) == {c: 4 for c in CLASSES}
    assert_labels_match_pixels(ds, rows)


@pytest.mark.parametrize("kind", ["RGB", "RGBA", "I;16", "P", "LA", "1", "big", "small", "jpeg-rgb",
                                  "jpeg-cmyk"])
def test_other_size_and_colour_modes_are_converted(tmp_path, kind, fer_log):
    """Each mode is read as the gray level it shows: RGB/RGBA/palette/16-bit/other sizes -> 48x48 uint8."""
    root = tmp_path / "ck"
    make_folder(root, subjects=range(1, 7))
    v = class_value("fear")
    p = root / "fear" / f"S099_001_00000001.{'jpg' if kind.startswith('jpeg') else 'png'}"
    g = face(v, uid=4000)
    if kind in ("RGB", "jpeg-rgb"):
        write_image(p, np.stack([g, g, g], -1))
    elif kind == "jpeg-cmyk":
        Image.fromarray(np.stack([g, g, g], -1)).convert("CMYK").save(p, quality=95)
        assert Image.open(p).mode == "CMYK"
    elif kind == "RGBA":
        write_image(p, np.stack([g, g, g, np.full_like(g, 255)], -1))
    elif kind == "LA":
        write_image(p, np.stack([g, np.full_like(g, 255)], -1), mode="LA")
    elif kind == "I;16":
        write_image(p, g.astype(np.uint16) * 257)
        assert Image.open(p).mode.startswith("I")
    elif kind == "P":
        Image.fromarray(g).convert("P").save(p)
        assert Image.open(p).mode == "P"
    elif kind == "1":
        v = 255
        Image.fromarray(np.full((48, 48), 255, np.uint8)).convert("1").save(p)
        assert Image.open(p).mode == "1"
    elif kind == "big":
        write_image(p, np.kron(g, np.ones((3, 2), np.uint8)))  # 96x144, not square
    elif kind == "small":
        write_image(p, g[::2, ::2])  # 24x24
    ds, rows, _ = prepare(tmp_path, root)
    row = next(i for i, r in enumerate(rows) if Path(r["file"]).name.startswith("S099"))
    img = ds["images"][row].numpy()
    assert img.shape == (48, 48) and img.dtype == np.uint8
    assert rows[row]["class"] == "fear" and int(ds["labels"][row]) == CLASSES.index("fear")
    assert abs(float(np.median(img)) - v) <= 3
    msg = fer_log.text(logging.INFO)
    if kind in ("big", "small"):
        assert "were resized" in msg
    else:
        assert "converted" in msg


def test_file_names_without_subject_are_own_groups_with_warning(tmp_path, fer_log):
    root = tmp_path / "ck"
    for i, cls in enumerate(CLASSES):
        for j in range(4):
            write_image(root / cls / f"img_{j}.png", face(class_value(cls)))
    write_image(root / "happy" / "img_0.jpg", face(class_value("happy")))  # same stem, another file
    ds, rows, _ = prepare(tmp_path, root)
    assert all(r["subject_from_filename"] == "0" for r in rows)
    assert len({r["subject"] for r in rows}) == len(rows) == 29
    assert "carry no CK+ subject id" in fer_log.text(logging.WARNING)
    assert_labels_match_pixels(ds, rows)


# --------------------------------------------------------------------------------------- bad input
def test_bad_files_are_logged_skips_with_right_labels(tmp_path, fer_log):
    root = tmp_path / "ck"
    counts = make_folder(root, subjects=range(1, 10), classes=CLASSES[:6])  # no "surprise" folder at all
    (root / "contempt_extra").mkdir()
    good = root / "anger" / "S050_001_00000001.png"
    write_image(good, face(class_value("anger"), uid=3000))
    bad = {
        "corrupt": root / "anger" / "S050_001_00000002.png",
        "truncated": root / "happy" / "S050_002_00000001.png",
        "empty": root / "happy" / "S050_002_00000002.png",
        "text": root / "fear" / "notes.txt",
        "fake_png": root / "fear" / "S050_003_00000001.png",
        "nested": root / "sadness" / "more" / "S050_004_00000001.png",
        "duplicate": root / "anger" / "S050_001_00000003.png",
        "stray": root / "S051_001_00000001.png",
        "unknown": root / "neutral" / "S052_001_00000001.png",
        "tiny": root / "fear" / "S050_005_00000001.png",
        "huge": root / "fear" / "S050_006_00000001.png",
    }
    bad["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    write_image(bad["truncated"], np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8))
    bad["truncated"].write_bytes(bad["truncated"].read_bytes()[:300])
    bad["empty"].write_bytes(b"")
    bad["text"].write_text("not an image")
    bad["fake_png"].write_text("this is text named .png")
    write_image(bad["nested"], face(class_value("sadness")))
    bad["duplicate"].write_bytes(good.read_bytes())
    write_image(bad["stray"], face(class_value("anger")))
    write_image(bad["unknown"], face(200))
    write_image(bad["tiny"], face(class_value("fear"))[:4, :4])
    bad["huge"].write_bytes(png_claiming_size(20000, 20000))  # PIL refuses it as a decompression bomb
    (root / "README.md").write_text("readme at the root is fine")
    (root / "anger" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")

    ds, rows, _ = prepare(tmp_path, root)
    files = {Path(r["file"]).name for r in rows}
    assert good.name in files
    for case, p in bad.items():
        assert str(p) not in {r["file"] for r in rows}, case
    counts["anger"] += 1
    assert Counter(r["class"] for r in rows) == Counter(counts)
    assert_labels_match_pixels(ds, rows)

    warn = fer_log.text(logging.WARNING)
    expected = {
        "corrupt": f"skipped unreadable image {bad['corrupt']}",
        "truncated": f"skipped unreadable image {bad['truncated']}",
        "empty": f"skipped empty (0-byte) file {bad['empty']}",
        "text": f"skipped non-image file {bad['text']}",
        "fake_png": f"skipped unreadable image {bad['fake_png']}",
        "nested": f"skipped nested folder {bad['nested'].parent}",
        "duplicate": f"skipped duplicate image {bad['duplicate']} (same pixels as {good})",
        "stray": f"skipped stray file at the top of {root}: {bad['stray'].name}",
        "unknown": f"skipped unknown folder {bad['unknown'].parent}",
        "tiny": f"skipped {bad['tiny']}: image of shape",
        "huge": f"skipped unreadable image {bad['huge']} (DecompressionBombError)",
    }
    for case, text in expected.items():
        assert text in warn, (case, warn)
    assert "class folder 'surprise' is missing" in warn
    assert "contempt_extra" in warn
    assert "README" not in warn and ".DS_Store" not in warn


def test_empty_class_folder_is_a_logged_skip(tmp_path, fer_log):
    root = tmp_path / "ck"
    make_folder(root, subjects=range(1, 10), classes=CLASSES[:5])
    (root / "sadness").mkdir()
    (root / "sadness" / "broken.png").write_bytes(b"")
    ds, rows, _ = prepare(tmp_path, root)
    assert "sadness" not in {r["class"] for r in rows}
    warn = fer_log.text(logging.WARNING)
    assert f"class folder {root / 'sadness'} holds no usable image" in warn
    assert "class folder 'surprise' is missing" in warn
    assert_labels_match_pixels(ds, rows)


def test_same_image_in_two_classes_is_an_error(tmp_path):
    root = tmp_path / "ck"
    make_folder(root, subjects=range(1, 10))
    a = write_image(root / "anger" / "S060_001_00000001.png", face(100, uid=5000))
    b = root / "happy" / "S061_001_00000001.png"
    b.write_bytes(a.read_bytes())
    with pytest.raises(datasets.DataError) as err:
        prepare(tmp_path, root)
    msg = str(err.value)
    assert str(a) in msg and str(b) in msg and "anger" in msg and "happy" in msg and "delete" in msg
    assert not (tmp_path / "out" / "dataset.pt").exists()


def test_same_image_in_two_classes_after_resizing_is_an_error(tmp_path):
    """A copy re-saved at another size or colour mode is still the same image."""
    root = tmp_path / "ck"
    make_folder(root, subjects=range(1, 10))
    g = face(100, uid=5001)
    write_image(root / "anger" / "S060_001_00000001.png", g)
    write_image(root / "fear" / "S061_001_00000001.png", np.stack([g, g, g], -1))
    with pytest.raises(datasets.DataError, match="delete the wrong copy"):
        prepare(tmp_path, root)


def test_two_folders_for_one_class_is_an_error(tmp_path):
    root = tmp_path / "ck"
    make_folder(root, subjects=range(1, 10))
    write_image(root / "Anger" / "S070_001_00000001.png", face(class_value("anger")))
    if not (root / "anger").samefile(root / "Anger"):  # case-sensitive file system
        with pytest.raises(datasets.DataError, match="two folders name class 'anger'.*Merge"):
            prepare(tmp_path, root)


@pytest.mark.parametrize("case", ["missing", "file", "empty", "readme_only", "unknown_only", "no_images"])
def test_missing_or_empty_dataset_says_where_to_get_ckplus(tmp_path, case):
    root = tmp_path / "ck+"
    if case == "file":
        root.write_text("x")
    elif case != "missing":
        root.mkdir()
    if case == "readme_only":
        (root / "README.md").write_text("put CK+ here")
    if case == "unknown_only":
        write_image(root / "neutral" / "S001_001_00000001.png", face(10))
    if case == "no_images":
        for cls in CLASSES:
            (root / cls).mkdir()
        (root / "anger" / "x.txt").write_text("x")
    with pytest.raises(datasets.DataError) as err:
        prepare(tmp_path, root)
    msg = str(err.value)
    assert str(root) in msg
    assert "CK+" in msg and "ck+/README.md" in msg
    assert "make demo" in msg and "config/demo.yaml" in msg


# ------------------------------------------------------------------------------------------- splits
def _random_groups(n_subjects=40, seed=0):
    """CK+-like: every subject shows 1-4 of the 7 classes, 3 frames each."""
    rng = np.random.default_rng(seed)
    groups, labels = [], []
    for s in range(n_subjects):
        for c in rng.choice(7, size=int(rng.integers(1, 5)), replace=False):
            groups += [f"S{s:03d}"] * 3
            labels += [int(c)] * 3
    return groups, np.array(labels)


def _splits_of_group(groups, split):
    where = defaultdict(set)
    for g, s in zip(groups, split):
        where[g].add(s)
    return where


def test_split_is_subject_independent_deterministic_and_stratified():
    groups, labels = _random_groups(60)
    fr = (0.7, 0.15, 0.15)
    split = splits.split_groups(groups, labels, fr, seed=5)
    assert split.dtype == np.int8 and len(split) == len(groups)
    assert all(len(s) == 1 for s in _splits_of_group(groups, split).values())
    assert np.array_equal(split, splits.split_groups(groups, labels, fr, seed=5))
    assert not np.array_equal(split, splits.split_groups(groups, labels, fr, seed=6))
    sizes = np.bincount(split, minlength=3) / len(split)
    assert np.allclose(sizes, fr, atol=0.04), sizes
    for c in range(7):
        m = labels == c
        per = np.bincount(split[m], minlength=3) / m.sum()
        assert (np.bincount(split[m], minlength=3) > 0).all(), (c, per)  # every class in every split
        assert abs(per[0] - 0.7) < 0.15, (c, per)


def test_small_dataset_still_fills_every_split():
    """14 subjects showing one class each: 0.7/0.15/0.15 of 14 groups is about 10/2/2 groups, not 14/0/0."""
    groups = [f"S{i:03d}" for i in range(14) for _ in range(3)]
    labels = [i % 7 for i in range(14) for _ in range(3)]
    for seed in range(4):
        split = splits.split_groups(groups, labels, (0.7, 0.15, 0.15), seed)
        assert np.bincount(split, minlength=3).tolist() == [30, 6, 6], seed


def test_too_few_subjects_is_an_error(tmp_path):
    root = tmp_path / "ck"
    make_folder(root, subjects=[1, 2])
    with pytest.raises(datasets.DataError, match="the (val|test) split is empty: 2 subjects .* add subjects"):
        prepare(tmp_path, root)
    make_folder(root, subjects=[3])
    with pytest.raises(datasets.DataError, match=r"data.split.folds=4 but .* holds only 3 subjects.* at most 3 folds"):
        prepare(tmp_path, root, dict(SPLIT_CFG, folds=4))


def test_split_fractions_and_seed_come_from_config(tmp_path):
    root = tmp_path / "ck"
    make_folder(root, subjects=range(1, 41))
    cfg = dict(SPLIT_CFG, train=0.5, val=0.25, test=0.25, seed=11)
    ds1, rows1, stats = prepare(tmp_path, root, cfg)
    n = len(rows1)
    for s, f in (("train", 0.5), ("val", 0.25), ("test", 0.25)):
        assert abs(stats[s]["images"] / n - f) < 0.06, stats
        assert abs(stats[s]["subjects"] / 40 - f) < 0.06, stats
    ds2, rows2, _ = prepare(tmp_path, root, cfg)
    assert [r["split"] for r in rows1] == [r["split"] for r in rows2]
    assert torch.equal(ds1["images"], ds2["images"])
    _, rows3, _ = prepare(tmp_path, root, dict(cfg, seed=12))
    assert [r["split"] for r in rows1] != [r["split"] for r in rows3]
    where = _splits_of_group([r["subject"] for r in rows1], [r["split"] for r in rows1])
    assert all(len(s) == 1 for s in where.values())


@pytest.mark.parametrize("k", [3, 5])
def test_kfold_disjoint_by_subject_and_every_fold_is_test_once(k):
    groups, labels = _random_groups(40, seed=k)
    fold = splits.kfold_groups(groups, labels, k, seed=1)
    assert set(fold.tolist()) == set(range(k))
    assert all(len(s) == 1 for s in _splits_of_group(groups, fold).values())
    sizes = np.bincount(fold, minlength=k)
    assert sizes.min() > 0.5 * len(groups) / k, sizes
    tested = np.zeros(len(groups), dtype=int)
    for f in range(k):
        split = splits.fold_split(fold, f, k)
        assert all(len(s) == 1 for s in _splits_of_group(groups, split).values())
        assert np.array_equal(split == 2, fold == f)
        assert np.array_equal(split == 1, fold == (f + 1) % k)
        assert (split == 0).any()
        tested += split == 2
    assert (tested == 1).all()  # every sample (and so every subject) is in exactly one test fold
    assert np.array_equal(fold, splits.kfold_groups(groups, labels, k, seed=1))


def test_kfold_through_prepare(tmp_path):
    root = tmp_path / "ck"
    make_folder(root, subjects=range(1, 16))
    seen = Counter()
    ds, rows, _ = prepare(tmp_path, root, dict(SPLIT_CFG, folds=3))
    assert int(ds["k"]) == 3 and len(ds["folds"]) == len(rows)
    assert torch.equal(datasets.fold_dataset(ds, 0)["split"], ds["split"])  # the file's own split is fold 0's
    for f in range(3):
        split = datasets.fold_dataset(ds, f)["split"].tolist()
        seen.update(r["file"] for r, s in zip(rows, split) if s == 2)
        where = _splits_of_group([r["subject"] for r in rows], split)
        assert all(len(s) == 1 for s in where.values())
    assert set(seen.values()) == {1} and len(seen) == len(rows)


def test_separate_test_folder_is_exactly_the_test_split(tmp_path):
    main, test = tmp_path / "ck", tmp_path / "ck_test"
    make_folder(main, subjects=range(1, 21))
    tcounts = make_folder(test, subjects=range(101, 106))
    # a name without subject id in both folders must not join the two files into one group
    write_image(main / "happy" / "frame.png", face(class_value("happy")))
    write_image(test / "happy" / "frame.png", face(class_value("happy")))
    ds, rows, stats = prepare(tmp_path, main, dict(SPLIT_CFG, test=0.9), test_root=test)
    test_rows = [r for r in rows if r["split"] == "test"]
    assert {r["file"] for r in test_rows} == {str(p) for p in test.rglob("*.png")}
    assert all(r["source"] == "test" for r in test_rows)
    assert all(r["source"] == "main" for r in rows if r["split"] != "test")
    assert Counter(r["class"] for r in test_rows) == Counter(tcounts) + Counter(["happy"])
    assert {r["split"] for r in rows if r["source"] == "main"} == {"train", "val"}
    mains = [r for r in rows if r["source"] == "main"]
    assert abs(sum(r["split"] == "train" for r in mains) / len(mains) - 0.75) < 0.1  # 0.6 : 0.2 of main
    where = _splits_of_group([r["subject"] for r in rows], [r["split"] for r in rows])
    assert all(len(s) == 1 for s in where.values())
    assert_labels_match_pixels(ds, rows)


def test_separate_test_folder_with_shared_subjects_is_an_error(tmp_path):
    main, test = tmp_path / "ck", tmp_path / "ck_test"
    make_folder(main, subjects=range(1, 21))
    make_folder(test, subjects=[5, 101])
    with pytest.raises(datasets.DataError) as err:
        prepare(tmp_path, main, test_root=test)
    assert "S005" in str(err.value) and str(test) in str(err.value) and "other subjects" in str(err.value)


def test_separate_test_folder_duplicate_of_training_image(tmp_path, fer_log):
    main, test = tmp_path / "ck", tmp_path / "ck_test"
    make_folder(main, subjects=range(1, 21))
    make_folder(test, subjects=[101, 102])
    src = next((main / "anger").glob("*.png"))
    (test / "fear").mkdir(exist_ok=True)
    (test / "fear" / "S103_001_00000001.png").write_bytes(src.read_bytes())
    with pytest.raises(datasets.DataError, match="labelled anger .* and fear"):
        prepare(tmp_path, main, test_root=test)


# ----------------------------------------------------------------------------------- real data (opt-in)
CKPLUS = os.environ.get("FER_CKPLUS_DIR")


@pytest.mark.skipif(not CKPLUS, reason="set FER_CKPLUS_DIR to a CK+ folder (e.g. ../shared/datasets/ckplus-dev)")
def test_real_ckplus(tmp_path):
    root = Path(CKPLUS)
    folder_counts = {}
    for d in root.iterdir():
        if d.is_dir() and d.name.lower() in CLASSES:
            folder_counts[d.name.lower()] = sum(1 for p in d.iterdir()
                                                if p.suffix.lower() in datasets.IMAGE_SUFFIXES and p.stat().st_size)
    ds, rows, stats = prepare(tmp_path, root, {"train": 0.7, "val": 0.15, "test": 0.15, "seed": 42})
    assert set(folder_counts) == set(CLASSES)
    assert Counter(r["class"] for r in rows) == Counter(folder_counts)
    assert all(r["subject_from_filename"] == "1" for r in rows)
    where = _splits_of_group([r["subject"] for r in rows], [r["split"] for r in rows])
    assert all(len(s) == 1 for s in where.values())
    for s in datasets.SPLITS:
        assert stats[s]["images"] > 0
        assert all(stats[s]["per_class"][c] > 0 for c in CLASSES), (s, stats[s]["per_class"])
    assert ds["images"].dtype == torch.uint8 and tuple(ds["images"].shape[1:]) == (48, 48)
