"""Model size as a deployment would ship it (not the size of a pickle on disk).

For float models BN is folded into the preceding conv (its weights are rewritten and it gains a bias), so a
Conv->BN pair costs conv.weight + out_channels biases; every other parameter is counted as is.
"""
from __future__ import annotations

import math
import os

from torch import nn

from fer.compression import quantize


def float_param_count(model: nn.Module) -> int:
    """Parameters after BN folding (BN gamma/beta/mean/var become one bias per channel)."""
    total = 0
    modules = list(model.modules())
    for i, m in enumerate(modules):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            total += m.weight.numel()
            has_bn = i + 1 < len(modules) and isinstance(modules[i + 1], nn.BatchNorm2d)
            if m.bias is not None or has_bn:
                total += m.weight.shape[0]
    return total


def float_size_bytes(model: nn.Module, bytes_per_value: int = 4) -> int:
    return float_param_count(model) * bytes_per_value


def file_size_bytes(path) -> int:
    return os.path.getsize(path)


def deployed_size_bytes(ckpt: dict, model: nn.Module) -> int:
    """Size a deployment ships for a loaded checkpoint: bit-packed for quantized variants, 2 bytes per parameter
    for fp16 variants (BN already folded), fp32 otherwise."""
    if ckpt.get("quant"):
        return packed_size_bytes(model, ckpt)
    if ckpt.get("fp16"):
        return float_size_bytes(model, bytes_per_value=2)
    return float_size_bytes(model)


def packed_size_bytes(model: nn.Module, ckpt: dict | None = None) -> int:
    """Bytes a deployment ships for a quantized model (see :func:`size_breakdown`)."""
    return size_breakdown(model, ckpt)["total"]


def size_breakdown(model: nn.Module, ckpt: dict | None = None) -> dict:
    """Deployed size in bytes, by part.

    - ``weights``: every quantized weight tensor bit-packed, ``sum(ceil(n * weight_bits / 8))`` per tensor;
    - ``scales``: one fp32 per weight scale (per output channel) and per activation scale (per tensor);
    - ``zero_points``: one per scale, as wide as the integers it belongs to (bit-packed like them);
    - ``biases``: int32 (4 bytes) when bias-quantized, else fp32;
    - ``float_params``: any other parameter, fp32 (none in a QuantFERNet).

    A float model (32 bits) is ``float_params`` only, with BN folded (see :func:`float_size_bytes`).
    """
    if not isinstance(model, quantize.QuantFERNet):
        return {"weights": 0, "scales": 0, "zero_points": 0, "biases": 0,
                "float_params": float_size_bytes(model), "total": float_size_bytes(model)}
    parts = {"weights": 0, "scales": 0, "zero_points": 0, "biases": 0, "float_params": 0}
    counted = set()
    for _, layer in model.quant_layers():
        qw = layer.quant_weight()
        bits = int(qw.bit_width)
        n_scales = int(qw.scale.numel())
        parts["weights"] += math.ceil(layer.weight.numel() * bits / 8)
        parts["scales"] += 4 * n_scales
        parts["zero_points"] += math.ceil(n_scales * bits / 8)
        counted.add(id(layer.weight))
        if layer.bias is not None:  # int32 when bias-quantized, else fp32: 4 bytes either way
            parts["biases"] += 4 * layer.bias.numel()
            counted.add(id(layer.bias))
    for _, act in model.act_quantizers():
        bits = int(act.act_quant.bit_width())
        parts["scales"] += 4
        parts["zero_points"] += math.ceil(bits / 8)
        for p in act.parameters():
            counted.add(id(p))  # the learned scale itself, counted above
    for p in model.parameters():
        if id(p) not in counted:
            parts["float_params"] += 4 * p.numel()
    parts["total"] = sum(parts.values())
    return parts
