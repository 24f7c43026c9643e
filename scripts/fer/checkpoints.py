"""The checkpoint format every variant uses, and loading any variant back.

A checkpoint is a plain dict ``{"format": ..., "variant": ..., "arch": {...}, "state_dict": {...},
"meta": {...}}`` with only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``. Quantized variants add a ``"quant"`` entry describing how to rebuild
the quantized module before loading its state_dict; fp16 variants an ``"fp16"`` entry (their state_dict holds
float16 tensors, loaded into an fp32 FERNet without BN: :mod:`fer.compression.fp16`).
"""
from __future__ import annotations

import json
from pathlib import Path

from fer import CLASSES, files
from fer.compression import quantize
from fer.errors import CheckpointError
from fer.files import load_torch, save_torch
from fer.models import nets

FORMAT = "fer-checkpoint/1"
FLOAT_BITS = quantize.FLOAT_BITS


def save_checkpoint(path, variant: str, arch: dict, state_dict: dict, meta: dict | None = None, *,
                    classes=CLASSES, **extra) -> None:
    """Write a checkpoint; ``classes`` names the model's outputs in order (the training data's class list,
    data.classes; every stage passes it, CK+'s is the default for hand-made test models)."""
    classes = [str(c) for c in classes]
    if "num_classes" in arch and int(arch["num_classes"]) != len(classes):
        raise ValueError(f"{variant}: {arch['num_classes']} outputs but {len(classes)} class names {classes}")
    obj = {"format": FORMAT, "variant": variant, "arch": dict(arch), "classes": classes,
           "state_dict": {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()},
           "meta": dict(meta or {})}
    obj.update(extra)
    save_torch(path, obj)


def _refuse(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(f"{path} {reason}: delete it and rebuild it (`snakemake --cores all {path}`)", reason)


def load_checkpoint(path, variant: str | None = None, classes=None, data=None) -> dict:
    """A checkpoint, checked against what it claims to be: one :class:`CheckpointError` line naming the file and
    what to do when it is missing, damaged (truncated, not a torch file), not a checkpoint of this pipeline, or,
    with ``variant``, the weights of another variant (e.g. the teacher's weights copied over weights/kd.pt); with
    ``classes`` (the class list of the prepared dataset ``data``), trained on another class list
    (:func:`check_classes`)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: build it (`snakemake --cores all {path}`)", "does not exist")
    try:
        ckpt = load_torch(path)
    except Exception as exc:  # truncated zip, random bytes, pickled objects weights_only refuses ...
        raise _refuse(path, f"is damaged or not a weights file ({type(exc).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or not isinstance(ckpt.get("state_dict"), dict):
        raise _refuse(path, f"is not a {FORMAT} checkpoint")
    if not isinstance(ckpt.get("classes"), list) or not ckpt["classes"]:
        raise _refuse(path, "names no class list (written by an older version?)")
    if variant is not None and ckpt.get("variant") != variant:
        raise _refuse(path, f"holds the weights of {ckpt.get('variant')!r}, not of {variant!r} (a file copied "
                            "over another?)")
    if classes is not None:
        check_classes(ckpt["classes"], classes, path, data)
    return ckpt


def check_classes(trained, classes, path, data) -> None:
    """One :class:`CheckpointError` line naming both lists when the model ``path`` (its class list ``trained``)
    is used on data labelled by another list ``classes`` (the prepared dataset ``data``)."""
    if list(trained) != list(classes):
        raise CheckpointError(f"{path} was trained on the classes {list(trained)}, but {data} holds the classes "
                              f"{list(classes)}: a model is evaluated and fine-tuned on the classes it was trained "
                              f"on; retrain it on this data (`snakemake --cores all {path}`) or set data.classes to "
                              "its list", "was trained on other classes")


def check_onnx(path, variant: str) -> dict:
    """An exported ONNX graph checked against its sidecar (``<name>.json``, written by rule export_onnx): the
    sidecar must exist, name ``variant`` and hold the graph's SHA-256 (a graph copied over another, or changed
    after its export, is refused). Returns the sidecar."""
    path = Path(path)
    sidecar = path.with_suffix(".json")
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: build it (`snakemake --cores all {path}`)", "does not exist")
    try:
        info = json.loads(sidecar.read_text())
    except (OSError, ValueError) as exc:
        raise _refuse(path, f"has no readable export record {sidecar.name} ({type(exc).__name__})") from None
    if not isinstance(info, dict) or info.get("variant") != variant:
        raise _refuse(path, f"is recorded as the graph of {info.get('variant') if isinstance(info, dict) else None!r}, "
                            f"not of {variant!r}")
    if info.get("onnx_sha256") != files.file_digest(path, full=True):
        raise _refuse(path, f"is not the graph that was exported (its SHA-256 differs from {sidecar.name}: copied "
                            "over or changed after the export?)")
    return info


def onnx_record(path) -> dict:
    """An exported graph's sidecar (``<name>.json``, rule export_onnx); a :class:`CheckpointError` when it is
    missing or unreadable."""
    path = Path(path)
    sidecar = path.with_suffix(".json")
    try:
        info = json.loads(sidecar.read_text())
    except (OSError, ValueError) as exc:
        raise _refuse(path, f"has no readable export record {sidecar.name} ({type(exc).__name__})") from None
    return info if isinstance(info, dict) else {}


def onnx_classes(path) -> list:
    """The class names of an exported graph's outputs, in order, from its sidecar (``<name>.json``, rule
    export_onnx); a :class:`CheckpointError` when the sidecar is missing or names none."""
    path = Path(path)
    sidecar = path.with_suffix(".json")
    classes = onnx_record(path).get("classes")
    if not isinstance(classes, list) or not classes:
        raise _refuse(path, f"has no class list in its export record {sidecar.name} (exported by an older version?)")
    return [str(c) for c in classes]


def load_model(path: str | Path, variant: str | None = None, classes=None, data=None):
    """Any variant's checkpoint -> an nn.Module in eval mode (float, pruned or quantized); ``variant``,
    ``classes`` and ``data`` as in :func:`load_checkpoint`. Weights that do not fit the architecture the
    checkpoint names are a :class:`CheckpointError` too."""
    ckpt = load_checkpoint(path, variant, classes, data)
    try:
        return _build(ckpt)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise _refuse(Path(path), f"holds weights that do not fit its architecture ({type(exc).__name__})") from None


def _build(ckpt: dict):
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


def is_fp16(ckpt: dict) -> bool:
    """Whether a loaded checkpoint is an fp16 variant (float16 weights, no quantizers)."""
    return bool(ckpt.get("fp16"))


def checkpoint_bits(ckpt: dict) -> tuple[int, int]:
    """``(weight_bits, act_bits)`` of a loaded checkpoint (:func:`fer.checkpoints.load_checkpoint`)."""
    return quant_bits(ckpt.get("quant"))
