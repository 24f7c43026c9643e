"""Rule prune_student: weights/kd.pt -> pruned at one level (torch-pruning, L1) -> KD fine-tuned -> weights/pr_kd_<level>.pt."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fer import prune, rule  # noqa: E402


def main(sm, log):
    p = sm.params
    prune.prune_rule(level=p.level, ratios=dict(p.ratios), student=sm.input.student, teacher=sm.input.teacher,
                     dataset=sm.input.dataset, finetune=dict(p.finetune), kd=dict(p.kd), augment=dict(p.augment),
                     seed=int(p.seed), checkpoint=p.checkpoint, out_weights=sm.output.weights)


rule.run(snakemake, main)  # noqa: F821
