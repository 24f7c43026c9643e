"""Rule summary_table: results/summary.csv (+ the Jetson status) -> results/report/summary_table.html."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fer import report, rule  # noqa: E402


def main(sm, log):
    df = report.summary_table_html(sm.input.summary, sm.output.html, sm.input.get("jetson"))
    log.info("wrote %s: %d rows", sm.output.html, len(df))


rule.run(snakemake, main)  # noqa: F821
