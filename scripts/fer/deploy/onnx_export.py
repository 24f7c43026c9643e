"""ONNX export of every variant, with a JSON sidecar saying what kind of graph it is and how close it is.

Graph formats (the sidecar's ``format``):

- ``float``: teacher, kd, scratch, pr_kd_* and the 32-bit reference; plain fp32 graph.
- ``fp16``: the fp16_* variants (:mod:`fer.compression.fp16`): float16 weight initializers (2 bytes per
  parameter), each followed by a ``Cast`` to float (:func:`to_fp16_graph`). The compute is explicit: fp32 on
  the fp16 weights, which is what onnxruntime's CPU provider does on x86 anyway (it has no fp16 Conv kernels
  there and would insert the casts itself); TensorRT ``--fp16`` builds an fp16 engine from the same file.
- ``qcdq``: brevitas' standard QuantizeLinear -> Clip -> DequantizeLinear graph (widths in
  ``export.qcdq_bits``). Weights are stored as int8 initializers. At 8 bits the graph is rearranged for the
  x86 int8 kernels, same numbers (:func:`to_int8_cpu_graph`: the first conv in fp32, a Q/DQ pair in front of
  every later conv and fc1), and onnxruntime fuses it into QLinearConv / QGemm (the sidecar counts those fused
  nodes; sessions run without ``QDQPropagationTransformer``, :data:`fer.deploy.ort.DISABLED_OPTIMIZERS`). 6-bit
  weights sit in int8 containers (ONNX has no 6-bit type): the file is the int8 size, the real size is
  ``size_bytes``.
- ``int4``: 4-bit weights (in ``export.qcdq_bits``): the QCDQ graph with every weight initializer rewritten
  to an ONNX INT4 tensor (packed two per byte) feeding an opset-21 ``DequantizeLinear`` with its per-channel
  scales (axis 0) and int4 zero points (:func:`to_int4_graph`); the weight Clip is dropped (int4 holds the
  narrow range [-7, 7]). Activations keep int8 Q/Clip/DQ containers (they are not stored). onnxruntime
  dequantizes the weights and runs fp32 kernels: a storage format, not an int4 kernel.
- ``fake-quant``: every other quantized width (16 bits; any width not in ``export.qcdq_bits``). The
  quantizers are traced as float arithmetic (scale, Round, Clip, rescale): the graph reproduces the quantized
  model's numbers but stores fp32 weights and runs fp32 kernels, so its file size and speed say nothing about
  the bit width. The real size of those variants is ``size_bytes`` in the summary (computed from the bit
  width).

Every graph takes ``input`` (N x 1 x 48 x 48 float, preprocessed as :func:`fer.data.preprocess.to_tensor`,
dynamic batch) and returns ``logits`` (N x classes). The sidecar also records the parity of onnxruntime against
PyTorch on the test split (max |logit difference| and the share of identical top-1 predictions).
"""
from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np
import torch

from fer import IMAGE_SIZE, checkpoints, files
from fer.deploy import kernels, ort

log = logging.getLogger("fer")

FORMATS = ("float", "fp16", "qcdq", "int4", "fake-quant")
INPUT, OUTPUT = "input", "logits"
DEFAULT_OPSET = 17
INT4_OPSET = 21  # the first opset with INT4 tensors in DequantizeLinear
INT4_MIN, INT4_MAX = -8, 7

