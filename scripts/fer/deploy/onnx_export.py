"""ONNX export of every variant, with a JSON sidecar saying what kind of graph it is and how close it is.

Graph formats (the sidecar's ``format``):

- ``float``: teacher, kd, scratch, pr_kd_* and the 32-bit reference; plain fp32 graph.
- ``qcdq``: brevitas' standard QuantizeLinear -> Clip -> DequantizeLinear graph (8-bit weights and
  activations by default, ``export.qcdq_bits``). Weights are stored as int8 initializers and onnxruntime
  fuses the pattern into int8 kernels (QLinearConv / QGemm); the sidecar counts those fused nodes.
- ``fake-quant``: every other quantized width (16, 6, 4 bits by default). The quantizers are traced as
  float arithmetic (scale, Round, Clip, rescale): the graph reproduces the quantized model's numbers but
  stores fp32 weights and runs fp32 kernels, so its file size and speed say nothing about the bit width.
  The real size of those variants is ``size_bytes`` in the summary (computed from the bit width).

Every graph takes ``input`` (N x 1 x 48 x 48 float, preprocessed as :func:`fer.data.preprocess.to_tensor`,
dynamic batch) and returns ``logits`` (N x 7). The sidecar also records the parity of onnxruntime against
PyTorch on the test split (max |logit difference| and the share of identical top-1 predictions).
"""
from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np
import torch

from fer import IMAGE_SIZE, checkpoints, files
from fer.deploy import kernels, ort

log = logging.getLogger("fer")

FORMATS = ("float", "qcdq", "fake-quant")
INPUT, OUTPUT = "input", "logits"
DEFAULT_OPSET = 17

# Parity tolerances (onnxruntime vs PyTorch on the same preprocessed images), per format:
#   max_abs: largest |logit difference| allowed; agreement: minimum share of identical top-1 predictions.
# float graphs differ only by fp32 summation order (measured: ~2e-6 on CK+). Fake-quant graphs compute the
# same arithmetic, but a value that lands on a rounding boundary may round one step the other way (measured:
# 0 at 6/4 bits, 5e-5 at 16 bits). QCDQ graphs run onnxruntime's int8 kernels, whose requantization rounds
# differently from brevitas' float emulation (measured: 0.008 at 8 bits, every prediction identical).
TOLERANCE = {
    "float": {"max_abs": 1e-4, "agreement": 1.0},
    "fake-quant": {"max_abs": 0.05, "agreement": 0.99},
    "qcdq": {"max_abs": 0.1, "agreement": 0.99},
}


def graph_format(quant: dict | None, qcdq_bits=(8,)) -> str:
    """``float`` | ``qcdq`` | ``fake-quant`` for a checkpoint's ``quant`` entry (None for float variants)."""
    wb, ab = checkpoints.quant_bits(quant)
    if wb >= checkpoints.FLOAT_BITS:
        return "float"
    if wb <= 8 and ab <= 8 and wb in {int(b) for b in qcdq_bits}:
        return "qcdq"
    return "fake-quant"


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _example(batch: int = 1) -> torch.Tensor:
    return torch.zeros(batch, 1, IMAGE_SIZE, IMAGE_SIZE)


def export_model(model: torch.nn.Module, path, fmt: str, opset: int = DEFAULT_OPSET) -> None:
    """Write ``model`` (eval mode) to ``path`` as an ONNX graph of format ``fmt`` (written atomically)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown ONNX format {fmt!r}; choose from {FORMATS}")
    if int(opset) < 13:
        raise ValueError("opset must be >= 13 (per-channel DequantizeLinear)")
    model = model.eval()
    kw = dict(input_names=[INPUT], output_names=[OUTPUT], opset_version=int(opset),
              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
    with files.atomic_path(path) as tmp, _quiet(), torch.no_grad():
        target = str(tmp)
        if fmt == "qcdq":
            from brevitas.export import export_onnx_qcdq  # heavy: brevitas' exporter, only for QCDQ graphs

            export_onnx_qcdq(model, args=_example(), export_path=target, dynamo=False, **kw)
        else:
            # float and fake-quant: the TorchScript exporter traces brevitas' quantizers as float arithmetic
            torch.onnx.export(model, (_example(),), target, dynamo=False, do_constant_folding=True, **kw)
        import onnx  # heavy and optional: only ONNX runs need it

        onnx.checker.check_model(onnx.load(target))


def _threads() -> int:
    """onnxruntime threads for the export checks: as many as torch uses."""
    return max(1, torch.get_num_threads())


def run_onnx(path, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    sess = ort.session(path, _threads())
    outs = [sess.run([OUTPUT], {INPUT: x[i:i + batch_size].numpy()})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(outs) if outs else np.empty((0, 7), dtype=np.float32)


def fused_int8_nodes(path) -> dict:
    """Integer-kernel node counts (QLinearConv, QGemm, ...) of the graph onnxruntime's CPU provider builds from the
    export after its Q/DQ fusion (``extended`` optimizations, without the layout transforms), for the sidecar."""
    return kernels.int_kernel_counts(kernels.optimized_op_counts(path, _threads(), level="extended"))


def parity(path, model: torch.nn.Module, x: torch.Tensor) -> dict:
    """onnxruntime vs PyTorch logits on the preprocessed images ``x``."""
    with torch.no_grad():
        ref = torch.cat([model.eval()(x[i:i + 256]) for i in range(0, len(x), 256)]).numpy() if len(x) \
            else np.empty((0, 7), dtype=np.float32)
    got = run_onnx(path, x)
    diff = np.abs(got - ref)
    return {"n": int(len(x)), "max_abs_logit_diff": float(diff.max()) if len(x) else 0.0,
            "mean_abs_logit_diff": float(diff.mean()) if len(x) else 0.0,
            "prediction_agreement": float((got.argmax(1) == ref.argmax(1)).mean()) if len(x) else 1.0}


def within_tolerance(fmt: str, par: dict) -> bool:
    tol = TOLERANCE[fmt]
    return par["max_abs_logit_diff"] <= tol["max_abs"] and par["prediction_agreement"] >= tol["agreement"]


FORMAT_NOTES = {
    "float": "fp32 graph",
    "qcdq": "QuantizeLinear/Clip/DequantizeLinear graph with int8 weight initializers; onnxruntime runs int8 kernels",
    "fake-quant": "quantization emulated in fp32 (Round/Clip); fp32 weights and kernels: the file size is not the "
                  "model size (see size_bytes)",
}
