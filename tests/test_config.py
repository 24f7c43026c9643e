"""Config validation before any job: every bad setting gives one line naming the key, and nothing runs.

Unit tests call fer.config.validate on config/config.yaml + tests/config/tiny.yaml (merged like Snakemake
merges --configfile over the Snakefile's configfile); the workflow tests run snakemake in a throwaway copy
with the same bad settings and check the one line and that no job ran.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path

import onnxruntime
import pytest
import torch
import yaml

from conftest import REPO, TINY_CONFIG, copy_workflow, snakemake
from fer import config as fer_config

SCHEMA = REPO / "config" / "schema.yaml"
SCHEMA_PROPS = yaml.safe_load(SCHEMA.read_text())["properties"]


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


BASE = _merge(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), yaml.safe_load(TINY_CONFIG.read_text()))


def needs(section):
    """Skip a case whose config section another part of the pipeline has not added to the schema yet."""
    return pytest.mark.skipif(section not in SCHEMA_PROPS, reason=f"schema has no `{section}:` section yet")


# (id, settings merged over BASE, key the message must name, text the message must hold)
BAD = [
    pytest.param({"trian": {"teacher": {"epochs": 3}}}, "trian", "unknown key", id="unknown-top-level-key"),
    pytest.param({"train": {"teacher": {"epoch": 3}}}, "train.teacher.epoch", "unknown key", id="unknown-nested-key"),
    pytest.param({"prune": {"levels": ["low", "huge"]}}, "prune.levels[1]", "'huge' is not one of",
                 id="pruning-level", marks=needs("prune")),
    pytest.param({"quantize": {"bits": [8, 3]}}, "quantize.bits[1]", "3 is not one of", id="bit-width",
                 marks=needs("quantize")),
    pytest.param({"quantize": {"combined": [{"level": "medium", "bits": 5}]}}, "quantize.combined[0].bits",
                 "5 is not one of", id="combined-bit-width", marks=needs("quantize")),
    pytest.param({"train": {"teacher": {"epochs": 0}}}, "train.teacher.epochs", "less than the minimum",
                 id="zero-epochs"),
    pytest.param({"train": {"student": {"epochs": -2}}}, "train.student.epochs", "less than the minimum",
                 id="negative-epochs"),
    pytest.param({"train": {"student": {"batch_size": 0}}}, "train.student.batch_size", "less than the minimum",
                 id="zero-batch-size"),
    pytest.param({"prune": {"finetune": {"batch_size": -1}}}, "prune.finetune.batch_size", "less than the minimum",
                 id="negative-finetune-batch-size", marks=needs("prune")),
    pytest.param({"data": {"split": {"train": 0.6, "val": 0.2, "test": 0.1}}}, "data.split", "must sum to 1",
                 id="fractions-sum"),
    pytest.param({"data": {"source": "folder", "path": "no/such/folder"}}, "data.path", "does not exist",
                 id="missing-data-path"),
    pytest.param({"data": {"test_path": "no/such/test", "split": {"train": 0.85, "val": 0.15}}}, "data.test_path",
                 "does not exist", id="missing-test-path"),
    pytest.param({"jetson": {"host": "nano;reboot"}}, "jetson.host", "';'", id="ssh-host-semicolon",
                 marks=needs("jetson")),
    pytest.param({"jetson": {"host": "$(reboot)"}}, "jetson.host", "'$'", id="ssh-host-substitution",
                 marks=needs("jetson")),
    pytest.param({"jetson": {"host": "nano `id`"}}, "jetson.host", "not allowed", id="ssh-host-backtick",
                 marks=needs("jetson")),
    pytest.param({"jetson": {"host": "-oProxyCommand=id"}}, "jetson.host", "starts with '-'", id="ssh-host-option",
                 marks=needs("jetson")),
    pytest.param({"jetson": {"user": "me|cat"}}, "jetson.user", "'|'", id="ssh-user-pipe", marks=needs("jetson")),
    pytest.param({"train": {"device": "cuda"}}, "train.device", "torch.cuda.is_available() is False",
                 id="cuda-without-gpu", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")),
    pytest.param({"train": {"device": "cpu", "precision": "fp16"}}, "train.precision", "fp16 needs CUDA",
                 id="fp16-on-cpu"),
    pytest.param({"train": {"device": "gpu"}}, "train.device", "'gpu' is not one of", id="device-spelling"),
    pytest.param({"benchmark": {"runtimes": ["onnxruntime", "onnxruntime-cuda"]}}, "benchmark.runtimes",
                 "has no CUDA execution provider", id="ort-cuda-not-installed",
                 marks=pytest.mark.skipif("CUDAExecutionProvider" in onnxruntime.get_available_providers(),
                                          reason="onnxruntime's CUDA provider is installed here")),
    pytest.param({"models": {"student": {"channels": [16, 32, 48, 64], "hidden": 128}}}, "models.student.channels",
                 "is too long", id="student-blocks"),  # pruning ratios name conv1..conv3
]

# What the workflow runs check (one snakemake start each, so a representative subset of BAD).
WORKFLOW_CASES = ["unknown-top-level-key", "pruning-level", "bit-width", "zero-epochs", "zero-batch-size",
                  "fractions-sum", "missing-data-path", "ssh-host-semicolon"]


def validate(settings: dict, base_dir: Path = REPO) -> dict:
    return fer_config.validate(_merge(BASE, settings), SCHEMA, base_dir)


# ------------------------------------------------------------------------------------------ unit tests
def test_shipped_configs_are_valid():
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for extra in [{}, yaml.safe_load(TINY_CONFIG.read_text()),
                  yaml.safe_load((REPO / "config" / "demo.yaml").read_text())]:
        cfg = fer_config.validate(_merge(base, extra), SCHEMA, REPO)
        assert cfg["train"]["teacher"]["epochs"] >= 1


def test_defaults_come_from_config_yaml_only():
    # an override file is merged over config/config.yaml (as Snakemake merges --configfile) ...
    cfg = fer_config.load({"data": {"source": "synthetic"}}, REPO)
    assert cfg["train"]["student"] == yaml.safe_load((REPO / "config" / "config.yaml").read_text())["train"]["student"]
    assert cfg["data"]["split"]["train"] + cfg["data"]["split"]["val"] + cfg["data"]["split"]["test"] == 1
    # ... and the schema fills in nothing: a config without a key is refused, naming it
    with pytest.raises(fer_config.ConfigError, match=r"config key augment: missing"):
        fer_config.validate({"data": {"source": "synthetic"}}, SCHEMA, REPO)
    partial = fer_config.defaults()
    del partial["data"]["path"]
    with pytest.raises(fer_config.ConfigError, match=r"config key data\.path: missing"):
        fer_config.validate(partial, SCHEMA, REPO)


@pytest.mark.parametrize("settings,key,text", BAD)
def test_bad_setting_names_the_key(settings, key, text):
    with pytest.raises(fer_config.ConfigError) as err:
        validate(settings)
    msg = str(err.value)
    assert "\n" not in msg, msg
    assert msg.startswith(f"config key {key}:"), msg
    assert text in msg, msg


@pytest.mark.parametrize("settings", [
    pytest.param({"jetson": {"host": "192.168.1.20", "user": "nano", "key": "~/.ssh/id_ed25519",
                             "python": "python3 -u", "workdir": "~/fer-bench"}}, id="typical-jetson"),
    pytest.param({"jetson": {"host": "jetson-nano.local", "python": "~/venv/bin/python"}}, id="alias-and-venv"),
    pytest.param({"data": {"split": {"train": 0.8, "val": 0.1, "test": 0.1}}}, id="other-fractions"),
    pytest.param({"data": {"split": {"folds": 5}}}, id="k-fold"),
    pytest.param({"data": {"split": {"folds": 10}}, "seeds": [1, 2]}, id="k-fold-with-repeats"),
    pytest.param({"models": {"teacher": {"channels": [32, 64, 128, 256], "hidden": 256}}}, id="four-block-teacher"),
])
def test_good_settings_pass(settings):
    if "jetson" in settings and "jetson" not in SCHEMA_PROPS:
        pytest.skip("schema has no `jetson:` section yet")
    validate(settings)


def test_data_path_is_relative_to_the_working_directory(tmp_path):
    (tmp_path / "faces").mkdir()
    validate({"data": {"source": "folder", "path": "faces"}}, base_dir=tmp_path)
    with pytest.raises(fer_config.ConfigError, match=r"^config key data\.path:"):
        validate({"data": {"source": "folder", "path": "faces"}}, base_dir=tmp_path / "elsewhere")


# ------------------------------------------------------------------------------------- workflow runs
@pytest.fixture(scope="module")
def clean_workflow(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("config") / "wf")


@pytest.mark.parametrize("case", WORKFLOW_CASES)
def test_snakemake_stops_before_any_job(case, clean_workflow, tmp_path):
    param = next(p for p in BAD if p.id == case)
    settings, key, text = param.values
    if any(m.name == "skipif" and m.args[0] for m in param.marks):
        pytest.skip("schema section missing")
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(_merge(yaml.safe_load(TINY_CONFIG.read_text()), settings)))
    # a real run (not -n): it must stop while reading the config, so no job can have started
    proc = snakemake(clean_workflow, configfile=cfg, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    lines = [ln for ln in out.splitlines() if f"config key {key}:" in ln]
    assert len(lines) == 1, out[-3000:]
    # rules/common.smk prints "Config error: <message>" (a WorkflowError would print the bare message)
    assert re.match(rf"^(Config error: )?config key {re.escape(key)}: ", lines[0]), lines[0]
    assert text in lines[0]
    assert "Traceback" not in out and "Select jobs to execute" not in out and "Job stats" not in out, out[-3000:]
    assert not (clean_workflow / "results").exists() and not (clean_workflow / "weights").exists()
