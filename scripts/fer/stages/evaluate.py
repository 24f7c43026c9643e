"""Rules evaluate and summary: accuracy, macro-F1, confusion matrix, size and cost of every variant on the
test split, and the table of every variant with its benchmark rows."""
from __future__ import annotations

import logging

from fer import checkpoints, files, variants
from fer.compression import size
from fer.data import datasets
from fer.errors import FERError
from fer.models import nets, training
from fer.report import metrics, plots
from fer.report.summary import write_summary

log = logging.getLogger("fer")


def evaluate(*, variant: str, weights, dataset, out_metrics, out_confusion) -> dict:
    """Rule evaluate: any variant's weights + the test split -> results/metrics/<variant>.json + confusion plot."""
    ds = datasets.load_prepared(dataset)
    x, y = datasets.subset(ds, "test")
    if len(x) == 0:
        raise FERError(f"{dataset}: the test split is empty; use more subjects or another split")
    ckpt = checkpoints.load_checkpoint(weights)
    model = checkpoints.load_model(weights)
    pred = training.predict_logits(model, x).argmax(1).numpy()
    rep = metrics.classification_report(y.numpy(), pred)
    float_twin = nets.build(ckpt["arch"])  # same layers without quantizers: MACs do not change with bits
    macs, params = metrics.count_macs_params(float_twin)
    test_subjects = sorted({s for s, k in zip(ds["subjects"], (ds["split"] == 2).tolist()) if k})
    out = {"variant": variant, **variants.summary_fields(variant),
           "params": params, "macs": macs, "size_bytes": size.deployed_size_bytes(ckpt, model),
           "file_size_bytes": size.file_size_bytes(weights), "bits": ckpt.get("quant", {}).get("weight_bits", 32)
           if ckpt.get("quant") else 32,
           "accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"], "test_images": rep["n"],
           "test_subjects": len(test_subjects), **{k: v for k, v in rep.items() if k not in ("accuracy", "macro_f1", "n")},
           "protocol": "subject-independent test split of results/data/manifest.csv; batch evaluation in eval mode"}
    files.write_json(out_metrics, out)
    plots.confusion_matrix(rep["confusion_matrix"], rep["classes"], out_confusion,
                           f"{variant}: test accuracy {rep['accuracy']:.3f}, macro-F1 {rep['macro_f1']:.3f} "
                           f"(n={rep['n']})")
    log.info("%s: accuracy %.4f  macro-F1 %.4f  params %d  MACs %d  size %d B", variant, rep["accuracy"],
             rep["macro_f1"], params, macs, out["size_bytes"])
    return out


def summary(*, metric_files, benchmark_files, out_csv):
    """Rule summary: every variant's metrics (and benchmark rows) -> results/summary.csv."""
    return write_summary(metric_files, out_csv, benchmarks=benchmark_files)
