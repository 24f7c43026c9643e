#!/usr/bin/env python3
"""Which int8 path is faster than fp32 on this CPU? Every candidate for one KD student, side by side, one run.

A developer benchmark (prints tables, writes JSON and CSV; never a test). For one trained KD student it times,
with 1 and with 2 threads, at batch 1 and batch 32:

- ``ort-fp32``: the fp32 ONNX graph in onnxruntime at graph optimisation levels basic / extended / all;
- ``ort-int8-shipped``: the pipeline's 8-bit graph (``results/onnx/ptq_kd_8.onnx``: brevitas' QCDQ export
  rearranged by :func:`fer.deploy.onnx_export.to_int8_cpu_graph`), in the project's own session
  (:func:`fer.deploy.ort.session`, ``QDQPropagationTransformer`` off), as the benchmark rule and the app run it;
- ``ort-qcdq``: brevitas' QCDQ int8 graph as exported (what the pipeline shipped before), all optimizers on
  (onnxruntime fuses it into QLinearConv/QGemm);
- ``ort-qcdq-dqfold``: the same file with ``session.disable_quant_qdq``: fp32 kernels on weights dequantized
  once at load, the activations' Q/DQ pairs emulated in fp32 (an int8 *file*, fp32 *compute*);
- ``ort-qop-u8``: onnxruntime's own ``quantize_static`` in the QOperator format: uint8 activations, int8
  per-channel weights, QLinearConv with the ReLU folded into its output range, QGemm, uint8 MaxPool;
  ``ort-qop-u8-block1fp32`` the same with the first block (conv1: one input channel, K = 9; its ReLU and pool1)
  left in fp32, int8 from conv2 on; ``ort-qop-u8-block1fp32-noprop`` that graph in a session without
  onnxruntime's ``QDQPropagationTransformer`` (which would move the QuantizeLinear above pool1, leaving a uint8
  MaxPool in NCHW, for which onnxruntime has no fast kernel);
- ``ort-qdq-u8`` / ``ort-qdq-s8``: ``quantize_static`` in the QDQ format, uint8 or int8 activations;
- ``torch-int8-x86`` / ``torch-int8-onednn``: PyTorch's eager post-training quantization (torch.ao, fused
  Conv+BN+ReLU, ``torch.backends.quantized.engine``), calibrated on the same faces;
- ``torch-fp32``: the checkpoint in eager PyTorch (``torch.inference_mode``), the reference.

Every onnxruntime graph is timed at levels extended and all (the fp32 graph also at basic); the tables keep each
graph's fastest level and the JSON keeps all. Calibration uses faces the student never saw; top-1 agreement with
the fp32 model (and accuracy against the labels) on a few hundred other faces says that no int8 path is a fake.

Protocol: ``--rounds`` rounds; in each round every path x threads x batch is timed (``--warmup`` untimed runs,
then ``--runs1`` / ``--runs32`` calls, each timed on its own with the garbage collector paused:
:func:`fer.deploy.latency.time_calls`), so a slow minute on a shared machine hits all paths alike. A cell is the
median over rounds of the per-round p50; throughput is batch / that p50. The 1-minute load average is recorded
before every measurement and printed beside every figure. Then onnxruntime's profiler (``enable_profiling``,
1 thread, each graph at its fastest level, first runs dropped) gives the time per op type and the framework
overhead (run time minus the kernels' time), and the optimized graph's node counts are read back
(:func:`fer.deploy.kernels.optimized_op_counts`).

Weights: ``--weights weights/kd.pt`` (and the pipeline's graphs ``--onnx results/onnx/kd.onnx``,
``--qcdq-onnx results/onnx/ptq_kd_8.onnx``); with no ``--weights`` a student of the KD architecture
(``models.student`` in config/config.yaml) is trained here for ``--epochs`` epochs on synthetic faces, with plain
cross-entropy (timing does not depend on how the weights were learned). brevitas PTQ at 8 bits
(:func:`fer.compression.quantize.ptq`, on the calibration faces) gives ``ort-qcdq`` (exported with
``int8_cpu=False``) and, without ``--qcdq-onnx``, the shipped graph too (exported as the pipeline exports it).

    .venv/bin/python bench/int8_paths.py                                   # trains a student, ~5 minutes
    .venv/bin/python bench/int8_paths.py --weights weights/kd.pt --onnx results/onnx/kd.onnx \\
        --qcdq-onnx results/onnx/ptq_kd_8.onnx --out results/bench/int8_paths
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fer import CLASSES, checkpoints
from fer import config as fer_config
from fer.compression import quantize
from fer.data import preprocess, synthetic
from fer.deploy import kernels, latency, onnx_export, ort
from fer.models import nets

STUDENT_ARCH = fer_config.defaults()["models"]["student"]  # the default widths, from config/config.yaml
CPU_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8",
             "amx_bf16")
# How the profile tables group onnxruntime's op types (anything else: "other").
OP_GROUPS = {
    "QuantizeLinear": "Q/DQ", "DequantizeLinear": "Q/DQ", "DynamicQuantizeLinear": "Q/DQ",
    "QLinearConv": "int8 conv", "NhwcQLinearConv": "int8 conv", "ConvInteger": "int8 conv",
    "QGemm": "int8 gemm", "QLinearMatMul": "int8 gemm", "MatMulInteger": "int8 gemm",
    "Conv": "fp32 conv", "FusedConv": "fp32 conv",
    "Gemm": "fp32 gemm", "FusedGemm": "fp32 gemm", "MatMul": "fp32 gemm", "FusedMatMul": "fp32 gemm",
    "ReorderInput": "layout", "ReorderOutput": "layout", "Transpose": "layout",
    "MaxPool": "maxpool", "NhwcMaxPool": "maxpool", "QLinearMaxPool": "maxpool",
    "Relu": "relu", "Clip": "relu",
    "Reshape": "reshape", "Flatten": "reshape",
}
# onnxruntime moves a QuantizeLinear up through a MaxPool; after an fp32 first block that leaves a uint8 MaxPool
# in NCHW, which has no fast kernel (only the NHWC uint8 MaxPool has): the -noprop path switches that pass off.
NO_PROPAGATION = "QDQPropagationTransformer"
BATCHES = (1, 32)
MIN_AGREEMENT = 0.99  # an int8 path below this top-1 agreement with fp32 does not count as a faster int8 (the export's qcdq tolerance)
THREADS = (1, 2)


# ----------------------------------------------------------------------------------------------- pure helpers
def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, bool]:
    """Which of :data:`CPU_FLAGS` the first ``flags`` line of ``cpuinfo`` lists."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        text = ""
    flags: set[str] = set()
    for line in text.splitlines():
        key, sep, val = line.partition(":")
        if sep and key.strip() == "flags":
            flags = set(val.split())
            break
    return {f: f in flags for f in CPU_FLAGS}


