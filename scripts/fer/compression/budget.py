"""Budget-driven pruning: the per-layer channel counts of a FERNet that meet a MAC or a latency budget.

A budget (config ``prune.targets``, e.g. ``{macs: 1.5e6}``) becomes the variant ``pr_kd_macs1500k``; a latency
budget ``{latency_ms: 0.05, runtime: onnxruntime}`` becomes ``pr_kd_lat50us`` (:func:`search_latency`). The search
is greedy and guided by measurement, like a sensitivity table computed on the fly: starting from the full
student, each step narrows the one prunable layer (conv1..3 output channels, fc1 hidden units) whose next cut
costs the least validation loss per MAC saved, until the network is within the budget. Channel counts move in
multiples of ``round_to`` (8 by default: kernel-friendly widths; a layer with at most ``round_to`` channels moves
one channel at a time, rounding cannot help it). The last cut would usually overshoot far below the budget, so
it lands instead on the count (one channel at a time) that keeps the network just within it; that one layer may
then not be a multiple of ``round_to`` (the record says which), but never narrower than ``round_to``. The aim is
MACs in [(1 - 5%) budget, budget].

MACs are counted analytically (:func:`fernet_macs`), exactly as torch-pruning's ``count_ops_and_params`` counts
them (a test checks it), so the config validator can refuse an unreachable budget without loading torch.
This module imports no torch: the search takes the loss (and for a latency budget the measured latency) of a
candidate as a callable.

A latency budget follows the same greedy path (the cheapest cut in validation loss per MAC saved) and stops at
the first network whose measured latency is within the budget. Latency is measured, not counted: it depends on
the machine and its load when the job runs (the record keeps every step's measurement), and whether a budget can
be met is known only once the smallest allowed network has been timed, which the search does first.
"""
from __future__ import annotations

import importlib.util

LAYERS = ("conv1", "conv2", "conv3", "fc1")  # = fer.compression.prune.PRUNABLE (a test checks it)
BUDGET_KEYS = ("macs", "latency_ms", "runtime")
RUNTIMES = {"onnxruntime": "onnxruntime"}  # runtime name -> the module that must be importable
TOLERANCE = 0.05  # a MAC budget is met when budget * (1 - TOLERANCE) <= MACs <= budget


def fernet_macs(arch: dict) -> int:
    """MACs of one forward pass of a FERNet with ``arch`` (``channels``, ``hidden``, ``num_classes`` (7),
    ``in_size`` (48), ``in_channels`` (1), ``batchnorm`` (True)), counted as torch-pruning counts them: a conv
    in_channels * 9 per output element (+1 with a bias), BN 2 and ReLU 1 per element, max-pooling 1 per input
    element, a linear layer in_features (+1 bias) per output."""
    size = int(arch.get("in_size", 48))
    prev = int(arch.get("in_channels", 1))
    bn = arch.get("batchnorm", True)
    total = 0
    for c in arch["channels"]:
        elements = size * size * int(c)
        total += elements * (prev * 9 + (0 if bn else 1)) + elements * ((2 if bn else 0) + 1 + 1)
        prev, size = int(c), size // 2
    hidden, classes = int(arch["hidden"]), int(arch.get("num_classes", 7))
    total += hidden * (prev * size * size + 1) + hidden + classes * (hidden + 1)
    return int(total)


def counts_of(arch: dict) -> dict:
    """``{"conv1": c1, "conv2": c2, "conv3": c3, "fc1": hidden}`` of an arch."""
    return {**{f"conv{i}": int(c) for i, c in enumerate(arch["channels"], 1)}, "fc1": int(arch["hidden"])}


def with_counts(arch: dict, counts: dict) -> dict:
    """``arch`` with the channel counts ``counts`` (as :func:`counts_of` returns them)."""
    return {**arch, "channels": [int(counts[f"conv{i}"]) for i in range(1, len(arch["channels"]) + 1)],
            "hidden": int(counts["fc1"])}


