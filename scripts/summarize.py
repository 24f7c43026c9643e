"""Rule summary: every variant's metrics (and benchmark rows, when present) -> results/summary.csv."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fer import evaluation, rule  # noqa: E402


def main(sm, log):
    evaluation.write_summary(list(sm.input.metrics), sm.output.summary,
                             benchmarks=list(sm.input.get("benchmarks", [])))


rule.run(snakemake, main)  # noqa: F821
