"""Training loops: cross-entropy, Hinton knowledge distillation, checkpoint per epoch and resume.

Model selection uses the validation split only. Seeds are fixed: the same config on the same machine gives
identical weights, also when a run is interrupted and resumed from its per-epoch checkpoint.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fer.data import augment, preprocess
from fer.settings import KD, Augment, TrainHP
from fer import files, jobs
from fer.errors import OrphanedError

log = logging.getLogger("fer")


def kd_loss(student_logits, teacher_logits, targets, temperature: float, alpha: float, mix=None, weight=None):
    """Hinton et al. (2015): alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y).
    ``mix``: ``(lam, targets2)`` of a mixup batch: the hard term is lam * CE(s, y) + (1 - lam) * CE(s, y2).
    ``weight``: class weights of the hard term (:func:`class_weights`); the soft term is unweighted."""
    t = float(temperature)
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.softmax(teacher_logits / t, dim=1),
                    reduction="batchmean") * (t * t)
    hard = mixed_ce(student_logits, targets, 0.0, mix, weight)
    return alpha * soft + (1.0 - alpha) * hard


def mixed_ce(logits, targets, label_smoothing: float, mix=None, weight=None):
    """Cross-entropy (with class weights ``weight``), or for a mixup batch (``mix = (lam, targets2)``)
    lam * CE(y) + (1 - lam) * CE(y2)."""
    ce = F.cross_entropy(logits, targets, weight=weight, label_smoothing=label_smoothing)
    if mix is None:
        return ce
    lam, targets2 = mix
    return lam * ce + (1.0 - lam) * F.cross_entropy(logits, targets2, weight=weight, label_smoothing=label_smoothing)


def class_weights(labels: torch.Tensor, num_classes: int, power: float) -> torch.Tensor:
    """Per-class weights (n_c / mean n) ** -power from the training labels (``train.<role>.class_balance``):
    1 weights every class by its inverse frequency, 0 is all ones; a class without images gets 0. Normalised so
    that the mean weight per training image is 1 (the loss keeps its scale)."""
    counts = torch.bincount(labels.cpu().long(), minlength=int(num_classes)).double()
    present = counts > 0
    w = torch.zeros_like(counts)
    w[present] = (counts[present] / counts[present].mean()) ** -float(power)
    w *= counts.sum() / (w * counts).sum()
    return w.float()


def mixup_batch(x: torch.Tensor, alpha: float, gen: torch.Generator):
    """Mixup (Zhang et al. 2018): ``(lam * x + (1 - lam) * x[perm], lam, perm)`` with lam ~ Beta(alpha, alpha)
    drawn from ``gen`` (through a NumPy generator seeded from it), so runs stay reproducible and resumable."""
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
    lam = float(rng.beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=gen)
    return x.mul(lam).add_(x[perm], alpha=1.0 - lam), lam, perm


def ema_init(model) -> dict:
    """A copy of the model's state: the start of an exponential moving average of its weights."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def ema_update(ema: dict, model, decay: float) -> None:
    """After an optimizer step: ``ema = decay * ema + (1 - decay) * weights`` for every float tensor of the
    state (parameters and BatchNorm's running statistics); integer buffers (BN's batch count) are copied."""
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            ema[k].mul_(decay).add_(v.detach(), alpha=1.0 - decay)
        else:
            ema[k].copy_(v)


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def set_threads(threads: int) -> None:
    torch.set_num_threads(max(1, int(threads)))


PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")

CUDA_HELP = ("the installed torch has no usable CUDA device (torch.cuda.is_available() is False; the pinned "
             "torch==2.13.0 is a CPU build here): use train.device cpu or auto, or install a CUDA build of torch "
             "(docs/training.md#gpu)")


