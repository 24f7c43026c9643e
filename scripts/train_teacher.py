"""Rule train_teacher: the prepared data -> weights/teacher.pt + history + curves (fer.stages.train.train_teacher)."""
from fer.settings import Arch, Augment, TrainHP
from fer.stages.runner import run
from fer.stages.train import train_teacher


def main(sm, log):
    p = sm.params
    train_teacher(dataset=sm.input.dataset, arch=Arch.of(p.arch), hp=TrainHP.of(p.hp), augment=Augment.of(p.augment),
                  seed=int(p.seed), precision=p.precision, device=p.device, checkpoint=p.checkpoint, out_weights=sm.output.weights,
                  out_history=sm.output.history, out_plot=sm.output.curves)


run(snakemake, main)  # noqa: F821