def profile_summary(events: list[dict], skip_runs: int = 0) -> dict:
    """Per op type time from an onnxruntime profile (the JSON list ``end_profiling`` writes).

    The first ``skip_runs`` ``model_run`` events (warm-up) and every node event before the next run are
    dropped. Returns ``runs``, ``run_us`` (mean run time), ``kernel_us`` (mean time inside kernels per run),
    ``overhead_us`` (the difference: feeds, allocation, the executor), ``ops``: op type -> ``{"nodes": distinct
    nodes, "us": mean per run, "share": of the kernel time}``, and ``nodes``: the same per node (``node``, ``op``,
    ``us``, ``share``), both largest first.
    """
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])
    kept = runs[skip_runs:]
    if not kept:
        return {"runs": 0, "run_us": 0.0, "kernel_us": 0.0, "overhead_us": 0.0, "ops": {}, "nodes": []}
    start = kept[0]["ts"]
    total: dict[str, float] = {}
    nodes: dict[str, set] = {}
    per_node: dict[str, list] = {}  # node name -> [op, total us]
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time") or e["ts"] < start:
            continue
        op = e.get("args", {}).get("op_name", "?")
        total[op] = total.get(op, 0.0) + float(e["dur"])
        nodes.setdefault(op, set()).add(e["name"])
        per_node.setdefault(e["name"][:-len("_kernel_time")], [op, 0.0])[1] += float(e["dur"])
    n = len(kept)
    kernel = sum(total.values()) / n
    run_us = sum(float(e["dur"]) for e in kept) / n
    share = lambda us: (us / n) / kernel if kernel else 0.0
    ops = {op: {"nodes": len(nodes[op]), "us": us / n, "share": share(us)}
           for op, us in sorted(total.items(), key=lambda kv: -kv[1])}
    by_node = [{"node": name, "op": op, "us": us / n, "share": share(us)}
               for name, (op, us) in sorted(per_node.items(), key=lambda kv: -kv[1][1])]
    return {"runs": n, "run_us": run_us, "kernel_us": kernel, "overhead_us": run_us - kernel, "ops": ops,
            "nodes": by_node}


