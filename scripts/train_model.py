"""Rules train_teacher, train_student_kd, train_student_scratch: one script, the teacher is optional."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fer import training  # noqa: E402
from fer import rule  # noqa: E402


def main(sm, log):
    p = sm.params
    training.train_rule(
        variant=p.variant, dataset=sm.input.dataset, teacher=sm.input.get("teacher"), arch=dict(p.arch),
        hp=dict(p.hp), kd=dict(p.kd) if p.kd else None, augment=dict(p.augment), seed=int(p.seed),
        checkpoint=p.checkpoint, out_weights=sm.output.weights, out_history=sm.output.history,
        out_plot=sm.output.curves)


rule.run(snakemake, main)  # noqa: F821
