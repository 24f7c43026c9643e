"""Rules quantize_student / quantize_pruned: a float student -> brevitas PTQ (+ optional QAT) -> weights/<variant>.pt."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fer import quant, rule  # noqa: E402


def main(sm, log):
    p = sm.params
    quant.quantize_rule(variant=p.variant, bits=int(p.bits), act_bits=p.act_bits, method=p.method,
                        source=sm.input.source, teacher=sm.input.teacher, dataset=sm.input.dataset,
                        calibration=dict(p.calibration), qat=dict(p.qat), kd=dict(p.kd), augment=dict(p.augment),
                        seed=int(p.seed), checkpoint=p.checkpoint, out_weights=sm.output.weights, base=p.base)


rule.run(snakemake, main)  # noqa: F821
