"""results/summary.csv: every variant's metrics joined with its benchmark rows."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from fer import files

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("fer")

SUMMARY_FIRST = ["variant", "method", "setting", "params", "macs", "size_bytes", "onnx_file_bytes",
                 "onnx_over_size", "onnx_format", "onnx_weights", "file_size_bytes", "accuracy", "macro_f1",
                 "test_images", "test_subjects"]


def export_columns(sidecar: dict) -> dict:
    """The deployable file's columns from an export sidecar (results/onnx/<variant>.json): its size on disk
    (``onnx_file_bytes``), graph format, how it stores its weights (``onnx_weights``, e.g. ``int4 (packed 2 per
    byte)``, ``int8 containers (6-bit values: ONNX has no 6-bit type)``) and its opset."""
    return {"variant": sidecar["variant"], "onnx_file_bytes": sidecar.get("onnx_file_size_bytes"),
            "onnx_format": sidecar.get("format"), "onnx_weights": sidecar.get("weight_storage"),
            "onnx_opset": sidecar.get("opset")}


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


def write_summary(metric_rows: list[dict], out_csv, benchmarks=(), exports=()) -> pd.DataFrame:
    """results/summary.csv: one row per variant x runtime x device (one row per variant without benchmarks).

    ``metric_rows``: one dict per variant (a metrics JSON, or a row of the cross-validated table). Accuracy,
    size and MACs are repeated in every row, so that each row reads on its own; variants keep the order of
    ``metric_rows``, then local rows come before device rows, PyTorch before onnxruntime. Benchmark
    files are the local ``results/benchmarks/<variant>_<runtime>.json`` and the Jetson JSON (``rows``; an
    empty list when the Jetson benchmark was skipped). ``exports``: the export sidecars (with cross-validation
    the first run's, the graphs that are benchmarked): each variant's deployable file (:func:`export_columns`)
    beside its computed ``size_bytes``, and ``onnx_over_size`` = file / computed size.
    """
    import pandas as pd  # here, not at the top: fer.stages.evaluate imports this module for rule summary only

    rows = [_scalar_columns(r) for r in metric_rows]
    df = pd.DataFrame(rows)
    sidecars = [export_columns(json.loads(Path(f).read_text())) for f in exports]
    if sidecars and not df.empty:
        df = df.merge(pd.DataFrame(sidecars), on="variant", how="left")
        df["onnx_over_size"] = df["onnx_file_bytes"] / df["size_bytes"]
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
    with files.atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    log.info("wrote %s: %d rows (%d benchmark rows)", out_csv, len(df), len(bench))
    return df
