"""Benchmark ONNX variants on a Jetson over SSH.

The host copies the ONNX models, a manifest and the self-contained device script
(``fer/deploy/payload/jetson_device_bench.py``, Python 3.6+, independent of this package) to ``jetson.workdir``
on the device, runs the script there over SSH and brings back its JSON: batch-1 latency after warm-up per
variant and runtime (onnxruntime CPU/CUDA EP, TensorRT ``trtexec`` fp32/fp16 when present) plus a description of
the device. :func:`to_rows` turns that into rows with the same columns as the local benchmark rows
(:mod:`fer.deploy.columns`) and the same labels of what ran (:func:`fer.deploy.kernels.classify`);
:func:`write_outputs` writes the CSV/JSON pair.

SSH runs through the system ``ssh``/``scp`` with ``BatchMode=yes`` (never a password prompt), a connect
timeout, ``StrictHostKeyChecking=accept-new`` and a ``UserKnownHostsFile`` the project controls
(``jetson.known_hosts``), the configured key and port. Every failure ends in a :class:`JetsonError` subclass
with a one-line message naming the cause; nothing outside the workspace and the outputs is written locally.

The original Jetson Nano (Maxwell) has no INT8 in TensorRT: fp16 is its fast path. The fp16_* variants (float16
weights, :mod:`fer.compression.fp16`) are built by TensorRT in ``--fp16`` mode only (an fp32 engine of them is
their base's engine); quantized rows say in ``note`` that their saving is storage, not speed: 6-bit weights sit
in int8 containers, 4-bit graphs hold INT4 initializers at opset 21, which TensorRT before 10 and onnxruntime
before 1.18 cannot load (the device reports that as a skipped combination).

Outside Snakemake, ``tools/benchmark_jetson.py`` is a small CLI (``--help``).
"""
from __future__ import annotations

import csv
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from fer import files, variants
from fer.deploy import columns, kernels
from fer.errors import (JetsonAuthError, JetsonConfigError, JetsonDeviceError, JetsonError, JetsonHostKeyError,
                        JetsonRuntimeMissing, JetsonTimeout, JetsonUnreachable)
from fer.settings import Jetson

log = logging.getLogger("fer")

DEVICE_SCRIPT = Path(__file__).resolve().parent / "payload" / "jetson_device_bench.py"
SKIP_MESSAGE = "skipped: no jetson.host configured"

# Device script exit codes (see jetson_device_bench.py).
_EXIT_USAGE, _EXIT_NO_RUNTIME, _EXIT_ALL_FAILED = 2, 3, 4
_SAFE_REMOTE_PATH = re.compile(r"^[A-Za-z0-9_./+@%=:,-]+$")
_VARIANT_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


# ------------------------------------------------------------------------------------------ model metadata
def inspect_onnx(path) -> dict:
    """Input name/shape and whether the graph holds QuantizeLinear/DequantizeLinear nodes."""
    path = Path(path)
    info = {"input_name": "", "input_shape": [1, 1, 48, 48], "qdq": False}
    try:
        import onnx  # heavy and optional: only ONNX runs need it

        model = onnx.load(str(path), load_external_data=False)
        inits = {i.name for i in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in inits]
        if inputs:
            dims = inputs[0].type.tensor_type.shape.dim
            info["input_name"] = inputs[0].name
            info["input_shape"] = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
        info["qdq"] = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)
    except ImportError:  # pragma: no cover - onnx is in requirements.txt
        data = path.read_bytes()
        info["qdq"] = b"QuantizeLinear" in data
    except Exception as exc:
        raise JetsonConfigError(f"{path}: not a readable ONNX model ({exc.__class__.__name__}: {exc})") from None
    return info


def _export_format(path) -> str | None:
    """The export sidecar's ``format`` (results/onnx/<variant>.json beside the graph), None without one."""
    try:
        return json.loads(Path(path).with_suffix(".json").read_text()).get("format")
    except (OSError, ValueError, AttributeError):
        return None


def _normalise_models(models) -> list[tuple[str, Path]]:
    out = []
    seen = set()
    for item in models:
        if isinstance(item, (str, os.PathLike)):
            name, path = Path(item).stem, Path(item)
        else:
            name, path = str(item[0]), Path(item[1])
        if not _VARIANT_NAME.match(name):
            raise JetsonConfigError(f"variant name {name!r} may only hold letters, digits and _ . + -")
        if name in seen:
            raise JetsonConfigError(f"variant {name!r} listed twice")
        if not path.is_file():
            raise JetsonConfigError(f"ONNX model {path} for variant {name!r} does not exist")
        seen.add(name)
        out.append((name, path))
    if not out:
        raise JetsonConfigError("no ONNX models to benchmark")
    return out


