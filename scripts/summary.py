"""Rule summary: every variant's metrics (with folds: the cross-validated table) and benchmark rows ->
results/summary.csv (fer.stages.evaluate.summary)."""
from fer.stages.evaluate import summary
from fer.stages.runner import run


def main(sm, log):
    summary(metric_files=list(sm.input.get("metrics", [])), cv_summary=sm.input.get("cv"),
            benchmark_files=list(sm.input.benchmarks), export_files=list(sm.input.get("exports", [])),
            out_csv=sm.output.summary)


run(snakemake, main)  # noqa: F821
