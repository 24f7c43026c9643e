"""Rule split_fold: results/data/dataset.pt (cross-validation folds) -> one fold's dataset and manifest
(fer.stages.data.split_fold)."""
from fer.stages.data import split_fold
from fer.stages.runner import run


def main(sm, log):
    split_fold(fold=int(sm.params.fold), dataset=sm.input.dataset, manifest=sm.input.manifest,
               out_dataset=sm.output.dataset, out_manifest=sm.output.manifest)


run(snakemake, main)  # noqa: F821
