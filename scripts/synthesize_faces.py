"""Rule synthesize_faces: config `synthetic:` -> results/synthetic/ in data.layout (fer.stages.data.synthesize_faces)."""
from fer.settings import Synthetic
from fer.stages.data import synthesize_faces
from fer.stages.runner import run


def main(sm, log):
    p = sm.params
    synthesize_faces(settings=Synthetic.of(p.synthetic), classes=list(p.classes), layout=p.layout,
                     out_dir=sm.output.faces)


run(snakemake, main)  # noqa: F821