# ------------------------------------------------------------------------------------------------------ ssh
def _sh_word(word: str) -> str:
    """Quote one word for the remote POSIX shell, keeping a leading ``~/`` expandable."""
    if word == "~":
        return "~"
    if word.startswith("~/"):
        rest = word[2:]
        return "~/" + shlex.quote(rest) if rest else "~/"
    return shlex.quote(word)


def ssh_options(s: Jetson) -> list[str]:
    """``-o`` options shared by ssh and scp (port and login are added per tool)."""
    known_hosts = Path(s.known_hosts).expanduser().absolute()
    opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={s.connect_timeout}",
            "-o", "StrictHostKeyChecking=accept-new", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4", "-o", "LogLevel=ERROR"]
    if s.key:
        opts += ["-i", str(Path(s.key).expanduser().absolute()), "-o", "IdentitiesOnly=yes"]
    return opts


def ssh_command(s: Jetson, remote_command: str) -> list[str]:
    cmd = ["ssh", *ssh_options(s), "-p", str(s.port)]
    if s.user:
        cmd += ["-l", s.user]
    return cmd + ["--", s.host, remote_command]


def scp_command(s: Jetson, sources: list[str], dest: str) -> list[str]:
    return ["scp", "-r", *ssh_options(s), "-P", str(s.port), "--", *sources, dest]


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def classify_ssh_failure(s: Jetson, stderr: str, step: str) -> JetsonError:
    """Turn ssh/scp's exit 255 stderr into a one-line error naming the cause."""
    err = stderr or ""
    low = err.lower()
    where = s.where
    if "could not resolve hostname" in low or "name or service not known" in low:
        return JetsonUnreachable(f"jetson host {s.host!r} unreachable: unknown host name (check jetson.host)")
    if "connection refused" in low:
        return JetsonUnreachable(f"jetson host {where} unreachable: connection refused (is sshd running on "
                                 f"port {s.port}?)")
    if "timed out" in low:
        return JetsonUnreachable(f"jetson host {where} unreachable: connection timed out after "
                                 f"{s.connect_timeout} s (check jetson.host, jetson.port and the network)")
    for cause in ("no route to host", "network is unreachable", "connection reset", "connection closed"):
        if cause in low:
            return JetsonUnreachable(f"jetson host {where} unreachable: {cause}")
    if "remote host identification has changed" in low or "host key verification failed" in low:
        return JetsonHostKeyError(f"host key of {where} does not match {s.known_hosts}; if the device was "
                                  f"reinstalled, remove its line from that file")
    if "unprotected private key" in low or "bad permissions" in low:
        return JetsonAuthError(f"ssh refused to use jetson.key {s.key}: its permissions are too open "
                               f"(run chmod 600 on it)")
    if "permission denied" in low or "too many authentication failures" in low:
        key = f"key {s.key}" if s.key else "default keys/agent"
        return JetsonAuthError(f"authentication refused by {where} for user {s.user or '(default)'} with {key} "
                               f"(check jetson.user and jetson.key; BatchMode allows no password)")
    return JetsonError(f"ssh to {where} failed during {step}: {_last_line(err) or 'exit 255'}")


def _run(cmd: list[str], timeout: float, s: Jetson, step: str, classify: bool = True):
    log.debug("run: %s", " ".join(shlex.quote(c) for c in cmd))
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise JetsonConfigError(f"{cmd[0]} not found on this machine: install the OpenSSH client") from None
    except subprocess.TimeoutExpired:
        raise JetsonTimeout(f"{step} on {s.where} did not finish within {timeout:g} s "
                            f"(raise jetson.timeout or reduce jetson.runs)") from None
    if proc.returncode == 255 and classify:
        raise classify_ssh_failure(s, proc.stderr, step)
    return proc


