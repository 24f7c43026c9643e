"""Rules prune_student, quantize_student (and quantize_pruned), convert_fp16 and export_onnx: compression of the
KD student and the ONNX graph of every variant. Order: prune -> fine-tune -> quantize (or convert to fp16)."""
from __future__ import annotations

import logging
import os

from fer import IMAGE_SIZE, checkpoints, files
from fer.compression import fp16, prune, quantize, size
from fer.data import datasets, preprocess
from fer.deploy import onnx_export, ort
from fer.errors import FERError
from fer.models import nets, training
from fer.report import metrics
from fer.settings import KD, QAT, Augment, Calibration, TrainHP
from fer.stages.train import finish_checkpoint, frozen_teacher, resume_key

log = logging.getLogger("fer")


def prune_student(*, level: str, ratios: dict, student, teacher, dataset, finetune: TrainHP, kd: KD,
                  augment: Augment, seed: int, precision: str, device: str, checkpoint, out_weights,
                  budget: dict | None, teacher_logits) -> dict:
    """Rule prune_student: KD student -> pruned at ``level`` -> KD fine-tuned -> weights/pr_kd_<level>.pt.
    ``precision``, ``device``: train.precision and train.device for the fine-tune
    (:func:`fer.models.training.resolve_precision`, :func:`~fer.models.training.resolve_device`).
    ``budget``: what rule prune_budget searched for (``meta.budget``: the target and what was reached); None for
    a fixed level. ``teacher_logits``: the file the KD student's training recorded (rule train_student_kd):
    the fine-tune reads the teacher's logits from it where its batch stream is the same."""
    variant = f"pr_kd_{level}"
    ds, tx, ty, vx, vy = datasets.train_val(dataset)
    classes = ds["classes"]
    training.set_seed(seed)
    model = float_student(student, classes, dataset)
    macs0, params0 = metrics.count_macs_params(model)
    record = prune.prune_model(model, ratios)
    macs1, params1 = metrics.count_macs_params(model)
    log.info("%s: channels %s -> %s; MACs %d -> %d (%.1f%% fewer), params %d -> %d", variant,
             record["channels_before"], record["channels_after"], macs0, macs1, 100 * (1 - macs1 / macs0),
             params0, params1)
    teacher_model = frozen_teacher(teacher, classes, dataset)
    result = {"history": [], "best_epoch": 0, "best_val_acc": float("nan")}
    if int(finetune.epochs) > 0:
        result = training.fit(model, tx, ty, vx, vy, hp=finetune, augment_cfg=augment, seed=seed,
                              teacher=teacher_model, kd=kd, checkpoint=checkpoint, desc=variant,
                              data_key=resume_key(dataset, teacher, student) + str(sorted(record["ratios"].items())),
                              precision=training.resolve_precision(precision, training.resolve_device(device)),
                              device=training.resolve_device(device),
                              teacher_logits=training.load_teacher_logits(teacher_logits),
                              teacher_source=resume_key(dataset, teacher))
    meta = {"base": "kd", "level": level, "pruning": record, "macs_before": macs0, "macs_after": macs1,
            "params_before": params0, "params_after": params1, "finetune": finetune.as_dict(), "kd": kd.as_dict(),
            "best_epoch": result["best_epoch"], "best_val_acc": result["best_val_acc"], "seed": seed,
            "teacher": str(teacher), "student": str(student), **({"budget": budget} if budget else {})}
    checkpoints.save_checkpoint(out_weights, variant, nets.current_arch(model), model.state_dict(), meta,
                                classes=classes)
    finish_checkpoint(checkpoint)
    return {"record": record, **result}


def float_student(student, classes, dataset) -> nets.FERNet:
    """The KD student to prune (or to measure pruning on), checked against the dataset's classes; a quantized or
    fp16 checkpoint is refused: prune before quantizing."""
    model = checkpoints.load_model(student, "kd", classes, dataset)
    if not isinstance(model, nets.FERNet):
        raise FERError(f"{student}: pruning needs a float FERNet checkpoint (prune before quantizing)")
    return model


def _val_accuracy(model, x_u8, y) -> float:
    if len(x_u8) == 0:
        return float("nan")
    return float((training.predict_logits(model, x_u8).argmax(1) == y).float().mean())