# Parity tolerances (onnxruntime vs PyTorch on the same preprocessed images), per format:
#   max_abs: largest |logit difference| allowed; agreement: minimum share of identical top-1 predictions.
# float graphs differ only by fp32 summation order (measured: ~2e-6 on CK+). Fake-quant graphs compute the
# same arithmetic, but a value that lands on a rounding boundary may round one step the other way (measured:
# 0 at 6/4 bits, 5e-5 at 16 bits). QCDQ graphs run onnxruntime's int8 kernels, whose requantization rounds
# differently from brevitas' float emulation (measured: 0.008 at 8 bits, every prediction identical).
# fp16 graphs compute in fp32 on the same fp16-rounded weights as the PyTorch model: float's tolerance. int4
# graphs dequantize the same integers with the same scales (measured: ~1e-7), but may meet fused int8 kernels
# on another onnxruntime build: qcdq's tolerance.
TOLERANCE = {
    "float": {"max_abs": 1e-4, "agreement": 1.0},
    "fp16": {"max_abs": 1e-4, "agreement": 1.0},
    "fake-quant": {"max_abs": 0.05, "agreement": 0.99},
    "qcdq": {"max_abs": 0.1, "agreement": 0.99},
    "int4": {"max_abs": 0.1, "agreement": 0.99},
}


def graph_format(quant: dict | None, qcdq_bits=(8,), fp16: bool = False) -> str:
    """``float`` | ``fp16`` | ``qcdq`` | ``int4`` | ``fake-quant`` for a checkpoint's ``quant`` entry (None for
    float variants); ``fp16``: the checkpoint is an fp16 variant."""
    if fp16:
        return "fp16"
    wb, ab = checkpoints.quant_bits(quant)
    if wb >= checkpoints.FLOAT_BITS:
        return "float"
    if wb <= 8 and ab <= 8 and wb in {int(b) for b in qcdq_bits}:
        return "int4" if wb <= 4 else "qcdq"
    return "fake-quant"


def weight_storage(fmt: str, weight_bits: int) -> str:
    """How the graph of format ``fmt`` stores its weights, for the summary's ``onnx_weights`` column."""
    if fmt == "qcdq" and int(weight_bits) < 8:
        return f"int8 containers ({weight_bits}-bit values: ONNX has no {weight_bits}-bit type)"
    return {"float": "float32", "fp16": "float16", "qcdq": "int8", "int4": "int4 (packed 2 per byte)",
            "fake-quant": "float32 (quantization emulated)"}[fmt]


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _example(batch: int = 1) -> torch.Tensor:
    return torch.zeros(batch, 1, IMAGE_SIZE, IMAGE_SIZE)


def is_int8(model: torch.nn.Module) -> bool:
    """True for a quantized model with 8-bit weights and activations (what :func:`to_int8_cpu_graph` is for)."""
    return getattr(model, "weight_bits", None) == 8 and getattr(model, "act_bits", None) == 8


def export_model(model: torch.nn.Module, path, fmt: str, opset: int = DEFAULT_OPSET,
                 int8_cpu: bool | None = None) -> None:
    """Write ``model`` (eval mode) to ``path`` as an ONNX graph of format ``fmt`` (written atomically).
    ``int8_cpu`` (default: for 8-bit ``qcdq`` models, :func:`is_int8`): rearrange the QCDQ graph for the x86 int8
    kernels (:func:`to_int8_cpu_graph`); False keeps brevitas' graph as exported (a benchmark's reference)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown ONNX format {fmt!r}; choose from {FORMATS}")
    if int(opset) < 13:
        raise ValueError("opset must be >= 13 (per-channel DequantizeLinear)")
    model = model.eval()
    kw = dict(input_names=[INPUT], output_names=[OUTPUT], opset_version=int(opset),
              dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
    with files.atomic_path(path) as tmp, _quiet(), torch.no_grad():
        target = str(tmp)
        if fmt in ("qcdq", "int4"):
            from brevitas.export import export_onnx_qcdq  # heavy: brevitas' exporter, only for QCDQ graphs

            export_onnx_qcdq(model, args=_example(), export_path=target, dynamo=False, **kw)
        else:
            # float, fp16 and fake-quant: the TorchScript exporter traces brevitas' quantizers as float arithmetic
            torch.onnx.export(model, (_example(),), target, dynamo=False, do_constant_folding=True, **kw)
        import onnx  # heavy and optional: only ONNX runs need it

        if int8_cpu is None:
            int8_cpu = fmt == "qcdq" and is_int8(model)
        if fmt in ("fp16", "int4") or (fmt == "qcdq" and int8_cpu):
            graph = onnx.load(target)
            if fmt == "qcdq":
                graph = to_int8_cpu_graph(graph)
            else:
                graph = to_fp16_graph(graph) if fmt == "fp16" else to_int4_graph(graph, max(int(opset), INT4_OPSET))
            onnx.save(graph, target)
        onnx.checker.check_model(onnx.load(target), full_check=True)


def to_fp16_graph(graph):
    """``graph`` (an ``onnx.ModelProto``) with every float initializer stored as float16 and cast back to float
    by a ``Cast`` node at the top of the graph: half the bytes on disk, explicit fp32 compute. Exact for weights
    that are fp16-rounded already (the fp16_* checkpoints)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    casts = []
    for init in graph.graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{name}_fp16"))
        casts.append(helper.make_node("Cast", [f"{name}_fp16"], [name], to=TensorProto.FLOAT, name=f"{name}_cast"))
    nodes = casts + list(graph.graph.node)
    del graph.graph.node[:]
    graph.graph.node.extend(nodes)
    onnx.checker.check_model(graph)
    return graph


