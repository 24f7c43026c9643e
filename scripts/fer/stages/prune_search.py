"""Rules prune_sensitivity and prune_budget: which layer of the KD student tolerates pruning, and the pruned
student that meets a MAC or latency budget (prune.targets), fine-tuned like pr_kd_<level>."""
from __future__ import annotations

import copy
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

from fer import files
from fer.compression import budget, prune, sensitivity
from fer.data import datasets
from fer.deploy import latency, onnx_export
from fer.errors import FERError
from fer.models import nets, training
from fer.report import sensitivity as sensitivity_report
from fer.settings import KD, Augment, Benchmark, TrainHP
from fer.stages.compress import float_student, prune_student
from fer.stages.train import frozen_teacher, resume_key

log = logging.getLogger("fer")


def _scorer(vx, vy):
    """``measure(model) -> {"val_acc", "val_loss"}`` on the validation images (cross-entropy, no smoothing)."""
    def measure(model) -> dict:
        logits = training.predict_logits(model, vx)
        return {"val_acc": float((logits.argmax(1) == vy).float().mean()),
                "val_loss": float(torch.nn.functional.cross_entropy(logits, vy))}
    return measure


def prune_sensitivity(*, student, teacher, dataset, ratios, finetune: TrainHP, finetune_epochs: int, kd: KD,
                      augment: Augment, seed: int, precision: str, device: str, run: str, out_csv, out_plot,
                      out_html, teacher_logits) -> pd.DataFrame:
    """Rule prune_sensitivity: each prunable layer of the KD student pruned alone at each of ``ratios``,
    measured on the validation split without fine-tune and after ``finetune_epochs`` epochs of KD fine-tune
    (``finetune``'s other settings) -> results/prune/sensitivity.csv, its plot and its HTML table. ``run``:
    which run's student it is (e.g. "fold 0"), for the captions. ``teacher_logits``: as for rule prune_student."""
    ds, tx, ty, vx, vy = datasets.train_val(dataset)
    classes = ds["classes"]
    training.set_seed(seed)
    model = float_student(student, classes, dataset)
    teacher_model = frozen_teacher(teacher, classes, dataset)
    hp = TrainHP.of({**finetune.as_dict(), "epochs": int(finetune_epochs)})
    dev = training.resolve_device(device)
    recorded = training.load_teacher_logits(teacher_logits)

    def tune(clone, layer, ratio):
        training.fit(clone, tx, ty, vx, vy, hp=hp, augment_cfg=augment, seed=seed, teacher=teacher_model, kd=kd,
                     checkpoint=None, desc=f"{layer}@{ratio:g}", data_key="", progress=False,
                     precision=training.resolve_precision(precision, dev), device=dev, teacher_logits=recorded,
                     teacher_source=resume_key(dataset, teacher))

    rows = sensitivity.sweep(model, [float(r) for r in ratios], _scorer(vx, vy), tune)
    table = pd.DataFrame(rows, columns=sensitivity.COLUMNS)
    with files.atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    protocol = (f"KD student of {run}: each layer pruned alone (torch-pruning, group L1) at ratios "
                f"{', '.join(f'{float(r):g}' for r in ratios)}; validation accuracy ({len(vy)} images) without "
                f"fine-tune and after {int(finetune_epochs)} epoch(s) of KD fine-tune (prune.finetune's settings); "
                f"MACs share of the unpruned student's {int(table['macs'].max()):,}.")
    sensitivity_report.table_html(table, out_html, protocol)
    sensitivity_report.plot(table, out_plot, f"Pruning sensitivity per layer (KD student of {run}; validation accuracy)")
    log.info("wrote %s (%d rows), %s, %s", out_csv, len(table), out_plot, out_html)
    return table


