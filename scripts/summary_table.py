"""Rule summary_table: results/summary.csv (+ the Jetson status) -> results/report/summary_table.html
(fer.stages.report.summary_table)."""
from fer.stages.report import summary_table
from fer.stages.runner import run


def main(sm, log):
    summary_table(summary=sm.input.summary, jetson=sm.input.jetson, out_html=sm.output.html)


run(snakemake, main)  # noqa: F821