@functools.lru_cache(maxsize=1)
def cpu_has_amx_bf16() -> bool:
    """Whether this CPU has bf16 matrix units (``amx_bf16`` in /proc/cpuinfo's flags; False where unreadable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(line.startswith("flags") and "amx_bf16" in line.split() for line in text.splitlines())


def resolve_device(setting: str) -> str:
    """``train.device`` -> the device training and evaluation run on: ``auto`` is CUDA where
    ``torch.cuda.is_available()``, else the CPU; ``cuda`` without a CUDA device is an error."""
    if setting not in DEVICES:
        raise ValueError(f"train.device must be one of {DEVICES}, not {setting!r}")
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device is cuda but {CUDA_HELP}")
    return setting


def resolve_precision(setting: str, device: str) -> str:
    """``train.precision`` on a resolved ``device`` -> the precision a training loop uses. ``auto``: on the CPU
    bf16 autocast where it has AMX bf16 units (about 1.5-2.4x faster training here, see docs/training.md), else
    fp32; on CUDA bf16 where the GPU supports it, else fp16 (with loss scaling). fp16 is CUDA only."""
    if setting not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {PRECISIONS}, not {setting!r}")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"resolve_precision: device must be cpu or cuda (resolve 'auto' first), not {device!r}")
    if setting == "auto":
        if device == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_amx_bf16() else "fp32"
    if setting == "fp16" and device != "cuda":
        raise ValueError("train.precision fp16 needs train.device cuda (on the CPU: auto, fp32 or bf16)")
    return setting


def autocast(precision: str, device: str = "cpu"):
    """The context of a training step's forward pass and loss: bf16/fp16 autocast on ``device``, or nothing
    (fp32). Weights, optimizer state and gradients stay fp32 either way; validation and evaluation run fp32."""
    if precision in ("bf16", "fp16"):
        return torch.autocast(device, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return contextlib.nullcontext()


def model_device(model) -> torch.device:
    """The device of a model's first parameter (the CPU for a model without parameters)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


# Images per forward pass when evaluating. Memory is this many images' activations (the teacher's first conv
# output is 64 x 48 x 48 floats = 590 kB per image), not the whole split; speed is flat above ~128.
EVAL_CHUNK = 128


@torch.no_grad()
def predict_logits(model, images_u8: torch.Tensor, batch_size: int = EVAL_CHUNK) -> torch.Tensor:
    """Logits (on the CPU) for uint8 images (N,48,48) with the shared preprocessing, in eval mode, computed on the
    model's device."""
    model.eval()
    dev = model_device(model)
    out = [model(preprocess.to_tensor(images_u8[i:i + batch_size]).to(dev)).cpu()
           for i in range(0, len(images_u8), batch_size)]
    return torch.cat(out) if out else torch.empty(0, model.classifier.fc2.out_features)


