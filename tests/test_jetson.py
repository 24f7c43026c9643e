"""Jetson-over-SSH benchmark: device script, host side, and the real remote path through a local sshd.

A private OpenSSH server (throwaway host and client keys, 127.0.0.1 only, a free high port) stands in for the
Jetson; the "device" python is this interpreter. If sshd is missing it is installed with
tools/sshd-local.sh; tests needing it skip only if that fails, and fail instead with FER_REQUIRE_SSHD=1.
"""
from __future__ import annotations

import ast
import contextlib
import csv
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from fer import config as fer_config
from fer import errors, settings, variants
from fer.deploy import columns, jetson, kernels, latency
from fer.models.nets import FERNet
from fer.stages.benchmark import benchmark_jetson

ROOT = Path(__file__).resolve().parent.parent
DEVICE_SCRIPT = jetson.DEVICE_SCRIPT
RULE_SCRIPT = ROOT / "scripts" / "benchmark_jetson.py"
CLI = ROOT / "tools" / "benchmark_jetson.py"
RUNS, WARMUP = 5, 2


def _load_device_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("jetson_device_bench", DEVICE_SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory):
    """Two tiny FERNet exports: a float variant and one named like a 4-bit quantized variant."""
    d = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    model = FERNet(channels=[4, 8, 8], hidden=16, dropout=0.3).eval()
    path = d / "kd.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is what the pipeline uses
        torch.onnx.export(model, torch.zeros(1, 1, 48, 48), str(path), dynamo=False, opset_version=13,
                          input_names=["input"], output_names=["logits"])
    # A Q/DQ graph named like a 4-bit variant (the pipeline's brevitas export also keeps sub-8-bit weights in
    # int8 Q/DQ containers); onnxruntime's static quantizer writes the same QuantizeLinear/DequantizeLinear form.
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,  # heavy: onnxruntime
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.batches = iter([{"input": rng.standard_normal((1, 1, 48, 48)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.batches, None)

    q4 = d / "ptq_kd_4.onnx"
    quantize_static(str(path), str(q4), Reader(), quant_format=QuantFormat.QDQ, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QInt8)
    return [("kd", path), ("ptq_kd_4", q4)]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unavailable(reason: str):
    if os.environ.get("FER_REQUIRE_SSHD") == "1":
        pytest.fail(f"FER_REQUIRE_SSHD=1 but {reason}")
    pytest.skip(reason)


def _find_or_install_sshd() -> str | None:
    helper = ROOT / "tools" / "sshd-local.sh"
    for cmd in ("path", "install"):
        proc = subprocess.run(["bash", str(helper), cmd], capture_output=True, text=True, timeout=600)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip().splitlines()[-1]
    return None


@pytest.fixture(scope="session")
def sshd_bin():
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        if _find_or_install_sshd() is None or shutil.which("ssh") is None:
            _unavailable("the OpenSSH client (ssh, ssh-keygen) is not installed and could not be installed")
    path = _find_or_install_sshd()
    if not path:
        _unavailable("sshd is not installed and tools/sshd-local.sh could not install openssh-server")
    return path


@contextlib.contextmanager
def _running_sshd(sshd_bin: str, d: Path, sftp: bool = True):
    """A private sshd on 127.0.0.1:<free port> with throwaway keys in ``d``; stopped by pid on exit."""
    os.chmod(d, 0o700)
    for name in ("host_key", "client_key", "wrong_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"fer-test-{name}", "-f",
                        str(d / name)], check=True, capture_output=True)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    port = _free_port()
    config = d / "sshd_config"
    config.write_text(textwrap.dedent(f"""\
        Port {port}
        ListenAddress 127.0.0.1
        HostKey {d / 'host_key'}
        PidFile {d / 'sshd.pid'}
        AuthorizedKeysFile {d / 'authorized_keys'}
        PermitRootLogin prohibit-password
        PubkeyAuthentication yes
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        UsePAM no
        StrictModes no
        PrintMotd no
        LogLevel VERBOSE
        """) + ("Subsystem sftp internal-sftp\n" if sftp else ""))
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # privilege separation directory
    check = subprocess.run([sshd_bin, "-t", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        _unavailable(f"sshd rejects the test configuration: {check.stderr.strip()}")
    with open(d / "sshd.log", "w") as log:
        proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 15
            while True:
                if proc.poll() is not None:
                    _unavailable(f"sshd exited at start: {(d / 'sshd.log').read_text().strip()[-300:]}")
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if time.time() > deadline:
                        _unavailable("sshd did not start listening within 15 s")
                    time.sleep(0.1)
            yield {"port": port, "dir": d, "key": d / "client_key", "wrong_key": d / "wrong_key",
                   "user": getpass.getuser(), "known_hosts": d / "known_hosts", "log": d / "sshd.log"}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def sshd(sshd_bin, tmp_path_factory):
    """The stand-in Jetson for the whole session."""
    with _running_sshd(sshd_bin, tmp_path_factory.mktemp("sshd")) as info:
        yield info


def _settings(over: dict) -> settings.Jetson:
    """The jetson section of config/config.yaml with ``over`` merged in, validated like the config."""
    cfg = fer_config.load({"jetson": over})
    return settings.Jetson.of(cfg["jetson"])


def _run_rule(models, over: dict, csv_path=None, json_path=None, echo=print) -> dict:
    """What rule benchmark_jetson does, with these jetson settings."""
    return benchmark_jetson(models=models, settings=_settings(over), out_csv=csv_path, out_json=json_path, echo=echo)


def _cfg(sshd, tmp_path, **over):
    cfg = {"host": "127.0.0.1", "user": sshd["user"], "port": sshd["port"], "key": str(sshd["key"]),
           "python": sys.executable, "workdir": str(tmp_path / "device"), "runs": RUNS, "warmup": WARMUP,
           "timeout": 120, "connect_timeout": 5, "known_hosts": str(sshd["known_hosts"]),
           "runtimes": ["onnxruntime-cpu"]}
    cfg.update(over)
    return cfg


def _assert_sane(row, runs=RUNS, warmup=WARMUP):
    assert row["latency_ms_p50"] > 0
    assert row["latency_ms_p90"] >= row["latency_ms_p50"]
    assert row["latency_ms_mean"] > 0 and row["latency_ms_std"] >= 0
    assert row["runs"] == runs and row["warmup"] == warmup


# ------------------------------------------------------------------------------------------- device script
NEWER_THAN_36 = {  # attribute/keyword names that do not exist in Python 3.6
    "capture_output": "subprocess capture_output= (3.7)", "text": "subprocess text= (3.7)",
    "perf_counter_ns": "time.perf_counter_ns (3.7)", "time_ns": "time.time_ns (3.7)",
    "nullcontext": "contextlib.nullcontext (3.7)", "cached_property": "functools.cached_property (3.8)",
    "prod": "math.prod (3.8)", "removeprefix": "str.removeprefix (3.9)", "removesuffix": "str.removesuffix (3.9)",
}


def test_device_script_is_python36_compatible():
    source = DEVICE_SCRIPT.read_text()
    tree = ast.parse(source, filename=str(DEVICE_SCRIPT), feature_version=(3, 6))
    imported = set()
    for node in ast.walk(tree):
        assert not isinstance(node, ast.NamedExpr), f"line {node.lineno}: walrus operator needs 3.8"
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert not node.args.posonlyargs, f"{node.name}: positional-only parameters need 3.8"
        # f-strings are 3.6, but their "=" specifier is 3.8: keep the device script free of them altogether
        assert not isinstance(node, ast.JoinedStr), f"line {node.lineno}: f-string in the device script"
        if isinstance(node, ast.keyword) and node.arg in NEWER_THAN_36:
            raise AssertionError(f"line {node.value.lineno}: {NEWER_THAN_36[node.arg]}")
        if isinstance(node, ast.Attribute) and node.attr in NEWER_THAN_36:
            raise AssertionError(f"line {node.lineno}: {NEWER_THAN_36[node.attr]}")
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert not (node.module == "__future__" and any(a.name == "annotations" for a in node.names)), \
                "from __future__ import annotations needs 3.7"
            imported.add(node.module.split(".")[0])
    # Only the standard library (3.6 has no dataclasses), numpy, onnxruntime and tensorrt (all imported lazily).
    assert "dataclasses" not in imported and "importlib" not in imported
    assert imported <= set(sys.stdlib_module_names) | {"numpy", "onnxruntime", "tensorrt"}, imported


def test_device_statistics_match_numpy():
    dev = _load_device_module()
    values = [3.0, 1.0, 2.5, 7.0, 4.25, 0.5, 9.0]
    s = dev.summarize(values)
    assert s["latency_ms_p50"] == pytest.approx(np.percentile(values, 50))
    assert s["latency_ms_p90"] == pytest.approx(np.percentile(values, 90))
    assert s["latency_ms_mean"] == pytest.approx(np.mean(values))
    assert s["latency_ms_std"] == pytest.approx(np.std(values))
    assert s["runs"] == len(values)


def test_parse_trtexec_summary_formats():
    dev = _load_device_module()
    trt86 = ("[01/01/2024-10:00:00] [I] Latency: min = 0.2771 ms, max = 1.05 ms, mean = 0.3120 ms, "
             "median = 0.3040 ms, percentile(90%) = 0.3301 ms, percentile(95%) = 0.35 ms, percentile(99%) = 0.41 ms\n"
             "[01/01/2024-10:00:00] [I] GPU Compute Time: min = 0.1 ms, max = 0.2 ms, mean = 0.15 ms, "
             "median = 0.14 ms, percentile(90%) = 0.18 ms\n")
    got = dev.parse_trtexec_summary(trt86)
    assert got == {"latency_ms_p50": 0.304, "latency_ms_mean": 0.312, "latency_ms_p90": 0.3301}
    trt82 = ("[I] Latency: min = 1.25 ms, max = 2.5 ms, mean = 1.5 ms, median = 1.4 ms, "
             "percentile(99%) = 2.2 ms\n[I] End-to-End Host Latency: min = 2 ms, max = 3 ms, mean = 2.5 ms, "
             "median = 2.4 ms, percentile(99%) = 2.9 ms\n")
    got = dev.parse_trtexec_summary(trt82)
    assert got["latency_ms_p50"] == 1.4 and "latency_ms_p90" not in got
    assert dev.parse_trtexec_summary("no figures here") == {}


def test_device_script_reports_missing_runtime_without_traceback(tmp_path, onnx_models):
    blocker = tmp_path / "block"
    (blocker / "onnxruntime").mkdir(parents=True)
    (blocker / "onnxruntime" / "__init__.py").write_text("raise ImportError('blocked for the test')\n")
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"runs": 2, "warmup": 0, "trtexec": str(tmp_path / "no-trtexec"),
                                    "models": [{"variant": "kd", "file": str(onnx_models[0][1])}]}))
    env = dict(os.environ, PYTHONPATH=str(blocker), PATH="/usr/bin:/bin")
    proc = subprocess.run([sys.executable, str(DEVICE_SCRIPT), "--manifest", str(manifest), "--out",
                           str(tmp_path / "r.json")], capture_output=True, text=True, env=env)
    assert proc.returncode == 3
    assert "onnxruntime not importable: blocked for the test" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads((tmp_path / "r.json").read_text())["results"] == []


def test_device_script_every_model_failing_exits_4(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "kd.onnx").write_bytes(b"not an onnx model")
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"runs": 2, "warmup": 0, "runtimes": ["onnxruntime-cpu"],
                                    "models": [{"variant": "kd", "file": "models/kd.onnx"}]}))
    proc = subprocess.run([sys.executable, str(DEVICE_SCRIPT), "--manifest", str(manifest), "--out",
                           str(tmp_path / "r.json")], capture_output=True, text=True)
    assert proc.returncode == 4
    assert proc.stderr.startswith("device benchmark: every measurement failed: kd onnxruntime:")
    assert "Traceback" not in proc.stderr


