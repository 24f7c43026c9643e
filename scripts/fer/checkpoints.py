"""The checkpoint format every variant uses, and loading any variant back.

A checkpoint is a plain dict ``{"format": ..., "variant": ..., "arch": {...}, "state_dict": {...},
"meta": {...}}`` with only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``. Quantized variants add a ``"quant"`` entry describing how to rebuild
the quantized module before loading its state_dict.
"""
from __future__ import annotations

from pathlib import Path

from fer.compression import quantize
from fer.files import load_torch, save_torch
from fer.models import nets

FORMAT = "fer-checkpoint/1"
FLOAT_BITS = quantize.FLOAT_BITS


def save_checkpoint(path, variant: str, arch: dict, state_dict: dict, meta: dict | None = None, **extra) -> None:
    obj = {"format": FORMAT, "variant": variant, "arch": dict(arch),
           "state_dict": {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()},
           "meta": dict(meta or {})}
    obj.update(extra)
    save_torch(path, obj)


def load_checkpoint(path) -> dict:
    ckpt = load_torch(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} checkpoint")
    return ckpt


def load_model(path: str | Path):
    """Any variant's checkpoint -> an nn.Module in eval mode (float, pruned or quantized)."""
    ckpt = load_checkpoint(path)
    if ckpt.get("quant"):
        return quantize.load_quantized(ckpt)
    model = nets.build(ckpt["arch"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def quant_bits(quant: dict | None) -> tuple[int, int]:
    """``(weight_bits, act_bits)`` of a checkpoint's ``quant`` entry; ``(32, 32)`` without one (float
    checkpoints); the activation width defaults to the weight width."""
    if not quant:
        return FLOAT_BITS, FLOAT_BITS
    wb = int(quant.get("weight_bits", FLOAT_BITS))
    return wb, int(quant.get("act_bits") or wb)


def checkpoint_bits(ckpt: dict) -> tuple[int, int]:
    """``(weight_bits, act_bits)`` of a loaded checkpoint (:func:`fer.checkpoints.load_checkpoint`)."""
    return quant_bits(ckpt.get("quant"))
