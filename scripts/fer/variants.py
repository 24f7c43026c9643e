"""Variant names, where each variant's files live, and how to load any variant.

Variant names:
  teacher, kd, scratch                  float models (teacher, KD student, student trained without teacher)
  pr_kd_<level>                         KD student pruned at <level> (low|medium|high) and fine-tuned
  ptq_kd_<bits>                         KD student quantized to <bits> (32|16|8|6|4)
  ptq_pr_kd_<level>_<bits>              a pruned level, then quantized (combined variants, from config)
  fp16_<base>                           kd or pr_kd_<level> with BN folded and float16 weights (quantize.fp16)
"""
from __future__ import annotations

import re
from pathlib import Path

FLOAT_BASE = ("teacher", "kd", "scratch")

_PR = re.compile(r"^pr_kd_(?P<level>[a-z0-9]+)$")
_PTQ = re.compile(r"^ptq_kd_(?P<bits>\d+)$")
_PTQ_PR = re.compile(r"^ptq_pr_kd_(?P<level>[a-z0-9]+)_(?P<bits>\d+)$")
_FP16 = re.compile(r"^fp16_(?P<base>kd|pr_kd_(?P<level>[a-z0-9]+))$")


def weights_path(variant: str, root: str | Path = ".") -> Path:
    return Path(root) / "weights" / f"{variant}.pt"


def fold0_weights_path(variant: str, root: str | Path = ".") -> Path:
    """Where a cross-validated study (data.split.folds) keeps fold 0's weights: the models that are exported to
    ONNX and benchmarked, and the ones the app uses when there is no weights/<variant>.pt."""
    return Path(root) / "results" / "folds" / "0" / "weights" / f"{variant}.pt"


def onnx_path(variant: str, root: str | Path = ".") -> Path:
    return Path(root) / "results" / "onnx" / f"{variant}.onnx"


def describe(variant: str) -> dict:
    """``{"method", "setting", "base", "bits"}`` for a variant name: the summary's method/setting, the variant
    it was made from, and the weight bit width of a quantized variant (None for the others)."""
    if variant == "teacher":
        return {"method": "teacher", "setting": "", "base": None, "bits": None}
    if variant == "kd":
        return {"method": "distillation", "setting": "", "base": "teacher", "bits": None}
    if variant == "scratch":
        return {"method": "scratch", "setting": "", "base": None, "bits": None}
    m = _PR.match(variant)
    if m:
        return {"method": "pruning", "setting": m["level"], "base": "kd", "bits": None}
    m = _PTQ.match(variant)
    if m:
        return {"method": "quantization", "setting": m["bits"], "base": "kd", "bits": int(m["bits"])}
    m = _PTQ_PR.match(variant)
    if m:
        return {"method": "pruning+quantization", "setting": f"{m['level']}/{m['bits']}",
                "base": f"pr_kd_{m['level']}", "bits": int(m["bits"])}
    m = _FP16.match(variant)
    if m:  # float16 weights: 16 bits, but float, not integers (bits stays None: no integer quantization)
        return {"method": "fp16", "setting": m["level"] or "", "base": m["base"], "bits": None}
    raise ValueError(f"unknown variant name {variant!r}")


def summary_fields(variant: str) -> dict:
    """The method and setting columns of a variant's result rows."""
    d = describe(variant)
    return {"method": d["method"], "setting": d["setting"]}


def is_fp16(variant: str) -> bool:
    return bool(_FP16.match(variant))


def is_brevitas_quantized(variant: str) -> bool:
    """A brevitas-quantized variant (ptq_* below 32 bits): eager PyTorch only emulates it in fp32."""
    bits = describe(variant)["bits"]
    return bits is not None and bits < 32


def name(model: str, pr_level: str | None = None, bits: int | None = None) -> str:
    """The variant name for the inference app's options (--model, --pr-level, --quantize-bits)."""
    if model in FLOAT_BASE:
        return model
    if model == "pr_kd":
        if not pr_level:
            raise ValueError("--model pr_kd needs --pr-level")
        return f"pr_kd_{pr_level}"
    if model == "ptq_kd":
        if bits is None:
            raise ValueError("--model ptq_kd needs --quantize-bits")
        return f"ptq_pr_kd_{pr_level}_{bits}" if pr_level else f"ptq_kd_{bits}"
    raise ValueError(f"unknown model {model!r}")
