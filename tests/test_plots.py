"""Comparison figures, the summary table page, and `snakemake --report` on the tiny run."""
from __future__ import annotations

import base64
import json
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from conftest import snakemake
from fer.report import plots, table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CPU = "Test CPU @ 3.0GHz"


def fake_summary(jetson: bool = False, compressed: bool = True) -> pd.DataFrame:
    """A summary.csv-shaped table: every variant on two local runtimes (and a Jetson runtime)."""
    base = {"teacher": ("teacher", "", 2_400_000, 120e6, 9_600_000, 0.86, 8.0, 1.0),
            "kd": ("distillation", "", 160_000, 5.2e6, 640_000, 0.84, 0.56, 0.09),
            "scratch": ("scratch", "", 160_000, 5.2e6, 640_000, 0.79, 0.56, 0.09)}
    if compressed:
        base.update({"pr_kd_low": ("pruning", "low", 120_000, 3.9e6, 480_000, 0.835, 0.47, 0.075),
                     "pr_kd_medium": ("pruning", "medium", 80_000, 2.6e6, 320_000, 0.82, 0.40, 0.06),
                     "pr_kd_high": ("pruning", "high", 40_000, 1.3e6, 160_000, 0.76, 0.33, 0.045)})
        for b, acc in ((32, .84), (16, .84), (8, .835), (6, .82), (4, .70)):
            base[f"ptq_kd_{b}"] = ("quantization", str(b), 160_000, 5.2e6, 160_000 * b // 8 + 2000, acc, 4.0,
                                   0.09 if b != 8 else 0.07)
    rows = []
    for v, (m, s, p, macs, size, acc, pt, ox) in base.items():
        common = dict(variant=v, method=m, setting=s, params=p, macs=macs, size_bytes=size, accuracy=acc,
                      macro_f1=acc - .05, test_images=180, test_subjects=18)
        for rt, lat in (("pytorch", pt), ("onnxruntime", ox)):
            rows.append({**common, "runtime": rt, "device": "local-cpu", "precision": "fp32",
                         "latency_ms_p50": lat, "latency_ms_p90": lat * 1.1, "runs": 300, "warmup": 50,
                         "threads": 1, "machine_cpu": CPU, "machine": "box", "note": "n", "executed": "e"})
        if jetson:
            rows.append({**common, "runtime": "tensorrt", "device": "jetson-gpu", "precision": "fp16",
                         "latency_ms_p50": ox * 5, "latency_ms_p90": ox * 5.5, "runs": 100, "warmup": 10,
                         "threads": None, "machine": "NVIDIA Jetson Nano Developer Kit"})
    return pd.DataFrame(rows)


def _png(path) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    return plt.imread(path)


# ----------------------------------------------------------------------------------------------- helpers
def test_pareto_front():
    # (latency, accuracy): lower latency and higher accuracy are better
    x = [1.0, 2.0, 3.0, 2.5, 0.5, np.nan, 2.0]
    y = [0.7, 0.8, 0.9, 0.75, 0.6, 0.99, 0.8]
    front = plots.pareto_front(x, y)
    assert front == [4, 0, 1, 6, 2]  # sorted by x; the tie (1 and 6) both stay, 3 is dominated, NaN never counts
    assert plots.pareto_front([1, 1], [0.5, 0.6]) == [1]
    assert plots.pareto_front([], []) == []


def test_best_latency_takes_the_fastest_local_runtime():
    df = fake_summary(jetson=True)
    best = plots.best_latency(df)
    assert best.loc["teacher", "runtime"] == "onnxruntime" and best.loc["teacher", "latency_ms_p50"] == 1.0
    assert set(best["device"]) == {"local-cpu"}
    assert len(best) == df["variant"].nunique()


def test_protocol_text_names_cpu_runs_and_split():
    text = plots.protocol_text(fake_summary(jetson=True))
    assert CPU in text and "300 runs" in text and "50 warm-up" in text and "1 thread" in text
    assert "180 images" in text and "18 held-out subjects" in text and "Jetson Nano" in text