def allowed_counts(n: int, round_to: int) -> list[int]:
    """The channel counts a layer of ``n`` channels may be cut to, ascending: the multiples of ``round_to`` up to
    ``n``, and ``n`` itself; 1..n where ``n <= round_to`` (rounding cannot help so narrow a layer)."""
    n, r = int(n), max(1, int(round_to))
    if n <= r:
        return list(range(1, n + 1))
    return sorted({*range(r, n + 1, r), n})


def smallest_arch(arch: dict, round_to: int) -> dict:
    """The narrowest network the search may reach: every layer at its smallest allowed count."""
    return with_counts(arch, {k: allowed_counts(n, round_to)[0] for k, n in counts_of(arch).items()})


def ratios_of(arch: dict, counts: dict) -> dict:
    """Per-layer pruning ratios (``fer.compression.prune.prune_model``'s input) that keep ``counts`` channels:
    ``1 - k / n``, which :func:`~fer.compression.prune.kept_count` rounds back to exactly ``k``."""
    full = counts_of(arch)
    return {k: 1.0 - int(counts[k]) / full[k] for k in LAYERS}


def budget_name(target: dict) -> str:
    """The variant suffix of a budget: ``{macs: 1.5e6}`` -> ``macs1500k`` (variant ``pr_kd_macs1500k``),
    ``{latency_ms: 0.05, ...}`` -> ``lat50us``."""
    if "latency_ms" in target:
        return f"lat{round(float(target['latency_ms']) * 1000)}us"
    macs = float(target["macs"])
    return f"macs{round(macs / 1e3)}k" if macs >= 1e3 else f"macs{round(macs)}"


def runtime_installed(runtime: str) -> bool:
    return runtime in RUNTIMES and importlib.util.find_spec(RUNTIMES[runtime]) is not None


def _memo(loss_of):
    """``loss_of`` called once per distinct candidate (a dict of counts); ``.cache`` holds the results."""
    cache: dict = {}

    def loss(c):
        key = tuple(c[k] for k in LAYERS)
        if key not in cache:
            cache[key] = float(loss_of(dict(c)))
        return cache[key]

    loss.cache = cache
    return loss


def _not_multiple(full: dict, counts: dict, round_to: int) -> list[str]:
    """Layers cut to a count that is not a multiple of ``round_to`` although they are wider than it."""
    return [k for k in LAYERS if full[k] > round_to and counts[k] % round_to and counts[k] != full[k]]


def _cheapest_cut(counts: dict, full: dict, round_to: int, loss, macs):
    """``(layer, counts)`` of the next cut: the layer whose next allowed count costs the least validation loss
    per MAC saved (ties: the earlier layer); None when every layer is at its smallest allowed count."""
    here, here_loss = macs(counts), loss(counts)
    options = []
    for layer in LAYERS:
        below = [k for k in allowed_counts(full[layer], round_to) if k < counts[layer]]
        if below:
            cand = {**counts, layer: below[-1]}
            options.append(((loss(cand) - here_loss) / max(1, here - macs(cand)), LAYERS.index(layer), layer, cand))
    if not options:
        return None
    _, _, layer, cand = min(options, key=lambda o: o[:2])
    return layer, cand


