"""ONNX export: float, QCDQ (8-bit) and fake-quant graphs, and onnxruntime/PyTorch parity on the test split.

Tolerance (fer.deploy.onnx_export.TOLERANCE), onnxruntime against PyTorch on the same preprocessed test images:
  float graphs       identical top-1 predictions on every image, max |logit difference| <= 1e-4
  fake-quant graphs  identical top-1 predictions on >= 99% of the images, max |logit difference| <= 0.05
  QCDQ (int8)        identical top-1 predictions on >= 99% of the images, max |logit difference| <= 0.1
"""
from __future__ import annotations

import json

import onnx
import pytest
import torch

from fer import checkpoints
from fer.data import datasets, preprocess
from fer.deploy import onnx_export
from fer import files
from fer.models import nets
from fer.compression import quantize
from fer.stages.compress import export_onnx

ARCH = {"channels": [4, 6, 8], "hidden": 12, "dropout": 0.1}


@pytest.fixture(scope="module")
def float_model():
    torch.manual_seed(0)
    m = nets.FERNet(**ARCH)
    m.train()
    with torch.no_grad():
        m(torch.randn(32, 1, 48, 48))
    return m.eval()


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(2)
    return (torch.rand(80, 48, 48, generator=g) * 255).to(torch.uint8)


def test_graph_format_by_width():
    assert onnx_export.graph_format(None) == "float"
    assert onnx_export.graph_format(quantize.quant_info(32, 32, "float")) == "float"
    assert onnx_export.graph_format(quantize.quant_info(8, 8, "ptq")) == "qcdq"
    for b in (16, 6, 4):
        assert onnx_export.graph_format(quantize.quant_info(b, b, "qat")) == "fake-quant"
    assert onnx_export.graph_format(quantize.quant_info(8, 16, "ptq")) == "fake-quant"  # 16-bit activations: no QCDQ
    assert onnx_export.graph_format(quantize.quant_info(4, 4, "ptq"), qcdq_bits=[8, 4]) == "qcdq"


def test_float_export_parity(float_model, images, tmp_path):
    path = tmp_path / "kd.onnx"
    onnx_export.export_model(float_model, path, "float")
    g = onnx.load(str(path))
    assert g.opset_import[0].version >= 13
    assert [i.name for i in g.graph.input] == ["input"] and [o.name for o in g.graph.output] == ["logits"]
    assert not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in g.graph.node)
    par = onnx_export.parity(path, float_model, preprocess.to_tensor(images))
    assert par["n"] == 80 and onnx_export.within_tolerance("float", par), par


