"""Rule cv_summary: every fold's metrics and predictions -> results/cv/summary.csv, comparisons.csv and folds.csv
(fer.stages.crossval.cv_summary)."""
from fer.stages.crossval import cv_summary
from fer.stages.runner import run


def main(sm, log):
    p = sm.params
    cv_summary(metric_files=list(sm.input.metrics), prediction_files=list(sm.input.predictions),
               dataset=sm.input.dataset, variants=list(p.variants), bases=dict(p.bases), folds=int(p.folds),
               seeds=list(p.seeds), out_summary=sm.output.summary, out_comparisons=sm.output.comparisons,
               out_folds=sm.output.folds)


run(snakemake, main)  # noqa: F821
