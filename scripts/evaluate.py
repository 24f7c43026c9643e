"""Rule evaluate: any variant's weights + the test split -> results/metrics/<variant>.json + confusion plot
(fer.stages.evaluate.evaluate)."""
from fer.stages.evaluate import evaluate
from fer.stages.runner import run


def main(sm, log):
    evaluate(variant=sm.wildcards.variant, weights=sm.input.weights, dataset=sm.input.dataset, device=sm.params.device,
             out_metrics=sm.output.metrics, out_predictions=sm.output.predictions,
             out_confusion=sm.output.confusion)


run(snakemake, main)  # noqa: F821
