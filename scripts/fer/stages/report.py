"""Rules plot_comparisons, summary_table and provenance: the figures, the HTML table of the report and where
every output came from."""
from __future__ import annotations

import logging

from fer.report import plots, provenance as prov, table

log = logging.getLogger("fer")

COMPARISONS = ("teacher_student", "pruning", "quantization", "total")


def plot_comparisons(*, summary, out: dict, ratios: dict) -> None:
    """Rule plot_comparisons: results/summary.csv -> the four comparison figures (``out``: name -> PNG path;
    ``ratios``: pruning level -> per-layer ratios, for the pruning figure's table)."""
    df = plots._df(summary)
    plots.teacher_student_comparison(df, out["teacher_student"])
    plots.pruning_comparison(df, out["pruning"], ratios)
    plots.quantization_comparison(df, out["quantization"])
    plots.total_comparison(df, out["total"])
    log.info("wrote %s", ", ".join(str(out[k]) for k in COMPARISONS))


def summary_table(*, summary, jetson, out_html):
    """Rule summary_table: results/summary.csv (+ the Jetson status) -> results/report/summary_table.html."""
    df = table.summary_table_html(summary, out_html, jetson)
    log.info("wrote %s: %d rows", out_html, len(df))
    return df


def provenance(*, targets, config: dict, out_json) -> dict:
    """Rule provenance: the job records of every output the targets depend on -> results/provenance.json."""
    doc = prov.collect(list(targets), dict(config), out_json)
    missing = sorted(k for k, v in doc["outputs"].items() if v.get("rule") is None)
    stale = sorted(k for k, v in doc["outputs"].items() if v.get("stale"))
    log.info("provenance of %d outputs (%d environment(s)) -> %s", len(doc["outputs"]), len(doc["environments"]),
             out_json)
    if missing:
        log.warning("no job record for %d output(s), e.g. %s", len(missing), missing[0])
    if stale:
        log.warning("%d output(s) changed after their job record was written, e.g. %s", len(stale), stale[0])
    return doc
