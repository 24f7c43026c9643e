"""Rule prepare_data: image folder(s) -> results/data/dataset.pt + manifest.csv (subject-independent split)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fer import data, rule  # noqa: E402


def main(sm, log):
    p = sm.params
    log.info("preparing %s%s", p.root, f" (test set: {p.test_root})" if p.test_root else "")
    data.prepare(p.root, sm.output.dataset, sm.output.manifest, dict(p.split), test_root=p.test_root or None)


rule.run(snakemake, main)  # noqa: F821
