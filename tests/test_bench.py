"""Local benchmark: statistics, machine description, both runtimes on a tiny model, what-ran labels, the summary
merge, the rule script's CLI and the exclusivity of benchmark jobs in the DAG."""
from __future__ import annotations

import json
import sys
import subprocess
import os
import time

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO, snakemake
from fer import checkpoints, errors, files
from fer.deploy import columns, jetson, latency
from fer.deploy.payload import jetson_device_bench as dev
from fer.models import nets
from fer.report.summary import write_summary

TINY_ARCH = {"channels": [4, 8, 8], "hidden": 16, "dropout": 0.1}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny float checkpoint and its ONNX export."""
    root = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    model = nets.build(TINY_ARCH).eval()
    for m in model.modules():  # non-trivial BN statistics, so folding them matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    weights = root / "kd.pt"
    checkpoints.save_checkpoint(weights, "kd", model.arch, model.state_dict())
    onnx_path = root / "kd.onnx"
    torch.onnx.export(model, torch.zeros(1, 1, 48, 48), str(onnx_path), input_names=["input"],
                      output_names=["logits"], dynamo=False, opset_version=17)
    return weights, onnx_path


# ---------------------------------------------------------------------------------------------- statistics
def test_latency_stats_match_numpy_and_the_jetson_device_script():
    rng = np.random.default_rng(0)
    t = rng.gamma(4.0, 0.05, size=101)
    s = latency.latency_stats(t)
    assert s["latency_ms_p50"] == pytest.approx(np.percentile(t, 50))
    assert s["latency_ms_p90"] == pytest.approx(np.percentile(t, 90))
    assert s["latency_ms_mean"] == pytest.approx(t.mean())
    assert s["latency_ms_std"] == pytest.approx(t.std())
    assert s["p90_over_p50"] == pytest.approx(np.percentile(t, 90) / np.percentile(t, 50))
    assert s["runs"] == 101
    d = dev.summarize(list(t))
    for key in ("latency_ms_p50", "latency_ms_p90", "latency_ms_mean", "latency_ms_std"):
        assert s[key] == pytest.approx(d[key]), key


def test_time_calls_runs_warmup_then_times_each_call():
    calls = []
    times = latency.time_calls(lambda: calls.append(1), runs=7, warmup=3)
    assert len(calls) == 10 and times.shape == (7,) and (times >= 0).all()
    with pytest.raises(errors.BenchmarkError):
        latency.time_calls(lambda: None, runs=0, warmup=0)


def test_time_calls_with_cpu_time_separates_waiting_from_computing():
    wall, cpu = latency.time_calls(lambda: time.sleep(0.002), runs=5, warmup=0, with_cpu=True)
    assert (wall >= 1.9).all() and (cpu < 1.0).all()  # sleeping: wall time passes, no CPU time


def test_realtime_scheduling_is_used_or_reported_and_always_restored():
    before = os.sched_getscheduler(0)
    with latency.scheduling(False) as policy:
        assert policy == "normal"
    with latency.scheduling(True) as policy:
        assert policy == "SCHED_FIFO 50" or policy.startswith("normal (")
        if policy == "SCHED_FIFO 50":
            assert os.sched_getscheduler(0) == os.SCHED_FIFO
    assert os.sched_getscheduler(0) == before


@pytest.mark.parametrize("text,expected", [
    ("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz\n",
     "Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz"),
    ("processor\t: 0\nmodel name\t: ARMv8 Processor rev 1 (v8l)\nBogoMIPS\t: 38.40\n\nHardware\t: NVIDIA Tegra X1\n",
     "ARMv8 Processor rev 1 (v8l)"),
    ("processor\t: 0\nBogoMIPS\t: 38.40\nHardware\t: BCM2835\n", "BCM2835"),
])
def test_cpu_model_from_cpuinfo(tmp_path, text, expected):
    f = tmp_path / "cpuinfo"
    f.write_text(text)
    assert latency.cpu_model(f) == expected
    assert latency.cpu_model(tmp_path / "missing")  # falls back to platform, never empty


# --------------------------------------------------------------------------------------------- runtimes
@pytest.mark.parametrize("runtime", [r for r in latency.RUNTIMES if r != "onnxruntime-cuda"])
def test_benchmark_row_describes_run_and_machine(tiny_model, runtime):
    weights, onnx_path = tiny_model
    row = latency.benchmark("kd", runtime, weights, onnx_path, runs=15, warmup=2, threads=1)
    assert list(row)[:len(columns.COLUMNS)] == columns.COLUMNS
    shared = columns.ROW_COLUMNS + columns.MACHINE_COLUMNS  # same leading columns as the Jetson rows
    assert list(row)[:len(shared)] == shared
    assert row["variant"] == "kd" and row["runtime"] == runtime and row["device"] == "local-cpu"
    assert row["runs"] == 15 and row["warmup"] == 2 and row["threads"] == 1
    assert 0 < row["latency_ms_min"] <= row["latency_ms_p50"] <= row["latency_ms_p90"] <= row["latency_ms_max"]
    assert row["precision"] == "fp32" and row["machine_cpu"] and row["machine_cores"] >= 1
    assert row["runtime_version"].startswith("torch " if runtime == "pytorch" else "onnxruntime ")
    assert row["python"].count(".") == 2
    assert 0 < row["cpu_ms_p50"] <= row["cpu_ms_p90"] and row["scheduling"] == "normal"
    if runtime == "onnxruntime":
        assert row["max_abs_diff"] < 1e-4  # the exported graph computes the checkpoint's logits
        assert row["executed"].startswith("fp32 kernels")
    json.dumps(row)  # serialisable as is


def test_pinning_restores_affinity():
    before = latency.usable_cores()
    with latency.pinned(1) as cores:
        assert len(cores) == 1 and latency.usable_cores() == cores
    assert latency.usable_cores() == before
    with latency.pinned(None) as cores:
        assert cores is None


def test_onnxruntime_reports_int8_kernels_for_a_qdq_graph(tmp_path):
    """A DQ -> Conv -> Q graph: onnxruntime fuses it into QLinearConv and the row says int8."""
    import onnx  # heavy: the onnx package, only for this hand-built graph
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).integers(-20, 20, (4, 1, 3, 3)).astype(np.int8), "w_q")
    consts = [w, numpy_helper.from_array(np.array(0.02, np.float32), "w_s"),
              numpy_helper.from_array(np.array(0, np.int8), "w_z"),
              numpy_helper.from_array(np.array(0.05, np.float32), "x_s"),
              numpy_helper.from_array(np.array(0, np.int8), "x_z"),
              numpy_helper.from_array(np.array(0.1, np.float32), "y_s"),
              numpy_helper.from_array(np.array(0, np.int8), "y_z")]
    nodes = [helper.make_node("QuantizeLinear", ["input", "x_s", "x_z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "x_s", "x_z"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["y"], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["y", "y_s", "y_z"], ["yq"]),
             helper.make_node("DequantizeLinear", ["yq", "y_s", "y_z"], ["logits"])]
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 48, 48])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 48, 48])], consts)
    path = tmp_path / "q.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    fields, out = latency.bench_onnxruntime(path, runs=5, warmup=1, threads=1, bits=8, export_format="qcdq")
    assert fields["precision"] == "int8" and "QLinearConv" in fields["executed"]
    assert out.shape == (1, 4, 48, 48)


@pytest.mark.parametrize("ops,bits,fmt,precision,says", [
    ({"Conv": 3, "FusedGemm": 1}, 32, "float", "fp32", "graph optimizations"),
    ({"QLinearConv": 3, "QGemm": 2, "QuantizeLinear": 1}, 8, "qcdq", "int8", "int8 kernels"),
    ({"QLinearConv": 3}, 6, "qcdq", "int8", "not a speed-up over 8 bits"),
    ({"Conv": 3, "QuantizeLinear": 4, "DequantizeLinear": 4}, 8, "qcdq", "fp32-qdq", "did not fuse"),
    ({"Conv": 3, "Round": 5, "Clip": 5}, 4, "fake-quant", "fp32-fakequant", "no speed-up over fp32"),
    ({"Conv": 3, "Round": 5}, 16, None, "fp32-fakequant", "no speed-up over fp32"),
])
def test_quantized_rows_say_what_ran_and_claim_no_false_speedup(ops, bits, fmt, precision, says):
    p, executed, note = latency.onnx_labels(ops, bits, fmt)
    assert p == precision and says in note and executed
    if bits < 8 or p != "int8":
        assert "speed-up" not in note or "not a speed-up" in note or "no speed-up" in note


def test_eager_pytorch_refuses_to_time_an_emulation(tiny_model, tmp_path):
    """A brevitas-quantized checkpoint (fake quantization in fp32) and an fp16 one (weights upcast to fp32) get no
    eager row: one-line error pointing at the ONNX graph; the DAG asks for no such job (rules/common.smk)."""
    from fer.compression import fp16, quantize

    weights, _ = tiny_model
    model = checkpoints.load_model(weights)
    q = quantize.ptq(model, (torch.rand(32, 48, 48) * 255).to(torch.uint8), weight_bits=4, act_bits=4, batches=1,
                     batch_size=32)
    checkpoints.save_checkpoint(tmp_path / "ptq_kd_4.pt", "ptq_kd_4", model.arch, q.state_dict(),
                                quant=quantize.quant_info(4, 4, "ptq"))
    arch, state = fp16.to_fp16(model)
    checkpoints.save_checkpoint(tmp_path / "fp16_kd.pt", "fp16_kd", arch, state, fp16=dict(fp16.INFO))
    for variant, says in (("ptq_kd_4", "fake quantization"), ("fp16_kd", "upcast to fp32")):
        with pytest.raises(errors.BenchmarkError, match=says) as exc:
            latency.benchmark(variant, "pytorch", tmp_path / f"{variant}.pt", runs=2, warmup=0)
        assert "onnxruntime" in str(exc.value) and "\n" not in str(exc.value)
    assert latency.eager_refusal(checkpoints.load_checkpoint(weights)) is None


def test_unknown_runtime_and_missing_onnx_are_one_line_errors(tiny_model, tmp_path):
    weights, _ = tiny_model
    with pytest.raises(errors.BenchmarkError, match="unknown runtime"):
        latency.benchmark("kd", "tflite", weights)
    with pytest.raises(errors.BenchmarkError, match="does not exist"):
        latency.benchmark("kd", "onnxruntime", weights, tmp_path / "nope.onnx", runs=2, warmup=0)


def test_onnxruntime_cuda_never_times_the_cpu_in_its_place(tiny_model):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime's CUDA provider is installed here")
    weights, onnx_path = tiny_model  # onnxruntime falls back to the CPU provider silently: the row must not
    with pytest.raises(errors.BenchmarkError, match=r"runs on \['CPUExecutionProvider'\], not CUDA"):
        latency.benchmark("kd", "onnxruntime-cuda", weights, onnx_path, runs=2, warmup=0)


def _tool(*args) -> subprocess.CompletedProcess:
    """tools/benchmark_variant.py as a user runs it (tests import only the library)."""
    return subprocess.run([sys.executable, str(REPO / "tools" / "benchmark_variant.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_cli_prints_and_writes_the_row(tiny_model, tmp_path):
    weights, onnx_path = tiny_model
    out = tmp_path / "kd_onnxruntime.json"
    proc = _tool("--variant", "kd", "--runtime", "onnxruntime", "--weights", weights, "--onnx", onnx_path,
                 "--runs", "10", "--warmup", "1", "--json", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads(proc.stdout)
    assert row["runs"] == 10 and row["runtime"] == "onnxruntime"
    saved = json.loads(out.read_text())
    assert saved["rows"][0]["latency_ms_p50"] == row["latency_ms_p50"] and "batch 1" in saved["protocol"]
    proc = _tool("--variant", "kd", "--runtime", "onnxruntime", "--weights", weights, "--onnx", tmp_path / "x.onnx")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error:") and "x.onnx does not exist" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------------------------ summary
def _metrics(tmp_path, variant, acc):
    f = tmp_path / f"{variant}.json"
    method = {"teacher": "teacher", "kd": "distillation", "scratch": "scratch"}[variant]
    files.write_json(f, {"variant": variant, "method": method, "setting": "", "params": 100, "macs": 1000,
                      "size_bytes": 400, "accuracy": acc, "macro_f1": acc - 0.1, "bits": 32,
                      "support": {"anger": 3}})
    return f


def _bench_file(tmp_path, variant, runtime, p50, device="local-cpu"):
    f = tmp_path / f"{variant}_{runtime}_{device}.json"
    files.write_json(f, {"rows": [{"variant": variant, "runtime": runtime, "device": device, "precision": "fp32",
                                "latency_ms_p50": p50, "latency_ms_p90": p50 * 1.2, "runs": 10, "warmup": 2,
                                "threads": 1, "bits": 99}]})
    return f


def test_summary_has_one_row_per_variant_runtime_device_with_accuracy_in_each(tmp_path):
    metrics = [_metrics(tmp_path, "teacher", 0.9), _metrics(tmp_path, "kd", 0.8), _metrics(tmp_path, "scratch", 0.7)]
    benches = [_bench_file(tmp_path, "kd", "onnxruntime", 0.1), _bench_file(tmp_path, "kd", "pytorch", 0.5),
               _bench_file(tmp_path, "teacher", "pytorch", 5.0), _bench_file(tmp_path, "teacher", "onnxruntime", 1.0)]
    jet = tmp_path / "jetson.json"
    jetson.write_outputs({"status": "ok", "rows": [{"variant": "kd", "runtime": "tensorrt", "device": "jetson-gpu",
                                                     "precision": "fp16", "latency_ms_p50": 0.4,
                                                     "latency_ms_p90": 0.5}]}, json_path=jet)
    skipped = tmp_path / "jetson_skipped.json"
    jetson.write_outputs(jetson.skipped_result(), json_path=skipped)
    out = tmp_path / "summary.csv"
    df = write_summary([json.loads(f.read_text()) for f in metrics], out, benchmarks=[*benches, jet, skipped])
    assert list(df.columns[:8]) == ["variant", "method", "setting", "params", "macs", "size_bytes", "accuracy",
                                    "macro_f1"]
    assert {"runtime", "device", "latency_ms_p50", "latency_ms_p90", "p90_over_p50"} <= set(df.columns)
    got = list(zip(df["variant"], df["device"].fillna(""), df["runtime"].fillna("")))
    assert got == [("teacher", "local-cpu", "pytorch"), ("teacher", "local-cpu", "onnxruntime"),
                   ("kd", "local-cpu", "pytorch"), ("kd", "local-cpu", "onnxruntime"),
                   ("kd", "jetson-gpu", "tensorrt"), ("scratch", "", "")]
    assert list(df["accuracy"]) == [0.9, 0.9, 0.8, 0.8, 0.8, 0.7]  # accuracy repeated in every row
    assert (df["bits"] == 32).all()  # the metrics' columns win over a benchmark row's
    assert df.loc[4, "p90_over_p50"] == pytest.approx(1.25)  # computed for Jetson rows too
    assert pd.read_csv(out).shape == df.shape


# --------------------------------------------------------------------------------------------------- DAG
def test_benchmark_jobs_reserve_every_core_and_jetson_skips_without_host(workflow):
    """Dry run with --cores 3: each benchmark job claims all 3 cores, so nothing runs beside it; with no
    jetson.host the Jetson job needs no ONNX model."""
    proc = snakemake(workflow, "-n", "--cores", "3", "results/benchmarks/kd_pytorch.json",
                     "results/benchmarks/teacher_pytorch.json", "results/benchmarks/jetson.json")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    blocks = out.split("rule ")
    bench_blocks = [b for b in blocks if b.startswith("benchmark:")]
    assert len(bench_blocks) == 2
    assert all("threads: 3" in b for b in bench_blocks), bench_blocks
    train = [b for b in blocks if b.startswith("train_teacher:")]
    assert train and "threads: 3" not in train[0]
    jet = [b for b in blocks if b.startswith("benchmark_jetson:")]
    assert jet and "results/onnx" not in jet[0]


# ------------------------------------------------------------------------- bench/int8_paths.py's pure helpers
def _int8_paths():
    import importlib.util

    spec = importlib.util.spec_from_file_location("int8_paths", REPO / "bench" / "int8_paths.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_int8_bench_reads_cpu_flags_and_onnxruntime_profiles(tmp_path):
    mod = _int8_paths()
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_vnni amx_int8\n\nflags\t\t: amx_bf16\n")
    flags = mod.cpu_flags(info)
    assert flags["avx512_vnni"] and flags["amx_int8"] and not flags["amx_bf16"]  # the first flags line only
    run = lambda ts, dur: {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}
    node = lambda name, op, ts, dur: {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur,
                                      "args": {"op_name": op}}
    events = [run(0, 100), node("c1", "QLinearConv", 1, 90),  # warm-up run: dropped
              run(200, 10), node("c1", "QLinearConv", 201, 4), node("q", "QuantizeLinear", 205, 2),
              {"cat": "Node", "name": "c1_fence_before", "ts": 201, "dur": 1, "args": {"op_name": "QLinearConv"}},
              run(300, 14), node("c1", "QLinearConv", 301, 6), node("q", "QuantizeLinear", 307, 2)]
    s = mod.profile_summary(events, skip_runs=1)
    assert s["runs"] == 2 and s["run_us"] == 12 and s["kernel_us"] == 7 and s["overhead_us"] == 5
    assert list(s["ops"]) == ["QLinearConv", "QuantizeLinear"]
    assert s["ops"]["QLinearConv"] == {"nodes": 1, "us": 5, "share": 5 / 7}
    assert s["nodes"] == [{"node": "c1", "op": "QLinearConv", "us": 5, "share": 5 / 7},
                          {"node": "q", "op": "QuantizeLinear", "us": 2, "share": 2 / 7}]
    assert mod.group_ops(s["ops"]) == {"int8 conv": 5 / 7, "Q/DQ": 2 / 7}
