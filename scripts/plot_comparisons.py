"""Rule plot_comparisons: results/summary.csv -> the four comparison figures (fer.stages.report.plot_comparisons)."""
from fer.stages.report import COMPARISONS, plot_comparisons
from fer.stages.runner import run


def main(sm, log):
    plot_comparisons(summary=sm.input.summary, out={k: sm.output[k] for k in COMPARISONS},
                     ratios=dict(sm.params.ratios))


run(snakemake, main)  # noqa: F821