def group_ops(ops: dict) -> dict[str, float]:
    """Kernel-time shares of :func:`profile_summary`'s ``ops`` summed per :data:`OP_GROUPS` group."""
    out: dict[str, float] = {}
    for op, v in ops.items():
        g = OP_GROUPS.get(op, "other")
        out[g] = out.get(g, 0.0) + v["share"]
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def load1() -> float:
    return round(os.getloadavg()[0], 2)


# ----------------------------------------------------------------------------------------------- model + data
def faces(subjects: int, first: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """uint8 synthetic faces (N, 48, 48) of subjects ``first..first+subjects-1`` and their labels."""
    x, y, _ = synthetic.load_arrays(subjects, seed, first_subject=first)
    return torch.as_tensor(x), y


def train_student(x_u8: torch.Tensor, y: np.ndarray, epochs: int, seed: int) -> nets.FERNet:
    """A student of the KD architecture trained with plain cross-entropy (the stand-in when no --weights)."""
    torch.manual_seed(seed)
    model = nets.FERNet(**STUDENT_ARCH, num_classes=len(CLASSES))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    x, yt = preprocess.to_tensor(x_u8), torch.as_tensor(y)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(model(x[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"  epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}", flush=True)
    return model.eval()


class _Reader:
    """onnxruntime calibration data: the calibration faces in batches of 32."""

    def __init__(self, name: str, x: np.ndarray):
        self.name, self.chunks = name, [x[i:i + 32] for i in range(0, len(x), 32)]
        self.i = 0

    def get_next(self):
        if self.i >= len(self.chunks):
            return None
        self.i += 1
        return {self.name: self.chunks[self.i - 1]}

    def rewind(self):
        self.i = 0


def ort_quantized(fp32_onnx: Path, out: Path, calib: np.ndarray) -> dict[str, Path]:
    """onnxruntime ``quantize_static`` graphs of ``fp32_onnx``: QOperator uint8 (all layers; conv1+relu1+pool1 in fp32)
    and QDQ with uint8 / int8 activations; per-channel int8 weights, MinMax calibration on ``calib``."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = out / "fp32_pre.onnx"
    quant_pre_process(str(fp32_onnx), str(pre))
    graph = onnx.load(str(pre)).graph
    name = graph.input[0].name
    first = {op: next(n.name for n in graph.node if n.op_type == op) for op in ("Conv", "Relu", "MaxPool")}
    specs = {
        "qop_u8": (QuantFormat.QOperator, QuantType.QUInt8, []),
        "qop_u8_block1fp32": (QuantFormat.QOperator, QuantType.QUInt8, list(first.values())),
        "qdq_u8": (QuantFormat.QDQ, QuantType.QUInt8, []),
        "qdq_s8": (QuantFormat.QDQ, QuantType.QInt8, []),
    }
    paths = {}
    for key, (fmt, act, exclude) in specs.items():
        path = out / f"{key}.onnx"
        quantize_static(str(pre), str(path), _Reader(name, calib), quant_format=fmt, per_channel=True,
                        reduce_range=False, activation_type=act, weight_type=QuantType.QInt8,
                        nodes_to_exclude=exclude, calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": act == QuantType.QInt8})
        paths[key] = path
    return paths


def torch_int8(model: nn.Module, calib: torch.Tensor, engine: str) -> nn.Module:
    """Eager post-training int8 of a float FERNet with PyTorch's ``engine`` backend (x86 | onednn | fbgemm):
    Conv+BN+ReLU and fc1+ReLU fused, per-channel weights (the engine's default qconfig)."""
    from torch.ao import quantization as tq

    torch.backends.quantized.engine = engine
    m = copy.deepcopy(model).eval()
    names = [n for n, _ in m.features.named_children()]
    groups = [[c, c.replace("conv", "bn"), c.replace("conv", "relu")] for c in names if c.startswith("conv")]
    groups = [[n for n in g if n in names] for g in groups]
    tq.fuse_modules(m.features, groups, inplace=True)
    tq.fuse_modules(m.classifier, [["fc1", "relu"]], inplace=True)
    q = nn.Sequential(tq.QuantStub(), m, tq.DeQuantStub()).eval()
    q.qconfig = tq.get_default_qconfig(engine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tq.prepare(q, inplace=True)
        with torch.inference_mode():
            for i in range(0, len(calib), 32):
                q(calib[i:i + 32])
        tq.convert(q, inplace=True)
    return q.eval()


# ----------------------------------------------------------------------------------------------- the paths
class OrtPath:
    """One onnxruntime configuration: a graph, an optimisation level, ``fold`` (``session.disable_quant_qdq``)
    and ``disabled`` graph transformers (``InferenceSession(disabled_optimizers=...)``)."""

    def __init__(self, name, graph, level, fold=False, disabled=()):
        self.name, self.graph, self.level, self.fold, self.disabled = name, Path(graph), level, fold, tuple(disabled)
        self.runtime = "onnxruntime"
        self.sessions = {}
        if self.disabled:  # fer.deploy.kernels builds its sessions with every transformer on: read it back here
            with tempfile.TemporaryDirectory(prefix="fer-int8-") as tmp:
                self.session(1, optimized_path=Path(tmp) / "optimized.onnx")
                import onnx

                graph_ops = [n.op_type for n in onnx.load(str(Path(tmp) / "optimized.onnx")).graph.node]
            self.ops = {op: graph_ops.count(op) for op in sorted(set(graph_ops))}
        else:
            self.ops = kernels.optimized_op_counts(self.graph, 1, level=level, fold_weight_dq=fold)
        self.precision, self.executed = kernels.classify(self.ops)
        if self.disabled:
            self.executed += " (disabled: " + ", ".join(self.disabled) + ")"

    def session(self, threads: int, optimized_path=None, profile_prefix=None):
        """A session with this project's settings (:func:`fer.deploy.ort.session_options`) plus this path's."""
        import onnxruntime

        so = ort.session_options(threads, optimized_path=optimized_path, level=self.level, fold_weight_dq=self.fold)
        if profile_prefix:
            so.enable_profiling = True
            so.profile_file_prefix = str(profile_prefix)
        kw = {"disabled_optimizers": list(self.disabled)} if self.disabled else {}
        return onnxruntime.InferenceSession(str(self.graph), sess_options=so, providers=[ort.CPU], **kw)

    def fn(self, threads: int, x: np.ndarray):
        if threads not in self.sessions:
            self.sessions[threads] = self.session(threads)
        sess = self.sessions[threads]
        feed, outs = {sess.get_inputs()[0].name: np.ascontiguousarray(x, np.float32)}, [sess.get_outputs()[0].name]
        return lambda: sess.run(outs, feed)[0]

    def logits(self, x: np.ndarray) -> np.ndarray:
        run = [self.fn(1, x[i:i + 32]) for i in range(0, len(x), 32)]
        return np.concatenate([r() for r in run])


class TorchPath:
    def __init__(self, name, model, engine=None, note=""):
        self.name, self.model, self.engine, self.note = name, model, engine, note
        self.runtime, self.level = "pytorch", ""
        self.ops = {}
        mods = sorted({type(m).__module__.split(".")[-1] + "." + type(m).__name__ for m in model.modules()
                       if "quantized" in type(m).__module__})
        self.precision = "int8" if engine and mods else "fp32"  # int8 only if quantized modules are in it
        self.executed = (f"torch.ao quantized kernels, engine {engine}: " + ", ".join(mods)) if engine \
            else "fp32 eager (oneDNN/ATen conv)"

    def fn(self, threads: int, x: np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        model, engine = self.model, self.engine

        def call():
            with torch.inference_mode():
                return model(t)
        torch.set_num_threads(threads)
        if engine:
            torch.backends.quantized.engine = engine
        return call

    def logits(self, x: np.ndarray) -> np.ndarray:
        out = [self.fn(1, x[i:i + 32])().float().numpy() for i in range(0, len(x), 32)]
        return np.concatenate(out)


def measure(paths, x: np.ndarray, rounds: int, runs: dict[int, int], warmup: int) -> list[dict]:
    """Every path x threads x batch timed in each of ``rounds`` rounds; one row per cell."""
    cells = {}
    for r in range(rounds):
        for threads in THREADS:
            for batch in BATCHES:
                for p in paths:
                    fn = p.fn(threads, x[:batch])
                    if isinstance(p, TorchPath):
                        torch.set_num_threads(threads)
                    load = load1()
                    wall, cpu = latency.time_calls(fn, runs[batch], warmup, with_cpu=True)
                    c = cells.setdefault((p.name, threads, batch), {"p50": [], "cpu": [], "load": []})
                    c["p50"].append(float(np.percentile(wall, 50)))
                    c["cpu"].append(float(np.percentile(cpu, 50)))
                    c["load"].append(load)
        print(f"  round {r + 1}/{rounds} done (load {load1()})", flush=True)
    rows = []
    for p in paths:
        for threads in THREADS:
            for batch in BATCHES:
                c = cells[(p.name, threads, batch)]
                p50 = statistics.median(c["p50"])
                rows.append({"path": p.name, "runtime": p.runtime, "level": p.level, "precision": p.precision,
                             "threads": threads, "batch": batch, "p50_ms": round(p50, 4),
                             "p50_ms_rounds": [round(v, 4) for v in c["p50"]],
                             "cpu_ms_p50": round(statistics.median(c["cpu"]), 4),
                             "images_per_s": round(batch / p50 * 1e3, 1), "runs": runs[batch], "rounds": rounds,
                             "load1_median": statistics.median(c["load"]), "load1_max": max(c["load"]),
                             "executed": p.executed})
    return rows


def profile(p: OrtPath, x: np.ndarray, runs: int, skip: int, out: Path) -> dict:
    sess = p.session(1, profile_prefix=out / f"profile_{p.name}_b{len(x)}")
    feed, outs = {sess.get_inputs()[0].name: np.ascontiguousarray(x, np.float32)}, [sess.get_outputs()[0].name]
    for _ in range(runs + skip):
        sess.run(outs, feed)
    path = sess.end_profiling()
    summary = profile_summary(json.loads(Path(path).read_text()), skip_runs=skip)
    summary["file"] = str(path)
    return summary


# ----------------------------------------------------------------------------------------------- reporting
def best_cells(rows: list[dict]) -> dict:
    """(base path, threads, batch) -> the fastest row over onnxruntime levels (``ort-x@level`` -> ``ort-x``)."""
    best: dict = {}
    for r in rows:
        key = (r["path"].split("@")[0], r["threads"], r["batch"])
        if key not in best or r["p50_ms"] < best[key]["p50_ms"]:
            best[key] = r
    return best


def print_tables(rows, agreement, profiles, flags, node_counts) -> None:
    best = best_cells(rows)
    bases = list(dict.fromkeys(k[0] for k in best))
    print("\nCPU:", latency.cpu_model(), "| flags:", ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in flags.items()))
    head = "| path | precision | agree top-1 | acc | " + " | ".join(
        f"{t}T b{b} p50 ms (img/s) [load]" for t in THREADS for b in BATCHES) + " |"
    print("\n" + head + "\n|" + "---|" * (4 + len(THREADS) * len(BATCHES)))
    for base in bases:
        a = agreement.get(base, {})
        cells = []
        for t in THREADS:
            for b in BATCHES:
                r = best[(base, t, b)]
                lvl = f" @{r['level']}" if r["level"] else ""
                cells.append(f"{r['p50_ms']:.4f} ({r['images_per_s']:.0f}){lvl} [{r['load1_median']:.2f}]")
        print(f"| {base} | {best[(base, 1, 1)]['precision']} | {a.get('agreement', float('nan')):.3f} | "
              f"{a.get('accuracy', float('nan')):.3f} | " + " | ".join(cells) + " |")
    print(f"\nint8 (top-1 agreement >= {MIN_AGREEMENT}) / best fp32 (p50 ratio; < 1 is faster):")
    for t in THREADS:
        for b in BATCHES:
            fp32 = min((r for (base, tt, bb), r in best.items() if tt == t and bb == b and r["precision"] == "fp32"),
                       key=lambda r: r["p50_ms"])
            ints = sorted((r for (base, tt, bb), r in best.items() if tt == t and bb == b and r["precision"] == "int8"
                           and agreement.get(base, {}).get("agreement", 0) >= MIN_AGREEMENT),
                          key=lambda r: r["p50_ms"])
            if ints:
                i = ints[0]
                print(f"  {t} thread(s), batch {b}: best fp32 {fp32['path']} {fp32['p50_ms']:.4f} ms, best int8 "
                      f"{i['path']} {i['p50_ms']:.4f} ms -> {i['p50_ms'] / fp32['p50_ms']:.2f}x")
            shipped = best.get(("ort-int8-shipped", t, b))
            if shipped:
                print(f"  {t} thread(s), batch {b}: the shipped int8 graph {shipped['p50_ms']:.4f} ms -> "
                      f"{shipped['p50_ms'] / fp32['p50_ms']:.2f}x the best fp32")
    print("\nnode counts of the executed graphs:")
    for name, ops in node_counts.items():
        print(f"  {name}: {sum(ops.values())} nodes: " + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))
    print("\nonnxruntime profile, 1 thread (mean us per run; share of kernel time per op type):")
    for key, s in profiles.items():
        ops = ", ".join(f"{op} {v['us']:.1f} ({v['share'] * 100:.0f}%, {v['nodes']} nodes)" for op, v in s["ops"].items())
        print(f"  {key}: run {s['run_us']:.1f} us = kernels {s['kernel_us']:.1f} + overhead {s['overhead_us']:.1f}; {ops}")
        print("    nodes: " + ", ".join(f"{v['node']} ({v['op']}) {v['us']:.1f}" for v in s["nodes"]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", type=Path, help="the KD student's checkpoint (default: train one here)")
    ap.add_argument("--onnx", type=Path, help="its fp32 ONNX graph (default: exported here)")
    ap.add_argument("--qcdq-onnx", type=Path, help="the pipeline's 8-bit graph (default: exported here)")
    ap.add_argument("--out", type=Path, default=Path("results/bench/int8_paths"), help="folder for graphs, profiles, results")
    ap.add_argument("--epochs", type=int, default=8, help="epochs of the stand-in student (no --weights)")
    ap.add_argument("--seed", type=int, default=0, help="synthetic faces' seed (the demo config's is 0)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs1", type=int, default=300, help="timed calls per cell at batch 1")
    ap.add_argument("--runs32", type=int, default=40, help="timed calls per cell at batch 32")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--agree-subjects", type=int, default=40, help="subjects of the agreement faces (~10 each)")
    ap.add_argument("--quick", action="store_true", help="1 round, few runs: a smoke run, not a measurement")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.runs1, args.runs32, args.warmup = 1, 20, 3, 2
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_interop_threads(1)
    flags = cpu_flags()
    print("CPU flags:", flags, "| torch CPU capability:", torch.backends.cpu.get_cpu_capability(), "| load", load1(),
          flush=True)

    # Faces the student never saw (the demo trains on subjects 1..120): calibration and agreement sets apart.
    calib_u8, _ = faces(32, 3001, args.seed)
    eval_u8, eval_y = faces(args.agree_subjects, 2001, args.seed)
    calib, x_eval = preprocess.to_tensor(calib_u8), preprocess.to_tensor(eval_u8)
    print(f"calibration {len(calib)} faces, agreement {len(x_eval)} faces", flush=True)

    if args.weights:
        model = checkpoints.load_model(args.weights)
        source = str(args.weights)
    else:
        train_u8, train_y = faces(120, 1, args.seed)
        print(f"training a stand-in student on {len(train_u8)} synthetic faces", flush=True)
        torch.set_num_threads(2)
        model = train_student(train_u8, train_y, args.epochs, args.seed)
        source = f"stand-in: KD architecture, {args.epochs} epochs cross-entropy on synthetic faces"
    model.eval()
    fp32_onnx = args.onnx or out / "fp32.onnx"
    if not args.onnx:
        onnx_export.export_model(model, fp32_onnx, "float")
    ptq8 = quantize.ptq(model, calib_u8, weight_bits=8, act_bits=8, batches=1, batch_size=len(calib_u8))
    qcdq_onnx, shipped_onnx = out / "qcdq.onnx", args.qcdq_onnx or out / "int8_shipped.onnx"
    onnx_export.export_model(ptq8, qcdq_onnx, "qcdq", int8_cpu=False)
    if not args.qcdq_onnx:
        onnx_export.export_model(ptq8, shipped_onnx, "qcdq")
    graphs = {"fp32": fp32_onnx, "qcdq": qcdq_onnx, "int8_shipped": shipped_onnx,
              **ort_quantized(fp32_onnx, out, calib.numpy())}

    paths = []
    for level in ("basic", "extended", "all"):
        paths.append(OrtPath(f"ort-fp32@{level}", graphs["fp32"], level))
    for level in ("extended", "all"):
        paths.append(OrtPath(f"ort-int8-shipped@{level}", graphs["int8_shipped"], level,
                             disabled=list(ort.DISABLED_OPTIMIZERS)))
        paths.append(OrtPath(f"ort-qcdq@{level}", graphs["qcdq"], level))
        paths.append(OrtPath(f"ort-qcdq-dqfold@{level}", graphs["qcdq"], level, fold=True))
        for key in ("qop_u8", "qop_u8_block1fp32", "qdq_u8", "qdq_s8"):
            paths.append(OrtPath(f"ort-{key.replace('_', '-')}@{level}", graphs[key], level))
        paths.append(OrtPath(f"ort-qop-u8-block1fp32-noprop@{level}", graphs["qop_u8_block1fp32"], level,
                             disabled=[NO_PROPAGATION]))
    paths.append(TorchPath("torch-fp32", model))
    for engine in ("x86", "onednn"):
        if engine in torch.backends.quantized.supported_engines:
            paths.append(TorchPath(f"torch-int8-{engine}", torch_int8(model, calib, engine), engine))

    # Agreement with the fp32 model on faces it never saw: no int8 path may be a fake.
    with torch.inference_mode():
        ref = model(x_eval).numpy()
    agreement = {}
    for p in paths:
        base = p.name.split("@")[0]
        if base in agreement:
            continue
        lg = p.logits(x_eval.numpy())
        agreement[base] = {"agreement": float((lg.argmax(1) == ref.argmax(1)).mean()),
                           "accuracy": float((lg.argmax(1) == eval_y).mean()),
                           "max_abs_logit_diff": float(np.abs(lg - ref).max()), "images": int(len(lg))}
        print(f"  {base}: agreement {agreement[base]['agreement']:.3f}, accuracy {agreement[base]['accuracy']:.3f}",
              flush=True)

    print(f"timing {len(paths)} paths x {len(THREADS)} threads x {len(BATCHES)} batches, {args.rounds} rounds",
          flush=True)
    x = x_eval[:max(BATCHES)].numpy()
    rows = measure(paths, x, args.rounds, {1: args.runs1, 32: args.runs32}, args.warmup)

    best = best_cells(rows)
    profiles, node_counts = {}, {}
    for p in paths:
        if p.runtime != "onnxruntime":
            continue
        base = p.name.split("@")[0]
        node_counts[p.name] = p.ops
        for b in BATCHES:
            if best[(base, 1, b)]["path"] == p.name:
                profiles[f"{p.name} b{b}"] = profile(p, x[:b], 200 if b == 1 else 30, 20 if b == 1 else 5, out)

    print_tables(rows, agreement, profiles, flags, node_counts)
    result = {"when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": latency.machine_info("onnxruntime"),
              "torch": torch.__version__, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "cpu_flags": flags, "weights": source,
              "graphs": {k: str(v) for k, v in graphs.items()}, "args": {k: str(v) for k, v in vars(args).items()},
              "agreement": agreement, "rows": rows, "profiles": profiles, "node_counts": node_counts,
              "python": platform.python_version()}
    (out / "int8_paths.json").write_text(json.dumps(result, indent=1))
    with open(out / "int8_paths.csv", "w", newline="") as fh:
        cols = [c for c in rows[0] if c != "p50_ms_rounds"]
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    print(f"\nwrote {out / 'int8_paths.json'} and {out / 'int8_paths.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
