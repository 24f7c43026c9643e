"""ONNX export: float, fp16, QCDQ (8/6-bit), INT4 and fake-quant graphs, onnxruntime/PyTorch parity on the test
split, and the deployable file's size against the computed size.

Tolerance (fer.deploy.onnx_export.TOLERANCE), onnxruntime against PyTorch on the same preprocessed test images:
  float and fp16 graphs  identical top-1 predictions on every image, max |logit difference| <= 1e-4
  fake-quant graphs      identical top-1 predictions on >= 99% of the images, max |logit difference| <= 0.05
  QCDQ (int8), INT4      identical top-1 predictions on >= 99% of the images, max |logit difference| <= 0.1
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from fer import CLASSES, checkpoints, errors
from fer.data import datasets, preprocess
from fer.deploy import kernels, onnx_export, ort
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
    assert onnx_export.graph_format(quantize.quant_info(4, 4, "ptq"), qcdq_bits=[8, 4]) == "int4"
    assert onnx_export.graph_format(quantize.quant_info(6, 6, "ptq"), qcdq_bits=[8, 6, 4]) == "qcdq"
    assert onnx_export.graph_format(None, fp16=True) == "fp16"


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
    int8 = {i.name for i in g.graph.initializer if i.data_type == onnx.TensorProto.INT8}
    weights = [n.input[0] for n in g.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in int8]
    assert len(weights) == 4  # conv2, conv3, fc1, fc2 weights stored as int8; conv1 (1 input channel) in fp32
    # what onnxruntime runs (the project's sessions, fer.deploy.ort): the first block in fp32 (an NCHWc conv and
    # pool), int8 kernels from conv2 on, fc1 and fc2 both fused into QGemm, uint8 pools in NHWC
    executed = kernels.optimized_op_counts(path)
    assert executed.get("QLinearConv") == 2 and executed.get("QGemm") == 2, executed
    assert executed.get("Conv") == 1 and executed.get("MaxPool") == 1 and executed.get("NhwcMaxPool") == 2, executed
    assert "Gemm" not in executed and executed.get("DequantizeLinear", 0) <= 1, executed
    assert kernels.classify(executed)[0] == "int8"
    assert onnx_export.fused_int8_nodes(path) == {"QGemm": 2, "QLinearConv": 2}
    par = onnx_export.parity(path, q, preprocess.to_tensor(images))
    assert onnx_export.within_tolerance("qcdq", par), par


def test_int8_graph_rearrangement_computes_the_same_numbers(float_model, images, tmp_path):
    """to_int8_cpu_graph moves quantizers and dequantizes conv1 only where that is exact: with every onnxruntime
    optimization off (reference kernels, Q/DQ computed as written) both graphs give the same logits; brevitas'
    own graph leaves fc1 an fp32 Gemm (no Q/DQ pair in front of it), the rearranged one fuses it."""
    q = quantize.ptq(float_model, images, weight_bits=8, act_bits=8, batches=1, batch_size=80)
    raw, fast = tmp_path / "raw.onnx", tmp_path / "fast.onnx"
    onnx_export.export_model(q, raw, "qcdq", int8_cpu=False)
    onnx_export.export_model(q, fast, "qcdq")
    x = preprocess.to_tensor(images).numpy()
    outs = []
    for path in (raw, fast):
        sess = ort.session(path, 1, level="disable")
        outs.append(sess.run(["logits"], {"input": x})[0])
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-5, rtol=0)
    assert (outs[1].argmax(1) == outs[0].argmax(1)).all()
    assert kernels.optimized_op_counts(raw, level="extended").get("Gemm") == 1  # fc1 stays fp32 in brevitas' graph
    onnx_export.export_model(float_model, tmp_path / "float.onnx", "float")
    with pytest.raises(ValueError, match="not a QCDQ graph"):
        onnx_export.to_int8_cpu_graph(onnx.load(str(tmp_path / "float.onnx")))


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
                                            "split": torch.tensor([0] * 48 + [1] * 16 + [2] * 16, dtype=torch.int8),
                                            "classes": list(CLASSES)})
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


STUDENT = {"channels": [16, 32, 48], "hidden": 128, "dropout": 0.3}  # the default student: real proportions


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(3)
    m = nets.FERNet(**STUDENT)
    m.train()
    with torch.no_grad():
        m(torch.randn(32, 1, 48, 48))
    return m.eval()


def _initializer_types(path) -> dict:
    out = {}
    for i in onnx.load(str(path)).graph.initializer:
        out[i.data_type] = out.get(i.data_type, 0) + 1
    return out


def test_fp16_graph_stores_half_the_bytes_and_computes_what_pytorch_computes(student, images, tmp_path):
    from fer.compression import fp16, size

    onnx_export.export_model(student, tmp_path / "kd.onnx", "float")
    arch, state = fp16.to_fp16(student)
    assert arch["batchnorm"] is False and all(v.dtype == torch.float16 for v in state.values())
    half = fp16.rounded_model(student)
    path = tmp_path / "fp16_kd.onnx"
    onnx_export.export_model(half, path, "fp16")
    types = _initializer_types(path)
    assert set(types) == {onnx.TensorProto.FLOAT16} and types[onnx.TensorProto.FLOAT16] == 10  # 5 weights, 5 biases
    assert sum(n.op_type == "Cast" for n in onnx.load(str(path)).graph.node) == 10  # explicit fp32 compute
    ratio = path.stat().st_size / (tmp_path / "kd.onnx").stat().st_size
    assert 0.49 < ratio < 0.52, ratio
    assert size.float_size_bytes(half, 2) * 2 == size.float_size_bytes(student)
    par = onnx_export.parity(path, half, preprocess.to_tensor(images))
    assert onnx_export.within_tolerance("fp16", par) and par["max_abs_logit_diff"] < 1e-5, par
    assert (half(preprocess.to_tensor(images)).argmax(1) == student(preprocess.to_tensor(images)).argmax(1)).all()


def test_convert_fp16_rule_writes_a_float16_checkpoint(student, tmp_path):
    from fer.compression import size
    from fer.stages.compress import convert_fp16

    checkpoints.save_checkpoint(tmp_path / "kd.pt", "kd", nets.current_arch(student), student.state_dict(),
                                {"seed": 0})
    out = convert_fp16(variant="fp16_kd", base="kd", source=tmp_path / "kd.pt", out_weights=tmp_path / "fp16_kd.pt")
    ckpt = checkpoints.load_checkpoint(tmp_path / "fp16_kd.pt", "fp16_kd")  # weights_only=True
    assert checkpoints.is_fp16(ckpt) and not ckpt.get("quant") and ckpt["meta"]["base"] == "kd"
    assert all(v.dtype == torch.float16 for v in ckpt["state_dict"].values())
    assert (tmp_path / "fp16_kd.pt").stat().st_size < 0.55 * (tmp_path / "kd.pt").stat().st_size
    model = checkpoints.load_model(tmp_path / "fp16_kd.pt", "fp16_kd")
    assert out["size_bytes"] == size.deployed_size_bytes(ckpt, model) == size.float_size_bytes(student) // 2
    assert onnx_export.graph_format(ckpt.get("quant"), fp16=checkpoints.is_fp16(ckpt)) == "fp16"
    with pytest.raises(errors.FERError, match="float FERNet"):  # an fp16 checkpoint is no base for another one
        convert_fp16(variant="fp16_x", base="fp16_kd", source=tmp_path / "fp16_kd.pt", out_weights=tmp_path / "x.pt")


def test_int4_packing_round_trips():
    from onnx import numpy_helper

    values = np.array([-8, -7, -1, 0, 1, 6, 7], dtype=np.int8)  # odd length: the last byte holds one value
    t = onnx_export.int4_tensor("w", values)
    assert t.data_type == onnx.TensorProto.INT4 and len(t.raw_data) == 4
    assert np.array_equal(numpy_helper.to_array(t), values)
    with pytest.raises(ValueError, match="int4"):
        onnx_export.int4_tensor("w", np.array([8]))


def test_int4_graph_is_the_real_size_and_matches_brevitas(student, images, tmp_path):
    from fer.compression import size

    q = quantize.ptq(student, images, weight_bits=4, act_bits=4, batches=1, batch_size=80)
    path = tmp_path / "ptq_kd_4.onnx"
    onnx_export.export_model(q, path, "int4", opset=17)
    onnx_export.export_model(student, tmp_path / "kd.onnx", "float")
    g = onnx.load(str(path))
    assert onnx_export.opset_of(path) == 21
    int4 = [i for i in g.graph.initializer if i.data_type == onnx.TensorProto.INT4]
    assert sorted(tuple(i.dims) for i in int4) == sorted(tuple(layer.weight.shape) for _, layer in q.quant_layers())
    assert not [i for i in g.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) > 1]
    for node in g.graph.node:  # per-channel scales on axis 0
        if node.op_type == "DequantizeLinear" and node.input[0] in {i.name for i in int4}:
            assert {a.name: a.i for a in node.attribute}.get("axis", 1) == 0
    file_bytes = path.stat().st_size
    assert file_bytes <= 1.15 * size.packed_size_bytes(q), (file_bytes, size.packed_size_bytes(q))
    assert file_bytes <= (tmp_path / "kd.onnx").stat().st_size / 6
    x = preprocess.to_tensor(images)
    par = onnx_export.parity(path, q, x)
    assert par["max_abs_logit_diff"] < 1e-4 and par["prediction_agreement"] == 1.0, par
    # the benchmark's session dequantizes the int4 weights once at load: only the activations' DQ nodes remain
    from fer.deploy import kernels

    per_run = kernels.optimized_op_counts(path, 1)["DequantizeLinear"]
    at_load = kernels.optimized_op_counts(path, 1, fold_weight_dq=True)["DequantizeLinear"]
    assert at_load == per_run - len(int4) - len(q.quant_layers()), (per_run, at_load)  # weights and int32 biases


def test_the_app_runs_an_int4_graph_as_the_benchmark_does(float_model, images, tmp_path):
    """The inference app's ONNX classifier reads the export record: an INT4 graph's weights are dequantized once
    at load (no int4 kernels exist to fuse them into), an int8 graph keeps its integer kernels; both give the
    brevitas model's probabilities."""
    from fer.app.classifiers import OnnxClassifier

    n = len(images)
    files.save_torch(tmp_path / "dataset.pt", {"images": images, "labels": torch.arange(n) % 7,
                                            "split": torch.tensor([0] * 48 + [1] * 16 + [2] * 16, dtype=torch.int8),
                                            "classes": list(CLASSES)})
    for bits in (4, 8):
        variant = f"ptq_kd_{bits}"
        q = quantize.ptq(float_model, images, weight_bits=bits, act_bits=bits, batches=1, batch_size=80)
        checkpoints.save_checkpoint(tmp_path / f"{variant}.pt", variant, nets.current_arch(float_model),
                                    q.state_dict(), quant=quantize.quant_info(bits, bits, "ptq"))
        side = export_onnx(variant=variant, weights=tmp_path / f"{variant}.pt", dataset=tmp_path / "dataset.pt",
                           out_onnx=tmp_path / f"{variant}.onnx", out_json=tmp_path / f"{variant}.json", opset=17,
                           qcdq_bits=[8, 4])
        assert side["format"] == ("int4" if bits == 4 else "qcdq")
        clf = OnnxClassifier(tmp_path / f"{variant}.onnx", threads=1, variant=variant)
        opts = clf.session.get_session_options()
        try:
            folded = opts.get_session_config_entry("session.disable_quant_qdq") == "1"
        except RuntimeError:  # onnxruntime: no such entry was set
            folded = False
        assert folded == (bits == 4), bits
        with torch.no_grad():
            ref = torch.softmax(q(preprocess.to_tensor(images[:8])), 1).numpy()
        np.testing.assert_allclose(clf(images[:8].numpy()), ref, atol=5e-3)


