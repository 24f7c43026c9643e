"""Rule evaluate: any variant's weights + the test split -> results/metrics/<variant>.json + confusion plot."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fer import evaluation, rule  # noqa: E402


def main(sm, log):
    evaluation.evaluate_rule(sm.wildcards.variant, sm.input.weights, sm.input.dataset, sm.output.metrics,
                             sm.output.confusion)


rule.run(snakemake, main)  # noqa: F821
