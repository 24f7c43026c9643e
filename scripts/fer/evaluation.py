"""What the evaluate and summary rules do."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from . import data, io, metrics, models, plots, size, train, variants

log = logging.getLogger("fer")

SUMMARY_FIRST = ["variant", "method", "setting", "params", "macs", "size_bytes", "file_size_bytes", "accuracy",
                 "macro_f1", "test_images", "test_subjects"]


def evaluate_rule(variant: str, weights, dataset, out_metrics, out_confusion) -> dict:
    ds = data.load_prepared(dataset)
    x, y = data.subset(ds, "test")
    if len(x) == 0:
        from .errors import FERError

        raise FERError(f"{dataset}: the test split is empty; use more subjects or another split")
    ckpt = io.load_checkpoint(weights)
    model = variants.load_model(weights)
    pred = train.predict_logits(model, x).argmax(1).numpy()
    rep = metrics.classification_report(y.numpy(), pred)
    float_twin = models.build(ckpt["arch"])  # same layers without quantizers: MACs do not change with bits
    macs, params = metrics.count_macs_params(float_twin)
    test_subjects = sorted({s for s, k in zip(ds["subjects"], (ds["split"] == 2).tolist()) if k})
    out = {"variant": variant, **{k: v for k, v in variants.describe(variant).items() if k != "base"},
           "params": params, "macs": macs, "size_bytes": size.deployed_size_bytes(ckpt, model),
           "file_size_bytes": size.file_size_bytes(weights), "bits": ckpt.get("quant", {}).get("weight_bits", 32)
           if ckpt.get("quant") else 32,
           "accuracy": rep["accuracy"], "macro_f1": rep["macro_f1"], "test_images": rep["n"],
           "test_subjects": len(test_subjects), **{k: v for k, v in rep.items() if k not in ("accuracy", "macro_f1", "n")},
           "protocol": "subject-independent test split of results/data/manifest.csv; batch evaluation in eval mode"}
    io.write_json(out_metrics, out)
    plots.confusion_matrix(rep["confusion_matrix"], rep["classes"], out_confusion,
                           f"{variant}: test accuracy {rep['accuracy']:.3f}, macro-F1 {rep['macro_f1']:.3f} "
                           f"(n={rep['n']})")
    log.info("%s: accuracy %.4f  macro-F1 %.4f  params %d  MACs %d  size %d B", variant, rep["accuracy"],
             rep["macro_f1"], params, macs, out["size_bytes"])
    return out


def _scalar_columns(d: dict) -> dict:
    return {k: v for k, v in d.items() if not isinstance(v, (dict, list))}


BENCH_FIRST = ["runtime", "device", "precision", "latency_ms_p50", "latency_ms_p90", "latency_ms_mean",
               "latency_ms_std", "p90_over_p50", "runs", "warmup", "threads", "executed", "note"]
_DEVICE_ORDER = {"local-cpu": 0}
_RUNTIME_ORDER = {"pytorch": 0, "onnxruntime": 1, "tensorrt": 2}


def _benchmark_rows(files) -> list[dict]:
    """Rows of benchmark files: ``{"rows": [...]}`` (local and Jetson JSON), a bare list, or one row."""
    rows = []
    for f in files:
        obj = json.loads(Path(f).read_text())
        for r in obj if isinstance(obj, list) else obj.get("rows", [obj]):
            r = _scalar_columns(r)
            p50, p90 = r.get("latency_ms_p50"), r.get("latency_ms_p90")
            if r.get("p90_over_p50") is None and isinstance(p50, (int, float)) and isinstance(p90, (int, float)) \
                    and p50 > 0:
                r["p90_over_p50"] = p90 / p50
            rows.append(r)
    return rows


def write_summary(metric_files, out_csv, benchmarks=()) -> pd.DataFrame:
    """results/summary.csv: one row per variant x runtime x device (one row per variant without benchmarks).

    Accuracy, size and MACs are repeated in every row, so that each row reads on its own; variants keep the
    order of ``metric_files``, then local rows come before device rows, PyTorch before onnxruntime. Benchmark
    files are the local ``results/benchmarks/<variant>_<runtime>.json`` and the Jetson JSON (``rows``; an
    empty list when the Jetson benchmark was skipped).
    """
    rows = [_scalar_columns(json.loads(Path(f).read_text())) for f in metric_files]
    df = pd.DataFrame(rows)
    bench = _benchmark_rows(benchmarks)
    if bench and not df.empty:
        b = pd.DataFrame(bench)
        keep = [c for c in b.columns if c not in df.columns or c == "variant"]
        df = df.merge(b[keep], on="variant", how="left")
        order = {v: i for i, v in enumerate(dict.fromkeys(r["variant"] for r in rows))}
        key = pd.DataFrame({
            "v": df["variant"].map(order),
            "d": df["device"].map(lambda d: _DEVICE_ORDER.get(d, 1) if isinstance(d, str) else 2),
            "dn": df["device"].fillna(""),
            "r": df["runtime"].map(lambda r: _RUNTIME_ORDER.get(r, 3) if isinstance(r, str) else 4),
            "rn": df["runtime"].fillna(""),
            "p": df["precision"].fillna("") if "precision" in df else "",
        })
        df = df.loc[key.sort_values(list(key.columns), kind="stable").index].reset_index(drop=True)
    first = [c for c in SUMMARY_FIRST if c in df.columns]
    first += [c for c in BENCH_FIRST if c in df.columns and c not in first]
    df = df[first + [c for c in df.columns if c not in first]]
    with io.atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    log.info("wrote %s: %d rows (%d benchmark rows)", out_csv, len(df), len(bench))
    return df