def test_six_bit_weights_sit_in_int8_containers(float_model, images, tmp_path):
    q = quantize.ptq(float_model, images, weight_bits=6, act_bits=6, batches=1, batch_size=80)
    path = tmp_path / "ptq_kd_6.onnx"
    onnx_export.export_model(q, path, "qcdq")
    weights = [i for i in onnx.load(str(path)).graph.initializer if len(i.dims) > 1]
    assert weights and all(i.data_type == onnx.TensorProto.INT8 for i in weights)
    assert "no 6-bit type" in onnx_export.weight_storage("qcdq", 6)
    assert onnx_export.within_tolerance("qcdq", onnx_export.parity(path, q, preprocess.to_tensor(images)))


def test_summary_puts_the_deployable_file_beside_the_computed_size(tmp_path):
    from fer.report.summary import write_summary

    rows = [{"variant": "kd", "method": "distillation", "setting": "", "size_bytes": 1000, "accuracy": 0.9},
            {"variant": "ptq_kd_4", "method": "quantization", "setting": "4", "size_bytes": 130, "accuracy": 0.9}]
    sidecars = []
    for v, n, fmt, storage in (("kd", 1010, "float", "float32"), ("ptq_kd_4", 140, "int4", "int4 (packed 2 per byte)")):
        sidecars.append(tmp_path / f"{v}.json")
        sidecars[-1].write_text(json.dumps({"variant": v, "onnx_file_size_bytes": n, "format": fmt,
                                            "weight_storage": storage, "opset": 21 if fmt == "int4" else 17}))
    df = write_summary(rows, tmp_path / "summary.csv", exports=sidecars).set_index("variant")
    assert df.loc["ptq_kd_4", "onnx_file_bytes"] == 140 and df.loc["ptq_kd_4", "onnx_format"] == "int4"
    assert df.loc["ptq_kd_4", "onnx_over_size"] == pytest.approx(140 / 130)
    cols = list(df.columns)  # the two sizes side by side
    assert cols.index("onnx_file_bytes") == cols.index("size_bytes") + 1
    assert write_summary(rows, tmp_path / "plain.csv").shape[0] == 2  # no sidecars: the table without them


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
    assert {"kd", "pr_kd_medium", "pr_kd_macs200k", "ptq_kd_8", "ptq_kd_4", "fp16_kd",
            "ptq_pr_kd_medium_8"} <= set(names)
    ds = datasets.load_prepared(wd / "results" / "data" / "dataset.pt")
    x = preprocess.to_tensor(datasets.subset(ds, "test")[0])
    for v in names:
        side = json.loads((wd / "results" / "onnx" / f"{v}.json").read_text())
        ckpt = checkpoints.load_checkpoint(wd / "weights" / f"{v}.pt")  # weights_only=True for every variant
        bits = ckpt.get("quant", {}).get("weight_bits", 32) if ckpt.get("quant") else 32
        expected = ("fp16" if ckpt.get("fp16") else "float" if bits == 32 else "qcdq" if bits in (8, 6)
                    else "int4" if bits == 4 else "fake-quant")
        assert side["format"] == expected, v
        assert side["onnxruntime_session"] == {"disabled_optimizers": ["QDQPropagationTransformer"]}, v
        if expected == "qcdq" and bits == 8:  # rearranged for the int8 kernels: conv1 fp32, the rest fused
            assert side["onnxruntime_int8_nodes"] == {"QGemm": 2, "QLinearConv": 2}, (v, side)
        par = onnx_export.parity(wd / "results" / "onnx" / f"{v}.onnx", checkpoints.load_model(wd / "weights" / f"{v}.pt"), x)
        assert par["n"] == len(x) > 0
        assert onnx_export.within_tolerance(expected, par), (v, par)
        assert side["parity"]["within_tolerance"], v


