# Python that serves the rules: config validation, variant lists, input functions, wildcard constraints.
# The library (scripts/fer) is installed into the environment that runs Snakemake (`make install`: pip -e .).
import functools
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from snakemake.io import contains_wildcard

from fer import config as fer_config
from fer import variants as fer_variants
from fer.compression import budget as fer_budget
from fer.data import images
from fer.errors import ConfigError

try:
    fer_config.validate(config, Path(workflow.basedir) / "config" / "schema.yaml")
except ConfigError as exc:
    # One line naming the key, no traceback, before any job runs.
    print(f"Config error: {exc}", file=sys.stderr)
    sys.exit(1)


ENV = "../envs/fer.yaml"
LOGS = "results/logs"

# ------------------------------------------------------------------------------------ cross-validation
# data.split.folds >= 3: every stage that depends on the split runs once per fold (wildcard {fold}), and with
# `seeds` once per fold and seed (wildcard {seed}); a run's files live under results/folds/<fold>/[seed<s>/].
# folds = 0: one holdout split and today's paths (weights/, results/metrics/ ...).
FOLDS = int(config["data"]["split"]["folds"])
CV = FOLDS > 0
SEEDS = [int(s) for s in config["seeds"]]
FOLD_DIR = "results/folds/{fold}/" if CV else ""
RUN_DIR = f"{FOLD_DIR}seed{{seed}}/" if SEEDS else FOLD_DIR
DATASET = f"{FOLD_DIR}data/dataset.pt" if CV else "results/data/dataset.pt"
RUN_SEED = "{seed}" if SEEDS else config["seed"]


def run_path(path):
    """Where a per-run file lives: ``weights/X`` -> ``<run>/weights/X``, ``results/Y`` -> ``<run>/Y`` (unchanged
    without cross-validation)."""
    if not CV:
        return path
    rel = path[len("results/") :] if path.startswith("results/") else path
    return f"{RUN_DIR}{rel}"


RUN_LOGS = run_path("results/logs")


def run_wildcards():
    """Every run: ``{"fold": f}`` or ``{"fold": f, "seed": s}`` (one empty run without cross-validation)."""
    if not CV:
        return [{}]
    return [
        {"fold": f, **({"seed": s} if SEEDS else {})}
        for f in range(FOLDS)
        for s in (SEEDS or [None])
    ]


def every_run(pattern, **kw):
    """``run_path(pattern)`` for every run (and every value of the other wildcards in ``kw``)."""
    out = []
    for wc in run_wildcards():
        out += expand(run_path(pattern), **wc, **kw)
    return out


def first_run(pattern, **kw):
    """``run_path(pattern)`` of the first run (fold 0, the first seed): the model that is benchmarked, since
    latency does not depend on the fold."""
    return expand(run_path(pattern), **run_wildcards()[0], **kw)[0]


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


def fp16_bases():
    """kd and pr_kd_<level> variants converted to fp16 (config quantize.fp16): the fp16_<base> variants."""
    return list(config["quantize"]["fp16"])


def budget_benchmark(wildcards):
    """The benchmark settings a latency budget is measured with (None for a MAC budget, so that benchmark
    settings do not rerun MAC-budget variants)."""
    return (
        config["benchmark"]
        if "latency_ms" in budget_targets()[wildcards.budget]
        else None
    )


