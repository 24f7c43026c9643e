"""brevitas quantization: integer grids, BN folding, reload with weights_only=True, the float reference, QAT."""
from __future__ import annotations

import pytest
import torch

from fer import CLASSES, checkpoints
from fer import files
from fer.models import nets
from fer.data import preprocess
from fer.compression import quantize
from fer import config as fer_config
from fer import settings
from fer.stages.compress import quantize_student

ARCH = {"channels": [4, 6, 8], "hidden": 12, "dropout": 0.1}


@pytest.fixture(scope="module")
def float_model():
    torch.manual_seed(0)
    m = nets.FERNet(**ARCH)
    m.train()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that folding matters
        for _ in range(3):
            m(torch.randn(32, 1, 48, 48) * 2 + 0.3)
    return m.eval()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    return (torch.rand(96, 48, 48, generator=g) * 255).to(torch.uint8)


@pytest.fixture(scope="module")
def quantized(float_model, images):
    return {b: quantize.ptq(float_model, images, weight_bits=b, act_bits=b, batches=2, batch_size=48)
            for b in (16, 8, 6, 4)}


def test_bn_folding_keeps_the_function(float_model):
    """Conv -> ReLU -> MaxPool with the folded weights (no BatchNorm) gives the float model's logits."""
    import torch.nn.functional as F

    w = quantize.fold_bn_state_dict(float_model)
    x = torch.randn(8, 1, 48, 48)
    h = x
    for i in (1, 2, 3):
        h = F.max_pool2d(F.relu(F.conv2d(h, w[f"features.conv{i}.weight"], w[f"features.conv{i}.bias"], padding=1)), 2)
    h = F.relu(F.linear(h.flatten(1), w["classifier.fc1.weight"], w["classifier.fc1.bias"]))
    out = F.linear(h, w["classifier.fc2.weight"], w["classifier.fc2.bias"])
    assert torch.allclose(out, float_model(x), atol=1e-4)
    assert not torch.allclose(w["features.conv1.weight"], float_model.features.conv1.weight)  # BN did something


@pytest.mark.parametrize("bits", [8, 6, 4])
def test_at_most_2_pow_b_values_per_output_channel(quantized, bits):
    q = quantized[bits]
    layers = q.quant_layers()
    assert [n for n, _ in layers] == ["features.conv1", "features.conv2", "features.conv3", "classifier.fc1",
                                      "classifier.fc2"]
    for name, layer in layers:
        qw = layer.quant_weight()
        assert int(qw.bit_width) == bits, name
        ints = quantize.int_weights(layer)
        assert torch.equal(ints, ints.round())
        assert ints.abs().max() <= 2 ** (bits - 1) - 1  # narrow signed range
        for c in range(ints.shape[0]):
            assert torch.unique(ints[c]).numel() <= 2 ** bits, (name, c)
        # the dequantized weights are exactly integers times one scale per output channel
        scale = qw.scale.reshape(-1)
        assert scale.numel() == ints.shape[0]
        assert torch.allclose(qw.value, ints * qw.scale, atol=1e-6)
    for name, act in q.act_quantizers():
        assert int(act.act_quant.bit_width()) == bits, name


def test_quantized_logits_approach_float_as_bits_grow(float_model, quantized, images):
    x = preprocess.to_tensor(images[:48])
    ref = float_model(x)
    err = {b: float((q(x) - ref).abs().mean()) for b, q in quantized.items()}
    assert err[16] < err[8] < err[4]
    assert err[16] < 0.05 * float(ref.abs().mean())


def test_sixteen_bits_keep_a_float_bias(quantized):
    assert quantized[16].bias_bits is None
    assert not quantized[16].classifier.fc1.bias_quant.is_quant_enabled
    assert quantized[8].bias_bits == 32
    assert quantized[8].classifier.fc1.bias_quant.is_quant_enabled


@pytest.mark.parametrize("bits", [16, 8, 6, 4])
def test_reload_with_weights_only(quantized, images, tmp_path, bits):
    q = quantized[bits]
    path = tmp_path / f"ptq_kd_{bits}.pt"
    checkpoints.save_checkpoint(path, f"ptq_kd_{bits}", nets.current_arch(nets.FERNet(**ARCH)), q.state_dict(),
                       {"base": "kd"}, quant=quantize.quant_info(bits, bits, "ptq"))
    ckpt = torch.load(path, weights_only=True)  # plain tensors, numbers, strings: no pickled objects
    assert ckpt["quant"]["weight_bits"] == bits and ckpt["arch"]["channels"] == ARCH["channels"]
    loaded = checkpoints.load_model(path)
    assert isinstance(loaded, quantize.QuantFERNet) and not loaded.training
    x = preprocess.to_tensor(images[:16])
    assert torch.equal(loaded(x), q(x))
    # MACs are counted on the float twin built from the checkpoint's arch
    assert isinstance(nets.build(ckpt["arch"]), nets.FERNet)


def test_32_bits_is_the_float_model(float_model, tmp_path, images):
    path = tmp_path / "ptq_kd_32.pt"
    checkpoints.save_checkpoint(path, "ptq_kd_32", nets.current_arch(float_model), float_model.state_dict(),
                       quant=quantize.quant_info(32, 32, "float"))
    loaded = checkpoints.load_model(path)
    assert type(loaded) is nets.FERNet
    x = preprocess.to_tensor(images[:16])
    assert torch.equal(loaded(x), float_model(x))


