# Pruning guided by measurement: the per-layer sensitivity of the KD student (prune_sensitivity, one job; with
# cross-validation on the first run's student, fold 0, as benchmarks use fold 0) and the budget variants
# pr_kd_<budget> (prune_budget, one job per prune.targets entry and run), fine-tuned like pr_kd_<level>.


rule prune_sensitivity:
    input:
        student=first_run("weights/kd.pt"),
        teacher=first_run("weights/teacher.pt"),
        teacher_logits=first_run("results/training/teacher_logits.pt"),
        dataset=expand(DATASET, **run_wildcards()[0])[0],
    output:
        csv=SENSITIVITY_OUTPUTS[0],
        plot=report(
            SENSITIVITY_OUTPUTS[1],
            caption="../report/prune_sensitivity.rst",
            category="3. Pruning sensitivity",
            labels={"figure": "accuracy vs ratio per layer"},
        ),
        html=report(
            SENSITIVITY_OUTPUTS[2],
            caption="../report/prune_sensitivity.rst",
            category="3. Pruning sensitivity",
            labels={"figure": "table"},
        ),
    log:
        f"{LOGS}/prune_sensitivity.log",
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=3000,
        runtime=60,
    params:
        ratios=config["prune"]["sensitivity"]["ratios"],
        finetune_epochs=config["prune"]["sensitivity"]["finetune_epochs"],
        finetune=config["prune"]["finetune"],
        kd=config["kd"],
        augment=config["augment"],
        seed=SEEDS[0] if SEEDS else config["seed"],
        precision=config["train"]["precision"],
        device=config["train"]["device"],
        run="fold 0" if CV else "the holdout split",
    script:
        "../scripts/prune_sensitivity.py"


rule prune_budget:
    input:
        student=run_path("weights/kd.pt"),
        teacher=run_path("weights/teacher.pt"),
        teacher_logits=run_path("results/training/teacher_logits.pt"),
        dataset=DATASET,
    output:
        weights=run_path("weights/pr_kd_{budget}.pt"),
    log:
        f"{RUN_LOGS}/prune_budget_{{budget}}.log",
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        name="{budget}",
        target=lambda wc: budget_targets()[wc.budget],
        round_to=config["prune"]["round_to"],
        finetune=config["prune"]["finetune"],
        kd=config["kd"],
        augment=config["augment"],
        seed=RUN_SEED,
        precision=config["train"]["precision"],
        device=config["train"]["device"],
        checkpoint=checkpoint_path("pr_kd_{budget}"),
        bench=budget_benchmark,
        latency_rounds=config["prune"]["latency_rounds"],
    script:
        "../scripts/prune_budget.py"