def search(arch: dict, target_macs: float, round_to: int, loss_of, tolerance: float = TOLERANCE) -> dict:
    """Channel counts of the ``arch`` network within ``target_macs`` MACs (see the module doc).

    ``loss_of(counts) -> float``: the validation loss of the network pruned to ``counts`` (no fine-tune; lower
    is better), called once per distinct candidate. Returns ``{"counts", "macs", "macs_full", "target_macs",
    "reached" (macs / target), "within_tolerance", "steps" (one entry per cut), "evaluations",
    "not_multiple" (layers whose count is not a multiple of round_to although wider than it)}``.
    Raises ValueError if even the smallest allowed network is above the budget.
    """
    full = counts_of(arch)
    target = float(target_macs)
    floor = fernet_macs(smallest_arch(arch, round_to))
    if floor > target:
        raise ValueError(f"a budget of {target:,.0f} MACs cannot be met: the smallest network round_to {round_to} "
                         f"allows has {floor:,} MACs")
    loss = _memo(loss_of)

    def macs(c):
        return fernet_macs(with_counts(arch, c))

    counts = dict(full)
    steps = []
    while macs(counts) > target:
        layer, cand = _cheapest_cut(counts, full, round_to, loss, macs)
        if macs(cand) < target * (1 - tolerance):
            # the cut overshoots: land on the widest count of this layer (or, failing that, another) that fits
            landings = []
            for other in LAYERS:
                # never below the layer's smallest allowed count (round_to): a first conv of 3 channels meets
                # a budget on paper and starves every later layer (measured on CK+: -4 points vs fixed ratios)
                least = allowed_counts(full[other], round_to)[0]
                fits = [k for k in range(counts[other] - 1, least - 1, -1)
                        if macs({**counts, other: k}) <= target]
                if fits:
                    landing = {**counts, other: fits[0]}
                    within = macs(landing) >= target * (1 - tolerance)
                    landings.append((not within, other != layer, loss(landing), LAYERS.index(other), landing))
            if landings:
                cand = min(landings, key=lambda o: o[:4])[4]
                layer = next(k for k in LAYERS if cand[k] != counts[k])
        steps.append({"layer": layer, "from": counts[layer], "to": cand[layer], "macs": macs(cand),
                      "val_loss": loss(cand)})
        counts = cand
    reached = macs(counts)
    not_multiple = _not_multiple(full, counts, round_to)
    return {"counts": counts, "macs": reached, "macs_full": macs(full), "target_macs": target,
            "reached": reached / target, "within_tolerance": reached >= target * (1 - tolerance),
            "steps": steps, "evaluations": len(loss.cache), "round_to": int(round_to), "not_multiple": not_multiple}


def search_latency(arch: dict, target_ms: float, round_to: int, loss_of, latency_of) -> dict:
    """Channel counts of the ``arch`` network whose measured latency is within ``target_ms`` (see the module doc).

    ``loss_of(counts)`` as in :func:`search`; ``latency_of(counts) -> float``: the measured latency (ms) of the
    network pruned to ``counts``, called for the smallest allowed network first, then for the full network and
    after every cut. Returns ``{"counts", "macs", "macs_full", "target_latency_ms", "latency_ms" (measured, of
    the result), "latency_full_ms", "latency_floor_ms" (the smallest network's), "reached" (latency / target),
    "within_tolerance" (latency <= target), "steps", "evaluations", "round_to", "not_multiple"}``. Raises
    ValueError if the smallest allowed network is measured above the budget, or the full one within it."""
    full = counts_of(arch)
    target = float(target_ms)
    if not target > 0:
        raise ValueError(f"a latency budget must be > 0 ms, got {target_ms}")
    smallest = counts_of(smallest_arch(arch, round_to))
    floor = float(latency_of(dict(smallest)))
    if floor > target:
        raise ValueError(f"a budget of {target:g} ms cannot be met: the smallest network round_to {round_to} allows "
                         f"(channels {[smallest[f'conv{i}'] for i in (1, 2, 3)]}, hidden {smallest['fc1']}) "
                         f"measured {floor:.4f} ms here")
    loss = _memo(loss_of)

    def macs(c):
        return fernet_macs(with_counts(arch, c))

    counts, steps = dict(full), []
    lat = lat_full = float(latency_of(dict(counts)))
    if lat_full <= target:
        raise ValueError(f"the unpruned student measured {lat_full:.4f} ms here, within the budget of {target:g} ms: "
                         "nothing to prune (give a smaller budget)")
    while lat > target:
        cut = _cheapest_cut(counts, full, round_to, loss, macs)
        if cut is None:  # the smallest network again, measured over the budget this time: load noise
            break
        layer, cand = cut
        lat = float(latency_of(dict(cand)))
        steps.append({"layer": layer, "from": counts[layer], "to": cand[layer], "macs": macs(cand),
                      "val_loss": loss(cand), "latency_ms": lat})
        counts = cand
    return {"counts": counts, "macs": macs(counts), "macs_full": macs(full), "target_latency_ms": target,
            "latency_ms": lat, "latency_full_ms": lat_full, "latency_floor_ms": floor, "reached": lat / target,
            "within_tolerance": lat <= target, "steps": steps, "evaluations": len(loss.cache),
            "round_to": int(round_to), "not_multiple": _not_multiple(full, counts, round_to)}