def _latency_meter(model, arch: dict, bench: Benchmark, rounds: int, workdir: Path):
    """``latency_of(counts) -> ms``: the batch-1 latency in onnxruntime of ``model`` pruned to ``counts``, exported
    as the fp32 graph the pipeline ships for a pruned level and timed as the benchmark rule times it
    (``benchmark.runs`` after ``benchmark.warmup``, ``benchmark.threads``, pinned per ``benchmark.pin``),
    ``rounds`` times: the lowest of the rounds' p50. One round on a shared machine can be far off: measured here
    at load 3.5 on 2 cores, the same network's p50 0.097 and 0.149 ms in two rounds, and its CPU time moved with
    it (a busy neighbour slows the core, not only the scheduling), so neither one round nor CPU time would do."""
    def latency_of(counts) -> float:
        clone = copy.deepcopy(model)
        prune.prune_model(clone, budget.ratios_of(arch, counts))
        path = workdir / "candidate.onnx"
        onnx_export.export_model(clone.eval(), path, "float")
        p50s = []
        with latency.pinned(int(bench.threads) if bench.pin else None):
            for _ in range(max(1, int(rounds))):
                row, _ = latency.bench_onnxruntime(path, int(bench.runs), int(bench.warmup), int(bench.threads))
                p50s.append(float(row["latency_ms_p50"]))
        log.info("  channels %s: p50 %.4f ms (rounds %s, 1-minute load %.2f)",
                 budget.counts_of(nets.current_arch(clone)), min(p50s), " ".join(f"{v:.4f}" for v in p50s),
                 os.getloadavg()[0])
        return min(p50s)
    return latency_of


def check_latency_budgets(targets: list, student: dict, num_classes: int, round_to: int, bench: Benchmark,
                          rounds: int) -> list[str]:
    """Before any job runs (the workflow's ``onstart``): the latency budgets among ``targets`` (config
    prune.targets) that no search could meet, one message per budget naming its key. Latency does not depend on
    the weights, so the student of config ``models.student`` is built untrained and timed here as rule
    prune_budget times its candidates (:func:`_latency_meter`): the smallest network ``round_to`` allows (a budget
    under it cannot be met) and the full student (a budget it already meets leaves nothing to prune). The job
    measures again and has the last word: this machine may not be the one the job runs on, and its load moves
    the figures (a budget within 10% of either limit is let through)."""
    entries = [(i, t) for i, t in enumerate(targets) if "latency_ms" in t]
    if not entries:
        return []
    model = nets.FERNet(channels=student["channels"], hidden=student["hidden"], dropout=student["dropout"],
                        num_classes=num_classes).eval()
    arch = nets.current_arch(model)
    with tempfile.TemporaryDirectory(prefix="fer-budget-check-") as tmp:
        latency_of = _latency_meter(model, arch, bench, rounds, Path(tmp))
        smallest = budget.counts_of(budget.smallest_arch(arch, round_to))
        floor, full = latency_of(dict(smallest)), latency_of(budget.counts_of(arch))
    errors = []
    for i, t in entries:
        key, ms = f"prune.targets[{i}].latency_ms", float(t["latency_ms"])
        if ms < floor / 1.1:
            errors.append(f"config key {key}: a budget of {ms:g} ms cannot be met: the smallest network "
                          f"prune.round_to {round_to} allows (channels {[smallest[f'conv{j}'] for j in (1, 2, 3)]}, "
                          f"hidden {smallest['fc1']}) measured {floor:.4f} ms on this machine")
        elif ms > full * 1.1:
            errors.append(f"config key {key}: the unpruned student measured {full:.4f} ms on this machine, within "
                          f"the budget of {ms:g} ms: nothing to prune (give a smaller budget)")
    return errors


def main(argv=None) -> int:
    """``python -m fer.stages.prune_search '<json>'``: :func:`check_latency_budgets` in a process of its own (the
    workflow's onstart: timing pins the process to a core, which the Snakemake process and its jobs must not
    inherit). Prints one line per refused budget; exit status 1 if any."""
    args = json.loads((argv or sys.argv[1:])[0])
    errors = check_latency_budgets(args["targets"], args["student"], int(args["num_classes"]), int(args["round_to"]),
                                   Benchmark.of(args["benchmark"]), int(args["rounds"]))
    for e in errors:
        print(e)
    return 1 if errors else 0


