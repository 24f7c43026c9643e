# Evaluation of every variant on its run's test split (with cross-validation: every fold's model on that
# fold's test subjects), the summary table, and with folds the cross-validated table and paired comparisons.


rule evaluate:
    input:
        weights=run_path("weights/{variant}.pt"),
        dataset=DATASET,
    output:
        metrics=run_path("results/metrics/{variant}.json"),
        predictions=run_path("results/predictions/{variant}.csv"),
        confusion=report(
            run_path("results/plots/confusion/{variant}.png"),
            caption="../report/confusion.rst",
            category="2. Confusion matrices",
            labels=confusion_labels(),
        ),
    log:
        f"{RUN_LOGS}/evaluate_{{variant}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        device=config["train"]["device"],
    script:
        "../scripts/evaluate.py"


rule summary:
    input:
        unpack(summary_input),
    output:
        summary="results/summary.csv",
    log:
        f"{LOGS}/summary.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/summary.py"


rule cv_summary:
    input:
        metrics=metrics_files(),
        predictions=prediction_files(),
        dataset="results/data/dataset.pt",
    output:
        summary="results/cv/summary.csv",
        comparisons="results/cv/comparisons.csv",
        folds="results/cv/folds.csv",
    log:
        f"{LOGS}/cv_summary.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        variants=all_variants(),
        bases={v: comparison_base(v) for v in all_variants()},
        folds=config["data"]["split"]["folds"],
        seeds=config["seeds"],
    script:
        "../scripts/cv_summary.py"
