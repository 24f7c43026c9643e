# results/provenance.json: for every output, the config values (rule params), code version (git commit and
# dirty flag, and a hash of the workflow files) and package versions it came from. Every rule script writes a
# job record (fer.report.provenance.record_job, via fer.stages.runner.run); this rule walks them from the final targets back.


rule provenance:
    input:
        provenance_inputs(),
    output:
        provenance="results/provenance.json",
    log:
        f"{LOGS}/provenance.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=config,
    script:
        "../scripts/provenance.py"
