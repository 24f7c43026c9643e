"""Teacher and student networks: output shapes, arch round trip, checkpoints, MACs and parameter counts."""
from __future__ import annotations

import pytest
import torch

from fer import checkpoints
from fer import CLASSES
from fer.report import metrics
from fer.models import nets

from fer import config as fer_config
TEACHER_ARCH = fer_config.defaults()["models"]["teacher"]
STUDENT_ARCH = fer_config.defaults()["models"]["student"]  # the default widths, from config/config.yaml


@pytest.mark.parametrize("arch", [TEACHER_ARCH, STUDENT_ARCH,
                                  {"channels": [4, 8, 8], "hidden": 16, "dropout": 0.1},
                                  {"channels": [8, 16, 24], "hidden": 32, "dropout": 0.3},
                                  {"channels": [3, 5, 7], "hidden": 9, "dropout": 0.3}],
                         ids=["teacher", "student", "tiny", "custom", "odd"])
@pytest.mark.parametrize("n", [1, 5])
def test_output_shape_is_n_by_7(arch, n):
    model = nets.FERNet(**arch).eval()
    with torch.no_grad():
        out = model(torch.randn(n, 1, 48, 48))
    assert out.shape == (n, len(CLASSES)) == (n, 7)
    assert torch.isfinite(out).all()
    assert nets.current_arch(model)["channels"] == list(arch["channels"])
    assert nets.current_arch(model)["hidden"] == arch["hidden"]


def test_layer_names_are_stable():
    names = {n for n, _ in nets.FERNet(**STUDENT_ARCH).named_modules()}
    for n in ("features.conv1", "features.bn1", "features.conv2", "features.conv3", "classifier.fc1",
              "classifier.fc2"):
        assert n in names
    # Conv -> BN -> ReLU order (BN folds into the conv before quantization)
    kinds = [type(m).__name__ for m in nets.FERNet(**STUDENT_ARCH).features]
    assert kinds[:3] == ["Conv2d", "BatchNorm2d", "ReLU"]


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    torch.manual_seed(0)
    model = nets.FERNet(channels=[4, 8, 8], hidden=16, dropout=0.3).eval()
    path = tmp_path / "w.pt"
    checkpoints.save_checkpoint(path, "kd", nets.current_arch(model), model.state_dict(), {"best_epoch": 3})
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == checkpoints.FORMAT and raw["variant"] == "kd" and raw["meta"]["best_epoch"] == 3
    again = checkpoints.load_model(path)
    assert not again.training
    x = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    assert nets.build(raw["arch"]).arch["channels"] == [4, 8, 8]


def _hand_macs(channels, hidden, n_classes=7, size=48):
    """Multiply-accumulates of the convolutions (3x3, 'same') and the two linear layers."""
    macs, prev = 0, 1
    for c in channels:
        macs += size * size * c * prev * 9
        prev, size = c, size // 2
    return macs + prev * size * size * hidden + hidden * n_classes


def _hand_params(channels, hidden, n_classes=7, size=48):
    params, prev = 0, 1
    for c in channels:
        params += c * prev * 9 + 2 * c  # conv without bias + BN weight and bias
        prev, size = c, size // 2
    return params + prev * size * size * hidden + hidden + hidden * n_classes + n_classes


def test_macs_and_params_from_torch_pruning():
    student, teacher = nets.FERNet(**STUDENT_ARCH), nets.FERNet(**TEACHER_ARCH)
    s_macs, s_params = metrics.count_macs_params(student)
    t_macs, t_params = metrics.count_macs_params(teacher)
    assert s_macs > 0 and t_macs > s_macs
    assert t_params > s_params > 0
    for arch, macs, params in ((STUDENT_ARCH, s_macs, s_params), (TEACHER_ARCH, t_macs, t_params)):
        hand = _hand_macs(arch["channels"], arch["hidden"])
        assert hand <= macs <= 1.1 * hand  # the counter adds BN/ReLU/pool work on top of conv + linear
        assert params == _hand_params(arch["channels"], arch["hidden"])
    assert s_params == sum(p.numel() for p in student.parameters())
    assert student.training  # counting does not leave the model in eval mode
