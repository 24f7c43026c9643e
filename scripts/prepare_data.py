"""Rule prepare_data: image folder(s) or fer2013.csv -> results/data/dataset.pt + manifest.csv (fer.stages.data.prepare_data)."""
from fer.settings import Split
from fer.stages.data import prepare_data
from fer.stages.runner import run


def main(sm, log):
    p = sm.params
    prepare_data(root=p.root, test_root=p.test_root, split=Split.of(p.split), classes=list(p.classes),
                 layout=p.layout, out_dataset=sm.output.dataset, out_manifest=sm.output.manifest)


run(snakemake, main)  # noqa: F821
