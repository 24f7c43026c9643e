"""Batch-1 latency of one variant on this machine, in PyTorch eager or in onnxruntime.

Protocol (the same for every variant and runtime, as in the original Jetson Nano study): one fixed
1x1x48x48 input, ``warmup`` untimed runs, then ``runs`` timed runs, each timed on its own with
``time.perf_counter_ns``; the row reports p50/p90 (linear interpolation, numpy's default), mean and std
(population) in milliseconds, plus min/max and p90/p50. The runtime is held to ``threads`` threads and the
process may be pinned to as many cores (``pin``). The garbage collector is paused while timing.

- ``pytorch``: the checkpoint as saved, in eager mode under ``torch.inference_mode()`` with
  ``torch.set_num_threads(threads)``; float variants only. A brevitas-quantized checkpoint is refused: eager
  PyTorch would run brevitas' fake quantization in fp32 (10-16 ms here for a 0.1 ms model), an emulation and
  not a deployment figure; so is an fp16 checkpoint (eager runs its upcast weights in fp32: its base's row).
  Their deployable is the ONNX graph (``onnxruntime``).
- ``onnxruntime``: the exported ONNX graph in the project's session (:mod:`fer.deploy.ort`): CPU execution
  provider, ``intra_op_num_threads=threads``,
  ``inter_op_num_threads=1``, sequential execution, all graph optimizations (constant folding, BN folded
  into the conv, Conv+ReLU fusion, NCHWc blocked layouts). The optimized graph is inspected to say what
  actually ran (:mod:`fer.deploy.kernels`): fp32 kernels, int8 kernels (QLinearConv ...), or fp32 kernels
  with Q/DQ nodes around them.
  The ONNX output is compared with the PyTorch output on the same input (``max_abs_diff``).

Every row also describes the machine (host name, CPU model from /proc/cpuinfo, cores, OS, Python and runtime
versions), in the same columns as the Jetson rows (:mod:`fer.deploy.jetson`).
"""
from __future__ import annotations

import contextlib
import gc
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from fer import checkpoints, files
from fer.deploy import columns, kernels, ort
from fer.errors import BenchmarkError

log = logging.getLogger("fer")

RUNTIMES = ("pytorch", "onnxruntime", "onnxruntime-cuda")
DEVICE = "local-cpu"
DEVICES = {"onnxruntime-cuda": "local-cuda"}  # the device column of a runtime that does not run on the CPU


# -------------------------------------------------------------------------------------------------- machine
def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU model name (first ``model name`` / ``Hardware`` / ``Processor`` line of /proc/cpuinfo)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        text = ""
    found = {}
    for line in text.splitlines():
        key, sep, val = line.partition(":")
        key, val = key.strip().lower(), val.strip()
        if sep and val and key in ("model name", "hardware", "processor", "cpu model", "uarch") and key not in found:
            found[key] = val
    for key in ("model name", "cpu model", "hardware", "uarch"):
        if key in found:
            return found[key]
    if found.get("processor") and not found["processor"].isdigit():  # ARM: "Processor : ARMv7 ..."
        return found["processor"]
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return list(range(os.cpu_count() or 1))


def machine_info(runtime: str) -> dict:
    """The machine columns of a row (same names as the Jetson rows)."""
    if runtime == "pytorch":
        version = f"torch {torch.__version__}"
    elif runtime.startswith("onnxruntime"):
        import onnxruntime  # heavy and optional: only ONNX runs need it

        version = f"onnxruntime {onnxruntime.__version__}"
    else:
        version = ""
    return {"machine": platform.node(), "machine_cpu": cpu_model(), "machine_cores": os.cpu_count(),
            "machine_arch": platform.machine(), "machine_os": platform.platform(terse=True),
            "python": platform.python_version(), "runtime_version": version}


@contextlib.contextmanager
def pinned(cores: int | None):
    """Pin this process to ``cores`` cores (the last ones it may use) for the duration; None = no pinning."""
    if not cores or not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    chosen = sorted(before)[-cores:]
    os.sched_setaffinity(0, chosen)
    try:
        yield chosen
    finally:
        os.sched_setaffinity(0, before)


