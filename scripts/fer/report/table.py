"""The summary table of the Snakemake report: results/summary.csv as one self-contained HTML page.

The page states the protocol first (test split, where and how latency was measured, whether the Jetson ran),
then one row per variant x runtime x device with accuracy, cost and latency side by side, and the notes that
say what actually ran (fake-quant in fp32, int8 kernels, storage-only savings below 8 bits ...).
"""
from __future__ import annotations

import html
import json
import math
from pathlib import Path

import pandas as pd

from fer import files

# (column, header, format)
TABLE_COLUMNS = [
    ("variant", "variant", "s"), ("method", "method", "s"), ("setting", "setting", "s"), ("bits", "bits", "d"),
    ("params", "params", ",d"), ("macs", "MACs", ",d"), ("budget_macs", "MAC budget", ",d"),
    ("budget_macs_reached", "MACs / budget", ".3f"), ("budget_latency_ms", "latency budget (ms)", ".4f"),
    ("budget_latency_ms_reached", "search p50 / budget", ".3f"), ("size_bytes", "size (KB)", "kb"),
    ("onnx_file_bytes", "ONNX file (KB)", "kb"), ("onnx_weights", "ONNX weights", "s"),
    ("accuracy", "accuracy", ".3f"), ("macro_f1", "macro-F1", ".3f"), ("device", "device", "s"),
    ("runtime", "runtime", "s"), ("precision", "precision", "s"), ("latency_ms_p50", "p50 (ms)", ".4f"),
    ("latency_ms_p90", "p90 (ms)", ".4f"), ("p90_over_p50", "p90/p50", ".2f"), ("latency_ms_mean", "mean (ms)", ".4f"),
    ("latency_ms_std", "std (ms)", ".4f"), ("runs", "runs", "d"), ("warmup", "warm-up", "d"),
    ("threads", "threads", "d"), ("executed", "what ran", "s"), ("note", "note", "s"),
]

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; font-size: 13px; margin: 1em; color: #222; }
h1 { font-size: 18px; } ul { margin: 0.3em 0 1em 1.2em; padding: 0; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: right; vertical-align: top; }
th { background: #f0f0f0; position: sticky; top: 0; }
td.s { text-align: left; } td.note { text-align: left; max-width: 28em; font-size: 11px; color: #444; }
tr.first td { border-top: 2px solid #888; }
"""


def _fmt(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return ""
    try:
        if fmt == "s":
            return str(value)
        if fmt == "d":
            return str(int(value))
        if fmt == ",d":
            return f"{int(value):,}"
        if fmt == "kb":
            return f"{float(value) / 1024:,.1f}"
        return format(float(value), fmt)
    except (TypeError, ValueError):
        return str(value)


def protocol_lines(df: pd.DataFrame, jetson_status: dict | None = None) -> list[str]:
    """What a reader needs to interpret the numbers: split, devices, runs, threads."""
    lines = []
    first = df.drop_duplicates("variant")
    if "test_images" in df and len(first) and pd.notna(first.iloc[0].get("test_images")):
        r = first.iloc[0]
        subj = f" from {int(r['test_subjects'])} held-out subjects" if pd.notna(r.get("test_subjects")) else ""
        lines.append(f"Accuracy and macro-F1: subject-independent test split, {int(r['test_images'])} images{subj} "
                     f"(no subject appears in more than one split).")
    if "device" in df and "latency_ms_p50" in df:
        for dev, sub in df[df["latency_ms_p50"].notna()].groupby("device", sort=False):
            r = sub.iloc[0]
            where = r.get("machine_cpu") or r.get("machine") or dev
            if dev != "local-cpu" and r.get("machine"):
                where = f"{r['machine']} ({r.get('machine_cpu') or ''})"
            runtimes = ", ".join(dict.fromkeys(str(x) for x in sub["runtime"]))
            threads = r.get("threads")
            threads = "all cores" if threads is None or (isinstance(threads, float) and math.isnan(threads)) \
                else f"{int(threads)} thread(s)"
            sched = ""
            if isinstance(r.get("scheduling"), str) and r["scheduling"]:
                sched = f", scheduling {', '.join(dict.fromkeys(str(x) for x in sub['scheduling'].dropna()))}"
            lines.append(f"Latency on {dev}: {where}; batch 1, {int(r['warmup'])} warm-up runs then "
                         f"{int(r['runs'])} timed runs, {threads}{sched}; runtimes {runtimes}. p50/p90 are "
                         f"percentiles of the per-run times, std is over the same runs.")
    if jetson_status is not None:
        status = jetson_status.get("status", "")
        if status != "ok":
            lines.append(f"Jetson: {jetson_status.get('message') or status or 'no rows'}.")
    lines.append("Size: deployed size (fp32 with BN folded, fp16 2 bytes per parameter; quantized variants "
                 "bit-packed, including scales and biases), computed. ONNX file: the size of the deployable graph on "
                 "disk, with how it stores its weights (6-bit: int8 containers, ONNX has no 6-bit type; 4-bit: "
                 "INT4 packed two per byte). MACs are counted on the float twin of every variant. No eager-PyTorch "
                 "row for quantized or fp16 variants: eager PyTorch would time an fp32 emulation, not the "
                 "deployable.")
    return lines


def summary_table_html(summary_csv, out_html, jetson_json=None) -> pd.DataFrame:
    df = pd.read_csv(summary_csv)
    status = json.loads(Path(jetson_json).read_text()) if jetson_json and Path(jetson_json).is_file() else None
    cols = [(c, h, f) for c, h, f in TABLE_COLUMNS if c in df.columns]
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in cols)
    body = []
    prev = None
    for _, r in df.iterrows():
        cls = ' class="first"' if r["variant"] != prev else ""
        prev = r["variant"]
        cells = []
        for c, _, f in cols:
            kind = "note" if c in ("note", "executed") else ("s" if f == "s" else "")
            cells.append(f'<td class="{kind}">{html.escape(_fmt(r[c], f))}</td>' if kind else
                         f"<td>{html.escape(_fmt(r[c], f))}</td>")
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    protocol = "".join(f"<li>{html.escape(x)}</li>" for x in protocol_lines(df, status))
    page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>FER summary</title><style>{CSS}</style>"
            f"</head><body><h1>Summary: accuracy and cost of every variant</h1><ul>{protocol}</ul>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f"<p>Full table with every column (machine, versions, per-class scores): results/summary.csv.</p>"
            f"</body></html>\n")
    files.write_text(out_html, page)
    return df