def fingerprint(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _resume_checkpoint(checkpoint, desc: str) -> dict | None:
    """The per-epoch checkpoint to resume from, or None. A damaged one (truncated by a crash of the disk, not a
    torch file) is set aside as ``<name>.damaged`` with a warning, and training starts over."""
    if not checkpoint or not Path(checkpoint).is_file():
        return None
    try:
        ck = files.load_torch(checkpoint)
        if not isinstance(ck, dict) or "fingerprint" not in ck:
            raise ValueError("not a resume checkpoint")
        return ck
    except Exception as exc:
        aside = Path(f"{checkpoint}.damaged")
        os.replace(checkpoint, aside)
        log.warning("%s: the resume checkpoint %s is damaged (%s); set aside as %s, training starts over", desc,
                    checkpoint, type(exc).__name__, aside)
        return None


TEACHER_LOGITS_FORMAT = 1


def teacher_stream_key(*, seed: int, batch_size: int, n_train: int, augment_cfg: Augment, mixup: float,
                       precision: str, device: str, source: str) -> str:
    """What decides the teacher's logits on every training step of a KD run: the batch order and augmentation
    (drawn from ``seed``'s generator, by batch size and the number of images), mixup, the precision and device of
    the forward pass, and ``source`` (the digests of the data and teacher files). Two runs with one key feed the
    teacher the same batches, whatever their student, learning rate or epochs."""
    return fingerprint({"format": TEACHER_LOGITS_FORMAT, "seed": int(seed), "batch_size": int(batch_size),
                        "n_train": int(n_train), "augment": augment_cfg.as_dict(), "mixup": float(mixup),
                        "precision": precision, "device": device, "source": source})


def load_teacher_logits(path) -> dict | None:
    """The teacher logits a KD run recorded (``fit(record_teacher=True)``; rule train_student_kd writes them),
    or None for no path. ``{"key", "logits": (epochs, n_train, classes)}``."""
    if not path:
        return None
    rec = files.load_torch(path)
    if not isinstance(rec, dict) or rec.get("format") != TEACHER_LOGITS_FORMAT or \
            not isinstance(rec.get("logits"), torch.Tensor) or rec["logits"].dim() != 3:
        raise ValueError(f"{path}: not a teacher-logits file of format {TEACHER_LOGITS_FORMAT}")
    return rec


def _usable_teacher_logits(rec: dict | None, key: str, n_train: int, desc: str) -> torch.Tensor | None:
    if rec is None:
        return None
    logits = rec["logits"]
    if len(logits) == 0:
        log.info("%s: the KD run recorded no teacher logits (it resumed from an older checkpoint): the teacher "
                 "runs on every batch", desc)
        return None
    if rec.get("key") != key or logits.shape[1] != n_train:
        log.info("%s: the recorded teacher logits are of another batch stream (seed, batch size, augmentation, "
                 "precision, data or teacher differ): the teacher runs on every batch", desc)
        return None
    return logits


@torch.no_grad()
def _teacher_logits(teacher, x, teacher_precision: str, precision: str, device: str) -> torch.Tensor:
    """The teacher's forward pass inside the student's autocast context, or in its own precision."""
    if teacher_precision == precision:
        return teacher(x)
    with autocast(teacher_precision, device) if teacher_precision != "fp32" else torch.autocast(device, enabled=False):
        return teacher(x)


def fit(model, train_x, train_y, val_x, val_y, *, hp: TrainHP, augment_cfg: Augment, seed: int, teacher,
        kd: KD | None, checkpoint: str | os.PathLike | None, desc: str, data_key: str, precision: str,
        device: str, progress: bool = True, on_epoch=None, teacher_logits: dict | None = None,
        teacher_source: str = "", record_teacher: bool = False, teacher_precision: str | None = None) -> dict:
    """Train ``model`` in place and load the weights of the best validation epoch into it.

    train_x/val_x are uint8 (N,48,48) tensors, *_y int64 labels. With ``teacher`` (and ``kd``) the loss is
    :func:`kd_loss` against the teacher's logits on the same augmented batch, else cross-entropy with
    ``hp.label_smoothing``. ``checkpoint``: a file written atomically after every epoch; if it exists with the
    same settings (and the same ``data_key``, e.g. a hash of the data and teacher files) the run resumes from
    it. ``precision``: "fp32", "bf16" or (CUDA) "fp16" (:func:`resolve_precision`): the training steps' forward
    pass and loss run under :func:`autocast` (fp16 with loss scaling). ``device``: "cpu" or "cuda"
    (:func:`resolve_device`): the model, the teacher and the uint8 images move there for training (random draws
    stay on the CPU generator, so the CPU path is unchanged); the model and the teacher come back to the CPU. ``on_epoch(model, epoch)``, if given, is called after every epoch's validation (epoch counts from 1; e.g.
    to score the last epoch's weights before the best ones are loaded back). Returns ``{"history": [...],
    "best_epoch": int, "best_val_acc": float}``.

    Teacher logits (KD only): the batches a KD run feeds its teacher depend on the seed, batch size and
    augmentation, not on the student (:func:`teacher_stream_key`; ``teacher_source``: the digests of the data and
    teacher files). ``record_teacher=True`` keeps the teacher's logits of every step and returns them as
    ``result["teacher_logits"]``; a later run with the same key given them as ``teacher_logits`` (e.g. the
    pruning fine-tunes after the KD student) reads them instead of running the teacher, for as many epochs as
    were recorded. The same logits, so the same weights (checked: the teacher still runs on the first batch of
    the first and the last recorded epoch, and a difference stops the reuse with a warning).
    ``teacher_precision`` (default ``precision``): the teacher's forward pass in another precision than the
    student's (QAT trains the fake-quantized student in fp32, its teacher runs as the KD student's did).
    """
    if (teacher is None) != (kd is None):
        raise ValueError("fit: a teacher needs kd settings and kd settings need a teacher")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"fit: device must be cpu or cuda (resolve 'auto' first), not {device!r}")
    teacher_precision = teacher_precision or precision
    for p in {precision, teacher_precision}:
        if p not in ("fp32", "bf16", "fp16") or (p == "fp16" and device != "cuda"):
            raise ValueError(f"fit: precision must be fp32, bf16 or (on cuda) fp16 (resolve 'auto' first), not "
                             f"{p!r} on {device}")
    epochs, lr, batch_size = int(hp.epochs), float(hp.lr), int(hp.batch_size)
    weight_decay, label_smoothing, warmup_epochs = float(hp.weight_decay), float(hp.label_smoothing), \
        int(hp.warmup_epochs)
    mixup, ema_decay, balance = float(hp.mixup), float(hp.ema), float(hp.class_balance)
    temperature, alpha = (float(kd.temperature), float(kd.alpha)) if kd is not None else (1.0, 0.0)
    settings = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "weight_decay": weight_decay, "seed": seed,
                "augment": augment_cfg.as_dict(), "label_smoothing": label_smoothing, "kd": teacher is not None,
                "temperature": temperature, "alpha": alpha, "warmup_epochs": warmup_epochs,
                **({"mixup": mixup} if mixup else {}), **({"ema": ema_decay} if ema_decay else {}),
                **({"class_balance": balance} if balance else {}),
                "n_train": int(len(train_x)), "n_val": int(len(val_x)),
                "arch": getattr(model, "arch", None), "data": data_key, "precision": precision,
                **({"teacher_precision": teacher_precision} if teacher_precision != precision else {}),
                **({"device": device} if device != "cpu" else {})}
    fp = fingerprint(settings)
    gen = torch.Generator().manual_seed(seed)  # batch order, augmentation, mixup
    # Dropout draws from torch's global generator: seeded here too, so that a run depends on its settings only,
    # not on what its caller drew before (the KD stage builds the teacher after the student; a teacher
    # built first had changed the KD student's dropout masks and its 10-fold mean by 3 points, docs/crossval.md).
    torch.manual_seed(seed)
    model.to(device)
    train_x, train_y, val_x, val_y = (t.to(device) for t in (train_x, train_y, val_x, val_y))
    scaler = torch.amp.GradScaler(device) if precision == "fp16" else None  # fp16 gradients underflow unscaled
    weight = None
    if balance:
        n_classes = int((getattr(model, "arch", None) or {}).get("num_classes") or int(train_y.max()) + 1)
        weight = class_weights(train_y, n_classes, balance).to(device)
        log.info("%s: class weights %s (class_balance %.2f)", desc, [round(float(v), 3) for v in weight], balance)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train_x) / batch_size))
    total, warm = epochs * steps_per_epoch, warmup_epochs * steps_per_epoch

    def lr_at(step):
        if step < warm:
            return (step + 1) / warm
        p = (step - warm) / max(1, total - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, p)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    history, start, best = [], 0, {"acc": -1.0, "loss": math.inf, "epoch": -1, "state": None}
    ema = ema_init(model) if ema_decay else None
    stream = teacher_stream_key(seed=seed, batch_size=batch_size, n_train=len(train_x), augment_cfg=augment_cfg,
                                mixup=mixup, precision=teacher_precision, device=device, source=teacher_source) \
        if teacher is not None else None
    cached = _usable_teacher_logits(teacher_logits, stream, len(train_x), desc) if teacher is not None else None
    record, record_whole = None, True  # (epochs, n_train, classes) once the first teacher logits are known
    # one writer per checkpoint (a rerun beside an orphaned job waits for it), and no orphan: stop once the
    # Snakemake that started this job is gone (fer.jobs)
    parent = jobs.watched_parent() if checkpoint else None
    with jobs.exclusive(checkpoint, desc) if checkpoint else contextlib.nullcontext():
        ck = _resume_checkpoint(checkpoint, desc)
        if ck is not None:
            if ck.get("fingerprint") == fp:
                model.load_state_dict(ck["model"])
                opt.load_state_dict(ck["optimizer"])
                sched.load_state_dict(ck["scheduler"])
                gen.set_state(ck["generator"])
                torch.set_rng_state(ck["torch_rng"])
                if device == "cuda" and "cuda_rng" in ck:
                    torch.cuda.set_rng_state(ck["cuda_rng"])
                if scaler is not None and "scaler" in ck:
                    scaler.load_state_dict(ck["scaler"])
                history, start, best = ck["history"], ck["epoch"] + 1, ck["best"]
                ema = {k: v.to(device) for k, v in ck["ema"].items()} if "ema" in ck else ema
                record = ck.get("teacher_record") if record_teacher else None
                record_whole = record is not None or not record_teacher  # resumed from a checkpoint without it
                log.info("%s: resuming after epoch %d from %s", desc, start, checkpoint)
            else:
                log.info("%s: ignoring checkpoint %s written with other settings", desc, checkpoint)
        if teacher is not None:
            teacher.eval()
            teacher.to(device, memory_format=torch.channels_last)
        model.to(memory_format=torch.channels_last)  # oneDNN's fast layout on CPU (about 1.3x here)
        if cached is not None:
            log.info("%s: teacher logits of epochs 1-%d recorded by an earlier KD run of the same batch stream: "
                     "the teacher runs only to check them", desc, min(len(cached), epochs))
        checks = {start, min(len(cached), epochs) - 1} if cached is not None else set()
        for epoch in range(start, epochs):
            model.train()
            t0 = time.perf_counter()
            perm = torch.randperm(len(train_x), generator=gen)
            run_loss = run_correct = seen = 0
            bar = tqdm(range(0, len(perm), batch_size), desc=f"{desc} {epoch + 1}/{epochs}", leave=False,
                       disable=not progress, unit="batch")
            for i in bar:
                idx = perm[i:i + batch_size]
                if len(idx) < 2:  # BatchNorm needs more than one sample
                    continue
                x01 = train_x[idx].unsqueeze(1).float().div_(255.0)
                x = preprocess.normalize(augment.augment(x01, augment_cfg, gen)).contiguous(
                    memory_format=torch.channels_last)
                y = train_y[idx]
                mix = None
                if mixup:
                    x, lam, pair = mixup_batch(x, mixup, gen)
                    mix = (lam, y[pair])
                with autocast(precision, device):
                    logits = model(x)
                    if teacher is not None:
                        t_logits = None
                        if cached is not None and epoch < len(cached):
                            t_logits = cached[epoch, i:i + len(idx)].to(device)
                            if i == 0 and epoch in checks:
                                live = _teacher_logits(teacher, x, teacher_precision, precision, device)
                                if live.dtype != t_logits.dtype or not torch.equal(live, t_logits):
                                    log.warning("%s: the recorded teacher logits differ from the teacher's at epoch "
                                                "%d (another machine or thread count?): the teacher runs on every "
                                                "batch", desc, epoch + 1)
                                    cached, t_logits = None, live
                        if t_logits is None:
                            t_logits = _teacher_logits(teacher, x, teacher_precision, precision, device)
                        if record_teacher:
                            if record is None:
                                record = torch.zeros((epochs, len(train_x), t_logits.shape[1]), dtype=t_logits.dtype)
                            record[epoch, i:i + len(idx)] = t_logits.detach().cpu()
                        loss = kd_loss(logits.float(), t_logits.float(), y, temperature, alpha, mix, weight)
                    else:
                        loss = mixed_ce(logits.float(), y, label_smoothing, mix, weight)
                opt.zero_grad(set_to_none=True)
                if scaler is None:
                    loss.backward()
                    opt.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                sched.step()
                if ema is not None:
                    ema_update(ema, model, ema_decay)
                run_loss += float(loss.detach()) * len(idx)
                run_correct += int((logits.argmax(1) == y).sum())
                seen += len(idx)
                bar.set_postfix(loss=f"{run_loss / seen:.3f}")
            secs = time.perf_counter() - t0
            raw = None
            if ema is not None:  # validate, select and report the averaged weights; train on with the raw ones
                raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
                model.load_state_dict(ema)
            model.eval()
            with torch.no_grad():
                # chunk by chunk from the uint8 images: no float copy of the whole validation split
                v_logits = torch.cat([model(preprocess.to_tensor(val_x[j:j + EVAL_CHUNK]).contiguous(
                    memory_format=torch.channels_last)) for j in range(0, len(val_x), EVAL_CHUNK)]) \
                    if len(val_x) else torch.empty(0, 0)
            v_loss = float(F.cross_entropy(v_logits, val_y)) if len(val_y) else math.nan
            v_acc = float((v_logits.argmax(1) == val_y).float().mean()) if len(val_y) else math.nan
            row = {"epoch": epoch + 1, "train_loss": run_loss / max(seen, 1), "train_acc": run_correct / max(seen, 1),
                   "val_loss": v_loss, "val_acc": v_acc, "lr": opt.param_groups[0]["lr"], "seconds": secs,
                   "images_per_s": seen / secs if secs else math.nan}
            history.append(row)
            improved = (not math.isnan(v_acc)) and (v_acc > best["acc"] or (v_acc == best["acc"] and v_loss < best["loss"]))
            if improved or best["state"] is None:
                best = {"acc": v_acc, "loss": v_loss, "epoch": epoch + 1,
                        "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
            log.info("%s epoch %d/%d  loss %.4f  train acc %.3f  val loss %.4f  val acc %.3f%s  (%.1fs, %.0f img/s)",
                     desc, epoch + 1, epochs, row["train_loss"], row["train_acc"], v_loss, v_acc,
                     "  *" if improved else "", secs, row["images_per_s"])
            if on_epoch is not None:
                on_epoch(model, epoch + 1)
                model.train()
            if raw is not None:
                model.load_state_dict(raw)
            if checkpoint:
                files.save_torch(checkpoint, {"fingerprint": fp, "model": model.state_dict(), "optimizer": opt.state_dict(),
                                           "scheduler": sched.state_dict(), "generator": gen.get_state(),
                                           "torch_rng": torch.get_rng_state(), "epoch": epoch, "history": history,
                                           "best": best, **({"ema": ema} if ema is not None else {}),
                                           **({"teacher_record": record} if record is not None else {}),
                                           **({"cuda_rng": torch.cuda.get_rng_state()} if device == "cuda" else {}),
                                           **({"scaler": scaler.state_dict()} if scaler is not None else {})})
            if not jobs.alive(parent):
                raise OrphanedError(f"{desc}: the Snakemake that started this job (pid {parent[0]}) is gone; stopped "
                                    f"after epoch {epoch + 1}, saved in {checkpoint}: rerun Snakemake to resume")
        if best["state"] is not None:
            model.load_state_dict(best["state"])
        model.to("cpu").eval()
        if teacher is not None:
            teacher.to("cpu")
        log.info("%s: best validation accuracy %.3f at epoch %d", desc, best["acc"], best["epoch"])
        out = {"history": history, "best_epoch": best["epoch"], "best_val_acc": best["acc"]}
        if record_teacher and teacher is not None:
            if record is None or not record_whole:  # nothing recorded, or epochs before a resume missing
                record = torch.zeros((0, len(train_x), 0))
            out["teacher_logits"] = {"format": TEACHER_LOGITS_FORMAT, "key": stream, "logits": record,
                                     "batch_size": batch_size}
        return out