def _load_avg() -> float | None:
    """1-minute load average when the measurement starts: other processes on the machine show up here."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # pragma: no cover - not Unix
        return None


@contextlib.contextmanager
def scheduling(realtime: bool):
    """With ``realtime``, run the block under SCHED_FIFO (priority 50) so that no ordinary process can preempt
    the measurement; this needs root or CAP_SYS_NICE, otherwise the block runs at normal priority. Yields the
    policy actually used, for the ``scheduling`` column."""
    if not realtime:
        yield "normal"
        return
    if not hasattr(os, "sched_setscheduler"):  # pragma: no cover - not Linux
        log.warning("benchmark.realtime: SCHED_FIFO is not available here; measuring at normal priority")
        yield "normal (SCHED_FIFO unavailable)"
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
    except OSError as exc:
        log.warning("benchmark.realtime: SCHED_FIFO not permitted (%s); measuring at normal priority", exc)
        yield "normal (SCHED_FIFO not permitted)"
        return
    try:
        yield "SCHED_FIFO 50"
    finally:
        os.sched_setscheduler(0, policy, param)


# ---------------------------------------------------------------------------------------------- statistics
def latency_stats(times_ms) -> dict:
    """p50/p90 (linear interpolation), mean, std (population), min, max and p90/p50 of per-run times (ms)."""
    t = np.asarray(times_ms, dtype=float)
    if t.size == 0:
        raise BenchmarkError("no timed runs")
    p50, p90 = (float(v) for v in np.percentile(t, [50, 90]))
    return {"latency_ms_p50": p50, "latency_ms_p90": p90, "latency_ms_mean": float(t.mean()),
            "latency_ms_std": float(t.std()), "latency_ms_min": float(t.min()), "latency_ms_max": float(t.max()),
            "p90_over_p50": p90 / p50 if p50 > 0 else float("nan"), "runs": int(t.size)}


def time_calls(fn, runs: int, warmup: int, with_cpu: bool = False):
    """Call ``fn()`` ``warmup`` times untimed, then ``runs`` times timed one by one; per-call wall times in ms.

    With ``with_cpu`` also the CPU time of the calling thread per call (ms), read outside the wall-clock
    window: wall >> CPU time means the process was waiting (other processes held the core), not computing.
    """
    if runs < 1:
        raise BenchmarkError(f"runs must be >= 1, got {runs}")
    for _ in range(max(0, warmup)):
        fn()
    times = np.empty(runs, dtype=np.int64)
    cpu = np.empty(runs, dtype=np.int64)
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    gc_was_on = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        if with_cpu:
            for i in range(runs):
                c0 = cpu_clock()
                t0 = clock()
                fn()
                t1 = clock()
                cpu[i] = cpu_clock() - c0
                times[i] = t1 - t0
        else:
            for i in range(runs):
                t0 = clock()
                fn()
                times[i] = clock() - t0
    finally:
        if gc_was_on:
            gc.enable()
    return (times / 1e6, cpu / 1e6) if with_cpu else times / 1e6


def _with_cpu_stats(times_cpu) -> dict:
    wall, cpu = times_cpu
    p50, p90 = (float(v) for v in np.percentile(cpu, [50, 90]))
    return {**latency_stats(wall), "cpu_ms_p50": p50, "cpu_ms_p90": p90}


def example_input(shape=(1, 1, 48, 48), seed: int = 0) -> np.ndarray:
    """The fixed benchmark input: a seeded image in [0, 1] (latency does not depend on the content)."""
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


# ---------------------------------------------------------------------------------------------- runtimes
def describe_checkpoint(ckpt: dict) -> dict:
    """Bits and quantization facts of a checkpoint, for the precision/note columns."""
    bits, act_bits = checkpoints.checkpoint_bits(ckpt)
    return {"quantized": bits < checkpoints.FLOAT_BITS, "bits": bits, "act_bits": act_bits}


def eager_refusal(ckpt: dict) -> str | None:
    """Why eager PyTorch must not time this checkpoint (None for float checkpoints): a brevitas-quantized one
    would time an fp32 emulation of the quantization, an fp16 one its upcast fp32 weights."""
    info = describe_checkpoint(ckpt)
    if info["quantized"]:
        return (f"eager PyTorch runs this {info['bits']}-bit checkpoint as brevitas' fake quantization in fp32, an "
                "emulation and not a deployable model: benchmark its ONNX graph (runtime onnxruntime)")
    if checkpoints.is_fp16(ckpt):
        return ("eager PyTorch runs this fp16 checkpoint's weights upcast to fp32 (its base's fp32 row): "
                "benchmark its ONNX graph (runtime onnxruntime)")
    return None


def bench_pytorch(weights, runs: int, warmup: int, threads: int, x: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """Latency of a float checkpoint in eager PyTorch; returns (row fields, logits on ``x``). Refuses a
    quantized or fp16 checkpoint (:func:`eager_refusal`)."""
    ckpt = checkpoints.load_checkpoint(weights)
    refusal = eager_refusal(ckpt)
    if refusal:
        raise BenchmarkError(f"{weights}: {refusal}")
    info = describe_checkpoint(ckpt)
    model = checkpoints.load_model(weights).eval()
    arch = ckpt.get("arch", {})
    if x is None:
        x = example_input((1, arch.get("in_channels", 1), arch.get("in_size", 48), arch.get("in_size", 48)))
    torch.set_num_threads(int(threads))
    xt = torch.from_numpy(x)
    with torch.inference_mode():
        out = model(xt).float().numpy().copy()
        timed = time_calls(lambda: model(xt), runs, warmup, with_cpu=True)
    precision, note = "fp32", "eager PyTorch, fp32"
    executed = f"torch eager, {torch.get_num_threads()} thread(s)"
    return {"precision": precision, "note": note, "executed": executed,
            "bits": info["bits"], **_with_cpu_stats(timed)}, out


def onnx_labels(ops: dict[str, int], bits: int, export_format: str | None = None) -> tuple[str, str, str]:
    """(precision, executed, note) for an onnxruntime row, from the optimized graph's op types
    (:func:`fer.deploy.kernels.classify`), the weight bit width and the export sidecar's ``format``
    (float | qcdq | fake-quant) when known."""
    precision, executed = kernels.classify(ops, bits, export_format)
    notes = []
    if export_format == "fp16":
        executed += " (float16 weights cast to fp32 at load)"
        notes.append("float16 weights (half the file); onnxruntime's x86 CPU provider has no fp16 Conv kernels, so "
                     "it computes in fp32: a storage saving here, TensorRT --fp16 computes in fp16")
    if export_format == "int4":
        notes.append("INT4 weight initializers (the file is the real size), dequantized to fp32 once at session "
                     "load (session.disable_quant_qdq)")
    if bits < 32 and precision in ("fp32-fakequant", "fp32-qdq", "fp32"):
        notes.append(f"{bits}-bit quantization emulated in fp32: no speed-up over fp32; the saving is storage "
                     f"(size_bytes is computed from the bit width)")
    elif bits < 8:
        notes.append(f"{bits}-bit weights are stored in int8 containers and run on int8 kernels: a storage "
                     f"saving, not a speed-up over 8 bits")
    if precision == "fp32-qdq":
        notes.append("onnxruntime did not fuse the Q/DQ pattern into integer kernels")
    if precision == "int8":
        notes.append("int8 kernels after onnxruntime's Q/DQ fusion")
    if not notes:
        notes.append("onnxruntime CPU, all graph optimizations (BN folded, Conv+ReLU fused, NCHWc layout)")
    return precision, executed, "; ".join(notes)


def bench_onnxruntime(onnx_path, runs: int, warmup: int, threads: int, bits: int = 32,
                      x: np.ndarray | None = None, export_format: str | None = None,
                      device: str = "cpu") -> tuple[dict, np.ndarray]:
    """Latency of the ONNX graph in onnxruntime (CPU EP, or with ``device="cuda"`` the CUDA EP, which must be the
    one the session runs on); returns (row fields, logits on ``x``)."""
    if not Path(onnx_path).is_file():
        raise BenchmarkError(f"{onnx_path} does not exist")
    fold = export_format == "int4"  # no int4 kernels: dequantize the weights once, at load (fer.deploy.ort)
    ops = kernels.optimized_op_counts(onnx_path, threads, fold_weight_dq=fold)
    sess = ort.session(onnx_path, threads, providers=ort.providers_for(device), fold_weight_dq=fold)
    if device == "cuda" and sess.get_providers()[0] != ort.CUDA:
        raise BenchmarkError(f"onnxruntime-cuda: the session for {onnx_path} runs on {sess.get_providers()}, not "
                             "CUDA (install onnxruntime-gpu with a matching CUDA, or drop the runtime)")
    inp = sess.get_inputs()[0]
    if x is None:
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        x = example_input(tuple(shape))
    feed = {inp.name: np.ascontiguousarray(x, dtype=np.float32)}
    out_names = [sess.get_outputs()[0].name]
    out = sess.run(out_names, feed)[0]
    timed = time_calls(lambda: sess.run(out_names, feed), runs, warmup, with_cpu=True)
    precision, executed, note = onnx_labels(ops, bits, export_format)
    return {"precision": precision, "note": note, "executed": executed, "bits": bits,
            "export_format": export_format or "",
            **_with_cpu_stats(timed)}, np.asarray(out)


def benchmark(variant: str, runtime: str, weights, onnx=None, runs: int = 100, warmup: int = 10,
              threads: int = 1, pin: bool = True, onnx_info=None, realtime: bool = False) -> dict:
    """One row (see :data:`fer.deploy.columns.COLUMNS`) for ``variant`` on ``runtime`` (pytorch | onnxruntime |
    onnxruntime-cuda: the CUDA execution provider of this machine's GPU) on this machine.

    The onnxruntime row also runs the checkpoint once in PyTorch on the same input and records the largest
    absolute difference of the logits (``max_abs_diff``) — a check that the exported graph is the model.
    ``onnx_info`` is the export sidecar (results/onnx/<variant>.json); its ``format`` says whether the graph
    is float, QCDQ or fake-quant. ``realtime`` measures under SCHED_FIFO when permitted (see
    :func:`scheduling`); the row's ``scheduling`` column says what was used.
    """
    if runtime not in RUNTIMES:
        raise BenchmarkError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")
    if runtime.startswith("onnxruntime") and (onnx is None or not Path(onnx).is_file()):
        raise BenchmarkError(f"{onnx} does not exist" if onnx else
                             "the onnxruntime benchmark needs the exported ONNX model")
    ckpt = checkpoints.load_checkpoint(weights, variant)
    arch = ckpt.get("arch", {})
    size = arch.get("in_size", 48)
    x = example_input((1, arch.get("in_channels", 1), size, size))
    bits = describe_checkpoint(ckpt)["bits"]
    load = _load_avg()
    with pinned(threads if pin else None) as cores, scheduling(realtime) as policy:
        if runtime == "pytorch":
            fields, _ = bench_pytorch(weights, runs, warmup, threads, x)
            diff = None
        else:
            fmt = None
            if onnx_info and Path(onnx_info).is_file():
                fmt = checkpoints.check_onnx(onnx, variant).get("format")  # the graph of this variant, as exported
            fields, out = bench_onnxruntime(onnx, runs, warmup, threads, bits, x, fmt,
                                            device="cuda" if runtime == "onnxruntime-cuda" else "cpu")
            with torch.inference_mode():
                ref = checkpoints.load_model(weights)(torch.from_numpy(x)).float().numpy()
            diff = float(np.abs(ref - out).max())
    row = {"variant": variant, "runtime": runtime, "device": DEVICES.get(runtime, DEVICE), **fields, "warmup": int(warmup),
           "threads": int(threads), **machine_info(runtime), "max_abs_diff": diff,
           "cpu_affinity": ",".join(map(str, cores)) if cores else "", "load_avg_1m": load,
           "scheduling": policy}
    ordered = {k: row.get(k) for k in columns.COLUMNS}
    ordered.update({k: v for k, v in row.items() if k not in ordered})
    if load is not None and load > (len(usable_cores()) or 1) * 0.5 + 0.5 and policy == "normal":
        log.warning("load average %.2f on %d core(s) while measuring: other processes compete for the CPU and "
                    "widen p90 (Snakemake runs nothing beside this job; something outside it does)", load,
                    len(usable_cores()))
    log.info("%s %s: p50 %.4f ms  p90 %.4f ms  mean %.4f ms  std %.4f ms  p90/p50 %.2f  CPU time p50 %.4f ms "
             "p90 %.4f ms  (%d runs after %d warm-up, %d thread(s), %s, %s)", variant, runtime, row["latency_ms_p50"],
             row["latency_ms_p90"], row["latency_ms_mean"], row["latency_ms_std"], row["p90_over_p50"],
             row["cpu_ms_p50"], row["cpu_ms_p90"], row["runs"], warmup, threads, row["executed"], policy)
    return ordered


def write_result(path, row: dict, times_ms=None) -> None:
    """results/benchmarks/<variant>_<runtime>.json: ``{"rows": [row], "protocol": ...}``."""
    files.write_json(path, {"rows": [row], "columns": columns.COLUMNS,
                         "protocol": (f"batch 1, {row['warmup']} warm-up runs then {row['runs']} timed runs "
                                      f"(time.perf_counter_ns per run), {row['threads']} thread(s), "
                                      f"{row['device']} {row['machine_cpu']}")})
