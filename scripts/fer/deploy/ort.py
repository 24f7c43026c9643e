"""The one way this project builds an onnxruntime session (benchmarks, export checks and the inference app).

Settings, the same everywhere: ``threads`` intra-op threads (0: onnxruntime's default), one inter-op thread,
sequential execution, all graph optimizations (``level``), only errors logged, and no spin-waiting when a
single thread runs the model (a spinning worker only steals the CPU from everything else on a small shared
machine). ``optimized_path`` makes onnxruntime save the graph it actually executes.

``fold_weight_dq`` (INT4 graphs): onnxruntime keeps a ``DequantizeLinear`` out of constant folding so that its
Q/DQ fusions can turn it into an integer kernel; there is no int4 Conv/Gemm kernel to fuse into, so the int4
weights would be dequantized again on every run (measured: 0.99 ms vs 0.18 ms for the 4-bit student, one busy
run). With it set (``session.disable_quant_qdq``) the weights are dequantized once, at load: the file stays
int4, the memory of the loaded session holds fp32 weights.

``DISABLED_OPTIMIZERS``: onnxruntime's ``QDQPropagationTransformer`` is off in every session. It moves a
QuantizeLinear above a max-pool, which turns the 8-bit graphs' fp32 first-block pool into a uint8 pool in NCHW, a
layout onnxruntime has no fast uint8 pool kernel for (measured: 6.4 ms of 10 at batch 32; docs/benchmarks.md
"Int8 on this CPU"). The 8-bit export places its Q/DQ pairs where the fusions need them
(:func:`fer.deploy.onnx_export.to_int8_cpu_graph`), so the transformer has nothing left to do for them; fp32
graphs have no Q/DQ for it to move. Anyone running a shipped int8 file in their own onnxruntime session should
pass the same ``disabled_optimizers`` (the export sidecar says so).
"""
from __future__ import annotations

import os

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DISABLED_OPTIMIZERS = ("QDQPropagationTransformer",)
LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
          "all": "ORT_ENABLE_ALL"}


def session_options(threads: int, optimized_path: str | os.PathLike | None = None, level: str = "all",
                    fold_weight_dq: bool = False):
    """``onnxruntime.SessionOptions`` with this project's settings (see the module docstring)."""
    import onnxruntime as ort  # heavy and optional: only ONNX runs need it

    if level not in LEVELS:
        raise ValueError(f"unknown graph optimization level {level!r}; one of {', '.join(LEVELS)}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS[level])
    so.log_severity_level = 3
    if int(threads) == 1:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized_path:
        so.optimized_model_filepath = str(optimized_path)
    if fold_weight_dq:
        so.add_session_config_entry("session.disable_quant_qdq", "1")
    return so


def providers_for(device: str = "cpu") -> list[str]:
    """Execution providers for ``device`` (cpu | cuda); CUDA falls back to the CPU for unsupported ops."""
    return [CUDA, CPU] if device == "cuda" else [CPU]


def session(path: str | os.PathLike, threads: int, providers: list[str] | tuple[str, ...] | None = None,
            optimized_path: str | os.PathLike | None = None, level: str = "all", fold_weight_dq: bool = False):
    """An ``onnxruntime.InferenceSession`` for the model at ``path`` (default provider: the CPU)."""
    import onnxruntime as ort  # heavy and optional: only ONNX runs need it

    return ort.InferenceSession(str(path), sess_options=session_options(threads, optimized_path, level,
                                                                        fold_weight_dq),
                                providers=list(providers) if providers else [CPU],
                                disabled_optimizers=list(DISABLED_OPTIMIZERS))