def test_quantize_rule_float_reference_and_ptq(float_model, tmp_path, images):
    """The rule on a tiny prepared dataset: 32 bits copies the float weights, 4 bits is a QuantFERNet."""
    n = len(images)
    ds = {"images": images, "labels": torch.arange(n) % 7, "split": torch.tensor([0] * 64 + [1] * 16 + [2] * 16,
                                                                                   dtype=torch.int8)}
    ds["classes"] = list(CLASSES)  # a prepared dataset names its classes
    files.save_torch(tmp_path / "dataset.pt", ds)
    checkpoints.save_checkpoint(tmp_path / "kd.pt", "kd", nets.current_arch(float_model), float_model.state_dict())
    # a distinct teacher file: a checkpoint is checked against the variant it claims to be
    checkpoints.save_checkpoint(tmp_path / "teacher.pt", "teacher", nets.current_arch(float_model), float_model.state_dict())
    common = dict(source=tmp_path / "kd.pt", teacher=tmp_path / "teacher.pt", dataset=tmp_path / "dataset.pt",
                  calibration=settings.Calibration(batches=1, batch_size=32, bias_correction=True),
                  qat=settings.QAT(epochs=1, lr=1e-3, batch_size=32, weight_decay=0.0),
                  kd=settings.KD(temperature=4.0, alpha=0.7),
                  augment=settings.Augment.of(fer_config.defaults()["augment"]), seed=0, base="kd", act_bits="same",
                  device="cpu", precision="fp32", teacher_logits=None)
    quantize_student(variant="ptq_kd_32", bits=32, method="ptq", checkpoint=tmp_path / "c32.pt",
                        out_weights=tmp_path / "ptq_kd_32.pt", **common)
    c32 = checkpoints.load_checkpoint(tmp_path / "ptq_kd_32.pt")
    assert c32["quant"]["method"] == "float"
    for k, v in float_model.state_dict().items():
        assert torch.equal(c32["state_dict"][k], v)
    out = quantize_student(variant="ptq_kd_4", bits=4, method="qat", checkpoint=tmp_path / "c4.pt",
                              out_weights=tmp_path / "ptq_kd_4.pt", **common)
    c4 = checkpoints.load_checkpoint(tmp_path / "ptq_kd_4.pt")
    assert c4["quant"]["weight_bits"] == 4 and c4["quant"]["act_bits"] == 4
    assert c4["quant"]["method"] == out["method"] in ("ptq", "qat")  # qat unless it lost on validation
    assert c4["quant"]["requested_method"] == "qat"
    assert c4["arch"] == nets.current_arch(float_model)  # the float arch: MACs from the float twin
    assert not (tmp_path / "c4.pt").exists()
    assert isinstance(checkpoints.load_model(tmp_path / "ptq_kd_4.pt"), quantize.QuantFERNet)


def test_qat_step_keeps_weights_on_the_grid(float_model, images):
    q = quantize.ptq(float_model, images, weight_bits=4, act_bits=4, batches=1, batch_size=48)
    q.train()
    opt = torch.optim.SGD(q.parameters(), lr=0.1)
    x = preprocess.to_tensor(images[:32])
    before = q.features.conv2.weight.detach().clone()
    loss = torch.nn.functional.cross_entropy(q(x), torch.arange(32) % 7)
    loss.backward()
    assert q.features.conv2.weight.grad is not None and q.features.conv2.weight.grad.abs().sum() > 0
    opt.step()
    q.eval()
    assert not torch.equal(before, q.features.conv2.weight)
    ints = quantize.int_weights(q.features.conv2)
    assert all(torch.unique(ints[c]).numel() <= 16 for c in range(ints.shape[0]))


def test_bad_bit_width_is_refused():
    with pytest.raises(ValueError, match="bit width"):
        quantize.QuantFERNet(ARCH, 1, 8)
    with pytest.raises(ValueError, match="bit width"):
        quantize.QuantFERNet(ARCH, 8, 32)


@pytest.mark.parametrize("settings,name", [
    ({"quantize": {"act_bits": 2}}, "act_bits"),
    ({"quantize": {"qat_bits": [32]}}, "qat_bits"),
    ({"quantize": {"combined": [{"level": "extreme", "bits": 8}]}}, "level"),
    ({"export": {"opset": 11}}, "opset"),
    ({"export": {"qcdq_bits": [16]}}, "qcdq_bits"),
    ({"prune": {"ratios": {"high": {"conv1": 1.0}}}}, "conv1"),
    ({"prune": {"ratios": {"high": {"conv4": 0.5}}}}, "conv4"),
])
def test_config_rejects_compression_settings_outside_the_allowed_set(settings, name):
    """(Levels and bit widths of the variants themselves: tests/test_config.py, also through snakemake.)"""
    import copy

    import yaml

    from conftest import REPO, TINY_CONFIG
    from fer import config as fer_config

    def merge(a, b):
        out = copy.deepcopy(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
        return out

    base = merge(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), yaml.safe_load(TINY_CONFIG.read_text()))
    fer_config.validate(copy.deepcopy(base), REPO / "config" / "schema.yaml", REPO)  # the shipped settings pass
    with pytest.raises(fer_config.ConfigError, match=name):
        fer_config.validate(merge(base, settings), REPO / "config" / "schema.yaml", REPO)