def quantize_student(*, variant: str, bits: int, act_bits, method: str, source, teacher, dataset,
                     calibration: Calibration, qat: QAT, kd: KD, augment: Augment, seed: int, device: str,
                     checkpoint, out_weights, base: str, precision: str, teacher_logits) -> dict:
    """Rules quantize_student / quantize_pruned: a float student (KD or pruned) -> weights/<variant>.pt.

    ``method``: ``ptq`` (calibration + bias correction) or ``qat`` (the same, then ``qat.epochs`` of
    distillation fine-tuning with the quantizers in the loop; the PTQ weights are kept if QAT does not raise
    the validation accuracy). ``device``: train.device, where QAT trains (calibration runs on the CPU).
    ``precision``: train.precision, that of the teacher's forward pass in QAT (the fake-quantized student
    trains in fp32), as in the KD student's training. ``teacher_logits``: as for :func:`prune_student`.
    """
    bits = int(bits)
    if method not in ("ptq", "qat"):
        raise FERError(f"unknown quantization method {method!r} (ptq or qat)")
    model = checkpoints.load_model(source, base)
    if not isinstance(model, nets.FERNet):
        raise FERError(f"{source}: quantization needs a float FERNet checkpoint (quantize after pruning)")
    src_ckpt = checkpoints.load_checkpoint(source, base)
    classes = src_ckpt["classes"]
    arch = nets.current_arch(model)
    meta = {"base": base, "source": str(source), "seed": seed,
            **{k: v for k, v in src_ckpt.get("meta", {}).items() if k in ("level", "pruning")}}
    if bits >= quantize.FLOAT_BITS:
        checkpoints.save_checkpoint(out_weights, variant, arch, model.state_dict(), meta, classes=classes,
                                    quant=quantize.quant_info(quantize.FLOAT_BITS, quantize.FLOAT_BITS, "float"))
        log.info("%s: 32-bit float reference (the %s weights unchanged)", variant, base)
        return {"method": "float"}
    ab = quantize.resolve_act_bits(bits, act_bits)
    ds = datasets.load_prepared(dataset)
    checkpoints.check_classes(classes, ds["classes"], source, dataset)
    tx, ty = datasets.subset(ds, "train")
    vx, vy = datasets.subset(ds, "val")
    if len(tx) == 0:
        raise FERError(f"{dataset}: the training split is empty: nothing to calibrate on")
    training.set_seed(seed)
    q = quantize.ptq(model, tx, weight_bits=bits, act_bits=ab, batches=int(calibration.batches),
                     batch_size=int(calibration.batch_size), bias_correction=bool(calibration.bias_correction),
                     seed=seed)
    ptq_val = _val_accuracy(q, vx, vy)
    log.info("%s: PTQ at %d-bit weights / %d-bit activations (%d calibration batches of %d, bias correction %s): "
             "val acc %.4f (float %.4f)", variant, bits, ab, int(calibration.batches),
             int(calibration.batch_size), calibration.bias_correction, ptq_val, _val_accuracy(model, vx, vy))
    used, qat_val, result = "ptq", None, {"best_epoch": 0}
    if method == "qat" and int(qat.epochs) > 0:
        if len(vx) == 0:
            raise FERError(f"{dataset}: QAT needs a non-empty validation split")
        teacher_model = frozen_teacher(teacher, classes, dataset)
        ptq_state = {k: v.detach().clone() for k, v in q.state_dict().items()}
        # no warm-up and no label smoothing: the quantized model starts from trained weights, and the loss is KD
        hp = TrainHP(epochs=qat.epochs, lr=qat.lr, batch_size=qat.batch_size, weight_decay=qat.weight_decay,
                     label_smoothing=0.0, warmup_epochs=0, mixup=0.0, ema=0.0,
                     class_balance=0.0)
        result = training.fit(q, tx, ty, vx, vy, hp=hp, augment_cfg=augment, seed=seed, teacher=teacher_model, kd=kd,
                              checkpoint=checkpoint, desc=variant, precision="fp32",  # brevitas fake-quant: fp32
                              teacher_precision=training.resolve_precision(precision, training.resolve_device(device)),
                              device=training.resolve_device(device),
                              data_key=resume_key(dataset, teacher, source) + str(sorted(calibration.as_dict().items())),
                              teacher_logits=training.load_teacher_logits(teacher_logits),
                              teacher_source=resume_key(dataset, teacher))
        q.eval()
        qat_val = _val_accuracy(q, vx, vy)
        if qat_val >= ptq_val:
            used = "qat"
        else:
            q.load_state_dict(ptq_state)
            log.info("%s: QAT val acc %.4f < PTQ %.4f: keeping the PTQ weights", variant, qat_val, ptq_val)
        finish_checkpoint(checkpoint)
    info = quantize.quant_info(bits, ab, used, requested_method=method,
                               calibration_batches=int(calibration.batches),
                               calibration_batch_size=int(calibration.batch_size),
                               bias_correction=bool(calibration.bias_correction),
                               qat_epochs=int(qat.epochs) if method == "qat" else 0)
    meta.update({"ptq_val_acc": ptq_val, "qat_val_acc": qat_val, "qat_best_epoch": result["best_epoch"]})
    checkpoints.save_checkpoint(out_weights, variant, arch, q.state_dict(), meta, classes=classes, quant=info)
    log.info("%s: saved (%s), deployed size %d B", variant, used, size.packed_size_bytes(q))
    return {"method": used, "ptq_val_acc": ptq_val, "qat_val_acc": qat_val}