def test_qcdq_export_runs_int8_kernels(float_model, images, tmp_path):
    q = quantize.ptq(float_model, images, weight_bits=8, act_bits=8, batches=1, batch_size=80)
    path = tmp_path / "ptq_kd_8.onnx"
    onnx_export.export_model(q, path, "qcdq")
    g = onnx.load(str(path))
    ops = {n.op_type for n in g.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_inits = [i for i in g.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert len(int8_inits) >= 5  # the five weight tensors are stored as int8
    assert onnx_export.fused_int8_nodes(path).get("QLinearConv", 0) == 3
    par = onnx_export.parity(path, q, preprocess.to_tensor(images))
    assert onnx_export.within_tolerance("qcdq", par), par


@pytest.mark.parametrize("bits", [16, 4])
def test_fake_quant_export_parity(float_model, images, tmp_path, bits):
    q = quantize.ptq(float_model, images, weight_bits=bits, act_bits=bits, batches=1, batch_size=80)
    path = tmp_path / f"ptq_kd_{bits}.onnx"
    onnx_export.export_model(q, path, "fake-quant")
    g = onnx.load(str(path))
    assert "Round" in {n.op_type for n in g.graph.node}  # quantization emulated in float
    par = onnx_export.parity(path, q, preprocess.to_tensor(images))
    assert onnx_export.within_tolerance("fake-quant", par), par


def test_export_rule_writes_sidecar(float_model, images, tmp_path):
    n = len(images)
    files.save_torch(tmp_path / "dataset.pt", {"images": images, "labels": torch.arange(n) % 7,
                                            "split": torch.tensor([0] * 48 + [1] * 16 + [2] * 16, dtype=torch.int8)})
    q = quantize.ptq(float_model, images, weight_bits=6, act_bits=6, batches=1, batch_size=80)
    checkpoints.save_checkpoint(tmp_path / "ptq_kd_6.pt", "ptq_kd_6", nets.current_arch(float_model), q.state_dict(),
                       quant=quantize.quant_info(6, 6, "ptq"))
    info = export_onnx(variant="ptq_kd_6", weights=tmp_path / "ptq_kd_6.pt", dataset=tmp_path / "dataset.pt",
                       out_onnx=tmp_path / "ptq_kd_6.onnx", out_json=tmp_path / "ptq_kd_6.json", opset=17,
                       qcdq_bits=[8])
    side = json.loads((tmp_path / "ptq_kd_6.json").read_text())
    assert side == json.loads(json.dumps(info))
    assert side["format"] == "fake-quant" and side["weight_bits"] == 6 and side["opset"] >= 13
    assert side["parity"]["split"] == "test" and side["parity"]["n"] == 16 and side["parity"]["within_tolerance"]


def test_bad_format_or_opset_is_refused(float_model, tmp_path):
    with pytest.raises(ValueError):
        onnx_export.export_model(float_model, tmp_path / "x.onnx", "int3")
    with pytest.raises(ValueError):
        onnx_export.export_model(float_model, tmp_path / "x.onnx", "float", opset=11)


# ------------------------------------------------------------------------------ the tiny DAG end to end
def test_every_variant_exported_with_parity_on_the_test_split(tiny_run):
    """Each variant of the tiny run: ONNX graph + sidecar; onnxruntime matches PyTorch on the test split."""
    wd = tiny_run
    names = sorted(p.stem for p in (wd / "results" / "metrics").glob("*.json"))
    assert {"kd", "pr_kd_low", "pr_kd_medium", "pr_kd_high", "ptq_kd_32", "ptq_kd_16", "ptq_kd_8", "ptq_kd_6",
            "ptq_kd_4"} <= set(names)
    ds = datasets.load_prepared(wd / "results" / "data" / "dataset.pt")
    x = preprocess.to_tensor(datasets.subset(ds, "test")[0])
    for v in names:
        side = json.loads((wd / "results" / "onnx" / f"{v}.json").read_text())
        ckpt = checkpoints.load_checkpoint(wd / "weights" / f"{v}.pt")  # weights_only=True for every variant
        bits = ckpt.get("quant", {}).get("weight_bits", 32) if ckpt.get("quant") else 32
        expected = "float" if bits == 32 else "qcdq" if bits == 8 else "fake-quant"
        assert side["format"] == expected, v
        par = onnx_export.parity(wd / "results" / "onnx" / f"{v}.onnx", checkpoints.load_model(wd / "weights" / f"{v}.pt"), x)
        assert par["n"] == len(x) > 0
        assert onnx_export.within_tolerance(expected, par), (v, par)
        assert side["parity"]["within_tolerance"], v


def test_tiny_run_compressed_metrics(tiny_run):
    wd = tiny_run
    m = {p.stem: json.loads(p.read_text()) for p in (wd / "results" / "metrics").glob("*.json")}
    kd = m["kd"]
    assert m["ptq_kd_32"]["accuracy"] == kd["accuracy"] and m["ptq_kd_32"]["size_bytes"] == kd["size_bytes"]
    for level in ("low", "medium", "high"):
        assert m[f"pr_kd_{level}"]["method"] == "pruning" and m[f"pr_kd_{level}"]["setting"] == level
        assert m[f"pr_kd_{level}"]["macs"] < kd["macs"]
    for b in (16, 8, 6, 4):
        row = m[f"ptq_kd_{b}"]
        assert row["method"] == "quantization" and str(row["setting"]) == str(b) and row["bits"] == b
        assert row["macs"] == kd["macs"]  # counted on the float twin
        assert row["size_bytes"] < kd["size_bytes"]
    assert m["ptq_kd_4"]["size_bytes"] < m["ptq_kd_6"]["size_bytes"] < m["ptq_kd_8"]["size_bytes"] \
        < m["ptq_kd_16"]["size_bytes"]
    if "ptq_pr_kd_medium_8" in m:
        row = m["ptq_pr_kd_medium_8"]
        assert row["method"] == "pruning+quantization" and row["macs"] == m["pr_kd_medium"]["macs"]
