"""What onnxruntime actually executes for a graph: written once, used by the local latency rows (:mod:`fer.deploy.latency`), the export sidecar's int8 node count
(:mod:`fer.deploy.onnx_export`) and the Jetson rows (:mod:`fer.deploy.jetson`).

- :data:`INT_KERNELS`: onnxruntime kernels that compute in integers (after its Q/DQ fusion passes). The Jetson
  device script (``payload/jetson_device_bench.py``, Python 3.6, independent of this package) holds the same
  three name lists and reports only those op types; tests/test_jetson.py checks that the lists agree.
- :func:`optimized_op_counts`: op types (with counts) of the graph onnxruntime runs after its optimizations.
- :func:`classify`: ``(precision, executed)`` from such counts: ``int8`` | ``fp32-qdq`` | ``fp32-fakequant`` |
  ``fp32``, and which kernels ran.

Bit widths come from :func:`fer.checkpoints.checkpoint_bits` (32/32 for float checkpoints).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fer import checkpoints
from fer.deploy import ort

INT_KERNELS = ("QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "QGemm", "QLinearAdd",
               "QLinearMul", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QLinearGlobalAveragePool",
               "QLinearConcat", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearAveragePool", "QLinearSoftmax")
QDQ_NODES = ("QuantizeLinear", "DequantizeLinear")
FLOAT_KERNELS = ("Conv", "FusedConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul")
FLOAT_BITS = checkpoints.FLOAT_BITS  # fp32: not quantized


# ------------------------------------------------------------------------------------------- executed graph
def optimized_op_counts(path: str | os.PathLike, threads: int = 1, level: str = "all",
                        fold_weight_dq: bool = False) -> dict[str, int]:
    """Op types (with counts) of the graph onnxruntime's CPU provider executes for the model at ``path`` after
    its graph optimizations at ``level`` (see :data:`fer.deploy.ort.LEVELS`), in a session built with
    ``fold_weight_dq`` as the benchmark builds it (:func:`fer.deploy.ort.session`)."""
    import onnx  # heavy and optional: only ONNX runs need it

    with tempfile.TemporaryDirectory(prefix="fer-ort-") as tmp:
        out = Path(tmp) / "optimized.onnx"
        ort.session(path, threads, optimized_path=out, level=level, fold_weight_dq=fold_weight_dq)
        graph = onnx.load(str(out), load_external_data=False).graph
        counts: dict[str, int] = {}
        for node in graph.node:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def int_kernel_counts(ops: dict[str, int]) -> dict[str, int]:
    """The integer kernels among op counts ``ops``, by name."""
    return {k: v for k, v in sorted(ops.items()) if k in INT_KERNELS}


def classify(ops: dict[str, int], bits: int = FLOAT_BITS, export_format: str | None = None) -> tuple[str, str]:
    """``(precision, executed)`` of an onnxruntime run, from the executed graph's op counts ``ops``.

    precision: ``int8`` (integer kernels ran), ``fp32-qdq`` (fp32 kernels between unfused Q/DQ nodes),
    ``fp32-fakequant`` (quantization emulated in fp32: the export ``format`` is ``fake-quant``, or, with the
    format unknown, a ``bits`` < 32 graph holding Round nodes) or ``fp32``. ``executed`` names the kernels.
    """
    int_ops = sorted(o for o in ops if o in INT_KERNELS)
    qdq = sum(ops.get(o, 0) for o in QDQ_NODES)
    compute = ", ".join(sorted(o for o in ops if o in FLOAT_KERNELS)) or "none"
    emulated = export_format == "fake-quant" or (export_format is None and bits < FLOAT_BITS and "Round" in ops)
    if int_ops:
        precision = "int8"
        executed = "int8 kernels: " + ", ".join(int_ops) + (f" (+{qdq} Q/DQ nodes)" if qdq else "")
    elif qdq:
        precision = "fp32-qdq"
        executed = f"fp32 kernels ({compute}) with {qdq} Q/DQ nodes simulating quantization"
    elif emulated:
        precision = "fp32-fakequant"
        executed = f"fp32 kernels ({compute}) with quantization emulated in fp32 ({ops.get('Round', 0)} Round nodes)"
    else:
        precision = "fp32"
        executed = "fp32 kernels: " + compute
    if "ReorderInput" in ops:
        executed += " (NCHWc blocked layout)"
    return precision, executed