def _pack_int4(values: np.ndarray) -> bytes:
    """Signed int4 values packed two per byte, the first in the low nibble (the ONNX layout)."""
    u = (values.astype(np.int16).reshape(-1) & 0xF).astype(np.uint8)
    if u.size % 2:
        u = np.concatenate([u, np.zeros(1, np.uint8)])
    return (u[0::2] | (u[1::2] << 4)).astype(np.uint8).tobytes()


def int4_tensor(name: str, values: np.ndarray):
    """An ONNX INT4 initializer holding the integers ``values`` (each in [-8, 7])."""
    from onnx import TensorProto, helper

    values = np.asarray(values)
    if values.size and (values.min() < INT4_MIN or values.max() > INT4_MAX):
        raise ValueError(f"{name}: values outside int4 [{INT4_MIN}, {INT4_MAX}]")
    return helper.make_tensor(name, TensorProto.INT4, list(values.shape), _pack_int4(values), raw=True)


def to_int4_graph(graph, opset: int = INT4_OPSET):
    """A QCDQ ``graph`` with its weights stored as INT4: every int8 weight initializer that feeds a
    ``DequantizeLinear`` (directly or through brevitas' narrow-range ``Clip``) and whose values fit in int4
    becomes an INT4 initializer, its zero point an INT4 zero point, the ``Clip`` goes (the values already lie in
    its range) and the opset becomes ``opset`` (>= 21). Activation Q/DQ pairs (no initializer) and int32 bias
    initializers are left alone. Raises ValueError if no weight could be converted."""
    import onnx
    from onnx import TensorProto, numpy_helper

    if int(opset) < INT4_OPSET:
        raise ValueError(f"INT4 DequantizeLinear needs opset >= {INT4_OPSET}, got {opset}")
    inits = {i.name: i for i in graph.graph.initializer}
    producer = {o: n for n in graph.graph.node for o in n.output}
    dropped, added, converted = [], {}, 0
    for node in graph.graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3:
            continue
        src, clip = node.input[0], None
        if src not in inits and producer.get(src) is not None and producer[src].op_type == "Clip":
            clip = producer[src]
            src = clip.input[0]
        w = inits.get(src)
        if w is None or w.data_type != TensorProto.INT8:
            continue
        values = numpy_helper.to_array(w)
        if clip is not None:  # the Clip must be a no-op on these values, or dropping it would change the graph
            lo, hi = (int(numpy_helper.to_array(inits[x])) for x in clip.input[1:3])
            if values.min() < lo or values.max() > hi:
                continue
        if values.min() < INT4_MIN or values.max() > INT4_MAX:
            continue
        zp = numpy_helper.to_array(inits[node.input[2]])
        for name, v in ((f"{w.name}_int4", values), (f"{node.input[2]}_int4", zp)):
            if name not in added:  # an initializer two nodes share is converted once
                added[name] = int4_tensor(name, v)
        node.input[0], node.input[2] = f"{w.name}_int4", f"{node.input[2]}_int4"
        if clip is not None:
            dropped.append(clip)
        converted += 1
    if not converted:
        raise ValueError("no int8 weight initializer with values in int4 range feeds a DequantizeLinear")
    for clip in dropped:
        graph.graph.node.remove(clip)
    graph.graph.initializer.extend(added.values())
    _compact(graph)
    for op in graph.opset_import:
        if op.domain in ("", "ai.onnx"):
            op.version = max(int(op.version), int(opset))
    graph.ir_version = max(graph.ir_version, 10)  # opset 21 needs IR version 10
    onnx.checker.check_model(graph)
    return graph


