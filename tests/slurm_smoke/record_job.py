"""Write the lines of the inputs, then '<rule> <SLURM_JOB_ID> <sys.prefix>', to the output.

Run as `python record_job.py RULE OUTPUT [INPUT ...]` from a shell rule (this checks which python the
job finds on PATH) or as a Snakemake `script:` (the way the pipeline's rules run their code).
"""

import os
import sys


def record(rule: str, output: str, inputs: list[str]) -> None:
    lines = []
    for path in inputs:
        with open(path) as f:
            lines += f.read().splitlines()
    lines.append(f"{rule} {os.environ.get('SLURM_JOB_ID', 'none')} {sys.prefix}")
    with open(output, "w") as f:
        f.write("\n".join(lines) + "\n")


if "snakemake" in globals():
    record(snakemake.rule, snakemake.output[0], list(snakemake.input))  # noqa: F821
else:
    record(sys.argv[1], sys.argv[2], sys.argv[3:])