def _scp(s: Jetson, sources: list[str], dest: str, timeout: float, step: str, state: dict):
    """scp (SFTP protocol, OpenSSH >= 9 default); switched to the legacy protocol (-O) for the rest of the run
    if the device's sshd offers no sftp subsystem."""
    cmd = scp_command(s, sources, dest)
    legacy = [cmd[0], "-O", *cmd[1:]]
    proc = _run(legacy if state.get("legacy") else cmd, timeout, s, step, classify=False)
    if proc.returncode != 0 and not state.get("legacy") and "subsystem" in (proc.stderr or "").lower():
        log.info("jetson: no sftp subsystem on %s, using scp's legacy protocol (-O)", s.where)
        state["legacy"] = True
        proc = _run(legacy, timeout, s, step, classify=False)
    if proc.returncode == 255 and "connection" in (proc.stderr or "").lower():
        raise classify_ssh_failure(s, proc.stderr, step)
    return proc


# --------------------------------------------------------------------------------------------- benchmark
def _stage(workspace: Path, models: list[tuple[str, Path]], s: Jetson) -> list[dict]:
    """Lay out models/<variant>.onnx, the device script and manifest.json in ``workspace``."""
    (workspace / "models").mkdir(parents=True)
    entries = []
    for name, path in models:
        meta = inspect_onnx(path)
        shutil.copyfile(path, workspace / "models" / f"{name}.onnx")
        entry = {"variant": name, "file": f"models/{name}.onnx", "bits": variants.describe(name)["bits"],
                 "format": _export_format(path), **meta}
        if variants.is_fp16(name):
            entry["tensorrt_precisions"] = ["fp16"]  # the fp16 variant's engine; fp32 is its base's engine
        entries.append(entry)
    shutil.copyfile(DEVICE_SCRIPT, workspace / DEVICE_SCRIPT.name)
    manifest = {"runs": s.runs, "warmup": s.warmup, "threads": s.threads, "trtexec": s.trtexec,
                "runtimes": s.runtimes, "trtexec_timeout": s.timeout, "models": entries}
    (workspace / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return entries


def benchmark(models, s: Jetson, workspace=None) -> dict:
    """Benchmark ``models`` (pairs ``(variant, onnx_path)``) on ``settings.host``; return the result dict.

    The result holds ``device`` (description), ``rows`` (see :data:`fer.deploy.columns.COLUMNS`), ``skipped``
    (runtime/variant combinations the device could not run, with the reason) and ``raw`` (the device script's
    JSON).
    Raises a :class:`JetsonError` subclass on any failure.
    """
    if not s.host:
        raise JetsonConfigError(SKIP_MESSAGE)
    models = _normalise_models(models)
    if s.key and not Path(s.key).expanduser().is_file():
        raise JetsonConfigError(f"jetson.key {s.key} does not exist")
    if not DEVICE_SCRIPT.is_file():
        raise JetsonConfigError(f"device script {DEVICE_SCRIPT} is missing")
    for tool in ("ssh", "scp"):
        if shutil.which(tool) is None:
            raise JetsonConfigError(f"{tool} not found on this machine: install the OpenSSH client")
    Path(s.known_hosts).expanduser().absolute().parent.mkdir(parents=True, exist_ok=True)

    own_tmp = None
    if workspace is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="fer-jetson-")
        workspace = own_tmp.name
    workspace = Path(workspace) / "stage"
    try:
        entries = _stage(workspace, models, s)
        step_timeout = s.connect_timeout * 3 + 60
        scp_state = {"legacy": False}

        # 1. connect, authenticate, create the workdir and resolve it to an absolute path
        wd = _sh_word(s.workdir)
        log.info("jetson: connecting to %s (workdir %s)", s.where, s.workdir)
        proc = _run(ssh_command(s, f"mkdir -p {wd}/models && cd {wd} && pwd"), step_timeout, s, "connect")
        if proc.returncode != 0:
            raise JetsonDeviceError(f"cannot create jetson.workdir {s.workdir} on {s.where}: "
                                    f"{_last_line(proc.stderr) or 'exit ' + str(proc.returncode)}")
        remote_dir = _last_line(proc.stdout)
        if not remote_dir.startswith("/") or not _SAFE_REMOTE_PATH.match(remote_dir):
            raise JetsonConfigError(f"jetson.workdir resolved to {remote_dir!r} on the device; use a path "
                                    f"without spaces or shell characters")

        # 2. copy models, manifest and device script
        sources = [str(workspace / "models"), str(workspace / "manifest.json"), str(workspace / DEVICE_SCRIPT.name)]
        dest = f"{s.target}:{remote_dir}/"
        log.info("jetson: copying %d model(s) and %s to %s", len(entries), DEVICE_SCRIPT.name, dest)
        proc = _scp(s, sources, dest, max(step_timeout, s.timeout), "copy", scp_state)
        if proc.returncode != 0:
            raise JetsonDeviceError(f"copying models to {dest} failed: {_last_line(proc.stderr)}")

        # 3. run the device script
        python = " ".join(_sh_word(w) for w in shlex.split(s.python))
        remote = (f"cd {shlex.quote(remote_dir)} && rm -f result.json && "
                  f"{python} {DEVICE_SCRIPT.name} --manifest manifest.json --out result.json")
        log.info("jetson: running %s %s on %s (%d runs after %d warm-up, per variant and runtime)",
                 s.python, DEVICE_SCRIPT.name, s.where, s.runs, s.warmup)
        proc = _run(ssh_command(s, remote), s.timeout, s, "benchmark")
        for line in proc.stdout.splitlines():
            log.info("device: %s", line)
        if proc.returncode != 0:
            raise _device_failure(s, proc)

        # 4. bring the figures back
        local = workspace.parent / "result.json"
        proc = _scp(s, [f"{s.target}:{remote_dir}/result.json"], str(local), step_timeout, "fetch", scp_state)
        if proc.returncode != 0 or not local.is_file():
            raise JetsonDeviceError(f"fetching result.json from {s.where} failed: {_last_line(proc.stderr)}")
        try:
            raw = json.loads(local.read_text())
        except ValueError as exc:
            raise JetsonDeviceError(f"result.json from {s.where} is not valid JSON ({exc})") from None
    finally:
        if own_tmp is not None:
            own_tmp.cleanup()

    for item in raw.get("skipped", []):
        log.warning("jetson: skipped %s %s/%s: %s", item.get("variant"), item.get("runtime"),
                    item.get("precision") or item.get("device"), item.get("reason"))
    rows = to_rows(raw, entries)
    return {"status": "ok", "message": f"{len(rows)} row(s) measured on {raw['device'].get('model', s.host)}",
            "host": s.host, "device": raw.get("device", {}), "rows": rows, "skipped": raw.get("skipped", []),
            "raw": raw}