def check_latency_budgets():
    """Onstart (before any job runs, not in a dry run): latency budgets (prune.targets) that cannot be met on
    this machine, or that the unpruned student already meets, are one config error each, naming the key. The
    timing (fer.stages.prune_search.check_latency_budgets) runs in a process of its own: it pins itself to a
    core, which Snakemake and its jobs must not inherit. Nothing to do without latency budgets.
    """
    if not any("latency_ms" in t for t in config["prune"]["targets"]):
        return
    payload = {
        "targets": config["prune"]["targets"],
        "student": config["models"]["student"],
        "num_classes": len(config["data"]["classes"]),
        "round_to": config["prune"]["round_to"],
        "benchmark": config["benchmark"],
        "rounds": config["prune"]["latency_rounds"],
    }
    proc = subprocess.run(
        [sys.executable, "-m", "fer.stages.prune_search", json.dumps(payload)],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        lines = proc.stdout.strip().splitlines() or [proc.stderr.strip()[-2000:]]
        for line in lines:
            print(f"Config error: {line}", file=sys.stderr)
        sys.exit(1)


def budget_targets():
    """Budget name -> budget of the pr_kd_<budget> variants (config prune.targets, e.g. macs1500k ->
    {macs: 1.5e6}; names from fer.compression.budget.budget_name, unique: checked by the validator).
    """
    return {fer_budget.budget_name(t): dict(t) for t in config["prune"]["targets"]}


def compressed_variants():
    return (
        [f"pr_kd_{level}" for level in prune_levels()]
        + [f"pr_kd_{name}" for name in budget_targets()]
        + [f"ptq_kd_{b}" for b in quant_bits()]
        + combined_variants()
        + [f"fp16_{b}" for b in fp16_bases()]
    )


def all_variants():
    """Every variant the config asks for; the evaluate and benchmark rules run once per variant."""
    return base_variants() + [
        v for v in compressed_variants() if v not in base_variants()
    ]


def _level_choices():
    # every level a job may be asked for: the pruned variants and the bases of the combined and fp16 ones
    return sorted(
        set(prune_levels())
        | {c["level"] for c in config["quantize"]["combined"]}
        | {b[len("pr_kd_") :] for b in fp16_bases() if b.startswith("pr_kd_")}
    ) or ["none"]


def _bits_choices():
    return [
        str(b)
        for b in sorted(
            set(quant_bits()) | {int(c["bits"]) for c in config["quantize"]["combined"]}
        )
    ] or ["0"]


BENCH_RUNTIMES = ("pytorch", "onnxruntime", "onnxruntime-cuda")


wildcard_constraints:
    fold="|".join(str(f) for f in range(FOLDS)) if CV else "0",
    seed="|".join(str(x) for x in SEEDS) if SEEDS else "0",
    variant="|".join(all_variants()),
    level="|".join(_level_choices()),
    bits="|".join(_bits_choices()),
    base="|".join(fp16_bases()) or "none",
    budget="|".join(budget_targets()) or "none",
    runtime="|".join(BENCH_RUNTIMES),


# ------------------------------------------------------------------------------------------------ data
def data_root(wildcards=None):
    """The folder (or fer2013.csv) prepare_data reads (a function, also in params, so that braces in the path
    are no wildcards)."""
    if config["data"]["source"] == "folder":
        return config["data"]["path"]
    if config["data"]["layout"] == "fer2013-csv":
        return "results/synthetic/fer2013.csv"
    return "results/synthetic"


def data_test_root(wildcards=None):
    """data.test_path, for params (a function, so that braces in the path are no wildcards)."""
    return config["data"]["test_path"]


def _data_folders():
    """The folders whose images prepare_data reads itself (the synthetic folder is a rule's output)."""
    roots = [config["data"]["path"]] if config["data"]["source"] == "folder" else []
    test = config["data"]["test_path"]
    return roots + ([test] if test else [])


def _literal(path):
    # Snakemake reads `{name}` and `{name,regex}` in an input path as a wildcard (no escape exists) and warns
    # about line breaks: such files are covered by data_fingerprint instead.
    return not contains_wildcard(path) and "\n" not in path and "\r" not in path


@functools.lru_cache(maxsize=None)
def _data_files(root, layout):
    """(input paths, other paths) of the files data preparation reads below ``root`` in ``layout`` (the
    library's fer.data.images.data_files, the same list fer.data.datasets.read_layout reads).
    """
    classes = config["data"]["classes"]
    used = [str(p) for p in images.data_files(root, classes, layout)]
    return [f for f in used if _literal(f)], [f for f in used if not _literal(f)]


def prepare_data_input(wildcards):
    """The image files data preparation reads, so that adding, removing or changing one reruns it and a file it
    skips (notes.txt, neutral/) does not; or the synthetic folder."""
    files = {}
    if config["data"]["source"] == "synthetic":
        files["images"] = "results/synthetic"
    else:
        data = config["data"]
        files["images"] = _data_files(data["path"], data["layout"])[0]
    if config["data"]["test_path"]:
        test = config["data"]["test_path"]
        files["test_images"] = _data_files(test, "class-folders")[0]
    return files


def data_fingerprint(wildcards):
    """Name, size and mtime of the images prepare_data reads but cannot list as inputs (see _literal), hashed:
    a param, so that adding, removing or changing one reruns it too (Snakemake's params trigger).
    """
    lines = []
    for root in _data_folders():
        layout = (
            config["data"]["layout"]
            if root == config["data"]["path"]
            else "class-folders"
        )
        for f in _data_files(root, layout)[1]:
            try:
                st = os.stat(f)
                lines.append(f"{f}\t{st.st_size}\t{st.st_mtime_ns}")
            except OSError:
                lines.append(f"{f}\t-")
    if not lines:
        return ""
    text = "\n".join(lines).encode("utf-8", "surrogateescape")
    return f"{len(lines)} files, sha1 {hashlib.sha1(text).hexdigest()}"


# -------------------------------------------------------------------------------------------- training
def checkpoint_path(variant):
    """The per-epoch resume checkpoint of a training job."""
    return run_path(f"results/checkpoints/{variant}.pt")


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
    exported graph. With cross-validation: the first run's model (latency does not depend on the fold).
    """
    v = wildcards.variant
    files = {"weights": first_run("weights/{variant}.pt", variant=v)}
    if wildcards.runtime.startswith("onnxruntime"):
        files["onnx"] = first_run("results/onnx/{variant}.onnx", variant=v)
        files["info"] = first_run("results/onnx/{variant}.json", variant=v)
    return files


def jetson_input(wildcards):
    """Every variant's ONNX graph when a Jetson host is set; nothing when the benchmark is skipped."""
    if not config["jetson"]["host"]:
        return {}
    return {
        "onnx": [
            first_run("results/onnx/{variant}.onnx", variant=v) for v in all_variants()
        ]
    }


def eager_runs_as_deployed(variant):
    """Whether eager PyTorch runs ``variant`` as it is deployed. Not for brevitas-quantized variants (eager
    PyTorch only emulates their quantization in fp32: a 10-16 ms emulation, no deployment figure) nor fp16
    variants (eager runs their upcast weights in fp32: the base's row); their deployable is the ONNX graph.
    """
    quantized = fer_variants.is_brevitas_quantized(variant)
    return not quantized and not fer_variants.is_fp16(variant)


def benchmark_files():
    """Local results (one per variant and runtime; no eager PyTorch row where it would time an emulation, see
    eager_runs_as_deployed) and the Jetson table (zero rows when skipped)."""
    return [
        f"results/benchmarks/{v}_{rt}.json"
        for v in all_variants()
        for rt in config["benchmark"]["runtimes"]
        if rt != "pytorch" or eager_runs_as_deployed(v)
    ] + ["results/benchmarks/jetson.json"]


# -------------------------------------------------------------------------------------------- report
COMPARISON_PLOTS = ("teacher_student", "pruning", "quantization", "total")


def comparison_plots():
    return expand("results/plots/{name}_comparison.png", name=COMPARISON_PLOTS)


# the prune_sensitivity rule runs on the KD student of the first run (fold 0 with cross-validation)
SENSITIVITY_OUTPUTS = (
    "results/prune/sensitivity.csv",
    "results/plots/prune_sensitivity.png",
    "results/report/prune_sensitivity.html",
)


def confusion_labels():
    """Labels of a confusion matrix in the Snakemake report."""
    if not CV:
        return {"variant": "{variant}"}
    return {
        "variant": "{variant}",
        "fold": "{fold}",
        **({"seed": "{seed}"} if SEEDS else {}),
    }


# ----------------------------------------------------------------------------------------- compression
def quant_method(bits):
    """ptq (calibration + bias correction) or qat (then fine-tuning) for a bit width (quantize.qat_bits)."""
    return (
        "qat"
        if int(bits) in {int(b) for b in config["quantize"]["qat_bits"]}
        else "ptq"
    )


def comparison_base(variant):
    """What a variant is compared with in results/cv/comparisons.csv: teacher -> kd (what distillation costs),
    kd -> scratch (what distillation buys), every compressed variant -> the variant it was made from.
    """
    if variant == "teacher":
        return "kd"
    if variant == "kd":
        return "scratch"
    if variant == "scratch":
        return None
    if variant.startswith("ptq_pr_kd_"):
        level = variant[len("ptq_pr_kd_") :].rsplit("_", 1)[0]
        return f"pr_kd_{level}"
    if variant.startswith("fp16_"):
        return variant[len("fp16_") :]
    return "kd"


def onnx_files():
    """Every variant's ONNX graph and its JSON sidecar (format: float | fp16 | qcdq | int4 | fake-quant,
    parity); with cross-validation the first run's (the graphs that are benchmarked)."""
    return [
        first_run("results/onnx/{variant}.{ext}", variant=v, ext=ext)
        for v in all_variants()
        for ext in ("onnx", "json")
    ]


# -------------------------------------------------------------------------------------------- targets
def metrics_files():
    """Every variant's metrics, for every run."""
    return every_run("results/metrics/{variant}.json", variant=all_variants())


def prediction_files():
    """Every variant's test-split predictions, for every run."""
    return every_run("results/predictions/{variant}.csv", variant=all_variants())


def summary_input(wildcards):
    """The table's rows: every variant's metrics (with folds: the cross-validated table) and benchmark rows."""
    rows = {"cv": "results/cv/summary.csv"} if CV else {"metrics": metrics_files()}
    # the export sidecars: the deployable file's size and format
    exports = [f for f in onnx_files() if f.endswith(".json")]
    return {**rows, "benchmarks": benchmark_files(), "exports": exports}


def all_targets():
    return [
        "results/summary.csv",
        *(["results/cv/summary.csv", "results/cv/comparisons.csv"] if CV else []),
        "results/report/summary_table.html",
        *comparison_plots(),
        *every_run("results/plots/confusion/{variant}.png", variant=all_variants()),
        *every_run("results/plots/training/{variant}.png", variant=base_variants()),
        *onnx_files(),
        *SENSITIVITY_OUTPUTS,
        "results/provenance.json",
    ]


def provenance_inputs():
    """Every final target except results/provenance.json itself (rule provenance walks back from them)."""
    return [f for f in all_targets() if f != "results/provenance.json"]
