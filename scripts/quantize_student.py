"""Rules quantize_student and quantize_pruned (one rule, `use rule ... with:`): a float student -> brevitas PTQ
(+ QAT) -> weights/<variant>.pt (fer.stages.compress.quantize_student)."""
from fer.settings import KD, QAT, Augment, Calibration
from fer.stages.compress import quantize_student
from fer.stages.runner import run


def main(sm, log):
    p = sm.params
    quantize_student(variant=p.variant, bits=int(p.bits), act_bits=p.act_bits, method=p.method,
                     source=sm.input.source, teacher=sm.input.teacher, dataset=sm.input.dataset,
                     calibration=Calibration.of(p.calibration), qat=QAT.of(p.qat), kd=KD.of(p.kd),
                     augment=Augment.of(p.augment), seed=int(p.seed), device=p.device, checkpoint=p.checkpoint,
                     out_weights=sm.output.weights, base=p.base, teacher_logits=sm.input.teacher_logits,
                     precision=p.precision)


run(snakemake, main)  # noqa: F821
