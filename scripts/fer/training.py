"""What the training rules do: load data (and teacher), build the model, fit, save weights and curves."""
from __future__ import annotations

import csv
import hashlib
import logging
from pathlib import Path


from . import data, io, models, plots, train, variants

log = logging.getLogger("fer")


def _file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def write_history(history: list[dict], path) -> None:
    with io.atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        if history:
            w = csv.DictWriter(fh, fieldnames=list(history[0]))
            w.writeheader()
            w.writerows(history)


def train_rule(*, variant: str, dataset, teacher, arch: dict, hp: dict, kd: dict | None, augment: dict, seed: int,
               checkpoint, out_weights, out_history, out_plot) -> dict:
    _, tx, ty, vx, vy = data.train_val(dataset)
    train.set_seed(seed)
    model = models.FERNet(**arch)
    teacher_model = variants.load_model(teacher) if teacher else None
    if teacher_model is not None:
        for p in teacher_model.parameters():
            p.requires_grad_(False)
    log.info("%s: %s, %d train / %d val images, %s", variant, model.arch, len(tx), len(vx),
             f"KD from {teacher} (T={kd['temperature']}, alpha={kd['alpha']})" if teacher_model else "cross-entropy")
    ck = Path(checkpoint)
    result = train.fit(
        model, tx, ty, vx, vy, epochs=int(hp["epochs"]), lr=float(hp["lr"]), batch_size=int(hp["batch_size"]),
        weight_decay=float(hp.get("weight_decay", 1e-4)), seed=seed, augment_cfg=augment,
        label_smoothing=float(hp.get("label_smoothing", 0.0)), teacher=teacher_model,
        temperature=float(kd["temperature"]) if teacher_model else 1.0,
        alpha=float(kd["alpha"]) if teacher_model else 0.0, warmup_epochs=int(hp.get("warmup_epochs", 1)),
        checkpoint=ck, desc=variant, data_key=_file_digest(dataset) + (_file_digest(teacher) if teacher else ""))
    meta = {"best_epoch": result["best_epoch"], "best_val_acc": result["best_val_acc"], "seed": seed, "hp": hp,
            "kd": kd if teacher_model else None, "augment": augment, "teacher": str(teacher) if teacher else None}
    io.save_checkpoint(out_weights, variant, models.current_arch(model), model.state_dict(), meta)
    write_history(result["history"], out_history)
    plots.training_curves(result["history"], out_plot, f"{variant}: training curves (best epoch {result['best_epoch']})")
    ck.unlink(missing_ok=True)  # the run is complete: a forced rerun starts from scratch
    return result