def test_device_op_scan_matches_onnx_parser(tmp_path, onnx_models):
    """The device reads op types from the serialized optimized graph without the onnx package."""
    import onnx  # heavy: onnx and onnxruntime, only for the ONNX tests
    import onnxruntime as ort

    dev = _load_device_module()
    names = dev.INT_KERNELS + dev.QDQ_NODES + dev.FLOAT_KERNELS
    for variant, path in onnx_models:
        ops = dev.executed_ops(ort, {"variant": variant, "file": str(path)}, 1, str(tmp_path))
        graph = onnx.load(str(tmp_path / f"{variant}.cpu.optimized.onnx")).graph
        expected = {}
        for node in graph.node:
            if node.op_type in names:
                expected[node.op_type] = expected.get(node.op_type, 0) + 1
        assert ops == expected and ops


# ----------------------------------------------------------------------------------------------- host side
def test_settings_come_from_config_and_are_validated_there():
    s = _settings({})
    assert (s.host, s.port, s.python, s.workdir, s.threads) == ("", 22, "python3", "~/fer-bench", None)
    with pytest.raises(errors.ConfigError, match="jetson.port"):
        _settings({"port": 0})
    with pytest.raises(errors.ConfigError, match="jetson.hostname: unknown key"):
        _settings({"hostname": "x"})
    with pytest.raises(errors.ConfigError, match="jetson.runtimes"):
        _settings({"runtimes": ["tensorrt-int8"]})
    with pytest.raises(errors.ConfigError, match="jetson.host.*starts with '-'"):
        _settings({"host": "-oProxyCommand=x"})


