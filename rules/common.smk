# Python that serves the rules: config validation, variant lists, input functions, wildcard constraints.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

from fer import config as fer_config  # noqa: E402
from fer import variants as fer_variants  # noqa: E402


try:
    fer_config.validate(config, Path(workflow.basedir) / "config" / "schema.yaml")
except fer_config.ConfigError as exc:
    raise WorkflowError(str(exc)) from None


ENV = "../envs/fer.yaml"
LOGS = "results/logs"


def base_variants():
    return ["teacher", "kd", "scratch"]


def all_variants():
    """Every variant the config asks for; the evaluate and benchmark rules run once per variant."""
    return base_variants()


wildcard_constraints:
    variant="|".join(all_variants()),


# ------------------------------------------------------------------------------------------------ data
def data_root():
    return "results/synthetic" if config["data"]["source"] == "synthetic" else config["data"]["path"]


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
    """Hyper-parameters of one training rule (role: teacher or student)."""
    return config["train"][role]


def checkpoint_path(variant):
    return f"results/checkpoints/{variant}.pt"


# -------------------------------------------------------------------------------------------- targets
def metrics_files():
    return expand("results/metrics/{variant}.json", variant=all_variants())


def all_targets():
    return [
        "results/summary.csv",
        *expand("results/plots/confusion/{variant}.png", variant=all_variants()),
        *expand("results/plots/training/{variant}.png", variant=base_variants()),
    ]
