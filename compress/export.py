"""Deployable files and their verification: QDQ int8 ONNX, OpenVINO IR, evaluation from the files.

Contract of every file (same as the search's `model.onnx`): input `pixels`, float32 NCHW in [0, 1]
with a dynamic batch axis, normalisation inside, output `logits`. Each ONNX file also carries it, with its class names
and preprocessing, in its `metadata_props` (`nas.checkpoint.onnx_metadata`).

- `model_int8.onnx`: standard QuantizeLinear/DequantizeLinear pairs (what NPU vendor compilers
  take). NNCF's default ONNX export writes OpenVINO-only FakeQuantize nodes, so every quantizer is
  switched to QDQ export first (see ../shared/notes/compression.md). Activations are stored as uint8 (NNCF's int8
  zero points plus 128: the same grid) and a BatchNorm right after a conv is folded into that conv's per-channel
  weight scales and bias, so that onnxruntime on x86 runs those convs as QLinearConv too (`fold_conv_batchnorms`,
  `unsigned_activations`). A conv whose output feeds a GELU (fc1 and the conv mixer of `act=gelu` models) or a Reshape
  (attention's qkv) is not fused by onnxruntime and stays float there.
- `model_int8.xml/.bin`: OpenVINO IR converted from that QDQ file, with the channel and spatial
  dims static (OpenVINO >= 2025.2 otherwise leaves size-1 dims dynamic and an int8 conv on a
  dynamic channel dim fails to compile). OpenVINO runs it as real int8 on this host's CPU.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from nas.checkpoint import export_onnx, onnx_logits, torch_logits  # noqa: F401 - re-exported for callers
from nas.checkpoint import replacing, replacing_together
from nas.data import Split, iterate_batches
from nas.train import accuracy  # noqa: F401 - re-exported for callers (it lives beside nas.train's other metrics)
from nas.errors import CheckpointError
from nas.sigstack import signal_stack_kept
from nas.telemetry import openvino_telemetry_off

if TYPE_CHECKING:
    import onnx
    import openvino as ov


# The form of the int8 file `export_int8_onnx` writes, raised when that form changes: `nas.latency.profile` keys its
# reusable int8 exports on it, so a profile never times a file written by an earlier form as the one shipped now.
# 2: BatchNorms after quantized convs folded and activations stored as uint8 (onnxruntime on x86 then runs those convs
# in int8; 2026-12-07). 3: also the BatchNorms whose parameters torch's exporter reads through Identity nodes (equal
# parameters stored once: every BatchNorm of a new model, as latency profiles export them; 2026-12-07). Folding a
# BatchNorm whose gamma is 0 as well changed no file of a new model (gamma all ones), the only models profiles export.
INT8_EXPORT_FORMAT = 3


def export_int8_onnx(quantized: nn.Module, path: str | os.PathLike, *, in_chans: int, img_size: int,
                     metadata: Mapping[str, str] | None = None) -> Path:
    """Write an NNCF-quantized torch model as QDQ ONNX (opset 17, dynamic batch, int8 weights), with `metadata`
    (`nas.checkpoint.onnx_metadata`) in its `metadata_props`, which the fold keeps.

    `path` appears only once the weights are folded: a kill between the export and the fold leaves no file there (a
    tagged temporary one, which `nas.checkpoint.remove_dead_writers_temps` clears), not an unfolded QDQ model (fp32
    weights) that a profile reusing its exports would time as the file the compression ships."""
    with openvino_telemetry_off():  # NNCF imports openvino, whose import (the first in a process) sends a message
        from nncf.torch.quantization.layers import BaseQuantizer, QuantizerExportMode

    for module in quantized.modules():
        if isinstance(module, BaseQuantizer):
            module._export_mode = QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS
    path = Path(path)
    with replacing(path) as tmp:
        fold_weight_quantizers(export_onnx(quantized, tmp, in_chans=in_chans, img_size=img_size, metadata=metadata))
    return path


def fold_weight_quantizers(path: str | os.PathLike) -> Path:
    """Store quantized weights as int8 initializers (the standard QDQ layout) in place.

    NNCF's QDQ export keeps every weight in fp32 followed by a QuantizeLinear; this computes those
    QuantizeLinear nodes once (ONNX semantics: round half to even, then saturate) so the file holds
    int8 weights feeding DequantizeLinear, like onnxruntime's own quantizer writes them: ~4x smaller
    weights, the same numbers. Then folds each BatchNorm that follows a quantized conv into it and stores activations
    as uint8 (`fold_conv_batchnorms`, `unsigned_activations`), and compacts the graph.
    """
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    model = onnx.load(str(path))
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consts = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}

    def value(name: str) -> np.ndarray | None:
        if name in inits:
            return numpy_helper.to_array(inits[name])
        node = consts.get(name)
        if node is not None:
            return numpy_helper.to_array(next(a.t for a in node.attribute if a.name == "value"))
        return None

    users: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            users[i] = users.get(i, 0) + 1
    folded, rename = [], {}
    fresh = _fresh_names(graph)
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] not in inits or len(node.input) < 3:
            continue
        w, scale, zp = value(node.input[0]), value(node.input[1]), value(node.input[2])
        if scale is None or zp is None:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if scale.ndim == 1 and scale.size > 1:  # per-channel: broadcast along `axis`
            shape = [1] * w.ndim
            shape[axis] = scale.size
            scale, zp_b = scale.reshape(shape), zp.reshape(shape)
        else:
            zp_b = zp
        info = np.iinfo(zp.dtype)
        q = np.clip(np.rint(w / scale) + zp_b.astype(np.int32), info.min, info.max).astype(zp.dtype)
        name = fresh(f"{node.input[0]}_quantized")  # one weight may have two quantizers (a module called twice)
        graph.initializer.append(numpy_helper.from_array(q, name))
        rename[node.output[0]] = name
        folded.append(node)
        users[node.input[0]] -= 1
    for node in folded:
        graph.node.remove(node)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    for name, tensor in inits.items():
        if users.get(name, 0) == 0 and any(name == n.input[0] for n in folded):
            graph.initializer.remove(tensor)
    fold_conv_batchnorms(model)
    unsigned_activations(model)
    compact_graph(model)
    onnx.checker.check_model(model)
    # A tagged temporary name, so a run after a kill -9 mid-save removes it; one file (onnx.save writes external data
    # only when asked, and the model was loaded with its tensors inside).
    with replacing(path) as tmp:
        onnx.save(model, str(tmp))
    return path


def _graph_maps(graph: onnx.GraphProto) -> tuple[dict, dict, Callable[[str], np.ndarray | None]]:
    """(producer of each tensor, consumers of each tensor, the constant value of a tensor or None) of `graph`.

    A constant read through Identity nodes is a constant: torch's exporter stores equal parameters once and gives each
    other user an Identity of it, so a new model's BatchNorms (weight and running variance all ones, bias and running
    mean all zeros) read most of their parameters that way; left unread, none of them was folded."""
    from onnx import numpy_helper

    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    inits = {t.name: t for t in graph.initializer}

    def value(name: str) -> np.ndarray | None:
        if name in inits:
            return numpy_helper.to_array(inits[name])
        node = producer.get(name)
        if node is not None and node.op_type == "Constant":
            return numpy_helper.to_array(next(a.t for a in node.attribute if a.name == "value"))
        if node is not None and node.op_type == "Identity":
            return value(node.input[0])
        return None

    return producer, consumers, value


def _fresh_names(graph: onnx.GraphProto) -> Callable[[str], str]:
    """A function that gives each name asked for, or that name with a number added where `graph` (or an earlier call)
    already has it: two initializers of one name make an invalid file."""
    taken = ({t.name for t in graph.initializer} | {v.name for v in (*graph.input, *graph.output, *graph.value_info)}
             | {name for n in graph.node for name in (*n.input, *n.output)})

    def fresh(name: str) -> str:
        unique, i = name, 0
        while unique in taken:
            i += 1
            unique = f"{name}_{i}"
        taken.add(unique)
        return unique

    return fresh


def fold_conv_batchnorms(model: onnx.ModelProto) -> int:
    """Fold each BatchNormalization that is the only consumer of a Conv with int8 QDQ weights into that conv, in place;
    returns how many were folded.

    NNCF quantizes a Conv + BatchNorm pair (the stem and downsample convs with `norm="bn"`) as built: the file held
    DQ -> Conv -> BatchNormalization -> QuantizeLinear, and onnxruntime fuses a Conv into QLinearConv only where its
    output goes straight to a QuantizeLinear, so those convs ran in float. BatchNorm in eval mode is a per-output-channel
    `k * y + shift` (k = gamma / sqrt(var + eps)), and the weights are quantized per output channel: multiplying
    channel c's weight scale by |k_c| (negating its int8 weights where k_c < 0) and taking the bias to `k * bias + shift`
    computes the same numbers with the same int8 weights, and keeps NNCF's bias correction (folding in torch before
    quantizing lost it). A channel whose folded weight scale is 0 (k_c = 0: a gamma of 0, or a scale so small that it
    rounds to 0) outputs the constant `k * bias + shift` (beta where k_c = 0): its int8 weights become 0 under a
    positive weight scale (the conv's own, else 1), as a scale of 0 would leave no valid QDQ file, and the bias carries
    the constant. A pair this cannot express exactly (a weight of -128 to negate, a k_c, scale or bias that is not
    finite, non-zero weight zero points, a BatchNorm in training mode) is left as it is, and so is every pair of a model
    below opset 13, whose DequantizeLinear has no per-channel form."""
    from onnx import helper, numpy_helper

    graph = model.graph
    if next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0) < 13:
        return 0  # DequantizeLinear's axis (per-channel scales) came in opset 13: the fold would write an invalid file
    producer, consumers, value = _graph_maps(graph)
    outputs = {v.name for v in graph.output}
    folded = 0
    for bn in [n for n in graph.node if n.op_type == "BatchNormalization"]:
        attrs = {a.name: helper.get_attribute_value(a) for a in bn.attribute}
        conv = producer.get(bn.input[0])
        if (attrs.get("training_mode", 0) or conv is None or conv.op_type != "Conv" or conv.output[0] in outputs
                or len(consumers[conv.output[0]]) != 1 or any(o for o in bn.output[1:])):
            continue
        dq = producer.get(conv.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or len(consumers[dq.output[0]]) != 1:
            continue
        params = [value(name) for name in bn.input[1:5]]
        q, scale = value(dq.input[0]), value(dq.input[1])
        zp = value(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else np.zeros((), np.int8)
        if any(p is None for p in (*params, q, scale, zp)) or q.dtype != np.int8 or zp.any():
            continue
        channels = q.shape[0]
        axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        if scale.size != 1 and (scale.shape != (channels,) or axis not in (0, -q.ndim)):
            continue
        bias = value(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else np.zeros(channels, np.float32)
        if bias is None:
            continue
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)
        with np.errstate(all="ignore"):  # a variance of 0 with epsilon 0, or below -epsilon: checked just below
            k = gamma / np.sqrt(var + attrs.get("epsilon", 1e-5))
            new = {"scale": (np.broadcast_to(scale.astype(np.float64), (channels,)) * np.abs(k)).astype(scale.dtype),
                   "bias": (bias.astype(np.float64) * k + beta - mean * k).astype(bias.dtype)}
        # A channel whose folded scale is 0 (k_c = 0, or so small that it rounds to 0) is the constant its new bias
        # holds: its weights become 0, under the conv's own scale where that is positive and finite (else 1), since a
        # scale of 0 makes no valid QDQ file (and onnxruntime quantizes a fused conv's bias on the grid input scale x
        # weight scale: the conv's own scale keeps that grid as fine as the channel's unfolded one). Left as it was,
        # the BatchNorm kept the whole conv in float on onnxruntime.
        zeroed = new["scale"] == 0
        own = np.broadcast_to(scale, (channels,))
        positive_own = np.where((own > 0) & np.isfinite(own), own, 1)
        new["scale"] = np.where(zeroed, positive_own, new["scale"]).astype(scale.dtype)
        zeroed_q = np.broadcast_to(zeroed.reshape((-1,) + (1,) * (q.ndim - 1)), q.shape)
        negated = np.broadcast_to((k < 0).reshape((-1,) + (1,) * (q.ndim - 1)), q.shape) & ~zeroed_q
        # Left to the BatchNorm: a k_c, scale or bias that is not finite (a variance of 0 with epsilon 0), where the
        # file would compute NaN (0 * inf) and the BatchNorm's QuantizeLinear saturates; -128, which has no int8
        # negation.
        if (not np.isfinite(k).all() or not (new["scale"] > 0).all() or not np.isfinite(new["scale"]).all()
                or not np.isfinite(new["bias"]).all() or (q[negated] == -128).any()):
            continue
        weight = np.where(zeroed_q, 0, np.where(negated, -q.astype(np.int16), q)).astype(np.int8)
        new |= {"weight": weight, "zero_point": np.zeros(channels, zp.dtype)}
        names = {key: f"{conv.name or conv.output[0]}_bn_folded_{key}" for key in new}
        for key, array in new.items():
            graph.initializer.append(numpy_helper.from_array(array, names[key]))
        for i, key in enumerate(("weight", "scale", "zero_point")):
            if i < len(dq.input):
                dq.input[i] = names[key]
            else:
                dq.input.append(names[key])
        for attr in [a for a in dq.attribute if a.name == "axis"]:
            dq.attribute.remove(attr)
        dq.attribute.append(helper.make_attribute("axis", 0))
        if len(conv.input) > 2:
            conv.input[2] = names["bias"]
        else:
            conv.input.append(names["bias"])
        conv.output[0] = bn.output[0]  # the BatchNorm's consumers now read the conv
        graph.node.remove(bn)
        folded += 1
    if folded:
        _drop_unused_constants(graph)
    return folded


def unsigned_activations(model: onnx.ModelProto) -> int:
    """Store each int8 activation QuantizeLinear/DequantizeLinear pair as uint8 with its zero point + 128, in place;
    returns how many Q nodes changed.

    The same grid, the same numbers: round(x / s) + z saturated to [-128, 127] is 128 less than it plus 128 saturated
    to [0, 255]. onnxruntime on x86 fuses only uint8 activations into QLinearConv/QLinearAdd and converts an int8 pair
    itself only where the QuantizeLinear feeds one DequantizeLinear: a tensor with two consumers (a stem or
    downsample conv's output, read by the block's norm and its residual add) stayed int8 while the conv's input became
    uint8, and the conv (its input and output types differing) ran in float. uint8 activations with int8 weights are
    also onnxruntime's own quantizer's default. A changed tensor's recorded type (`value_info`), where the file has
    one, becomes uint8 too."""
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    _, consumers, value = _graph_maps(graph)
    outputs = {v.name for v in graph.output}
    changed = 0
    for q in [n for n in graph.node if n.op_type == "QuantizeLinear"]:
        if (len(q.input) < 3 or not q.input[2] or q.output[0] in outputs
                or any(a.name == "output_dtype" for a in q.attribute)):
            continue
        zp, dqs = value(q.input[2]), consumers.get(q.output[0], [])
        # a constant input is a weight left unfolded: int8 weights (with uint8 activations) are what QLinearConv takes
        if zp is None or zp.dtype != np.int8 or zp.size != 1 or not dqs or value(q.input[0]) is not None:
            continue
        if any(d.op_type != "DequantizeLinear" or len(d.input) < 3 or not np.array_equal(value(d.input[2]), zp)
               for d in dqs):
            continue
        name = f"{q.output[0]}_zero_point_u8"
        graph.initializer.append(numpy_helper.from_array((zp.astype(np.int16) + 128).astype(np.uint8), name))
        for node in [q, *dqs]:
            node.input[2] = name
        # A file that holds inferred types (value_info) would otherwise still say int8 here: onnxruntime refuses it
        for info in graph.value_info:
            if info.name == q.output[0] and info.type.HasField("tensor_type"):
                info.type.tensor_type.elem_type = onnx.TensorProto.UINT8
        changed += 1
    if changed:
        _drop_unused_constants(graph)
    return changed


def _drop_unused_constants(graph: onnx.GraphProto) -> None:
    """Remove the initializers, Constant nodes and Identity nodes of constants that no node reads and that are no graph
    output (an Identity that only a folded BatchNorm read, and then what only it read)."""
    _, _, value = _graph_maps(graph)
    while True:
        used = {i for n in graph.node for i in n.input} | {v.name for v in graph.output} | {v.name for v in graph.input}
        dead = [n for n in graph.node if n.op_type in ("Constant", "Identity") and n.output[0] not in used
                and (n.op_type == "Constant" or value(n.input[0]) is not None)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)


def compact_graph(model: onnx.ModelProto) -> None:
    """Shrink an ONNX model's bookkeeping in place, leaving its computation unchanged: identical Constant
    nodes (the many equal zero points and scales of a QDQ graph) are shared, and internal node and tensor
    names become short ids. On the default run's winners (< 0.5M parameters) this took the fp32/int8 size
    ratio from 2.3-3.1x to 3.35-3.67x (experiments/results/compression_proxy2ep.md, before and after this change).
    The graph's input and output names stay."""
    graph = model.graph
    seen: dict[tuple, str] = {}
    alias: dict[str, str] = {}
    for node in list(graph.node):
        if node.op_type != "Constant" or len(node.attribute) != 1 or node.attribute[0].name != "value":
            continue
        t = node.attribute[0].t
        key = (t.data_type, tuple(t.dims), t.SerializeToString(deterministic=True).replace(t.name.encode(), b""))
        if key in seen:
            alias[node.output[0]] = seen[key]
            graph.node.remove(node)
        else:
            seen[key] = node.output[0]
    keep = {v.name for v in graph.input} | {v.name for v in graph.output}
    names: dict[str, str] = {}

    def short(name: str) -> str:
        name = alias.get(name, name)
        if not name or name in keep:
            return name
        return names.setdefault(name, f"t{len(names)}")

    for t in graph.initializer:
        t.name = short(t.name)
    for i, node in enumerate(graph.node):
        node.name = f"n{i}"
        node.doc_string = ""
        for j, name in enumerate(node.input):
            node.input[j] = short(name)
        for j, name in enumerate(node.output):
            node.output[j] = short(name)
    for v in graph.value_info:
        v.name = short(v.name)


@contextlib.contextmanager
def _root_logger_kept() -> Iterator[None]:
    """The root logger's level, handlers and filters as they were before the block, put back after it. OpenVINO's
    converter, failing on a file it cannot read, leaves the root logger at ERROR with a stderr handler and a filter of
    its own: every warning logged after it (a search's setup warnings, which search.log and the report keep) was lost."""
    root = logging.getLogger()
    level, handlers, filters = root.level, list(root.handlers), list(root.filters)
    try:
        yield
    finally:
        root.setLevel(level)
        root.handlers[:], root.filters[:] = handlers, filters


def export_openvino(onnx_path: str | os.PathLike, xml_path: str | os.PathLike, *, in_chans: int, img_size: int) -> Path:
    """Convert an ONNX file to OpenVINO IR (`.xml` + `.bin`), batch dynamic, C/H/W static. OpenVINO's telemetry sends
    nothing for the import and the conversion unless the user opted in (`nas.telemetry.openvino_telemetry_off`)."""
    xml_path = Path(xml_path)
    with openvino_telemetry_off(), _root_logger_kept():
        import openvino as ov

        model = ov.convert_model(str(onnx_path), input=[(-1, in_chans, img_size, img_size)])
    # OpenVINO takes only an .xml name and writes the .bin beside it: both go into one tagged temporary folder (which a run
    # after a kill -9 mid-save removes), the .bin renamed into place first so that a new .xml never meets an old .bin.
    with replacing_together(xml_path.with_suffix(".bin"), xml_path) as tmp:
        ov.save_model(model, str(tmp / xml_path.name), compress_to_fp16=False)  # keep fp32 constants exactly as exported
    return xml_path


def _require(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p} not found; re-run the compression step that writes it")
    return p


def openvino_cause(e: BaseException) -> str:
    """The line of an OpenVINO error that says what is wrong ("bin file cannot be found", "Error parsing ..."): its
    first lines only name the C++ source files the exception passed through."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    # "Check '<condition>' failed at src/...cpp:N:" names the failed assertion and its source; the line after it
    # says what is wrong in words (a missing .bin file: "bin file cannot be found!")
    located = ("Exception from ", "Check '")
    cause = next((ln for ln in lines if not ln.startswith(located)), lines[0] if lines else type(e).__name__)
    return cause[:200]


def read_openvino(core: ov.Core, xml_path: str | os.PathLike) -> ov.Model:
    """The OpenVINO model of an IR file, or `CheckpointError` in one line when it is missing or unreadable."""
    try:
        return core.read_model(str(_require(xml_path)))
    except RuntimeError as e:
        raise CheckpointError(f"{xml_path} is not a readable OpenVINO IR: {openvino_cause(e)}") from None


def openvino_runner(xml_path: str | os.PathLike, *, threads: int = 2) -> Callable[[np.ndarray], np.ndarray]:
    """Logits of a float32 pixel batch computed by OpenVINO CPU from the IR file alone (f32 for non-int8 parts),
    compiled once for many calls."""
    with openvino_telemetry_off():  # its import (the first in a process) sends a message
        import openvino as ov

    core = ov.Core()
    model = read_openvino(core, xml_path)
    with signal_stack_kept():  # the CPU plugin's own signal stack, unmapped when it is freed, never left in use
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": int(threads)})
    request = compiled.create_infer_request()
    out = compiled.output(0)
    return lambda x: request.infer({0: x})[out].copy()


def openvino_logits(xml_path: str | os.PathLike, split: Split, *, batch_size: int = 512, threads: int = 2) -> np.ndarray:
    """Logits of `split` computed by OpenVINO CPU from the IR file alone (f32 for non-int8 parts)."""
    run = openvino_runner(xml_path, threads=threads)
    return np.concatenate([run(x.numpy()) for x, _ in iterate_batches(split, batch_size=batch_size)])


def agreement(reference: np.ndarray, other: np.ndarray, *, flips_of: np.ndarray | None = None) -> dict[str, float]:
    """How close two models' logits are: max |difference| (absolute and relative to the reference's largest |logit|),
    the share of inputs with the same top-1 class (`top1_agreement`), and that share counting only decided flips
    (`top1_agreement_decided`): a flip on an input whose reference top-two margin is at most `near_tie_margin` is a
    near tie (`near_tie_flips` of the `top1_flips`). `near_tie_margin` is twice the median over inputs of the largest
    |difference| per input: the file's typical rounding, by which each of the two logits may move. `flips_of`: a third
    run's logits (the file run operator by operator); `shared_flips` then counts the `top1_flips` that it flips too.

    Not the input's own largest |difference|: any flip moves its two logits by at least half its margin, so that bound
    would excuse every flip. Models with near-tied logits (a few epochs' training) flip top-1 on several percent of
    inputs under rounding of ~1% of the logits; a flip beyond the typical rounding is what a fault in the file does."""
    per_input = np.abs(reference - other).max(axis=1)
    diff = float(per_input.max())
    scale = float(np.abs(reference).max()) or 1.0
    flips = reference.argmax(1) != other.argmax(1)
    best_two = np.sort(reference, axis=1)[:, -2:]
    margin = best_two[:, -1] - best_two[:, 0] if reference.shape[1] > 1 else np.full(len(reference), np.inf)
    near_tie_margin = 2.0 * float(np.median(per_input))
    near = flips & (margin <= near_tie_margin)
    out = {"max_abs_diff": diff, "max_rel_diff": diff / scale, "top1_agreement": float(1.0 - flips.mean()),
           "top1_agreement_decided": float(1.0 - (flips & ~near).mean()), "top1_flips": int(flips.sum()),
           "near_tie_flips": int(near.sum()), "near_tie_margin": near_tie_margin}
    if flips_of is not None:  # which images, not how many: equal counts of other images read as the very ones
        out["shared_flips"] = int((flips & (reference.argmax(1) != flips_of.argmax(1))).sum())
    return out


def torch_runner(model: nn.Module, *, threads: int) -> Callable[[np.ndarray], np.ndarray]:
    """Batch-1 torch eager fp32 inference as a deployment would call it (numpy in, numpy out)."""
    model = model.eval()

    def run(x: np.ndarray) -> np.ndarray:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return run