def convert_fp16(*, variant: str, base: str, source, out_weights) -> dict:
    """Rule convert_fp16: a float student (kd or pr_kd_<level>) -> BN folded, float16 weights ->
    weights/fp16_<base>.pt (2 bytes per parameter on disk; :mod:`fer.compression.fp16`)."""
    model = checkpoints.load_model(source, base)
    src_ckpt = checkpoints.load_checkpoint(source, base)
    if not isinstance(model, nets.FERNet) or checkpoints.is_fp16(src_ckpt):
        raise FERError(f"{source}: fp16 conversion needs a float FERNet checkpoint with BN (kd or pr_kd_<level>)")
    arch, state = fp16.to_fp16(model)
    meta = {"base": base, "source": str(source), "seed": src_ckpt.get("meta", {}).get("seed"),
            **{k: v for k, v in src_ckpt.get("meta", {}).items() if k in ("level", "pruning")}}
    checkpoints.save_checkpoint(out_weights, variant, arch, state, meta, classes=src_ckpt["classes"],
                                fp16=dict(fp16.INFO))
    converted = checkpoints.load_model(out_weights, variant)
    size_bytes = size.deployed_size_bytes(checkpoints.load_checkpoint(out_weights, variant), converted)
    log.info("%s: %s with BN folded, float16 weights: deployed size %d B (fp32 %d B)", variant, base, size_bytes,
             size.float_size_bytes(model))
    return {"size_bytes": size_bytes}


def export_onnx(*, variant: str, weights, dataset, out_onnx, out_json, opset: int, qcdq_bits) -> dict:
    """Rule export_onnx: weights/<variant>.pt -> results/onnx/<variant>.onnx + <variant>.json sidecar, with the
    parity of onnxruntime against PyTorch on the test split."""
    split = "test"
    ds = datasets.load_prepared(dataset)
    ckpt = checkpoints.load_checkpoint(weights, variant, ds["classes"], dataset)
    model = checkpoints.load_model(weights, variant)
    quant = ckpt.get("quant")
    weight_bits, act_bits = checkpoints.quant_bits(quant)
    fmt = onnx_export.graph_format(quant, qcdq_bits, fp16=checkpoints.is_fp16(ckpt))
    onnx_export.export_model(model, out_onnx, fmt, opset)
    written_opset = onnx_export.opset_of(out_onnx)  # int4 graphs need opset 21 whatever export.opset says
    xs, _ = datasets.subset(ds, split)
    x = preprocess.to_tensor(xs)
    par = onnx_export.parity(out_onnx, model, x)
    ok = onnx_export.within_tolerance(fmt, par)
    tolerance = onnx_export.TOLERANCE[fmt]
    info = {
        "variant": variant, "format": fmt, "opset": written_opset,
        "weight_bits": 16 if fmt == "fp16" else weight_bits, "act_bits": act_bits,
        "weight_storage": onnx_export.weight_storage(fmt, weight_bits),
        "input": {"name": onnx_export.INPUT, "shape": ["batch", 1, IMAGE_SIZE, IMAGE_SIZE], "dtype": "float32",
                  "preprocessing": f"gray uint8 -> x / 255 -> (x - {preprocess.MEAN}) / {preprocess.STD}"},
        "output": {"name": onnx_export.OUTPUT, "shape": ["batch", len(ckpt["classes"])]},
        "classes": ckpt["classes"],  # the names of the outputs, in order (the inference app labels faces by them)
        "onnx_file_size_bytes": os.path.getsize(out_onnx),
        "onnx_sha256": files.file_digest(out_onnx, full=True),  # checked by every reader (checkpoints.check_onnx)
        "parity": {"split": split, **par, "tolerance": tolerance, "within_tolerance": ok},
        "note": onnx_export.FORMAT_NOTES[fmt],
        # how this project's sessions run it (fer.deploy.ort.session); a user's own session should do the same
        "onnxruntime_session": {"disabled_optimizers": list(ort.DISABLED_OPTIMIZERS)},
    }
    if fmt in ("qcdq", "int4"):
        info["onnxruntime_int8_nodes"] = onnx_export.fused_int8_nodes(out_onnx)
    files.write_json(out_json, info)
    log.info("%s: %s ONNX (opset %d, %d B, weights %s), parity on %d %s images: max |dlogit| %.2e, top-1 "
             "agreement %.4f%s", variant, fmt, written_opset, info["onnx_file_size_bytes"], info["weight_storage"],
             par["n"], split, par["max_abs_logit_diff"], par["prediction_agreement"],
             "" if ok else "  (OUTSIDE TOLERANCE)")
    if not ok:
        raise FERError(f"{variant}: onnxruntime disagrees with PyTorch beyond the tolerance {tolerance}: {par}")
    return info