def test_tiny_run_compressed_metrics(tiny_run):
    wd = tiny_run
    m = {p.stem: json.loads(p.read_text()) for p in (wd / "results" / "metrics").glob("*.json")}
    kd = m["kd"]
    for level in ("medium", "macs200k"):
        assert m[f"pr_kd_{level}"]["method"] == "pruning" and m[f"pr_kd_{level}"]["setting"] == level
        assert m[f"pr_kd_{level}"]["macs"] < kd["macs"]
    for b in (8, 4):
        row = m[f"ptq_kd_{b}"]
        assert row["method"] == "quantization" and str(row["setting"]) == str(b) and row["bits"] == b
        assert row["macs"] == kd["macs"]  # counted on the float twin
        assert row["size_bytes"] < kd["size_bytes"]
    assert m["ptq_kd_4"]["size_bytes"] < m["ptq_kd_8"]["size_bytes"]
    for base in ("kd",):  # fp16: 2 bytes per (BN-folded) parameter, same MACs, same function
        row = m[f"fp16_{base}"]
        assert row["method"] == "fp16" and row["size_bytes"] * 2 == m[base]["size_bytes"]
        assert row["macs"] == m[base]["macs"] and abs(row["accuracy"] - m[base]["accuracy"]) <= 0.05
    if "ptq_pr_kd_medium_8" in m:
        row = m["ptq_pr_kd_medium_8"]
        assert row["method"] == "pruning+quantization" and row["macs"] == m["pr_kd_medium"]["macs"]
