"""Rule prune_budget: weights/kd.pt -> the channel counts that meet a prune.targets budget -> KD fine-tuned ->
weights/pr_kd_<budget>.pt (fer.stages.prune_search.prune_budget)."""
from fer.settings import KD, Augment, Benchmark, TrainHP
from fer.stages.prune_search import prune_budget
from fer.stages.runner import run


def main(sm, log):
    p = sm.params
    prune_budget(name=p.name, target=dict(p.target), round_to=int(p.round_to), student=sm.input.student,
                 teacher=sm.input.teacher, dataset=sm.input.dataset, finetune=TrainHP.of(p.finetune), kd=KD.of(p.kd),
                 augment=Augment.of(p.augment), seed=int(p.seed), precision=p.precision, device=p.device,
                 checkpoint=p.checkpoint, out_weights=sm.output.weights,
                 bench=Benchmark.of(p.bench) if p.bench else None,
                 latency_rounds=int(p.latency_rounds), teacher_logits=sm.input.teacher_logits)


run(snakemake, main)  # noqa: F821
