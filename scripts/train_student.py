"""Rules train_student_kd and train_student_scratch (one rule, `use rule ... with:`): the prepared data (and the
teacher for KD) -> weights/<variant>.pt + history + curves (fer.stages.train.train_student)."""
from fer.settings import KD, Arch, Augment, TrainHP
from fer.stages.runner import run
from fer.stages.train import train_student


def main(sm, log):
    p = sm.params
    teacher = sm.input.get("teacher")
    train_student(variant=p.variant, dataset=sm.input.dataset, teacher=teacher, arch=Arch.of(p.arch),
                  hp=TrainHP.of(p.hp), kd=KD.of(p.kd) if teacher else None, augment=Augment.of(p.augment),
                  seed=int(p.seed), precision=p.precision, device=p.device, checkpoint=p.checkpoint, out_weights=sm.output.weights,
                  out_history=sm.output.history, out_plot=sm.output.curves,
                  out_teacher_logits=sm.output.get("teacher_logits"))


run(snakemake, main)  # noqa: F821
