"""Budget-driven pruning and per-layer sensitivity: MAC counts, the budget search, the sweep, config errors."""
from __future__ import annotations

import pytest
import torch

from fer import config as fer_config, variants
from fer.compression import budget, prune, sensitivity
from fer.errors import ConfigError
from fer.models import nets
from fer.report import metrics

STUDENT = fer_config.defaults()["models"]["student"]


@pytest.mark.parametrize("channels,hidden,bn", [([16, 32, 48], 128, True), ([4, 8, 8], 16, True),
                                                ([8, 13, 24], 51, False)])
def test_analytic_macs_are_torch_prunings_count(channels, hidden, bn):
    arch = {"channels": channels, "hidden": hidden, "batchnorm": bn}
    assert budget.fernet_macs(arch) == metrics.count_macs_params(nets.FERNet(channels, hidden, 0.1, batchnorm=bn))[0]
    assert budget.LAYERS == prune.PRUNABLE


def test_allowed_counts_round_to_multiples_except_narrow_layers():
    assert budget.allowed_counts(48, 8) == [8, 16, 24, 32, 40, 48]
    assert budget.allowed_counts(20, 8) == [8, 16, 20]
    assert budget.allowed_counts(4, 8) == [1, 2, 3, 4]
    assert budget.budget_name({"macs": 1.5e6}) == "macs1500k"
    assert variants.describe("pr_kd_macs1500k")["method"] == "pruning"


def test_search_meets_the_budget_within_five_percent():
    arch = {"channels": STUDENT["channels"], "hidden": STUDENT["hidden"]}
    seen = []

    def loss_of(counts):  # a stand-in loss: narrow layers cost more, conv1 most
        seen.append(counts)
        return sum(w / counts[k] for k, w in zip(budget.LAYERS, (40, 20, 10, 5)))

    found = budget.search(arch, 1.5e6, 8, loss_of)
    assert 0.95 * 1.5e6 <= found["macs"] <= 1.5e6 and found["within_tolerance"]
    assert found["macs"] == budget.fernet_macs(budget.with_counts(arch, found["counts"]))
    wide = [k for k, n in budget.counts_of(arch).items() if n > 8]
    assert all(found["counts"][k] % 8 == 0 for k in wide if k not in found["not_multiple"])
    assert len(found["not_multiple"]) <= 1 and found["evaluations"] == len({tuple(c.values()) for c in seen})
    with pytest.raises(ValueError, match="cannot be met"):
        budget.search(arch, 5e5, 8, loss_of)


def test_found_counts_prune_to_the_same_network():
    torch.manual_seed(0)
    model = nets.FERNet(**STUDENT).eval()
    arch = nets.current_arch(model)
    counts = {"conv1": 8, "conv2": 16, "conv3": 27, "fc1": 64}
    clone, _ = prune.pruned_copy(model, budget.ratios_of(arch, counts))
    assert budget.counts_of(nets.current_arch(clone)) == counts


def test_sensitivity_sweep_prunes_one_layer_at_a_time():
    torch.manual_seed(0)
    model = nets.FERNet([4, 8, 8], 16, 0.1).eval()
    tuned = []
    rows = sensitivity.sweep(model, [0.5], lambda m: {"val_acc": 0.5, "val_loss": 1.0},
                             lambda m, layer, r: tuned.append((layer, r)))
    assert [(r["layer"], r["ratio"]) for r in rows] == [(k, r) for k in prune.PRUNABLE for r in (0.0, 0.5)]
    pruned = [r for r in rows if r["ratio"] == 0.5]
    assert [r["channels_after"] for r in pruned] == [2, 4, 4, 8]
    assert all(r["macs_fraction"] < 1 for r in pruned) and len(tuned) == 4
    assert nets.current_arch(model)["channels"] == [4, 8, 8]


@pytest.mark.parametrize("targets,message", [
    ([{"macs": 1e5}], r"prune.targets\[0\].macs: a budget of 100,000 MACs cannot be met"),
    ([{"macs": 6e6}], r"prune.targets\[0\].macs: .* not below the KD student"),
    ([{"mac": 1e6}], r"prune.targets\[0\].mac: unknown budget key"),
    ([{"latency_ms": 0.05, "runtime": "onnxruntime"}], r"prune.targets\[0\].latency_ms: .*not supported yet"),
    ([{"latency_ms": 0.05, "runtime": "tvm"}], r"prune.targets\[0\].runtime: unknown runtime"),
    ([{"runtime": "onnxruntime"}], r"prune.targets\[0\].runtime"),
    ([{"macs": 1.5e6}, {"macs": 1.5e6}], r"prune.targets\[1\].macs: the same variant pr_kd_macs1500k"),
])
def test_bad_budgets_are_config_errors_naming_the_key(targets, message):
    with pytest.raises(ConfigError, match=message):
        fer_config.load({"prune": {"targets": targets}})


def test_a_runtime_that_is_not_installed_is_named(monkeypatch):
    monkeypatch.setattr(budget.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"prune.targets\[0\].runtime: onnxruntime is not installed"):
        fer_config.load({"prune": {"targets": [{"latency_ms": 0.05, "runtime": "onnxruntime"}]}})