# ------------------------------------------------------------------------------------------------ figures
def test_all_comparison_figures(tmp_path):
    df = fake_summary(jetson=True)
    plots.teacher_student_comparison(df, tmp_path / "ts.png")
    plots.pruning_comparison(df, tmp_path / "pr.png", {"low": {"conv1": 0.2}, "medium": 0.5, "high": 0.75})
    plots.quantization_comparison(df, tmp_path / "q.png")
    plots.total_comparison(df, tmp_path / "total.png")
    for name in ("ts", "pr", "q", "total"):
        img = _png(tmp_path / f"{name}.png")
        assert img.shape[1] >= 1200 and img.shape[0] >= 400, name  # wide multi-panel figures


def test_figures_from_a_csv_path_and_placeholders_without_compressed_variants(tmp_path):
    csv = tmp_path / "summary.csv"
    fake_summary(compressed=False).to_csv(csv, index=False)
    plots.pruning_comparison(csv, tmp_path / "pr.png")
    plots.quantization_comparison(csv, tmp_path / "q.png")
    plots.total_comparison(csv, tmp_path / "total.png")
    plots.teacher_student_comparison(pd.read_csv(csv).query("variant != 'teacher'"), tmp_path / "ts.png")
    for name in ("pr", "q", "ts"):  # a small "nothing to compare" figure, not a failure
        assert _png(tmp_path / f"{name}.png").shape[1] < 1200
    assert _png(tmp_path / "total.png").shape[1] >= 1200


def test_figures_without_any_latency(tmp_path):
    df = fake_summary().drop_duplicates("variant").drop(columns=["latency_ms_p50", "latency_ms_p90", "runtime",
                                                                 "device"])
    plots.teacher_student_comparison(df, tmp_path / "ts.png")
    plots.quantization_comparison(df, tmp_path / "q.png")
    for name in ("ts", "q"):
        _png(tmp_path / f"{name}.png")


# ----------------------------------------------------------------------------------------- summary page
def test_summary_table_page(tmp_path):
    csv = tmp_path / "summary.csv"
    df = fake_summary(jetson=True)
    df.to_csv(csv, index=False)
    skipped = tmp_path / "jetson.json"
    skipped.write_text(json.dumps({"status": "skipped", "message": "skipped: no jetson.host configured"}))
    out = tmp_path / "summary_table.html"
    table.summary_table_html(csv, out, skipped)
    page = out.read_text()
    assert page.count("<tr") == len(df) + 1
    assert "subject-independent test split, 180 images from 18 held-out subjects" in page
    assert f"Latency on local-cpu: {CPU}; batch 1, 50 warm-up runs then 300 timed runs, 1 thread(s)" in page
    assert "Latency on jetson-gpu: NVIDIA Jetson Nano" in page
    assert "skipped: no jetson.host configured" in page
    assert "<script" not in page and "http" not in page  # self-contained


# -------------------------------------------------------------------------------------------- the report
def _report_results(html: str) -> dict:
    m = re.search(r'<script id="results">\s*var results = (.*?);?\s*</script>', html, re.S)
    assert m, "no results block in the report"
    return json.loads(m.group(1).strip().rstrip(";"))


def test_snakemake_report_is_one_self_contained_page(tiny_run, tmp_path):
    out = tmp_path / "table.html"
    proc = snakemake(tiny_run, "--report", out)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    html = out.read_text()
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=\"http|<img[^>]+src=\"http", html)  # nothing fetched
    results = _report_results(html)
    summary = pd.read_csv(tiny_run / "results" / "summary.csv")
    for name in ("teacher_student", "pruning", "quantization", "total"):
        res = results[f"results/plots/{name}_comparison.png"]
        assert res["data_uri"].startswith("data:image/png") and len(res["data_uri"]) > 10_000
        assert "runs" in res["caption"] or name == "total"
    for variant in summary["variant"].unique():
        assert results[f"results/plots/confusion/{variant}.png"]["data_uri"].startswith("data:image/png")
    table = results["results/report/summary_table.html"]
    page = base64.b64decode(table["data_uri"].split("base64,", 1)[1]).decode()
    assert "<table" in page and "p50 (ms)" in page and "accuracy" in page
    for variant in summary["variant"].unique():
        assert f">{variant}<" in page
    assert "subject-independent" in page and "warm-up runs then" in page
    desc = re.search(r'<script id="workflow-desc">(.*?)</script>', html, re.S).group(1)
    assert "subject-independent" in desc and "timed runs" in desc and "Jetson" in desc