def _device_failure(s: Jetson, proc) -> JetsonError:
    err = proc.stderr or ""
    code = proc.returncode
    if code == _EXIT_NO_RUNTIME:
        reason = _last_line(err).replace("device benchmark: ", "")
        return JetsonRuntimeMissing(f"{s.where} with python {s.python!r}: {reason} (install onnxruntime for that "
                                    f"python, set jetson.python, or install TensorRT's trtexec)")
    if code == _EXIT_ALL_FAILED:
        return JetsonDeviceError(f"{s.where}: {_last_line(err).replace('device benchmark: ', '')}")
    if code in (126, 127) or "command not found" in err:
        return JetsonDeviceError(f"jetson.python {s.python!r} not found on {s.where}")
    if "SyntaxError" in err:
        return JetsonDeviceError(f"jetson.python {s.python!r} on {s.where} cannot run the device script "
                                 f"(SyntaxError): it needs Python 3.6 or newer")
    if "ModuleNotFoundError" in err or "ImportError" in err:
        return JetsonRuntimeMissing(f"{s.where} with python {s.python!r}: {_last_line(err)}")
    return JetsonDeviceError(f"device script failed on {s.where} (exit {code}): {_last_line(err)}")


# ------------------------------------------------------------------------------------------------------ rows
def _note(entry: dict, runtime: str, precision: str) -> str:
    notes = []
    bits, qdq = entry.get("bits"), bool(entry.get("qdq"))
    if entry.get("format") == "fp16" or variants.is_fp16(entry.get("variant", "")):
        notes.append("float16 weights" + (": TensorRT --fp16 computes in fp16" if runtime == "tensorrt" else
                                          ", cast to fp32 for the onnxruntime kernels"))
    elif bits is not None and bits < 8:
        held = ("are stored as INT4 (opset 21)" if entry.get("format") == "int4" else
                "are stored in int8 containers" if qdq else f"run here as {precision}")
        notes.append(f"{bits}-bit weights {held}: a storage saving, not a speed-up (the Jetson Nano has no INT8 "
                     f"in TensorRT; fp16 is its fast path)")
    elif bits == 8 and qdq:
        notes.append("int8 Q/DQ graph; the Jetson Nano has no INT8 in TensorRT (fp16 is its fast path)")
    elif bits is not None and 8 < bits < 32:
        notes.append(f"{bits}-bit quantized weights executed as {precision}: no speed-up over fp32 expected")
    if precision == "fp32-qdq":
        notes.append("onnxruntime did not fuse the Q/DQ pattern into integer kernels, so quantization costs time "
                     "here instead of saving it")
    if runtime == "tensorrt" and precision.endswith("fp16"):
        notes.append("TensorRT fp16 mode (TensorRT picks fp16 or fp32 per layer)")
    return "; ".join(notes)


