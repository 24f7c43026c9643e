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