def test_ssh_options_are_batch_and_pinned(tmp_path):
    s = _settings({"host": "jetson.local", "user": "nano", "port": 2222, "key": "k",
                   "known_hosts": str(tmp_path / "kh")})
    cmd = jetson.ssh_command(s, "true")
    joined = " ".join(cmd)
    for opt in ("BatchMode=yes", "StrictHostKeyChecking=accept-new", f"UserKnownHostsFile={tmp_path / 'kh'}",
                "ConnectTimeout=10", "IdentitiesOnly=yes"):
        assert opt in joined
    assert cmd[cmd.index("-p") + 1] == "2222" and cmd[cmd.index("-l") + 1] == "nano"
    assert cmd[-3:] == ["--", "jetson.local", "true"]
    scp = jetson.scp_command(s, ["a"], "nano@jetson.local:/x/")
    assert scp[scp.index("-P") + 1] == "2222"
    assert jetson._sh_word("~/fer bench") == "~/'fer bench'"
    assert _settings({"host": "::1", "user": "u"}).target == "u@[::1]"


def test_bits_precision_and_notes():
    bits_of = lambda v: variants.describe(v)["bits"]  # what the Jetson rows read the bit width from
    assert bits_of("ptq_kd_6") == 6 and bits_of("ptq_pr_kd_high_4") == 4
    assert bits_of("kd") is None and bits_of("pr_kd_low") is None
    stats = {"latency_ms_p50": 1.0, "latency_ms_p90": 1.2, "latency_ms_mean": 1.1, "latency_ms_std": 0.1,
             "runs": 5, "warmup": 2}
    raw = {"device": {"model": "NVIDIA Jetson Nano Developer Kit", "onnxruntime": "1.10.0", "tensorrt": "8.2.1"},
           "results": [
               dict(stats, variant="ptq_kd_6", runtime="onnxruntime", device="cpu", provider="CPUExecutionProvider",
                    executed_ops={"QLinearConv": 3, "QuantizeLinear": 1, "DequantizeLinear": 1, "Gemm": 2}),
               dict(stats, variant="ptq_kd_8", runtime="onnxruntime", device="cpu", provider="CPUExecutionProvider",
                    executed_ops={"Conv": 3, "QuantizeLinear": 6, "DequantizeLinear": 9}),
               dict(stats, variant="ptq_kd_4", runtime="onnxruntime", device="cuda", provider="CUDAExecutionProvider"),
               dict(stats, variant="kd", runtime="tensorrt", device="gpu", precision="fp16")]}
    entries = [{"variant": "ptq_kd_6", "bits": 6, "qdq": True}, {"variant": "ptq_kd_8", "bits": 8, "qdq": True},
               {"variant": "ptq_kd_4", "bits": 4, "qdq": True}, {"variant": "kd", "bits": None, "qdq": False}]
    q6, q8, q4, kd = jetson.to_rows(raw, entries)
    assert list(q6) == columns.COLUMNS
    # precision is what the device executed: never a claim the run did not make
    assert (q6["precision"], q6["executed"]) == ("int8", "int8 kernels: QLinearConv (+2 Q/DQ nodes)")
    assert "6-bit weights are stored in int8 containers: a storage saving, not a speed-up" in q6["note"]
    assert "no INT8 in TensorRT" in q6["note"]
    assert q8["precision"] == "fp32-qdq" and "did not fuse the Q/DQ pattern" in q8["note"]
    assert (q4["device"], q4["precision"]) == ("jetson-gpu", "qdq") and "storage saving" in q4["note"]
    assert (kd["runtime"], kd["device"], kd["precision"]) == ("tensorrt", "jetson-gpu", "fp16")
    assert kd["runtime_version"] == "tensorrt 8.2.1" and q6["runtime_version"] == "onnxruntime 1.10.0"
    assert "speed-up" not in kd["note"] and "TensorRT fp16 mode" in kd["note"]