# Op types that move values without changing them: a tensor on a quantization grid stays on it.
GRID_PRESERVING = ("MaxPool", "Flatten")


def _links(nodes) -> tuple[dict, dict]:
    """``(producer, consumers)`` of a node list: tensor name -> the node writing it / the nodes reading it."""
    producer = {o: n for n in nodes for o in n.output}
    consumers: dict[str, list] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    return producer, consumers


def to_int8_cpu_graph(graph):
    """An 8-bit QCDQ ``graph`` (brevitas' export) rearranged so that onnxruntime's x86 provider runs it on its
    fastest int8 kernels, computing the same numbers (see docs/benchmarks.md "Int8 on this CPU"):

    1. every weight ``Clip`` folded into its int8 initializer (the narrow range already holds);
    2. the first conv, which reads the one-channel image (im2col depth 9, where onnxruntime's int8 conv costs
       5-7x its fp32 kernel), runs in fp32 on its dequantized weights and bias: the values brevitas computes with;
    3. that conv's ReLU quantizer moves from before its max-pool to after it (max commutes with the monotone
       quantize-dequantize: exact), so the pool runs in fp32 NCHWc instead of a uint8 pool in NCHW;
    4. after every max-pool and flatten fed (through such ops) by a ``DequantizeLinear``, a quantize-dequantize
       pair with that node's scale and zero point (the values are on its grid already: exact), so that every
       later conv and fc1 have the Q/DQ inputs onnxruntime fuses into QLinearConv / QGemm (brevitas leaves fc1's
       input without one: an fp32 Gemm on weights dequantized on every run).

    Sessions must disable onnxruntime's ``QDQPropagationTransformer`` (:data:`fer.deploy.ort.DISABLED_OPTIMIZERS`),
    which would move step 3's quantizer back above the pool. Raises ValueError on a graph without a Conv whose
    weights come from a ``DequantizeLinear`` of an initializer."""
    import onnx
    from onnx import helper, numpy_helper

    g = graph.graph
    inits = {i.name: i for i in g.initializer}

    def array(name: str) -> np.ndarray:
        return numpy_helper.to_array(inits[name])

    nodes = list(g.node)
    # 1. weight Clips on initializers -> clipped initializers
    folded = {}
    for n in nodes:
        if n.op_type == "Clip" and len(n.input) == 3 and all(i in inits for i in n.input):
            v = array(n.input[0])
            t = numpy_helper.from_array(np.clip(v, array(n.input[1]), array(n.input[2])).astype(v.dtype), n.output[0])
            g.initializer.append(t)
            inits[t.name] = t
            folded[id(n)] = n
    nodes = [n for n in nodes if id(n) not in folded]
    producer, consumers = _links(nodes)

    def weight_dq(conv, k: int):
        dq = producer.get(conv.input[k]) if len(conv.input) > k else None
        return dq if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in inits else None

    convs = [n for n in nodes if n.op_type == "Conv" and weight_dq(n, 1) is not None]
    if not convs:
        raise ValueError("no Conv with DequantizeLinear weights: not a QCDQ graph")
    first, dropped = convs[0], []
    # 2. the first conv in fp32 on its dequantized weights and bias
    for k in (1, 2):
        dq = weight_dq(first, k)
        if dq is None:
            continue
        q = array(dq.input[0]).astype(np.float64)
        scale = array(dq.input[1]).astype(np.float64)
        zp = array(dq.input[2]).astype(np.float64) if len(dq.input) > 2 and dq.input[2] else np.zeros(1)
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        if scale.size > 1:
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zp = scale.reshape(shape), (zp.reshape(shape) if zp.size > 1 else zp)
        name = f"{first.input[k]}_fp32"
        g.initializer.append(numpy_helper.from_array(((q - zp) * scale).astype(np.float32), name))
        first.input[k] = name
        if len(consumers.get(dq.output[0], [])) == 1:
            dropped.append(dq)
    # 3. ReLU -> Q -> DQ -> MaxPool after the first conv  =>  ReLU -> MaxPool -> (Q -> DQ from step 4)
    moved = {}  # the pool's output -> the DQ whose grid it carries
    relu = next((n for n in consumers.get(first.output[0], []) if n.op_type == "Relu"), None)
    chain = [relu]
    for op in ("QuantizeLinear", "DequantizeLinear", "MaxPool"):
        users = consumers.get(chain[-1].output[0], []) if chain[-1] is not None else []
        chain.append(users[0] if len(users) == 1 and users[0].op_type == op else None)
    if None not in chain:
        relu, q1, dq1, pool = chain
        pool.input[0] = relu.output[0]
        dropped += [q1, dq1]
        moved[pool.output[0]] = dq1
    nodes = [n for n in nodes if all(n is not d for d in dropped)]
    producer, consumers = _links(nodes)

    # 4. Q/DQ after every grid-preserving node fed by a DequantizeLinear
    def grid_of(name: str):
        n = producer.get(name)
        while n is not None and n.op_type in GRID_PRESERVING and n.output[0] not in moved:
            n = producer.get(n.input[0])
        if n is not None and n.output[0] in moved:
            return moved[n.output[0]]
        return n if n is not None and n.op_type == "DequantizeLinear" and n.input[0] not in inits else None

    out = []
    for n in nodes:
        out.append(n)
        if n.op_type not in GRID_PRESERVING:
            continue
        dq = grid_of(n.output[0]) if n.output[0] in moved else grid_of(n.input[0])
        users = consumers.get(n.output[0], [])
        if dq is None or not users or all(u.op_type == "QuantizeLinear" for u in users):
            continue
        y = n.output[0]
        qname, dqname = f"{y}_q", f"{y}_dq"
        out.append(helper.make_node("QuantizeLinear", [y, *dq.input[1:3]], [qname], name=qname))
        out.append(helper.make_node("DequantizeLinear", [qname, *dq.input[1:3]], [dqname], name=dqname))
        for u in users:
            u.input[:] = [dqname if i == y else i for i in u.input]
        moved[dqname] = dq
        producer[dqname] = out[-1]
    del g.node[:]
    g.node.extend(out)
    _compact(graph, drop_zero_points=False)  # QGemm's fusion needs the weights' and biases' zero points
    onnx.checker.check_model(graph)
    return graph