def prune_budget(*, name: str, target: dict, round_to: int, student, teacher, dataset, finetune: TrainHP, kd: KD,
                 augment: Augment, seed: int, precision: str, device: str, checkpoint, out_weights,
                 bench: Benchmark | None, latency_rounds: int, teacher_logits) -> dict:
    """Rule prune_budget: the KD student -> the per-layer channel counts that meet ``target`` (``{"macs": M}``:
    :func:`fer.compression.budget.search`; ``{"latency_ms": L, "runtime": "onnxruntime"}``:
    :func:`fer.compression.budget.search_latency`, each candidate timed as ``bench`` says; both guided by the
    validation loss of each candidate cut) -> pruned and KD fine-tuned as rule prune_student does ->
    weights/pr_kd_<name>.pt, with ``meta.budget``. ``teacher_logits``: as for rule prune_student."""
    latency_budget = "latency_ms" in target
    if latency_budget and bench is None:
        raise FERError(f"prune.targets {dict(target)}: a latency budget needs the benchmark settings")
    if set(target) != ({"latency_ms", "runtime"} if latency_budget else {"macs"}) or \
            (latency_budget and target["runtime"] != "onnxruntime"):
        raise FERError(f"prune.targets: a budget is {{macs: M}} or {{latency_ms: L, runtime: onnxruntime}}, got "
                       f"{dict(target)}")
    ds, _, _, vx, vy = datasets.train_val(dataset)
    model = float_student(student, ds["classes"], dataset)
    arch = nets.current_arch(model)
    measure = _scorer(vx, vy)

    def loss_of(counts):
        clone = copy.deepcopy(model)
        prune.prune_model(clone, budget.ratios_of(arch, counts))
        return measure(clone)["val_loss"]

    with tempfile.TemporaryDirectory(prefix="fer-budget-") as tmp:
        try:
            if latency_budget:
                found = budget.search_latency(arch, float(target["latency_ms"]), int(round_to), loss_of,
                                              _latency_meter(model, arch, bench, latency_rounds, Path(tmp)))
            else:
                found = budget.search(arch, float(target["macs"]), int(round_to), loss_of)
        except ValueError as exc:
            raise FERError(f"prune.targets {dict(target)}: {exc}") from None
    ratios = budget.ratios_of(arch, found["counts"])
    if latency_budget:
        log.info("pr_kd_%s: budget %.4f ms (%s, %d thread(s)) -> channels %s, p50 %.4f ms (%.1f%% of the budget; "
                 "full student %.4f ms, smallest allowed network %.4f ms), MACs %d (%.1f%% of the student), %d "
                 "candidates scored", name, found["target_latency_ms"], target["runtime"], int(bench.threads),
                 found["counts"], found["latency_ms"], 100 * found["reached"], found["latency_full_ms"],
                 found["latency_floor_ms"], found["macs"], 100 * found["macs"] / found["macs_full"],
                 found["evaluations"])
        if not found["within_tolerance"]:
            log.warning("pr_kd_%s: measured %.4f ms at the smallest network, over the %.4f ms budget (the machine "
                        "was busier than when its floor was timed)", name, found["latency_ms"],
                        found["target_latency_ms"])
    else:
        log.info("pr_kd_%s: budget %s MACs -> channels %s, MACs %d (%.1f%% of the budget, %.1f%% of the student), "
                 "%d candidates measured%s", name, f"{float(target['macs']):,.0f}", found["counts"], found["macs"],
                 100 * found["reached"], 100 * found["macs"] / found["macs_full"], found["evaluations"],
                 f"; not a multiple of {round_to}: {found['not_multiple']}" if found["not_multiple"] else "")
        if not found["within_tolerance"]:
            log.warning("pr_kd_%s: reached %.1f%% of the budget, outside the %.0f%% tolerance", name,
                        100 * found["reached"], 100 * budget.TOLERANCE)
    record = {"target": dict(target), "round_to": int(round_to), "counts": found["counts"],
              "macs": found["macs"], "macs_full": found["macs_full"], "reached": found["reached"],
              "within_tolerance": found["within_tolerance"], "not_multiple": found["not_multiple"],
              "steps": found["steps"], "search": "greedy: least validation loss per MAC saved, steps of round_to"}
    if latency_budget:
        record.update({k: found[k] for k in ("latency_ms", "latency_full_ms", "latency_floor_ms")},
                      search=record["search"] + "; stopped at the first network measured within the latency budget",
                      measured={"runtime": target["runtime"], "threads": int(bench.threads), "runs": int(bench.runs),
                                "warmup": int(bench.warmup), "graph": "fp32 ONNX, batch 1",
                                "statistic": f"lowest p50 of {int(latency_rounds)} rounds"})
    return prune_student(level=name, ratios=ratios, student=student, teacher=teacher, dataset=dataset,
                         finetune=finetune, kd=kd, augment=augment, seed=seed, precision=precision, device=device,
                         checkpoint=checkpoint, out_weights=out_weights, budget=record,
                         teacher_logits=teacher_logits)


if __name__ == "__main__":
    sys.exit(main())