def test_columns_match_local_benchmark_rows(tmp_path):
    """Jetson tables and local benchmark files carry the same columns (fer.deploy.columns)."""
    jetson.write_outputs(jetson.skipped_result(), tmp_path / "j.csv", tmp_path / "j.json")
    with open(tmp_path / "j.csv") as fh:
        assert next(csv.reader(fh)) == columns.COLUMNS
    assert json.loads((tmp_path / "j.json").read_text())["columns"] == columns.COLUMNS
    row = {k: 0 for k in columns.COLUMNS} | {"device": "local-cpu", "machine_cpu": "cpu"}
    latency.write_result(tmp_path / "l.json", row)
    assert json.loads((tmp_path / "l.json").read_text())["columns"] == columns.COLUMNS


def test_device_script_kernel_lists_match_the_package():
    """The device script (independent of the package) reports exactly the op types fer.deploy.kernels labels."""
    dev = _load_device_module()
    assert tuple(dev.INT_KERNELS) == kernels.INT_KERNELS
    assert tuple(dev.QDQ_NODES) == kernels.QDQ_NODES and tuple(dev.FLOAT_KERNELS) == kernels.FLOAT_KERNELS


def test_inspect_onnx_finds_input_and_qdq(tmp_path, onnx_models):
    import onnx  # heavy: the onnx package, only for this hand-built graph
    from onnx import TensorProto, helper

    info = jetson.inspect_onnx(onnx_models[0][1])
    assert info == {"input_name": "input", "input_shape": [1, 1, 48, 48], "qdq": False}
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 48, 48])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1, 48, 48])
    scale = helper.make_tensor("s", TensorProto.FLOAT, [], [0.05])
    zero = helper.make_tensor("z", TensorProto.INT8, [], [0])
    graph = helper.make_graph([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
                               helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])],
                              "qdq", [x], [y], initializer=[scale, zero])
    path = tmp_path / "ptq_kd_6.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    assert jetson.inspect_onnx(path) == {"input_name": "x", "input_shape": [-1, 1, 48, 48], "qdq": True}
    (tmp_path / "broken.onnx").write_bytes(b"not onnx")
    with pytest.raises(errors.JetsonConfigError, match="not a readable ONNX model"):
        jetson.inspect_onnx(tmp_path / "broken.onnx")


