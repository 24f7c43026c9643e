# Python that serves the rules: config validation, variant lists, input functions, wildcard constraints.
# The library (scripts/fer) is installed into the environment that runs Snakemake (`make install`: pip -e .).
import sys
from pathlib import Path

from fer import config as fer_config
from fer.errors import ConfigError

try:
    fer_config.validate(config, Path(workflow.basedir) / "config" / "schema.yaml")
except ConfigError as exc:
    # One line naming the key, no traceback, before any job runs.
    print(f"Config error: {exc}", file=sys.stderr)
    sys.exit(1)


ENV = "../envs/fer.yaml"
LOGS = "results/logs"


def base_variants():
    return ["teacher", "kd", "scratch"]


def prune_levels():
    """Pruning levels of the pr_kd_<level> variants (config prune.levels)."""
    return list(config["prune"]["levels"])


def quant_bits():
    """Bit widths of the ptq_kd_<bits> variants (config quantize.bits; 32 = float reference)."""
    return [int(b) for b in config["quantize"]["bits"]]


def combined_variants():
    """ptq_pr_kd_<level>_<bits>: a pruned level, then quantized (config quantize.combined)."""
    return [
        f"ptq_pr_kd_{c['level']}_{int(c['bits'])}"
        for c in config["quantize"]["combined"]
    ]


def compressed_variants():
    return (
        [f"pr_kd_{level}" for level in prune_levels()]
        + [f"ptq_kd_{b}" for b in quant_bits()]
        + combined_variants()
    )


def all_variants():
    """Every variant the config asks for; the evaluate and benchmark rules run once per variant."""
    return base_variants() + [
        v for v in compressed_variants() if v not in base_variants()
    ]


def _level_choices():
    # every level a job may be asked for: the pruned variants and the bases of the combined ones
    return sorted(
        set(prune_levels()) | {c["level"] for c in config["quantize"]["combined"]}
    ) or ["none"]


def _bits_choices():
    return [
        str(b)
        for b in sorted(
            set(quant_bits()) | {int(c["bits"]) for c in config["quantize"]["combined"]}
        )
    ] or ["0"]


BENCH_RUNTIMES = ("pytorch", "onnxruntime")


wildcard_constraints:
    variant="|".join(all_variants()),
    level="|".join(_level_choices()),
    bits="|".join(_bits_choices()),
    runtime="|".join(BENCH_RUNTIMES),


# ------------------------------------------------------------------------------------------------ data
def data_root():
    return (
        "results/synthetic"
        if config["data"]["source"] == "synthetic"
        else config["data"]["path"]
    )


def _image_files(root):
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(
        str(p)
        for p in root.glob("*/*")
        if p.is_file() and p.suffix.lower() in {".png", ".jpg", ".jpeg"}
    )


def prepare_data_input(wildcards):
    """The image files (so that adding or changing one reruns data preparation) or the synthetic folder."""
    if config["data"]["source"] == "synthetic":
        files = {"images": "results/synthetic"}
    else:
        files = {"images": _image_files(config["data"]["path"])}
    if config["data"]["test_path"]:
        files["test_images"] = _image_files(config["data"]["test_path"])
    return files


# -------------------------------------------------------------------------------------------- training
def train_params(role):
    """Hyper-parameters of one training job (role: teacher or student)."""
    return config["train"][role]


def checkpoint_path(variant):
    return f"results/checkpoints/{variant}.pt"


# ------------------------------------------------------------------------------------------ benchmarks
def exclusive_threads():
    """Threads a benchmark job reserves: every core this run may use (--cores), so the scheduler starts no
    other job beside it and latency is measured on an otherwise idle machine (the measurement itself uses
    benchmark.threads). With no core limit (cluster executors) it asks for benchmark.threads; the SLURM
    profile asks for a whole node (--exclusive) instead."""
    try:
        cores = workflow.cores
    except WorkflowError:
        cores = None
    if not isinstance(cores, int) or cores <= 0 or cores >= 2**31:
        return config["benchmark"]["threads"]
    return cores


def benchmark_input(wildcards):
    """The checkpoint (PyTorch eager, and the reference for the ONNX output check) and, for onnxruntime, the
    exported graph."""
    files = {"weights": f"weights/{wildcards.variant}.pt"}
    if wildcards.runtime == "onnxruntime":
        files["onnx"] = f"results/onnx/{wildcards.variant}.onnx"
        files["info"] = f"results/onnx/{wildcards.variant}.json"
    return files


def jetson_input(wildcards):
    """Every variant's ONNX graph when a Jetson host is set; nothing when the benchmark is skipped."""
    if not config["jetson"]["host"]:
        return {}
    return {"onnx": expand("results/onnx/{variant}.onnx", variant=all_variants())}


def benchmark_files():
    """Local results (one per variant and runtime) and the Jetson table (zero rows when skipped)."""
    return [
        *expand(
            "results/benchmarks/{variant}_{runtime}.json",
            variant=all_variants(),
            runtime=config["benchmark"]["runtimes"],
        ),
        "results/benchmarks/jetson.json",
    ]


# -------------------------------------------------------------------------------------------- report
COMPARISON_PLOTS = ("teacher_student", "pruning", "quantization", "total")


def comparison_plots():
    return expand("results/plots/{name}_comparison.png", name=COMPARISON_PLOTS)


# ----------------------------------------------------------------------------------------- compression
def quant_method(bits):
    """ptq (calibration + bias correction) or qat (then fine-tuning) for a bit width (quantize.qat_bits)."""
    return (
        "qat"
        if int(bits) in {int(b) for b in config["quantize"]["qat_bits"]}
        else "ptq"
    )


def onnx_files():
    """Every variant's ONNX graph and its JSON sidecar (format: float | qcdq | fake-quant, parity)."""
    return expand(
        "results/onnx/{variant}.{ext}", variant=all_variants(), ext=("onnx", "json")
    )


# -------------------------------------------------------------------------------------------- targets
def metrics_files():
    return expand("results/metrics/{variant}.json", variant=all_variants())


def all_targets():
    return [
        "results/summary.csv",
        "results/report/summary_table.html",
        *comparison_plots(),
        *expand("results/plots/confusion/{variant}.png", variant=all_variants()),
        *expand("results/plots/training/{variant}.png", variant=base_variants()),
        *onnx_files(),
        "results/provenance.json",
    ]


def provenance_inputs():
    """Every final target except results/provenance.json itself (rule provenance walks back from them)."""
    return [f for f in all_targets() if f != "results/provenance.json"]
