# Figures and the summary table of `snakemake --report report.html` (captions in report/*.rst).


rule plot_comparisons:
    input:
        summary="results/summary.csv",
    output:
        teacher_student=report(
            "results/plots/teacher_student_comparison.png",
            caption="../report/teacher_student.rst",
            category="1. Comparisons",
            labels={"figure": "teacher vs student"},
        ),
        pruning=report(
            "results/plots/pruning_comparison.png",
            caption="../report/pruning.rst",
            category="1. Comparisons",
            labels={"figure": "pruning"},
        ),
        quantization=report(
            "results/plots/quantization_comparison.png",
            caption="../report/quantization.rst",
            category="1. Comparisons",
            labels={"figure": "quantization"},
        ),
        total=report(
            "results/plots/total_comparison.png",
            caption="../report/total.rst",
            category="1. Comparisons",
            labels={"figure": "all variants (Pareto front)"},
        ),
    log:
        f"{LOGS}/plot_comparisons.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1500,
        runtime=10,
    params:
        ratios={level: config["prune"]["ratios"][level] for level in prune_levels()},
    script:
        "../scripts/plot_comparisons.py"


rule summary_table:
    input:
        summary="results/summary.csv",
        jetson="results/benchmarks/jetson.json",
    output:
        html=report(
            "results/report/summary_table.html",
            caption="../report/summary_table.rst",
            category="0. Summary",
            labels={"table": "summary"},
        ),
    log:
        f"{LOGS}/summary_table.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/summary_table.py"
