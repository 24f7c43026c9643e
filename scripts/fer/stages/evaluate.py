"""Rules evaluate and summary: accuracy, macro-F1, confusion matrix, size and cost of every variant on the
test split, and the table of every variant with its benchmark rows."""
from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import torch

from fer import checkpoints, files, variants
from fer.compression import size
from fer.data import datasets, splits
from fer.errors import FERError
from fer.models import nets, training
from fer.report import metrics, plots
from fer.report.summary import write_summary

log = logging.getLogger("fer")


def evaluate(*, variant: str, weights, dataset, device: str, out_metrics, out_predictions, out_confusion) -> dict:
    """Rule evaluate: any variant's weights + the test split -> results/metrics/<variant>.json, the prediction
    of every test image (results/predictions/<variant>.csv) and the confusion plot. ``device``: train.device,
    where the model runs (:func:`fer.models.training.resolve_device`)."""
    ds = datasets.load_prepared(dataset)
    x, y = datasets.subset(ds, "test")
    index = torch.nonzero(ds["split"] == 2).flatten().tolist()
    if len(x) == 0:
        raise FERError(f"{dataset}: the test split is empty; use more subjects or another split")
    classes = ds["classes"]
    ckpt = checkpoints.load_checkpoint(weights, variant, classes, dataset)
    model = checkpoints.load_model(weights, variant).to(training.resolve_device(device))
    pred = training.predict_logits(model, x).argmax(1).numpy()
    rep = metrics.classification_report(y.numpy(), pred, classes)
    # same layers without quantizers (MACs do not change with bits) and with BN (fp16 variants store it folded):
    # every variant's MACs and params are counted on the same float network as its base's
    float_twin = nets.build({k: v for k, v in ckpt["arch"].items() if k != "batchnorm"})
    macs, params = metrics.count_macs_params(float_twin)
    test_subjects = sorted({s for s, k in zip(ds["subjects"], (ds["split"] == 2).tolist()) if k})
    out = {"variant": variant, **variants.summary_fields(variant),
           "params": params, "macs": macs, "size_bytes": size.deployed_size_bytes(ckpt, model),
           "file_size_bytes": size.file_size_bytes(weights),
           "bits": 16 if checkpoints.is_fp16(ckpt) else checkpoints.checkpoint_bits(ckpt)[0],  # fp16: float16
           "accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"], "test_images": rep["n"],
           "test_subjects": len(test_subjects), **{k: v for k, v in rep.items() if k not in ("accuracy", "macro_f1", "n")},
           "protocol": "subject-independent test split of results/data/manifest.csv; batch evaluation in eval mode"}
    budget = ckpt.get("meta", {}).get("budget")
    if budget and "latency_ms" in budget["target"]:  # pr_kd_lat<L>us: the budget and the search's measurement
        out.update({"budget_latency_ms": budget["target"]["latency_ms"],
                    "budget_latency_ms_reached": budget["latency_ms"] / budget["target"]["latency_ms"],
                    "budget_latency_runtime": budget["target"]["runtime"]})
    elif budget:  # pr_kd_<budget> (prune.targets): the budget and what the pruned network reached
        out.update({"budget_macs": budget["target"]["macs"], "budget_macs_reached": macs / budget["target"]["macs"]})
    external = ds["split"] == splits.EXTERNAL
    if bool(external.any()):  # data.test_path with folds: the separate folder, the same for every fold
        ext = metrics.classification_report(ds["labels"][external].numpy(),
                                            training.predict_logits(model, ds["images"][external]).argmax(1).numpy(),
                                            classes)
        out.update({"external_accuracy": ext["accuracy"], "external_macro_f1": ext["macro_f1"],
                    "external_images": ext["n"],
                    "external_subjects": len({s for s, k in zip(ds["subjects"], external.tolist()) if k})})
        log.info("%s: external test folder accuracy %.4f  macro-F1 %.4f (n=%d)", variant, ext["accuracy"],
                 ext["macro_f1"], ext["n"])
    if "fold" in ds:  # cross-validation: this fold's test subjects, never seen by its training or model selection
        out["fold"] = ds["fold"]
        out["seed"] = ckpt["meta"]["seed"]
        out["protocol"] = (f"cross-validation fold {ds['fold']} of {int(ds['k'])}: its test subjects (no subject in "
                           "two splits); batch evaluation in eval mode")
    files.write_json(out_metrics, out)
    with files.atomic_path(out_predictions) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "subject", "label", "prediction"])
        for i, true, p in zip(index, y.tolist(), pred.tolist()):
            w.writerow([i, ds["subjects"][i], true, p])
    plots.confusion_matrix(rep["confusion_matrix"], rep["classes"], out_confusion,
                           f"{variant}: test accuracy {rep['accuracy']:.3f}, macro-F1 {rep['macro_f1']:.3f} "
                           f"(n={rep['n']})")
    log.info("%s: accuracy %.4f  macro-F1 %.4f  params %d  MACs %d  size %d B", variant, rep["accuracy"],
             rep["macro_f1"], params, macs, out["size_bytes"])
    return out


def summary(*, metric_files, cv_summary, benchmark_files, export_files, out_csv):
    """Rule summary: every variant's metrics (with cross-validation: its row of results/cv/summary.csv, the mean
    over folds with the interval columns), the deployable ONNX file of each (its export sidecar: file size,
    format, weight storage) and benchmark rows -> results/summary.csv."""
    import pandas as pd  # here, not at the top: the evaluate jobs (one per variant and fold) never need it

    rows = [json.loads(Path(f).read_text()) for f in metric_files] if not cv_summary else \
        pd.read_csv(cv_summary).to_dict("records")
    return write_summary(rows, out_csv, benchmarks=benchmark_files, exports=export_files)
