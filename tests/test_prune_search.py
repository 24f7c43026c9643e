"""Budget-driven pruning and per-layer sensitivity: MAC counts, the budget search, the sweep, config errors."""
from __future__ import annotations

import pytest
import torch
import yaml

from fer import config as fer_config, variants
from fer.compression import budget, prune, sensitivity
from fer.errors import ConfigError
from fer.models import nets
from fer.report import metrics

from conftest import TINY_CONFIG, snakemake

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


def test_latency_search_walks_the_greedy_path_until_the_measured_latency_fits():
    arch = {"channels": STUDENT["channels"], "hidden": STUDENT["hidden"]}
    timed = []

    def loss_of(counts):
        return sum(w / counts[k] for k, w in zip(budget.LAYERS, (40, 20, 10, 5)))

    def latency_of(counts):  # a stand-in machine: 0.01 ms fixed cost + 0.02 ms per million MACs
        timed.append(dict(counts))
        return 0.01 + 0.02 * budget.fernet_macs(budget.with_counts(arch, counts)) / 1e6

    full_ms = latency_of(budget.counts_of(arch))
    timed.clear()
    found = budget.search_latency(arch, 0.05, 8, loss_of, latency_of)
    assert timed[0] == budget.counts_of(budget.smallest_arch(arch, 8))  # the floor is measured first
    assert found["latency_floor_ms"] == latency_of(timed[0]) and found["latency_full_ms"] == full_ms
    assert found["within_tolerance"] and found["latency_ms"] <= 0.05 < found["steps"][-2]["latency_ms"]
    assert found["latency_ms"] == latency_of(found["counts"]) and found["reached"] == found["latency_ms"] / 0.05
    # the same cuts as the MAC search takes, in the same order (the path depends on loss and MACs only)
    by_macs = budget.search(arch, found["steps"][-2]["macs"] - 1, 8, loss_of)
    assert [(s["layer"], s["to"]) for s in found["steps"][:len(by_macs["steps"]) - 1]] == \
        [(s["layer"], s["to"]) for s in by_macs["steps"][:-1]]
    assert budget.budget_name({"latency_ms": 0.05, "runtime": "onnxruntime"}) == "lat50us"
    assert variants.describe("pr_kd_lat50us")["method"] == "pruning"
    with pytest.raises(ValueError, match=r"0.001 ms cannot be met: the smallest network .* measured"):
        budget.search_latency(arch, 0.001, 8, loss_of, latency_of)
    with pytest.raises(ValueError, match=r"unpruned student measured .* within the budget .* nothing to prune"):
        budget.search_latency(arch, full_ms * 1.01, 8, loss_of, latency_of)
    # a machine that got slower after the floor was timed: the search ends at the smallest network, not in a loop
    calls = iter(range(1000))
    slow = budget.search_latency(arch, 0.02, 8, loss_of, lambda c: 0.001 if next(calls) == 0 else 1.0)
    assert not slow["within_tolerance"] and slow["counts"] == budget.counts_of(budget.smallest_arch(arch, 8))


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
    ([{"latency_ms": 0.05}], r"prune.targets\[0\].runtime: missing"),
    ([{"latency_ms": 0.05, "macs": 1e6, "runtime": "onnxruntime"}], r"prune.targets\[0\]: one budget per entry"),
    ([{"latency_ms": 0.05, "runtime": "onnxruntime"}, {"latency_ms": 0.05, "runtime": "onnxruntime"}],
     r"prune.targets\[1\]: the same variant pr_kd_lat50us"),
    ([{"latency_ms": -1, "runtime": "onnxruntime"}], r"prune.targets\[0\].latency_ms"),
    ([{"latency_ms": 0.05, "runtime": "tvm"}], r"prune.targets\[0\].runtime: unknown runtime"),
    ([{"runtime": "onnxruntime"}], r"prune.targets\[0\].runtime"),
    ([{"macs": 1.5e6}, {"macs": 1.5e6}], r"prune.targets\[1\]: the same variant pr_kd_macs1500k"),
])
def test_bad_budgets_are_config_errors_naming_the_key(targets, message):
    with pytest.raises(ConfigError, match=message):
        fer_config.load({"prune": {"targets": targets}})


def test_a_runtime_that_is_not_installed_is_named(monkeypatch):
    monkeypatch.setattr(budget.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"prune.targets\[0\].runtime: onnxruntime is not installed"):
        fer_config.load({"prune": {"targets": [{"latency_ms": 0.05, "runtime": "onnxruntime"}]}})


def test_unmeetable_and_already_met_latency_budgets_stop_the_run_before_any_job(workflow):
    """A latency budget under the smallest allowed network's measured latency, or over the unpruned
    student's, is a config error naming its key before any job runs (onstart times both, untrained)."""
    targets = [{"latency_ms": 1e-4, "runtime": "onnxruntime"}, {"latency_ms": 1000.0, "runtime": "onnxruntime"},
               {"macs": 2.0e5}]
    (workflow / "budgets.yaml").write_text(yaml.safe_dump({"prune": {"targets": targets}}))
    proc = snakemake(workflow, "--configfile", TINY_CONFIG, "budgets.yaml", configfile=None, timeout=300)
    assert proc.returncode != 0
    assert "Config error: config key prune.targets[0].latency_ms: a budget of 0.0001 ms cannot be met: the " \
           "smallest network" in proc.stderr
    assert "Config error: config key prune.targets[1].latency_ms: the unpruned student measured" in proc.stderr
    assert "nothing to prune" in proc.stderr and "targets[2]" not in proc.stderr
    assert "Traceback" not in proc.stderr and "rule synthesize_faces:" not in proc.stdout + proc.stderr
    assert not list((workflow / "results").rglob("*.pt")), "a job ran before the budgets were checked"


def test_latency_meter_times_the_pruned_candidate_as_shipped(tmp_path):
    """The latency budget's meter exports each candidate (pruned, fp32 ONNX) and times that graph."""
    import onnx

    from fer.settings import Benchmark
    from fer.stages.prune_search import _latency_meter

    torch.manual_seed(0)
    model = nets.FERNet(**STUDENT).eval()
    arch = nets.current_arch(model)
    bench = Benchmark(runtimes=["onnxruntime"], runs=20, warmup=2, threads=1, pin=False, realtime=False)
    meter = _latency_meter(model, arch, bench, 2, tmp_path)
    counts = {"conv1": 8, "conv2": 16, "conv3": 24, "fc1": 48}
    ms = meter(counts)
    assert 0 < ms < 1000
    graph = onnx.load(str(tmp_path / "candidate.onnx")).graph
    conv_out = [i.dims[0] for i in graph.initializer if len(i.dims) == 4]
    assert conv_out == [8, 16, 24]  # the candidate, not the full student, was timed
    assert nets.current_arch(model)["channels"] == STUDENT["channels"]  # the student itself is untouched
