"""Rule prune_student: weights/kd.pt -> pruned at one level -> KD fine-tuned -> weights/pr_kd_<level>.pt
(fer.stages.compress.prune_student)."""
from fer.settings import KD, Augment, TrainHP
from fer.stages.compress import prune_student
from fer.stages.runner import run


def main(sm, log):
    p = sm.params
    prune_student(level=p.level, ratios=dict(p.ratios), student=sm.input.student, teacher=sm.input.teacher,
                  dataset=sm.input.dataset, finetune=TrainHP.of(p.finetune), kd=KD.of(p.kd),
                  augment=Augment.of(p.augment), seed=int(p.seed), precision=p.precision, device=p.device, checkpoint=p.checkpoint,
                  out_weights=sm.output.weights, budget=None, teacher_logits=sm.input.teacher_logits)


run(snakemake, main)  # noqa: F821
