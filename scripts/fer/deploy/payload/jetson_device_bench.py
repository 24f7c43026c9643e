#!/usr/bin/env python3
"""Batch-1 latency of ONNX models on a Jetson (or any Linux box), run on the device itself.

This file is copied to the device by ``fer.jetson`` and run there over SSH. It is self-contained and must
work with what a Jetson image ships: Python 3.6+ (JetPack 4.x has Python 3.6.9), numpy and onnxruntime (CPU
or the CUDA build from the Jetson Zoo), and/or TensorRT's ``trtexec``. Keep it Python 3.6 syntax only: no
f-string ``=``, no walrus, no dataclasses, no ``from __future__ import annotations``, no
``subprocess.run(capture_output=...)``/``text=``.

    python3 jetson_device_bench.py --manifest manifest.json --out result.json

The manifest (written by the host) lists the models and the settings::

    {"runs": 100, "warmup": 10, "threads": null, "trtexec": "", "runtimes": ["auto"],
     "models": [{"variant": "student", "file": "models/student.onnx", "input_name": "input",
                 "input_shape": [1, 1, 48, 48], "qdq": false, "bits": null}]}

A model entry may add ``"tensorrt_precisions": ["fp16"]`` (the fp16 variants): TensorRT then builds only those
of the requested modes for it.

The result JSON has the device description, one entry per measured (variant, runtime, precision) with the
latency statistics in milliseconds (p50/p90 use linear interpolation, as numpy's default; std is the
population standard deviation), and a list of skipped combinations with the reason.

Exit codes: 0 at least one measurement, 3 no runtime usable (neither onnxruntime nor trtexec),
4 every measurement failed, 2 bad arguments/manifest.
"""
import argparse
import json
import math
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time

EXIT_NO_RUNTIME = 3
EXIT_ALL_FAILED = 4
EXIT_USAGE = 2

TRTEXEC_CANDIDATES = ("/usr/src/tensorrt/bin/trtexec", "/usr/local/tensorrt/bin/trtexec", "/opt/tensorrt/bin/trtexec")
ALL_RUNTIMES = ("onnxruntime-cpu", "onnxruntime-cuda", "tensorrt-fp32", "tensorrt-fp16")