def _compact(graph, drop_zero_points: bool = True) -> None:
    """Drop what a stored graph need not hold: all-zero zero points of a ``DequantizeLinear`` of an initializer
    (an optional input that defaults to 0; brevitas writes int32 zeros per bias channel; kept with
    ``drop_zero_points=False``: onnxruntime's QGemm fusion needs them), initializers nothing uses, and brevitas'
    long tensor and node names (renamed ``t<i>``; ``input`` and ``logits`` keep theirs). A few KB, which is what
    keeps a 4-bit file near its computed size."""
    from onnx import numpy_helper

    inits = {i.name: i for i in graph.graph.initializer}
    for node in graph.graph.node:
        if drop_zero_points and node.op_type == "DequantizeLinear" and len(node.input) == 3 \
                and node.input[0] in inits and node.input[2] in inits \
                and not numpy_helper.to_array(inits[node.input[2]]).any():
            del node.input[2]
    used = {i for n in graph.graph.node for i in n.input}
    for init in [i for i in graph.graph.initializer if i.name not in used]:
        graph.graph.initializer.remove(init)
    keep = {v.name for v in graph.graph.input} | {v.name for v in graph.graph.output}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, f"t{len(names)}")

    for init in graph.graph.initializer:
        init.name = short(init.name)
    for i, node in enumerate(graph.graph.node):
        node.input[:] = [short(x) for x in node.input]
        node.output[:] = [short(x) for x in node.output]
        node.name = f"n{i}"
    del graph.graph.value_info[:]