def _ort_precision(entry: dict, r: dict) -> tuple[str, str]:
    """(precision, executed) of an onnxruntime row, from the kernels the device's optimized graph holds (the
    device script reports only the op types of :data:`fer.deploy.kernels.INT_KERNELS`, ``QDQ_NODES`` and
    ``FLOAT_KERNELS``)."""
    ops = r.get("executed_ops")
    if ops is None:  # CUDA EP, or the optimized graph could not be saved: only the exported graph is known
        provider = r.get("provider", "")
        if entry.get("qdq"):
            return "qdq", f"Q/DQ graph on {provider}; executed kernels not inspected"
        return "fp32", f"fp32 graph on {provider}"
    return kernels.classify(ops)


def to_rows(raw: dict, entries: list[dict]) -> list[dict]:
    """Rows in :data:`fer.deploy.columns.COLUMNS` order from the device script's JSON and the staged model
    entries."""
    by_name = {e["variant"]: e for e in entries}
    dev = raw.get("device", {})
    rows = []
    for r in raw.get("results", []):
        entry = by_name.get(r["variant"], {"variant": r["variant"], "bits": variants.describe(r["variant"])["bits"],
                                           "qdq": False})
        runtime = r["runtime"]
        if runtime == "onnxruntime":
            precision, executed = _ort_precision(entry, r)
            version = f"onnxruntime {dev.get('onnxruntime', '')}".strip()
        else:
            # TensorRT runs a Q/DQ graph's quantized layers in INT8 (explicit quantization) where the GPU has it.
            precision = ("int8-qdq+" if entry.get("qdq") else "") + (r.get("precision") or "fp32")
            executed = f"TensorRT engine built by trtexec ({r.get('precision') or 'fp32'} mode)"
            version = f"tensorrt {dev.get('tensorrt', '')}".strip()
        device = "jetson-cpu" if r.get("device") == "cpu" else "jetson-gpu"
        note = _note(entry, runtime, precision)
        if r.get("source", "").startswith("trtexec summary"):
            note = "; ".join(x for x in (note, "figures from trtexec's summary over all iterations") if x)
        row = {
            "variant": r["variant"], "runtime": runtime, "device": device, "precision": precision,
            "latency_ms_p50": r.get("latency_ms_p50"), "latency_ms_p90": r.get("latency_ms_p90"),
            "latency_ms_mean": r.get("latency_ms_mean"), "latency_ms_std": r.get("latency_ms_std"),
            "runs": r.get("runs"), "warmup": r.get("warmup"), "threads": r.get("threads"), "note": note,
            "machine": dev.get("model", ""), "machine_cpu": dev.get("cpu", ""), "machine_cores": dev.get("cores"),
            "machine_arch": dev.get("arch", ""), "machine_os": dev.get("os", ""), "python": dev.get("python", ""),
            "runtime_version": version,
            "latency_ms_min": r.get("latency_ms_min"), "latency_ms_max": r.get("latency_ms_max"),
            "p90_over_p50": r.get("p90_over_p50"), "executed": executed, "max_abs_diff": None,
            "cpu_affinity": "",
            # local-only measurements (export format from the sidecar, load, CPU time, scheduling): not taken
            "export_format": entry.get("format"), "load_avg_1m": None, "cpu_ms_p50": None, "cpu_ms_p90": None,
            "scheduling": "",
        }
        rows.append({k: row.get(k) for k in columns.COLUMNS})
    return rows


# ---------------------------------------------------------------------------------------------------- output
def skipped_result(message: str = SKIP_MESSAGE) -> dict:
    return {"status": "skipped", "message": message, "host": "", "device": {}, "rows": [], "skipped": []}


def write_outputs(result: dict, csv_path=None, json_path=None) -> None:
    """Write the rows as CSV (header always present) and the whole result as JSON, atomically."""
    if csv_path:
        with files.atomic_path(csv_path) as tmp:
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=columns.COLUMNS, extrasaction="ignore")
                writer.writeheader()
                for row in result.get("rows", []):
                    writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns.COLUMNS})
    if json_path:
        files.write_json(json_path, {k: v for k, v in result.items() if k != "raw"} | {"columns": columns.COLUMNS})
