"""Rule prune_sensitivity: the KD student (fold 0's with cross-validation) -> each layer pruned alone at
prune.sensitivity.ratios, with and without a short KD fine-tune -> results/prune/sensitivity.csv, its plot and
HTML table (fer.stages.prune_search.prune_sensitivity)."""
from fer.settings import KD, Augment, TrainHP
from fer.stages.prune_search import prune_sensitivity
from fer.stages.runner import run


def main(sm, log):
    p = sm.params
    prune_sensitivity(student=sm.input.student, teacher=sm.input.teacher, dataset=sm.input.dataset,
                      ratios=list(p.ratios), finetune=TrainHP.of(p.finetune), finetune_epochs=int(p.finetune_epochs),
                      kd=KD.of(p.kd), augment=Augment.of(p.augment), seed=int(p.seed), precision=p.precision,
                      device=p.device, run=p.run, out_csv=sm.output.csv, out_plot=sm.output.plot,
                      out_html=sm.output.html, teacher_logits=sm.input.teacher_logits)


run(snakemake, main)  # noqa: F821
