"""Structured pruning with torch-pruning: channel counts from the config ratios, 7 outputs, L1 choice, reload."""
from __future__ import annotations

import pytest
import torch

from fer import CLASSES, checkpoints
from fer import files
from fer.report import metrics
from fer.models import nets
from fer.compression import prune
from fer import config as fer_config
from fer import settings
from fer.stages.compress import prune_student

STUDENT_ARCH = fer_config.defaults()["models"]["student"]  # the default widths, from config/config.yaml

CONFIG = fer_config.defaults()
RATIOS = CONFIG["prune"]["ratios"]

# The KD student (16/32/48 channels, 128 hidden) under the default ratios; each layer keeps
# round(n * (1 - ratio)) channels: e.g. high conv1 16 * 0.6 = 9.6 -> 10, fc1 128 * 0.4 = 51.2 -> 51.
EXPECTED = {
    "low": ([13, 22, 29], 77),
    "medium": ([11, 19, 24], 64),
    "high": ([10, 16, 19], 51),
}


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    m = nets.FERNet(**STUDENT_ARCH)
    m.train()
    with torch.no_grad():
        m(torch.randn(16, 1, 48, 48))
    return m.eval()


@pytest.mark.parametrize("level", ["low", "medium", "high"])
def test_configured_channel_counts_and_seven_outputs(student, level):
    pruned, record = prune.pruned_copy(student, RATIOS[level])
    channels, hidden = EXPECTED[level]
    arch = nets.current_arch(pruned)
    assert arch["channels"] == channels and arch["hidden"] == hidden
    assert arch == prune.expected_arch(nets.current_arch(student), RATIOS[level])
    assert pruned.classifier.fc2.out_features == 7
    assert pruned.classifier.fc1.in_features == channels[2] * 6 * 6
    for i, c in enumerate(channels, 1):
        assert getattr(pruned.features, f"bn{i}").num_features == c
    assert pruned(torch.randn(3, 1, 48, 48)).shape == (3, 7)
    assert record["channels_after"] == {"conv1": channels[0], "conv2": channels[1], "conv3": channels[2],
                                        "fc1": hidden}
    assert [len(v) for v in record["kept"].values()] == [*channels, hidden]
    assert nets.current_arch(student)["channels"] == [16, 32, 48]  # the original is untouched


def test_high_level_halves_the_macs(student):
    pruned, _ = prune.pruned_copy(student, RATIOS["high"])
    macs0, _ = metrics.count_macs_params(student)
    macs1, _ = metrics.count_macs_params(pruned)
    assert macs1 <= 0.5 * macs0


def test_lowest_l1_channels_go(student):
    """Channels whose whole group has the smallest L1 magnitude are the ones removed."""
    m = nets.FERNet(**STUDENT_ARCH).eval()
    m.load_state_dict(student.state_dict())
    weak = [1, 5, 9]
    with torch.no_grad():
        for c in weak:
            m.features.conv1.weight[c] *= 1e-3
            m.features.bn1.weight[c] *= 1e-3
            m.features.bn1.bias[c] *= 1e-3
            m.features.conv2.weight[:, c] *= 1e-3
    _, record = prune.pruned_copy(m, {"conv1": 3 / 16})  # remove exactly 3 of 16
    assert record["kept"]["features.conv1"] == [c for c in range(16) if c not in weak]
    assert record["history"][0][:2] == ["features.conv1", True]
    assert sorted(record["history"][0][2]) == weak


def test_kept_channels_carry_their_weights(student):
    pruned, record = prune.pruned_copy(student, RATIOS["medium"])
    kept = record["kept"]["features.conv2"]
    kept_in = record["kept"]["features.conv1"]
    expect = student.features.conv2.weight[kept][:, kept_in]
    assert torch.equal(pruned.features.conv2.weight, expect)


def test_classifier_is_never_pruned(student):
    with pytest.raises(ValueError, match="unknown layers"):
        prune.prune_model(nets.FERNet(**STUDENT_ARCH), {"fc2": 0.5})
    pruned, _ = prune.pruned_copy(student, {"conv1": 0.9, "conv2": 0.9, "conv3": 0.9, "fc1": 0.9})
    assert pruned.classifier.fc2.out_features == 7
    assert nets.current_arch(pruned)["channels"] == [2, 3, 5]


def test_ratio_outside_range_is_refused():
    with pytest.raises(ValueError):
        prune.kept_count(16, 1.0)
    with pytest.raises(ValueError):
        prune.kept_count(16, -0.1)


def test_checkpoint_reloads_with_weights_only_and_replays(student, tmp_path):
    pruned, record = prune.pruned_copy(student, RATIOS["high"])
    path = tmp_path / "pr_kd_high.pt"
    checkpoints.save_checkpoint(path, "pr_kd_high", nets.current_arch(pruned), pruned.state_dict(), {"pruning": record})
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["arch"]["channels"] == EXPECTED["high"][0]
    loaded = checkpoints.load_model(path)
    x = torch.randn(4, 1, 48, 48)
    assert torch.equal(loaded(x), pruned(x))
    # the recorded history replayed on the unpruned student gives the same network
    replayed = prune.replay(nets.current_arch(student), student.state_dict(), ckpt["meta"]["pruning"]["history"])
    assert torch.allclose(replayed.eval()(x), pruned(x), atol=1e-6)


def test_prune_rule_fine_tunes_and_saves(student, tmp_path):
    g = torch.Generator().manual_seed(0)
    n = 96
    ds = {"images": (torch.rand(n, 48, 48, generator=g) * 255).to(torch.uint8), "labels": torch.arange(n) % 7,
          "split": torch.tensor([0] * 64 + [1] * 16 + [2] * 16, dtype=torch.int8)}
    ds["classes"] = list(CLASSES)  # a prepared dataset names its classes
    files.save_torch(tmp_path / "dataset.pt", ds)
    checkpoints.save_checkpoint(tmp_path / "kd.pt", "kd", nets.current_arch(student), student.state_dict())
    # a distinct teacher file: a checkpoint is checked against the variant it claims to be
    checkpoints.save_checkpoint(tmp_path / "teacher.pt", "teacher", nets.current_arch(student), student.state_dict())
    out = tmp_path / "pr_kd_low.pt"
    finetune = settings.TrainHP.of(fer_config.merge(CONFIG["prune"]["finetune"], {"epochs": 1, "lr": 1e-3, "batch_size": 32}))
    prune_student(level="low", ratios=RATIOS["low"], student=tmp_path / "kd.pt", teacher=tmp_path / "teacher.pt",
                  dataset=tmp_path / "dataset.pt", finetune=finetune, kd=settings.KD(temperature=4.0, alpha=0.7),
                  augment=settings.Augment.of(CONFIG["augment"]), seed=0, precision="fp32", device="cpu",
                  checkpoint=tmp_path / "ck.pt", out_weights=out, budget=None, teacher_logits=None)
    ckpt = checkpoints.load_checkpoint(out)
    assert ckpt["variant"] == "pr_kd_low"
    assert ckpt["arch"]["channels"] == EXPECTED["low"][0] and ckpt["arch"]["hidden"] == EXPECTED["low"][1]
    assert ckpt["meta"]["macs_after"] < ckpt["meta"]["macs_before"]
    assert ckpt["meta"]["pruning"]["ratios"] == RATIOS["low"]
    assert not (tmp_path / "ck.pt").exists()
    assert checkpoints.load_model(out)(torch.zeros(1, 1, 48, 48)).shape == (1, 7)
