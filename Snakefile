# FER-Jetson-Nano pipeline: CK+ (or synthetic faces) -> teacher -> KD student -> pruning / quantization
# -> benchmarks -> plots and report. `snakemake --cores all` runs the study; see README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/compress.smk"
include: "rules/prune_search.smk"
include: "rules/evaluate.smk"
include: "rules/benchmark.smk"
include: "rules/report.smk"
include: "rules/provenance.smk"


onstart:
    check_latency_budgets()


rule all:
    default_target: True
    input:
        all_targets(),


rule data:
    input:
        rules.prepare_data.output,


rule models:
    input:
        expand("weights/{variant}.pt", variant=base_variants()),


rule compress:
    input:
        expand("weights/{variant}.pt", variant=compressed_variants()),


rule onnx:
    input:
        onnx_files(),


rule benchmarks:
    input:
        benchmark_files(),


rule plots:
    input:
        comparison_plots(),
        "results/report/summary_table.html",
