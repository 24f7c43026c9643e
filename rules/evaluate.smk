rule evaluate:
    input:
        weights="weights/{variant}.pt",
        dataset="results/data/dataset.pt",
    output:
        metrics="results/metrics/{variant}.json",
        confusion=report(
            "results/plots/confusion/{variant}.png",
            caption="../report/confusion.rst",
            category="2. Confusion matrices",
            labels={"variant": "{variant}"},
        ),
    log:
        f"{LOGS}/evaluate_{{variant}}.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/evaluate.py"


rule summary:
    input:
        metrics=metrics_files(),
        benchmarks=benchmark_files(),
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