def log(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


# ----------------------------------------------------------------------------------------------- statistics
def percentile(sorted_values, q):
    """numpy.percentile(values, q) with the default linear interpolation, on an already sorted list."""
    n = len(sorted_values)
    if n == 0:
        return float("nan")
    pos = (n - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


def summarize(times_ms):
    values = sorted(float(t) for t in times_ms)
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / n
    p50, p90 = percentile(values, 50), percentile(values, 90)
    return {"latency_ms_p50": p50, "latency_ms_p90": p90, "latency_ms_mean": mean, "latency_ms_std": math.sqrt(var),
            "latency_ms_min": values[0], "latency_ms_max": values[-1],
            "p90_over_p50": p90 / p50 if p50 > 0 else None, "runs": n}


# ---------------------------------------------------------------------------------------- device description
def _read_text(path):
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace").replace("\x00", "").strip()
    except (IOError, OSError):
        return ""


def _cpu_model():
    info = _read_text("/proc/cpuinfo")
    fields = {}
    parts = set()
    for line in info.splitlines():
        if ":" not in line:
            continue
        key, _, value = line.partition(":")
        key = key.strip().lower()
        value = value.strip()
        if key in ("model name", "hardware", "processor", "cpu model") and value and key not in fields:
            fields[key] = value
        if key == "cpu part":
            parts.add(value)
    # ARM cores in Jetsons: 0xd07 Cortex-A57 (Nano, TX1, TX2), 0xd42 Cortex-A78AE (Orin), 0x004 Carmel (Xavier).
    arm_parts = {"0xd07": "ARM Cortex-A57", "0xd08": "ARM Cortex-A72", "0xd03": "ARM Cortex-A53",
                 "0xd42": "ARM Cortex-A78AE", "0x004": "NVIDIA Carmel", "0x003": "NVIDIA Denver 2"}
    if "model name" in fields and not fields["model name"].isdigit():
        return fields["model name"]
    names = sorted(arm_parts.get(p, "ARM part " + p) for p in parts)
    if names:
        return " + ".join(names)
    return fields.get("hardware") or platform.processor() or platform.machine()


def _os_release():
    text = _read_text("/etc/os-release")
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.platform()


def find_trtexec(configured):
    if configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return configured
        found = shutil.which(configured)
        return found or ""
    found = shutil.which("trtexec")
    if found:
        return found
    for path in TRTEXEC_CANDIDATES:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return ""


def _tensorrt_version(trtexec):
    try:
        import tensorrt  # noqa: F401  (the Python bindings, if installed)
        return str(tensorrt.__version__)
    except Exception:
        pass
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "tensorrt"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, universal_newlines=True, timeout=20)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except Exception:
        pass
    return ""


def describe_device(ort, ort_error, trtexec):
    model = _read_text("/proc/device-tree/model")
    tegra = _read_text("/etc/nv_tegra_release").splitlines()
    tegra = tegra[0].lstrip("# ").strip() if tegra else ""
    desc = {
        "hostname": socket.gethostname(),
        "model": model or (("NVIDIA Jetson (" + tegra + ")") if tegra else ""),
        "tegra_release": tegra,
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "arch": platform.machine(),
        "os": _os_release(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
    }
    try:
        import numpy
        desc["numpy"] = str(numpy.__version__)
    except Exception:
        desc["numpy"] = ""
    if ort is not None:
        desc["onnxruntime"] = str(ort.__version__)
        desc["onnxruntime_providers"] = list(ort.get_available_providers())
    else:
        desc["onnxruntime"] = ""
        desc["onnxruntime_error"] = ort_error
    desc["trtexec"] = trtexec
    desc["tensorrt"] = _tensorrt_version(trtexec) if trtexec else ""
    if not desc["model"]:
        desc["model"] = desc["hostname"]
    return desc


# --------------------------------------------------------------------------------------------- onnxruntime
def import_onnxruntime():
    try:
        import numpy  # noqa: F401
    except Exception as exc:
        return None, "numpy not importable: " + str(exc).splitlines()[0]
    try:
        import onnxruntime
        return onnxruntime, ""
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        return None, "onnxruntime not importable: " + msg


def _input_array(shape, seed=0):
    import numpy as np
    dims = [d if isinstance(d, int) and d > 0 else 1 for d in shape]
    rng = np.random.RandomState(seed)
    return rng.standard_normal(dims).astype(np.float32)


# onnxruntime kernels that compute in integers (after its Q/DQ fusion passes), as in fer.deploy.kernels.
INT_KERNELS = ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm", "QLinearAdd",
               "QLinearMul", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QLinearGlobalAveragePool",
               "QLinearConcat", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearAveragePool", "QLinearSoftmax")
QDQ_NODES = ("QuantizeLinear", "DequantizeLinear")
FLOAT_KERNELS = ("Conv", "FusedConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul")


def count_ops(data, names):
    """Occurrences of each op type in a serialized ONNX model, without the onnx package.

    NodeProto.op_type is protobuf field 4 (wire type 2): the tag byte 0x22, a one-byte length, the name.
    """
    counts = {}
    for name in names:
        raw = name.encode("ascii")
        n = data.count(b"\x22" + bytes([len(raw)]) + raw)
        if n:
            counts[name] = n
    return counts


def session_options(ort, threads, optimized_path=None):
    """The same session settings as the local benchmark (fer.deploy.ort.session_options)."""
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = int(threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    if threads and int(threads) == 1:
        try:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        except Exception:  # onnxruntime < 1.7 has no session config entries
            pass
    if optimized_path:
        opts.optimized_model_filepath = optimized_path
    return opts


DISABLED_OPTIMIZERS = ["QDQPropagationTransformer"]  # as fer.deploy.ort.DISABLED_OPTIMIZERS


def inference_session(ort, path, opts, providers):
    """An InferenceSession with the local benchmark's disabled optimizers where this onnxruntime knows the
    argument (older builds take no ``disabled_optimizers``: then with every optimizer on)."""
    try:
        return ort.InferenceSession(path, sess_options=opts, providers=providers,
                                    disabled_optimizers=DISABLED_OPTIMIZERS)
    except TypeError:
        return ort.InferenceSession(path, sess_options=opts, providers=providers)


def executed_ops(ort, model, threads, workdir):
    """Op types of the graph onnxruntime's CPU provider actually executes (after its optimizations)."""
    path = os.path.join(workdir, model["variant"] + ".cpu.optimized.onnx")
    try:
        inference_session(ort, model["file"], session_options(ort, threads, path), ["CPUExecutionProvider"])
        with open(path, "rb") as fh:
            data = fh.read()
    except Exception:
        return None
    return count_ops(data, INT_KERNELS + QDQ_NODES + FLOAT_KERNELS)


def bench_onnxruntime(ort, model, provider, runs, warmup, threads):
    providers = [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
    sess = inference_session(ort, model["file"], session_options(ort, threads), providers)
    used = sess.get_providers()
    if not used or used[0] != provider:
        raise RuntimeError("onnxruntime fell back to " + ", ".join(used) + " instead of " + provider)
    inp = sess.get_inputs()[0]
    shape = model.get("input_shape") or inp.shape
    x = _input_array(shape)
    feed = {inp.name: x}
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    clock = time.perf_counter
    for _ in range(runs):
        t0 = clock()
        sess.run(None, feed)
        times.append((clock() - t0) * 1000.0)
    return times


# ------------------------------------------------------------------------------------------------ trtexec
_TRT_SUMMARY = re.compile(r"(?:^|\]\s*)Latency:\s*min\s*=\s*([\d.eE+-]+)\s*ms.*?mean\s*=\s*([\d.eE+-]+)\s*ms.*?"
                          r"median\s*=\s*([\d.eE+-]+)\s*ms(.*)")
_TRT_PCT = re.compile(r"percentile\((\d+(?:\.\d+)?)%\)\s*=\s*([\d.eE+-]+)\s*ms")


def parse_trtexec_summary(text):
    """Latency figures from trtexec's performance summary (TensorRT 8+ one-line format).

    Uses the plain host latency line ("[I] Latency: min = ... ms, max = ..., mean = ..., median = ...,
    percentile(90%) = ..."), not "End-to-End Host Latency" or "GPU Compute Time". Returns a dict with p50/mean and p90 when printed.
    """
    found = None
    for line in text.splitlines():
        if "GPU Compute" in line or "Enqueue" in line or "H2D" in line or "D2H" in line:
            continue
        m = _TRT_SUMMARY.search(line.strip())
        if m:
            found = (m, line)
    if not found:
        return {}
    m, line = found
    out = {"latency_ms_p50": float(m.group(3)), "latency_ms_mean": float(m.group(2))}
    for pct, value in _TRT_PCT.findall(line):
        if float(pct) == 90.0:
            out["latency_ms_p90"] = float(value)
    return out


def bench_trtexec(trtexec, model, precision, runs, warmup, workdir, timeout):
    """Run trtexec for ``warmup + runs`` timed iterations and return per-iteration host latencies (ms).

    trtexec's own warm-up is time-based, so it is switched off (--warmUp=0) and the first ``warmup``
    iterations are dropped here instead; --exportTimes gives every iteration's latency.
    """
    tag = model["variant"] + "." + precision
    times_path = os.path.join(workdir, tag + ".times.json")
    log_path = os.path.join(workdir, tag + ".trtexec.log")
    if os.path.exists(times_path):
        os.remove(times_path)
    cmd = [trtexec, "--onnx=" + model["file"], "--warmUp=0", "--duration=0",
           "--iterations=" + str(warmup + runs), "--avgRuns=1", "--exportTimes=" + times_path]
    if precision == "fp16":
        cmd.append("--fp16")
    shape = model.get("input_shape") or []
    name = model.get("input_name") or ""
    if name and any(not isinstance(d, int) or d <= 0 for d in shape):
        dims = [d if isinstance(d, int) and d > 0 else 1 for d in shape]
        cmd.append("--shapes=" + name + ":" + "x".join(str(d) for d in dims))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=timeout)
    with open(log_path, "w") as fh:
        fh.write(proc.stdout)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stdout.splitlines() if "[E]" in ln or "rror" in ln] or proc.stdout.splitlines()
        raise RuntimeError("trtexec exit " + str(proc.returncode) + ": " + (lines[-1].strip() if lines else ""))
    times = []
    if os.path.exists(times_path):
        with open(times_path) as fh:
            entries = json.load(fh)
        for entry in entries:
            if isinstance(entry, dict) and "latencyMs" in entry:
                times.append(float(entry["latencyMs"]))
    summary = parse_trtexec_summary(proc.stdout)
    if len(times) > warmup:
        times = times[warmup:warmup + runs]
        return times, summary
    if summary:
        return None, summary
    raise RuntimeError("trtexec printed no latency figures and exported no times")


# ---------------------------------------------------------------------------------------------- main loop
def run(manifest, workdir):
    runs = int(manifest.get("runs", 100))
    warmup = int(manifest.get("warmup", 10))
    threads = manifest.get("threads") or None
    timeout = float(manifest.get("trtexec_timeout", 900))
    wanted = manifest.get("runtimes") or ["auto"]
    if "auto" in wanted:
        wanted = list(ALL_RUNTIMES)

    ort, ort_error = import_onnxruntime()
    trtexec = find_trtexec(manifest.get("trtexec") or "")
    device = describe_device(ort, ort_error, trtexec)
    log("device: " + device["model"] + " | " + device["cpu"] + " x" + str(device["cores"]) + " | python "
        + device["python"] + " | onnxruntime " + (device["onnxruntime"] or "-") + " | trtexec "
        + (trtexec or "-"))

    plans = []  # (runtime, device, onnxruntime execution provider)
    skipped = []
    providers = list(ort.get_available_providers()) if ort is not None else []
    if ort is not None and "onnxruntime-cpu" in wanted:
        plans.append(("onnxruntime", "cpu", "CPUExecutionProvider"))
    if ort is not None and "onnxruntime-cuda" in wanted:
        if "CUDAExecutionProvider" in providers:
            plans.append(("onnxruntime", "cuda", "CUDAExecutionProvider"))
        else:
            skipped.append({"variant": "*", "runtime": "onnxruntime", "device": "cuda",
                            "reason": "CUDAExecutionProvider not available"})
    trt_precisions = [p for p in ("fp32", "fp16") if "tensorrt-" + p in wanted]
    if trt_precisions and not trtexec:
        skipped.append({"variant": "*", "runtime": "tensorrt", "device": "gpu", "reason": "trtexec not found"})
    if not plans and not (trtexec and trt_precisions):
        reasons = []
        if ort is None:
            reasons.append(ort_error)
        if not trtexec and manifest.get("trtexec"):
            reasons.append("trtexec not found at " + str(manifest.get("trtexec")))
        elif not trtexec:
            reasons.append("trtexec not found (PATH, " + ", ".join(TRTEXEC_CANDIDATES) + ")")
        if not reasons:
            reasons.append("no runtime selected among " + ", ".join(wanted))
        return {"device": device, "results": [], "skipped": skipped,
                "error": "no usable runtime on the device: " + "; ".join(reasons)}, EXIT_NO_RUNTIME

    results = []
    for model in manifest["models"]:
        model = dict(model)
        if not os.path.isabs(model["file"]):
            model["file"] = os.path.join(workdir, model["file"])
        base = {"variant": model["variant"], "warmup": warmup}
        for runtime, dev, provider in plans:
            label = model["variant"] + " onnxruntime/" + dev
            try:
                times = bench_onnxruntime(ort, model, provider, runs, warmup, threads)
            except Exception as exc:
                msg = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
                log("  " + label + ": FAILED " + msg)
                skipped.append({"variant": model["variant"], "runtime": runtime, "device": dev, "reason": msg})
                continue
            row = dict(base, runtime=runtime, device=dev, precision=None, source="perf_counter",
                       threads=int(threads) if threads else (device["cores"] if dev == "cpu" else None),
                       provider=provider)
            if dev == "cpu":
                row["executed_ops"] = executed_ops(ort, model, threads, workdir)
            row.update(summarize(times))
            log("  %s: p50 %.3f ms, p90 %.3f ms (%d runs)" % (label, row["latency_ms_p50"],
                                                           row["latency_ms_p90"], row["runs"]))
            results.append(row)
        if trtexec:
            # a model may name its own TensorRT modes (fp16 variants: fp16 only), within the ones asked for
            own = model.get("tensorrt_precisions")
            for precision in [p for p in trt_precisions if own is None or p in own]:
                label = model["variant"] + " tensorrt/" + precision
                try:
                    times, summary = bench_trtexec(trtexec, model, precision, runs, warmup, workdir, timeout)
                except Exception as exc:
                    msg = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
                    log("  " + label + ": FAILED " + msg)
                    skipped.append({"variant": model["variant"], "runtime": "tensorrt", "device": "gpu",
                                    "precision": precision, "reason": msg})
                    continue
                row = dict(base, runtime="tensorrt", device="gpu", precision=precision, threads=None)
                if times:
                    row.update(summarize(times))
                    row["source"] = "trtexec --exportTimes (host latency)"
                else:
                    # No per-iteration times: the summary covers every iteration, warm-up included.
                    row.update({"latency_ms_p50": summary.get("latency_ms_p50"),
                                "latency_ms_p90": summary.get("latency_ms_p90"),
                                "latency_ms_mean": summary.get("latency_ms_mean"),
                                "latency_ms_std": None, "runs": warmup + runs, "warmup": 0,
                                "source": "trtexec summary (host latency, all iterations)"})
                log("  %s: p50 %.3f ms (%s)" % (label, row["latency_ms_p50"], row["source"]))
                results.append(row)
    if not results:
        failures = [s for s in skipped if s["variant"] != "*"] or skipped
        return {"device": device, "results": [], "skipped": skipped,
                "error": "every measurement failed: " + "; ".join(
                    s["variant"] + " " + s["runtime"] + ": " + s["reason"] for s in failures[:3])}, EXIT_ALL_FAILED
    return {"device": device, "results": results, "skipped": skipped, "error": ""}, 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        with open(args.manifest) as fh:
            manifest = json.load(fh)
        manifest["models"]
    except Exception as exc:
        sys.stderr.write("bad manifest " + args.manifest + ": " + str(exc) + "\n")
        return EXIT_USAGE
    workdir = os.path.dirname(os.path.abspath(args.manifest))
    result, code = run(manifest, workdir)
    result["manifest"] = {k: v for k, v in manifest.items() if k != "models"}
    tmp = args.out + ".part"
    with open(tmp, "w") as fh:
        json.dump(result, fh, indent=2)
    os.rename(tmp, args.out)
    if result.get("error"):
        sys.stderr.write("device benchmark: " + result["error"] + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
