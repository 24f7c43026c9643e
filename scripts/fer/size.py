"""Model size as a deployment would ship it (not the size of a pickle on disk).

For float models BN is folded into the preceding conv (its weights are rewritten and it gains a bias), so a
Conv->BN pair costs conv.weight + out_channels biases; every other parameter is counted as is.
"""
from __future__ import annotations

import os

from torch import nn


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
    """Size a deployment ships for a loaded checkpoint: bit-packed for quantized variants, fp32 otherwise."""
    if ckpt.get("quant"):
        from . import quant

        return quant.packed_size_bytes(model, ckpt)
    return float_size_bytes(model)
