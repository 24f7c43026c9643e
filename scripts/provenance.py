"""Rule provenance: the job records of every output the targets depend on -> results/provenance.json."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fer import provenance, rule  # noqa: E402


def main(sm, log):
    doc = provenance.collect(list(sm.input), dict(sm.params.config), sm.output.provenance)
    missing = sorted(k for k, v in doc["outputs"].items() if v.get("rule") is None)
    stale = sorted(k for k, v in doc["outputs"].items() if v.get("stale"))
    log.info("provenance of %d outputs (%d environment(s)) -> %s", len(doc["outputs"]), len(doc["environments"]),
             sm.output.provenance)
    if missing:
        log.warning("no job record for %d output(s), e.g. %s", len(missing), missing[0])
    if stale:
        log.warning("%d output(s) changed after their job record was written, e.g. %s", len(stale), stale[0])


rule.run(snakemake, main)  # noqa: F821
