"""Hostile input and faults (round two): numbers that are not numbers, files that are not what their name says,
a damaged resume checkpoint, output permissions, and an app that must never destroy its input."""
from __future__ import annotations

import math
import os
import shutil
import stat

import pytest
import torch

from fer import checkpoints, files, settings
from fer import config as fer_config
from fer.errors import CheckpointError, ConfigError
from fer.models import nets, training

TINY = {"channels": [4, 8, 8], "hidden": 16, "dropout": 0.1}


# ------------------------------------------------------------------------------ numbers that are not numbers
@pytest.mark.parametrize("key,over", [
    ("kd.alpha", {"kd": {"alpha": float("nan")}}),
    ("train.teacher.lr", {"train": {"teacher": {"lr": float("inf")}}}),
    ("augment.rotate_deg", {"augment": {"rotate_deg": -math.inf}}),
    ("jetson.timeout", {"jetson": {"timeout": float("nan")}}),
])
def test_nan_and_infinity_are_refused_naming_the_key(key, over):
    with pytest.raises(ConfigError, match=rf"config key {key.replace('.', '[.]')}: .* is not a finite number"):
        fer_config.load(over)


def test_numbers_written_as_strings_are_accepted():
    cfg = fer_config.load({"train": {"teacher": {"epochs": "3", "lr": "1e-3"}}, "augment": {"flip": "false"},
                           "data": {"split": {"folds": "5"}}})
    assert cfg["train"]["teacher"]["epochs"] == 3 and cfg["train"]["teacher"]["lr"] == 0.001
    assert cfg["augment"]["flip"] is False and cfg["data"]["split"]["folds"] == 5
    with pytest.raises(ConfigError, match="config key train.teacher.epochs"):
        fer_config.load({"train": {"teacher": {"epochs": "three"}}})


# ----------------------------------------------------------------------- files that are not what they claim
@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    model = nets.FERNet(**TINY)
    checkpoints.save_checkpoint(tmp_path / "teacher.pt", "teacher", nets.current_arch(model), model.state_dict())
    return tmp_path / "teacher.pt"


def test_another_variants_weights_are_refused(weights, tmp_path):
    foreign = tmp_path / "kd.pt"
    shutil.copy(weights, foreign)  # the teacher's weights copied over the KD student's
    with pytest.raises(CheckpointError) as err:
        checkpoints.load_model(foreign, "kd")
    msg = str(err.value)
    assert "\n" not in msg and str(foreign) in msg and "'teacher'" in msg and "'kd'" in msg and "rebuild" in msg
    assert isinstance(checkpoints.load_model(weights, "teacher"), nets.FERNet)


def test_weights_and_data_of_another_class_list_are_refused(weights, tmp_path):
    """The class list travels in every checkpoint and prepared dataset; a model used on data of another list is
    one line naming the file and both lists; a dataset or checkpoint without a list is refused."""
    import torch

    from fer import CLASSES
    from fer.data import datasets
    from fer.errors import DataError

    ck = torch.load(weights, weights_only=True)
    assert ck["classes"] == list(CLASSES)
    ck["classes"] = list(CLASSES[:6]) + ["neutral"]
    other = tmp_path / "neutral.pt"
    torch.save(ck, other)
    assert checkpoints.load_checkpoint(other, "teacher")["classes"][-1] == "neutral"  # a list of its own is fine
    with pytest.raises(CheckpointError, match=r"neutral\.pt was trained on the classes \[.*'neutral'\], but "
                                              r"results/data/dataset\.pt holds the classes \['anger', .*'surprise'\]"):
        checkpoints.load_model(other, "teacher", list(CLASSES), "results/data/dataset.pt")
    del ck["classes"]
    torch.save(ck, other)
    with pytest.raises(CheckpointError, match=r"names no class list"):
        checkpoints.load_checkpoint(other, "teacher")
    ds = {"images": torch.zeros(2, 48, 48, dtype=torch.uint8), "labels": torch.zeros(2, dtype=torch.int64),
          "split": torch.zeros(2, dtype=torch.int8), "subjects": ["a", "b"], "classes": ["happy", "sad"]}
    torch.save(ds, tmp_path / "ds.pt")
    assert datasets.load_prepared(tmp_path / "ds.pt")["classes"] == ["happy", "sad"]
    del ds["classes"]
    torch.save(ds, tmp_path / "ds.pt")
    with pytest.raises(DataError, match=r"ds\.pt names no class list"):
        datasets.load_prepared(tmp_path / "ds.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match=r"junk\.pt is damaged or not a prepared dataset"):
        datasets.load_prepared(tmp_path / "junk.pt")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "not-a-checkpoint", "missing"])
def test_a_damaged_weights_file_is_one_line_naming_it(weights, damage):
    data = weights.read_bytes()
    if damage == "truncated":
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        weights.write_bytes(os.urandom(2048))
    elif damage == "empty":
        weights.write_bytes(b"")
    elif damage == "not-a-checkpoint":
        torch.save({"weights": torch.zeros(3)}, weights)
    else:
        weights.unlink()
    with pytest.raises(CheckpointError) as err:
        checkpoints.load_checkpoint(weights, "teacher")
    msg = str(err.value)
    assert str(weights) in msg and "\n" not in msg and "weights_only" not in msg and "snakemake" in msg


def test_weights_that_do_not_fit_their_architecture_are_refused(weights):
    ck = torch.load(weights, weights_only=True)
    ck["arch"]["hidden"] = 99
    torch.save(ck, weights)
    with pytest.raises(CheckpointError, match="do not fit its architecture"):
        checkpoints.load_model(weights, "teacher")


def test_a_damaged_resume_checkpoint_is_set_aside_and_training_starts_over(tmp_path, caplog):
    ck = tmp_path / "resume.pt"
    ck.write_bytes(b"PK\x03\x04 half a zip")
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 255, (32, 48, 48), generator=g, dtype=torch.uint8)
    y = torch.arange(32) % 7
    hp = settings.TrainHP(epochs=1, lr=0.01, batch_size=16, weight_decay=0.0, label_smoothing=0.0, warmup_epochs=0, mixup=0.0, ema=0.0,
                          class_balance=0.0)
    augment = settings.Augment.of(fer_config.defaults()["augment"])
    with caplog.at_level("WARNING", logger="fer"):
        result = training.fit(nets.FERNet(**TINY), x[:24], y[:24], x[24:], y[24:], hp=hp, augment_cfg=augment,
                              seed=0, teacher=None, kd=None, checkpoint=ck, desc="t", data_key="", progress=False,
                              precision="fp32", device="cpu")
    assert len(result["history"]) == 1
    assert (tmp_path / "resume.pt.damaged").read_bytes() == b"PK\x03\x04 half a zip"
    assert "is damaged" in caplog.text and "training starts over" in caplog.text


# ------------------------------------------------------------------------------------------- permissions
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_get_the_permissions_the_umask_says(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        files.write_text(tmp_path / "out.txt", "x")
        files.save_torch(tmp_path / "out.pt", {"a": torch.zeros(1)})
    finally:
        os.umask(old)
    for name in ("out.txt", "out.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
