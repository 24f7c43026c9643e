"""Rule synthesize_faces: config `synthetic:` -> results/synthetic/<class>/*.png (fer.stages.data.synthesize_faces)."""
from fer.settings import Synthetic
from fer.stages.data import synthesize_faces
from fer.stages.runner import run


def main(sm, log):
    synthesize_faces(settings=Synthetic.of(sm.params.synthetic), out_dir=sm.output.faces)


run(snakemake, main)  # noqa: F821