def opset_of(path) -> int:
    """The default-domain opset of the ONNX file at ``path``."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(int(op.version) for op in model.opset_import if op.domain in ("", "ai.onnx"))


def _threads() -> int:
    """onnxruntime threads for the export checks: as many as torch uses."""
    return max(1, torch.get_num_threads())


def run_onnx(path, x: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    sess = ort.session(path, _threads())
    outs = [sess.run([OUTPUT], {INPUT: x[i:i + batch_size].numpy()})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(outs) if outs else np.empty((0, 7), dtype=np.float32)


def fused_int8_nodes(path) -> dict:
    """Integer-kernel node counts (QLinearConv, QGemm, ...) of the graph onnxruntime's CPU provider builds from the
    export after its Q/DQ fusion (``extended`` optimizations, without the layout transforms), for the sidecar."""
    return kernels.int_kernel_counts(kernels.optimized_op_counts(path, _threads(), level="extended"))


def parity(path, model: torch.nn.Module, x: torch.Tensor) -> dict:
    """onnxruntime vs PyTorch logits on the preprocessed images ``x``."""
    with torch.no_grad():
        ref = torch.cat([model.eval()(x[i:i + 256]) for i in range(0, len(x), 256)]).numpy() if len(x) \
            else np.empty((0, 7), dtype=np.float32)
    got = run_onnx(path, x)
    diff = np.abs(got - ref)
    return {"n": int(len(x)), "max_abs_logit_diff": float(diff.max()) if len(x) else 0.0,
            "mean_abs_logit_diff": float(diff.mean()) if len(x) else 0.0,
            "prediction_agreement": float((got.argmax(1) == ref.argmax(1)).mean()) if len(x) else 1.0}


def within_tolerance(fmt: str, par: dict) -> bool:
    tol = TOLERANCE[fmt]
    return par["max_abs_logit_diff"] <= tol["max_abs"] and par["prediction_agreement"] >= tol["agreement"]


FORMAT_NOTES = {
    "float": "fp32 graph",
    "fp16": "float16 weight initializers, each Cast to float: fp32 compute on the fp16 weights (onnxruntime's x86 "
            "CPU provider has no fp16 Conv kernels); TensorRT --fp16 computes in fp16",
    "qcdq": "QuantizeLinear/Clip/DequantizeLinear graph with int8 weight initializers (sub-8-bit values in int8 "
            "containers); at 8 bits arranged for onnxruntime's int8 kernels (the first conv, one input channel, in "
            "fp32 on its dequantized weights; QLinearConv/QGemm from conv2 on): run it with "
            "disabled_optimizers=['QDQPropagationTransformer'] (see onnxruntime_session)",
    "int4": "opset-21 DequantizeLinear with INT4 weight initializers (packed two per byte, per-channel scales, "
            "axis 0); activations in int8 Q/DQ containers; onnxruntime dequantizes the weights and runs fp32 kernels",
    "fake-quant": "quantization emulated in fp32 (Round/Clip); fp32 weights and kernels: the file size is not the "
                  "model size (see size_bytes)",
}