def test_no_host_writes_empty_outputs_and_says_skipped(tmp_path, onnx_models, capsys):
    out_csv, out_json = tmp_path / "jetson.csv", tmp_path / "jetson.json"
    result = _run_rule(onnx_models, {"host": ""}, out_csv, out_json)
    assert result["status"] == "skipped" and result["rows"] == []
    assert "skipped: no jetson.host configured" in capsys.readouterr().out
    with open(out_csv) as fh:
        rows = list(csv.reader(fh))
    assert rows == [columns.COLUMNS]
    obj = json.loads(out_json.read_text())
    assert obj["rows"] == [] and obj["message"] == "skipped: no jetson.host configured"


def test_rule_script_cli_skips_without_host(tmp_path, onnx_models):
    proc = subprocess.run([sys.executable, str(CLI), str(onnx_models[0][1]), "--csv",
                           str(tmp_path / "j.csv"), "--json", str(tmp_path / "j.json")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "skipped: no jetson.host configured" in proc.stdout
    assert (tmp_path / "j.csv").read_text().startswith("variant,runtime,device,precision,")


# ---------------------------------------------------------------------------------- through a real sshd
def test_remote_benchmark_over_ssh(sshd, tmp_path, onnx_models):
    out_csv, out_json = tmp_path / "out" / "jetson.csv", tmp_path / "out" / "jetson.json"
    result = _run_rule(onnx_models, _cfg(sshd, tmp_path), out_csv, out_json, echo=lambda m: None)
    rows = result["rows"]
    assert [(r["variant"], r["runtime"], r["device"]) for r in rows] == [
        ("kd", "onnxruntime", "jetson-cpu"), ("ptq_kd_4", "onnxruntime", "jetson-cpu")]
    # precision says what the device executed: fp32 kernels for the float export; onnxruntime's CPU provider
    # fuses the Q/DQ export into integer kernels
    assert [r["precision"] for r in rows] == ["fp32", "int8"]
    assert rows[0]["executed"].startswith("fp32 kernels: ") and "Conv" in rows[0]["executed"]
    assert rows[1]["executed"].startswith("int8 kernels: ") and "QLinearConv" in rows[1]["executed"]
    for row in rows:
        _assert_sane(row)
        assert row["machine_cores"] == os.cpu_count() and row["python"] == ".".join(map(str, sys.version_info[:3]))
        assert row["runtime_version"] == "onnxruntime " + __import__("onnxruntime").__version__
        assert row["latency_ms_min"] <= row["latency_ms_p50"] <= row["latency_ms_max"]
    assert rows[0]["note"] == ""
    assert "4-bit weights" in rows[1]["note"] and "storage saving, not a speed-up" in rows[1]["note"]
    assert result["device"]["cpu"] and result["device"]["onnxruntime"]
    # the models and the device script really went over scp into the device workdir
    device_dir = tmp_path / "device"
    assert (device_dir / "models" / "kd.onnx").is_file() and (device_dir / "jetson_device_bench.py").is_file()
    with open(out_csv) as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 2 and list(table[0]) == columns.COLUMNS
    assert float(table[1]["latency_ms_p90"]) >= float(table[1]["latency_ms_p50"]) > 0
    assert json.loads(out_json.read_text())["status"] == "ok"
    # accept-new recorded the host key in the project's known_hosts file
    found = subprocess.run(["ssh-keygen", "-F", f"[127.0.0.1]:{sshd['port']}", "-f", str(sshd["known_hosts"])],
                           capture_output=True, text=True)
    assert found.returncode == 0 and "ssh-ed25519" in found.stdout


FAKE_TRTEXEC = """#!{python}
import json, sys
args = dict(a.split("=", 1) for a in sys.argv[1:] if "=" in a)
n = int(args["--iterations"])
assert args["--warmUp"] == "0" and args["--onnx"].endswith(".onnx")
fp16 = "--fp16" in sys.argv
lat = [(9.0 if i < 2 else 1.0 + 0.1 * (i % 4)) * (0.5 if fp16 else 1.0) for i in range(n)]
with open(args["--exportTimes"], "w") as fh:
    json.dump([{{"startEnqMs": i, "latencyMs": v, "computeMs": v / 2}} for i, v in enumerate(lat)], fh)
print("[I] Latency: min = 1 ms, max = 9 ms, mean = 2 ms, median = 1.1 ms, percentile(90%) = 1.3 ms")
print("&&&& PASSED TensorRT.trtexec")
"""


def test_remote_trtexec_path_and_home_workdir(sshd, tmp_path, onnx_models):
    fake = tmp_path / "trtexec"
    fake.write_text(FAKE_TRTEXEC.format(python=sys.executable))
    fake.chmod(0o755)
    workdir = f"~/fer-bench-test-{uuid.uuid4().hex[:8]}"
    home_dir = Path(os.path.expanduser(workdir))
    try:
        cfg = _cfg(sshd, tmp_path, workdir=workdir, trtexec=str(fake), runtimes=["tensorrt-fp32", "tensorrt-fp16"])
        result = jetson.benchmark(onnx_models[:1], _settings(cfg))
    finally:
        shutil.rmtree(home_dir, ignore_errors=True)
    rows = result["rows"]
    assert [(r["runtime"], r["precision"], r["device"]) for r in rows] == [
        ("tensorrt", "fp32", "jetson-gpu"), ("tensorrt", "fp16", "jetson-gpu")]
    for row in rows:
        _assert_sane(row)
    # the first WARMUP iterations (9 ms) were dropped; the timed ones are 1.0..1.3 ms (halved for fp16)
    timed = [1.0 + 0.1 * (i % 4) for i in range(WARMUP, WARMUP + RUNS)]
    assert rows[0]["latency_ms_p50"] == pytest.approx(np.median(timed))
    assert rows[0]["latency_ms_p90"] == pytest.approx(np.percentile(timed, 90))
    assert rows[1]["latency_ms_mean"] == pytest.approx(np.mean(timed) / 2)
    assert "TensorRT fp16 mode" in rows[1]["note"]


def test_fp16_variant_is_built_by_tensorrt_in_fp16_only(tmp_path, onnx_models):
    """The staged manifest marks an fp16 variant for TensorRT --fp16 only (its fp32 engine is its base's); the
    device script honours it; the row says what TensorRT computed. No SSH: the stage and the device script."""
    fake = tmp_path / "trtexec"
    fake.write_text(FAKE_TRTEXEC.format(python=sys.executable))
    fake.chmod(0o755)
    kd = dict(onnx_models)["kd"]
    cfg = _cfg({"user": "u", "port": 22, "key": "", "known_hosts": tmp_path / "known_hosts"}, tmp_path,
               host="jetson", key="", trtexec=str(fake), runtimes=["tensorrt-fp32", "tensorrt-fp16"])
    entries = jetson._stage(tmp_path / "stage", [("kd", kd), ("fp16_kd", kd)], _settings(cfg))
    assert "tensorrt_precisions" not in entries[0] and entries[1]["tensorrt_precisions"] == ["fp16"]
    manifest = json.loads((tmp_path / "stage" / "manifest.json").read_text())
    raw, code = _load_device_module().run(manifest, str(tmp_path / "stage"))
    assert code == 0, raw
    got = [(r["variant"], r["runtime"], r["precision"]) for r in raw["results"]]
    assert got == [("kd", "tensorrt", "fp32"), ("kd", "tensorrt", "fp16"), ("fp16_kd", "tensorrt", "fp16")]
    row = jetson.to_rows(raw, entries)[2]
    assert row["precision"] == "fp16" and "float16 weights: TensorRT --fp16 computes in fp16" in row["note"]


def test_device_without_sftp_subsystem_uses_legacy_scp(sshd_bin, tmp_path, onnx_models, caplog):
    (tmp_path / "sshd").mkdir()
    with _running_sshd(sshd_bin, tmp_path / "sshd", sftp=False) as server:
        with caplog.at_level("INFO", logger="fer"):
            result = jetson.benchmark(onnx_models[:1], _settings(_cfg(server, tmp_path)))
    assert "legacy protocol" in caplog.text
    assert len(result["rows"]) == 1
    _assert_sane(result["rows"][0])


def _sentinel(tmp_path):
    local = tmp_path / "results" / "metrics" / "kd.json"
    local.parent.mkdir(parents=True)
    local.write_text('{"accuracy": 0.9}\n')
    return local


def _expect_failure(tmp_path, models, cfg, exc_type, pattern):
    local = _sentinel(tmp_path)
    out_csv, out_json = tmp_path / "results" / "jetson.csv", tmp_path / "results" / "jetson.json"
    with pytest.raises(exc_type, match=pattern) as info:
        _run_rule(models, cfg, out_csv, out_json, echo=lambda m: None)
    msg = str(info.value)
    print(f"{exc_type.__name__}: {msg}")
    assert "\n" not in msg and "Traceback" not in msg
    assert local.read_text() == '{"accuracy": 0.9}\n'  # local results intact
    assert not out_csv.exists() and not out_json.exists()
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["metrics"]
    return msg


def test_unreachable_host(sshd, tmp_path, onnx_models):
    cfg = _cfg(sshd, tmp_path, port=_free_port())  # nothing listens there
    msg = _expect_failure(tmp_path, onnx_models, cfg, errors.JetsonUnreachable, "unreachable")
    assert "connection refused" in msg and "127.0.0.1" in msg


def test_authentication_refused(sshd, tmp_path, onnx_models):
    cfg = _cfg(sshd, tmp_path, key=str(sshd["wrong_key"]))
    msg = _expect_failure(tmp_path, onnx_models, cfg, errors.JetsonAuthError, "authentication refused")
    assert "wrong_key" in msg


def test_silent_host_times_out_as_unreachable(sshd, tmp_path, onnx_models):
    # A host that accepts the TCP connection and then never speaks SSH (a hung device, a firewall that
    # swallows the banner): ssh gives up after ConnectTimeout. The listener is on this machine, so the
    # test sends no traffic anywhere else and does not depend on how some remote network answers.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        cfg = _cfg(sshd, tmp_path, port=silent.getsockname()[1], connect_timeout=1)
        _expect_failure(tmp_path, onnx_models, cfg, errors.JetsonUnreachable, "127.0.0.1.* unreachable.*timed out")


def test_changed_host_key_is_refused(sshd, tmp_path, onnx_models):
    impostor = sshd["wrong_key"].with_suffix(".pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd['port']} {' '.join(impostor)}\n")
    cfg = _cfg(sshd, tmp_path, known_hosts=str(known))
    msg = _expect_failure(tmp_path, onnx_models, cfg, errors.JetsonHostKeyError, "host key of")
    assert str(known) in msg


def test_no_onnxruntime_on_device(sshd, tmp_path, onnx_models):
    blocker = tmp_path / "block"
    (blocker / "onnxruntime").mkdir(parents=True)
    (blocker / "onnxruntime" / "__init__.py").write_text("raise ImportError('No module named onnxruntime')\n")
    wrapper = tmp_path / "python-without-ort"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={blocker} exec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    cfg = _cfg(sshd, tmp_path, python=str(wrapper), runtimes=["auto"], trtexec=str(tmp_path / "no-trtexec"))
    msg = _expect_failure(tmp_path, onnx_models, cfg, errors.JetsonRuntimeMissing, "onnxruntime not importable")
    assert "trtexec not found" in msg and "jetson.python" in msg


def test_missing_device_python(sshd, tmp_path, onnx_models):
    cfg = _cfg(sshd, tmp_path, python="/nonexistent/python3")
    _expect_failure(tmp_path, onnx_models, cfg, errors.JetsonDeviceError, "jetson.python .* not found")


def test_rule_script_cli_failure_is_one_line(sshd, tmp_path, onnx_models):
    local = _sentinel(tmp_path)
    proc = subprocess.run([sys.executable, str(CLI), str(onnx_models[0][1]), "--host", "127.0.0.1",
                           "--port", str(_free_port()), "--key", str(sshd["key"]), "--known-hosts",
                           str(sshd["known_hosts"]), "--connect-timeout", "5", "--csv", str(tmp_path / "j.csv")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "connection refused" in errors[0]
    assert not (tmp_path / "j.csv").exists() and local.read_text() == '{"accuracy": 0.9}\n'


# ------------------------------------------------------------------------------- under Snakemake's script:
SNAKEFILE = """
from fer import config as fer_config


rule all:
    input:
        expand("results/{{case}}/jetson.csv", case=["skip", "unreachable"]),


rule benchmark_jetson:
    input:
        onnx=["onnx/kd.onnx"],
    output:
        csv="results/{{case}}/jetson.csv",
        json="results/{{case}}/jetson.json",
    params:
        jetson=lambda wc: fer_config.merge(fer_config.defaults()["jetson"], config["jetson"][wc.case]),
    log:
        "results/logs/benchmark_jetson_{{case}}.log",
    script:
        "{script}"
"""


def test_rule_under_snakemake(sshd, tmp_path, onnx_models):
    """The rule script as Snakemake runs it: no host writes empty outputs and says so; an unreachable host
    fails that job with one line (no traceback) and leaves every other file alone."""
    (tmp_path / "onnx").mkdir()
    shutil.copyfile(onnx_models[0][1], tmp_path / "onnx" / "kd.onnx")
    local = _sentinel(tmp_path)
    (tmp_path / "Snakefile").write_text(SNAKEFILE.format(script=RULE_SCRIPT))
    cfg = {"skip": {"host": ""}, "unreachable": _cfg(sshd, tmp_path, port=_free_port())}
    (tmp_path / "config.json").write_text(json.dumps({"jetson": cfg}))
    snakemake = Path(sys.executable).parent / "snakemake"
    proc = subprocess.run([str(snakemake), "--cores", "1", "--keep-going", "--configfile", "config.json",
                           "--nolock", "--quiet"], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode != 0  # the unreachable job failed
    assert local.read_text() == '{"accuracy": 0.9}\n'

    skip_log = (tmp_path / "results" / "logs" / "benchmark_jetson_skip.log").read_text()
    assert "skipped: no jetson.host configured" in proc.stdout
    assert "skipped: no jetson.host configured" in skip_log
    assert (tmp_path / "results" / "skip" / "jetson.csv").read_text().strip() == ",".join(columns.COLUMNS)
    assert json.loads((tmp_path / "results" / "skip" / "jetson.json").read_text())["rows"] == []

    fail_log = (tmp_path / "results" / "logs" / "benchmark_jetson_unreachable.log").read_text()
    assert "unreachable: connection refused" in fail_log and "Traceback" not in fail_log
    assert "unreachable: connection refused" in proc.stderr
    assert not (tmp_path / "results" / "unreachable").exists()
