"""Typed config sections: one frozen dataclass per section of config/config.yaml.

The values come from the validated config (config/config.yaml, overridden by --configfile/--config and
checked against config/schema.yaml before any job runs); these classes hold no default values. A stage builds
them with :meth:`Section.of`, which refuses a missing or an unknown key, so a new hyper-parameter is one line in
config/config.yaml (plus its type and range in the schema) and one field here.
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass


class Section:
    """Base of every config section."""

    @classmethod
    def of(cls, values: Mapping):
        """The section from its config mapping; nested sections are built from their own mappings."""
        if isinstance(values, cls):
            return values
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in values]
        unknown = sorted(set(values) - set(names))
        if missing or unknown:
            raise KeyError(f"{cls.__name__}: missing {missing}, unknown {unknown} (the config is validated "
                           "against config/schema.yaml first, so this is a bug)")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for n in names:
            v = values[n]
            kind = hints[n]
            if isinstance(kind, type) and issubclass(kind, Section):
                v = kind.of(v)
            kwargs[n] = v
        return cls(**kwargs)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Split(Section):
    """``data.split``: subject-independent holdout fractions, or k folds over subjects."""

    train: float
    val: float
    test: float
    seed: int
    folds: int  # 0: holdout fractions; >= 3: k-fold cross-validation (fold f tests, fold f + 1 validates)


@dataclass(frozen=True)
class Synthetic(Section):
    """``synthetic``: the built-in faces."""

    subjects: int
    seed: int
    frames: int  # images per sequence, rising intensity
    jitter: float  # pose/lighting variation: 0 frontal and evenly lit, 1 default, > 1 harder


@dataclass(frozen=True)
class Arch(Section):
    """``models.teacher`` / ``models.student``: a FERNet's width."""

    channels: list
    hidden: int
    dropout: float


@dataclass(frozen=True)
class Augment(Section):
    """``augment``: per-batch augmentation of the training images."""

    flip: bool
    rotate_deg: float
    translate: float
    scale: float
    brightness: float
    contrast: float


@dataclass(frozen=True)
class TrainHP(Section):
    """``train.teacher``, ``train.student`` and ``prune.finetune``: one training run (a fine-tune is one too)."""

    epochs: int
    lr: float
    batch_size: int
    weight_decay: float
    label_smoothing: float
    warmup_epochs: int
    mixup: float  # mixup's Beta(alpha, alpha); 0 = off
    ema: float  # decay per step of the weights' moving average that is validated and kept; 0 = off
    class_balance: float  # cross-entropy class weights (n_c / mean n) ** -class_balance; 0 = off, 1 = inverse frequency


@dataclass(frozen=True)
class KD(Section):
    """``kd``: Hinton distillation, alpha * T^2 * KL(teacher/T || student/T) + (1 - alpha) * CE."""

    temperature: float
    alpha: float


@dataclass(frozen=True)
class Calibration(Section):
    """``quantize.calibration``: post-training calibration of the activation scales."""

    batches: int
    batch_size: int
    bias_correction: bool


@dataclass(frozen=True)
class QAT(Section):
    """``quantize.qat``: quantization-aware fine-tuning (distilled from the teacher)."""

    epochs: int
    lr: float
    batch_size: int
    weight_decay: float


@dataclass(frozen=True)
class Benchmark(Section):
    """``benchmark``: batch-1 latency on this machine."""

    runtimes: list
    runs: int
    warmup: int
    threads: int
    pin: bool
    realtime: bool


@dataclass(frozen=True)
class Jetson(Section):
    """``jetson``: latency on a Jetson over SSH (an empty host skips it)."""

    host: str
    user: str
    port: int
    key: str
    python: str
    workdir: str
    runs: int
    warmup: int
    threads: int | None  # onnxruntime CPU threads on the device; None = all cores
    timeout: float
    connect_timeout: int
    known_hosts: str
    trtexec: str
    runtimes: list

    @property
    def target(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" if self.user else host

    @property
    def where(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"
