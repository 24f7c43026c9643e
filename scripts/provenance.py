"""Rule provenance: the job records of every output the targets depend on -> results/provenance.json
(fer.stages.report.provenance)."""
from fer.stages.report import provenance
from fer.stages.runner import run


def main(sm, log):
    provenance(targets=list(sm.input), config=dict(sm.params.config), out_json=sm.output.provenance)


run(snakemake, main)  # noqa: F821
