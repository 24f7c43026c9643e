"""Rules train_teacher, train_student_kd and train_student_scratch: load the data (and the teacher), build the
model, fit it, save the weights, the training history and its curves."""
from __future__ import annotations

import csv
import logging
from pathlib import Path

from fer import checkpoints, files
from fer.data import datasets
from fer.models import nets, training
from fer.report import plots
from fer.settings import KD, Arch, Augment, TrainHP

log = logging.getLogger("fer")


def frozen_teacher(path, classes, data):
    """The teacher of a distillation run: loaded (trained on ``classes``, those of the prepared dataset
    ``data``), in eval mode, its parameters frozen."""
    teacher = checkpoints.load_model(path, "teacher", classes, data)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def resume_key(*paths) -> str:
    """The part of a resume checkpoint's key that names the input files (their content hashes)."""
    return "".join(files.file_digest(p) for p in paths if p)


def finish_checkpoint(checkpoint) -> None:
    """The run is complete: delete its per-epoch checkpoint, so that a forced rerun starts from scratch."""
    if checkpoint:
        Path(checkpoint).unlink(missing_ok=True)


def write_history(history: list[dict], path) -> None:
    with files.atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        if history:
            w = csv.DictWriter(fh, fieldnames=list(history[0]))
            w.writeheader()
            w.writerows(history)


def _train(*, variant: str, dataset, teacher, arch: Arch, hp: TrainHP, kd: KD | None, augment: Augment, seed: int,
           precision: str, device: str, checkpoint, out_weights, out_history, out_plot,
           out_teacher_logits) -> dict:
    ds, tx, ty, vx, vy = datasets.train_val(dataset)
    classes = ds["classes"]
    training.set_seed(seed)
    model = nets.FERNet(channels=arch.channels, hidden=arch.hidden, dropout=arch.dropout, num_classes=len(classes))
    teacher_model = frozen_teacher(teacher, classes, dataset) if teacher else None
    dev = training.resolve_device(device)
    used = training.resolve_precision(precision, dev)
    log.info("%s: %s, %d train / %d val images, %s, %s training on %s (train.precision: %s, train.device: %s)",
             variant, model.arch, len(tx), len(vx),
             f"KD from {teacher} (T={kd.temperature}, alpha={kd.alpha})" if teacher_model else "cross-entropy",
             used, dev, precision, device)
    result = training.fit(model, tx, ty, vx, vy, hp=hp, augment_cfg=augment, seed=seed, teacher=teacher_model,
                          kd=kd if teacher_model else None, checkpoint=Path(checkpoint), desc=variant,
                          data_key=resume_key(dataset, teacher), precision=used, device=dev,
                          teacher_source=resume_key(dataset, teacher),
                          record_teacher=bool(teacher_model is not None and out_teacher_logits))
    meta = {"best_epoch": result["best_epoch"], "best_val_acc": result["best_val_acc"], "seed": seed,
            "hp": hp.as_dict(), "kd": kd.as_dict() if teacher_model else None, "augment": augment.as_dict(),
            "teacher": str(teacher) if teacher else None, "precision": used, "device": dev}
    checkpoints.save_checkpoint(out_weights, variant, nets.current_arch(model), model.state_dict(), meta,
                                classes=classes)
    write_history(result["history"], out_history)
    if teacher_model is not None and out_teacher_logits:
        files.save_torch(out_teacher_logits, result.pop("teacher_logits"))
    plots.training_curves(result["history"], out_plot, f"{variant}: training curves (best epoch {result['best_epoch']})")
    finish_checkpoint(checkpoint)
    return result


def train_teacher(*, dataset, arch: Arch, hp: TrainHP, augment: Augment, seed: int, precision: str, device: str, checkpoint,
                  out_weights, out_history, out_plot) -> dict:
    """Rule train_teacher: the teacher CNN with cross-entropy -> weights/teacher.pt."""
    return _train(variant="teacher", dataset=dataset, teacher=None, arch=arch, hp=hp, kd=None, augment=augment,
                  seed=seed, precision=precision, device=device, checkpoint=checkpoint, out_weights=out_weights, out_history=out_history,
                  out_plot=out_plot, out_teacher_logits=None)


def train_student(*, variant: str, dataset, teacher, arch: Arch, hp: TrainHP, kd: KD | None, augment: Augment,
                  seed: int, precision: str, device: str, checkpoint, out_weights, out_history, out_plot,
                  out_teacher_logits) -> dict:
    """Rules train_student_kd (``teacher`` and ``kd`` given: distillation) and train_student_scratch (neither:
    cross-entropy) -> weights/<variant>.pt. ``out_teacher_logits`` (KD): where the teacher's logits on every
    training batch are kept, for the KD fine-tunes of the same batch stream (pruning, QAT: they skip the
    teacher's forward pass, :func:`fer.models.training.fit`)."""
    if (teacher is None) != (kd is None):
        raise ValueError("train_student: distillation needs both the teacher and the kd settings")
    return _train(variant=variant, dataset=dataset, teacher=teacher, arch=arch, hp=hp, kd=kd, augment=augment,
                  seed=seed, precision=precision, device=device, checkpoint=checkpoint, out_weights=out_weights, out_history=out_history,
                  out_plot=out_plot, out_teacher_logits=out_teacher_logits)
