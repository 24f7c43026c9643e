# Latency. Local: one job per variant and runtime (PyTorch eager on the checkpoint, onnxruntime on the exported
# graph), batch 1, `benchmark.runs` timed runs after `benchmark.warmup`, `benchmark.threads` threads.
# Jetson: every variant's ONNX graph on the device over SSH; with no `jetson.host` the job writes an empty
# table and says "skipped: no jetson.host configured".
#
# Exclusivity: a benchmark job reserves every core of the run (threads: exclusive_threads(), i.e. --cores), so
# Snakemake's scheduler never starts a training, pruning or other benchmark job beside it and two benchmarks
# cannot skew each other. The measurement itself is held to benchmark.threads (and pinned to as many cores);
# with benchmark.realtime it runs under SCHED_FIFO when permitted, so processes outside Snakemake cannot
# preempt it either (the row's scheduling column says what was used).
# On SLURM the profile asks for an exclusive node (set-resources: benchmark: slurm_extra: --exclusive).


rule benchmark:
    input:
        unpack(benchmark_input),
    output:
        json="results/benchmarks/{variant}_{runtime}.json",
    log:
        f"{LOGS}/benchmark_{{variant}}_{{runtime}}.log",
    conda:
        ENV
    threads: exclusive_threads()
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        benchmark=config["benchmark"],
    script:
        "../scripts/benchmark.py"


rule benchmark_jetson:
    input:
        unpack(jetson_input),
    output:
        csv="results/benchmarks/jetson.csv",
        json="results/benchmarks/jetson.json",
    log:
        f"{LOGS}/benchmark_jetson.log",
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
        runtime=int(config["jetson"]["timeout"] // 60) + 10,
    params:
        jetson=config["jetson"],
    script:
        "../scripts/benchmark_jetson.py"
