"""compress.export's files: written atomically, and a writer killed before its rename leaves nothing a run keeps."""

from pathlib import Path

import pytest

from conftest import relu_onnx, start_stopped_writer, stop

from nas.arch import ArchConfig, StageConfig
from nas.checkpoint import export_onnx, remove_dead_writers_temps
from nas.model import build_model

ARCH = ArchConfig(stages=(StageConfig(mixer="sepconv", depth=1, width=16), StageConfig(mixer="pool", depth=1, width=16)),
                  norm="bn", act="relu", stem_stride=4)


def _onnx(path: Path) -> Path:
    return export_onnx(build_model(ARCH), path, in_chans=1, img_size=28)


def test_folding_weights_killed_before_its_rename_leaves_a_file_the_next_run_removes(tmp_path):
    model = _onnx(tmp_path / "model_int8.onnx")  # the file as the QDQ export leaves it, before its weights are folded
    before = model.read_bytes()
    killed, temp_of = start_stopped_writer("from compress.export import fold_weight_quantizers",
                                           "fold_weight_quantizers(Path(sys.argv[1]))", str(model))
    left = temp_of()
    stop(killed)  # kill -9 with the folded model written, not renamed (it was a fixed .model_int8.onnx.tmp)
    assert left.parent == tmp_path and left.stat().st_size > 0
    assert remove_dead_writers_temps(tmp_path) == [left]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_int8.onnx"] and model.read_bytes() == before


def test_openvino_ir_is_written_as_a_pair_and_a_writer_killed_before_its_renames_leaves_a_folder_the_next_run_removes(
        tmp_path):
    from compress.export import export_openvino, read_openvino

    import openvino as ov

    onnx_path = _onnx(tmp_path / "model.onnx")
    xml = export_openvino(onnx_path, tmp_path / "model_int8.xml", in_chans=1, img_size=28)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model_int8.bin", "model_int8.xml"]
    assert read_openvino(ov.Core(), xml).inputs[0].get_partial_shape().to_string() == "[?,1,28,28]"

    killed, temp_of = start_stopped_writer(
        "from compress.export import export_openvino",
        "export_openvino(Path(sys.argv[1]), Path(sys.argv[2]), in_chans=1, img_size=28)",
        str(onnx_path), str(tmp_path / "again" / "model_int8.xml"))
    left = temp_of()  # the .bin, renamed first
    stop(killed)  # kill -9 with both files written, neither renamed (they were .model_int8.tmp.xml/.bin)
    held = left.parent  # one tagged folder holds the pair: OpenVINO names the .bin after the .xml it is given
    assert held.parent == tmp_path / "again" and sorted(p.name for p in held.iterdir()) == ["model_int8.bin", "model_int8.xml"]
    assert remove_dead_writers_temps(tmp_path) == [held]
    assert list((tmp_path / "again").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "model.onnx", "model_int8.bin", "model_int8.xml"]


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/fd"), reason="tells the files apart by /proc/self/fd")
def test_an_openvino_ir_over_a_full_quota_raises_the_disks_error_naming_the_xml_and_keeps_the_previous_pair(
        tmp_path, monkeypatch):
    # OpenVINO's save_model reports a refused write as RuntimeError("basic_ios::clear: iostream error"), with no errno
    # and no file name (what it raised for a .bin or .xml write refused past RLIMIT_FSIZE): on a full quota, where
    # statvfs still shows the disk's free space, the IR's write must say the disk's error about the .xml in one line,
    # and the pair written before stays whole (the .bin was being written first).
    import errno

    import openvino as ov
    from conftest import over_quota

    from compress.export import export_openvino, read_openvino

    onnx_path = _onnx(tmp_path / "model.onnx")
    xml = export_openvino(onnx_path, tmp_path / "model_int8.xml", in_chans=1, img_size=28)
    pair = {p: p.read_bytes() for p in (xml, xml.with_suffix(".bin"))}

    def quota_full(model, path, *args, **kwargs):  # what fitted of the .bin written, then the write refused
        Path(path).with_suffix(".bin").write_bytes(bytes(100))
        raise RuntimeError("basic_ios::clear: iostream error")

    monkeypatch.setattr(ov, "save_model", quota_full)
    over_quota(monkeypatch, tmp_path)
    with pytest.raises(OSError) as raised:
        export_openvino(onnx_path, xml, in_chans=1, img_size=28)
    e = raised.value
    assert (e.errno, e.strerror, e.filename) == (errno.EDQUOT, "Disk quota exceeded", str(xml))
    assert str(e) == f"[Errno {errno.EDQUOT}] Disk quota exceeded: '{xml}'" and isinstance(e.__cause__, RuntimeError)
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in pair} == pair
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model_int8.bin", "model_int8.xml"]  # no temp
    assert read_openvino(ov.Core(), xml).inputs[0].get_partial_shape().to_string() == "[?,1,28,28]"


def test_an_int8_export_stopped_before_its_weights_are_folded_leaves_no_file_at_its_name(tmp_path, monkeypatch):
    # The QDQ export was renamed onto model_int8.onnx before the fold rewrote it: a kill between the two left an
    # unfolded model (fp32 weights) at the final name, which a profile reusing its exports would time as the int8 file.
    import pytest

    import compress.export as export

    def killed(path):
        raise KeyboardInterrupt  # where a kill between the export and the fold lands

    monkeypatch.setattr(export, "fold_weight_quantizers", killed)
    with pytest.raises(KeyboardInterrupt):
        export.export_int8_onnx(build_model(ARCH), tmp_path / "model_int8.onnx", in_chans=1, img_size=28)
    assert list(tmp_path.iterdir()) == []  # neither the unfolded model nor a temporary file
    monkeypatch.undo()
    path = export.export_int8_onnx(build_model(ARCH), tmp_path / "model_int8.onnx", in_chans=1, img_size=28)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_int8.onnx"] and path.stat().st_size > 0


def test_agreement_excuses_top1_flips_on_near_tied_images_but_counts_decided_ones() -> None:
    # compress=smoke models (~27% accurate) have near-tied logits: the file run operator by operator was ~1% off the
    # int8 model yet agreed on top-1 for only ~98.3% of images, and every run was called an export problem. A flip
    # whose two best logits lie within what the file's typical rounding moves two logits is a near tie, not an error.
    import numpy as np

    from compress.export import agreement

    reference = np.array([[3.0, 1.0, 0.0], [0.0, 3.0, 1.0], [2.0, 1.99, 0.0], [4.0, 0.0, 1.0]], dtype=np.float32)
    other = reference + np.array([[0.01, 0, 0], [0, -0.01, 0], [-0.01, 0.01, 0], [-4.0, 4.0, 0]], dtype=np.float32)
    agree = agreement(reference, other)
    assert agree["top1_agreement"] == 0.5  # the raw share, as before: images 2 (near tie) and 3 flip
    assert agree["top1_flips"] == 2 and agree["near_tie_flips"] == 1
    assert agree["top1_agreement_decided"] == 0.75  # image 3's margin of 3 is far beyond 0.01 of rounding
    assert agree["max_abs_diff"] == 4.0 and abs(agree["near_tie_margin"] - 0.02) < 1e-6
    same = agreement(reference, reference)
    assert same["top1_agreement"] == same["top1_agreement_decided"] == 1.0 and same["near_tie_flips"] == 0
    assert "shared_flips" not in agree
    # how many of its flips a third run (the file operator by operator) flips too: the very images, not as many
    third = reference.copy()
    third[0] = [0.0, 3.0, 1.0]  # flips image 0, not one of other's
    assert agreement(reference, other, flips_of=third)["shared_flips"] == 0
    third[3] = [0.0, 4.0, 1.0]  # and image 3, which other flips too
    assert agreement(reference, other, flips_of=third)["shared_flips"] == 1


def test_openvino_runners_freed_in_the_order_made_leave_the_threads_signal_stack_as_it_was(tmp_path):
    # Each runner's CPU plugin made its own alternate signal stack the thread's and unmapped it when freed: two freed in
    # the order made left the thread on the first one's unmapped stack (the next Ctrl-C: SIGSEGV, tests/test_sigstack.py)
    from compress.export import export_openvino, openvino_runner
    from nas.sigstack import signal_stack

    xml = export_openvino(relu_onnx(tmp_path / "relu.onnx"), tmp_path / "relu.xml", in_chans=1, img_size=4)
    before = signal_stack()
    first, second = openvino_runner(xml, threads=1), openvino_runner(xml, threads=1)
    assert signal_stack() == before
    del first, second  # in the order made
    assert signal_stack() == before


def test_int8_export_lets_onnxruntime_run_every_conv_in_int8_and_computes_the_same(tmp_path, monkeypatch):
    # The stem and downsample convs (Conv -> BatchNorm in the file, their output read by a norm and a residual add)
    # ran as float Conv in onnxruntime on x86, 3 of 12 convs on a 3-stage model: the file now folds those BatchNorms
    # into the convs and writes activations as uint8, and computes the same numbers.
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    from conftest import make_idx_dataset

    import compress.export as export
    from compress.quantize import quantize_ptq
    from nas.config import DataConfig
    from nas.data import load_dataset

    data = load_dataset(DataConfig(name="tiny", root=str(make_idx_dataset(tmp_path / "fm", n_train=100, n_test=40)),
                                   max_shift=0, hflip=False))
    torch.manual_seed(0)
    model = build_model(ARCH).eval()
    # The stem's BatchNorm as a new model has it (weight and variance all ones: torch's exporter stores them once and
    # reads one through an Identity node, as in the new models latency profiles export), the others not the identity
    for bn in [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)][1:]:
        c = bn.num_features
        bn.weight.data = torch.linspace(-1.5, 2.0, c)[torch.randperm(c)]  # some negative: their int8 weights negated
        bn.bias.data, bn.running_mean, bn.running_var = torch.randn(c) * 0.1, torch.randn(c) * 0.1, torch.rand(c) + 0.5
    quantized, _ = quantize_ptq(model, data.train, size=16, seed=0)

    path = export.export_int8_onnx(quantized, tmp_path / "model_int8.onnx", in_chans=1, img_size=28)
    nodes = onnx.load(str(path)).graph.node
    convs = sum(n.op_type == "Conv" for n in nodes)
    conv_outputs = {n.output[0] for n in nodes if n.op_type == "Conv"}
    assert convs >= 4 and not any(n.op_type == "BatchNormalization" and n.input[0] in conv_outputs for n in nodes)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ran = [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
    assert "Conv" not in ran and ran.count("QLinearConv") == convs

    # The same computation: int8 -> uint8 activations exactly, the BatchNorm fold up to float rounding.
    monkeypatch.setattr(export, "fold_conv_batchnorms", lambda model: 0)
    monkeypatch.setattr(export, "unsigned_activations", lambda model: 0)
    as_before = export.export_int8_onnx(quantized, tmp_path / "before.onnx", in_chans=1, img_size=28)
    monkeypatch.undo()
    variants = {}
    for name, rewrite in (("unsigned", export.unsigned_activations), ("folded", export.fold_conv_batchnorms)):
        model = onnx.load(str(as_before))
        assert rewrite(model) > 0
        onnx.save(model, str(tmp_path / f"{name}.onnx"))
        variants[name] = export.onnx_logits(tmp_path / f"{name}.onnx", data.test, reference=True)
    before = export.onnx_logits(as_before, data.test, reference=True)
    np.testing.assert_array_equal(variants["unsigned"], before)
    for logits in (variants["folded"], export.onnx_logits(path, data.test, reference=True)):
        assert np.abs(logits - before).max() <= 0.02 * np.abs(before).max()


def test_a_batchnorm_with_a_zero_gamma_is_folded_and_its_conv_runs_in_int8(tmp_path, monkeypatch):
    # gamma 0 makes a channel's folded weight scale 0, which no QDQ file may hold: the BatchNorm stayed in the file and
    # onnxruntime ran its conv in float. The channel is the constant beta: its int8 weights are now 0 under a positive
    # scale and the bias carries beta.
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    from conftest import make_idx_dataset
    from onnx import numpy_helper

    import compress.export as export
    from compress.pipeline import INT8_AGREEMENT_TOLERANCE
    from compress.quantize import quantize_ptq
    from nas.config import DataConfig
    from nas.data import load_dataset

    data = load_dataset(DataConfig(name="tiny", root=str(make_idx_dataset(tmp_path / "fm", n_train=100, n_test=40)),
                                   max_shift=0, hflip=False))
    torch.manual_seed(0)
    model = build_model(ARCH).eval()
    convs_bns = [(m[0], m[1]) for m in model.modules() if isinstance(m, torch.nn.Sequential) and len(m) == 2
                 and isinstance(m[1], torch.nn.BatchNorm2d)]  # the stem's and the downsample's Conv + BatchNorm
    assert len(convs_bns) == 2
    for _, bn in convs_bns:
        c = bn.num_features
        bn.weight.data = torch.linspace(0.5, 2.0, c)
        bn.weight.data[3] = 0.0
        bn.bias.data, bn.running_mean, bn.running_var = torch.randn(c) * 0.1, torch.randn(c) * 0.1, torch.rand(c) + 0.5
    quantized, _ = quantize_ptq(model, data.train, size=16, seed=0)

    path = export.export_int8_onnx(quantized, tmp_path / "model_int8.onnx", in_chans=1, img_size=28)
    graph = onnx.load(str(path)).graph
    conv_outputs = {n.output[0] for n in graph.node if n.op_type == "Conv"}
    assert not any(n.op_type == "BatchNormalization" and n.input[0] in conv_outputs for n in graph.node)
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    zeroed = [w for w in inits.values() if w.dtype == np.int8 and w.ndim == 4 and not w[3].any() and w[2].any()]
    assert len(zeroed) == 2  # channel 3 of both convs: all int8 zeros
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    ran = [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
    assert "Conv" not in ran and ran.count("QLinearConv") == len(conv_outputs)

    # The same numbers as the file with its BatchNorms left (up to float rounding), and as the int8 torch model within
    # the compression's stated tolerance.
    monkeypatch.setattr(export, "fold_conv_batchnorms", lambda model: 0)
    unfolded = export.export_int8_onnx(quantized, tmp_path / "unfolded.onnx", in_chans=1, img_size=28)
    monkeypatch.undo()
    before = export.onnx_logits(unfolded, data.test, reference=True)
    logits = export.onnx_logits(path, data.test, reference=True)
    assert np.abs(logits - before).max() <= 0.02 * np.abs(before).max()
    agree = export.agreement(export.torch_logits(quantized, data.test), logits)
    assert agree["max_rel_diff"] <= INT8_AGREEMENT_TOLERANCE["max_rel_diff"], agree
    assert agree["top1_agreement_decided"] >= INT8_AGREEMENT_TOLERANCE["top1_agreement"], agree


def test_a_layernorm_model_exports_to_int8_files_that_load_and_compute_the_int8_model(tmp_path):
    # norm=ln (LayerNormalization between permutes in the file, no BatchNorm to fold) had no test through NNCF's
    # quantization and the int8 export: the file must load in onnxruntime and OpenVINO and compute the int8 torch model.
    import onnx
    import torch
    from conftest import make_idx_dataset

    from compress.export import agreement, export_int8_onnx, export_openvino, onnx_logits, openvino_logits, torch_logits
    from compress.pipeline import INT8_AGREEMENT_TOLERANCE
    from compress.quantize import quantize_ptq
    from nas.config import DataConfig
    from nas.data import load_dataset
    from nas.latency.measure import int8_saturates

    data = load_dataset(DataConfig(name="tiny", root=str(make_idx_dataset(tmp_path / "fm", n_train=100, n_test=40)),
                                   max_shift=0, hflip=False))
    arch = ArchConfig(stages=(StageConfig(mixer="sepconv", depth=1, width=16),
                              StageConfig(mixer="attn", depth=1, width=32, head_dim=16, mlp_ratio=2)),
                      norm="ln", act="gelu", stem_stride=4)
    torch.manual_seed(0)
    model = build_model(arch).eval()
    model.set_normalization(data.mean, data.std)
    quantized, _ = quantize_ptq(model, data.train, size=16, seed=0)
    path = export_int8_onnx(quantized, tmp_path / "model_int8.onnx", in_chans=1, img_size=28)
    graph = onnx.load(str(path)).graph
    ops = [n.op_type for n in graph.node]
    assert "LayerNormalization" in ops and "BatchNormalization" not in ops and "QuantizeLinear" in ops
    assert any(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)  # weights stored as int8
    xml = export_openvino(path, tmp_path / "model_int8.xml", in_chans=1, img_size=28)
    ref = torch_logits(quantized, data.test)
    # operator by operator (near ties excused), then the runtimes as deployed where this CPU's int8 kernels do not
    # saturate (as compress.pipeline judges them)
    runs = {"onnx_reference": onnx_logits(path, data.test, reference=True)}
    if not int8_saturates():
        runs |= {"onnx": onnx_logits(path, data.test), "openvino": openvino_logits(xml, data.test)}
    for name, logits in runs.items():
        agree = agreement(ref, logits)
        top1 = agree["top1_agreement_decided" if name == "onnx_reference" else "top1_agreement"]
        assert agree["max_rel_diff"] <= INT8_AGREEMENT_TOLERANCE["max_rel_diff"], (name, agree)
        assert top1 >= INT8_AGREEMENT_TOLERANCE["top1_agreement"], (name, agree)


def _conv_bn_qdq(*, gamma=(1.5, -0.5, 2.0, -1.0), var=(0.5, 1.0, 1.5, 0.8), eps=1e-5, weight_min=-127, opset=17,
                 per_channel=True, depthwise=False, bias=True):
    """A hand-made QDQ graph as NNCF's export leaves a stem conv: x -> Q/DQ (int8) -> Conv (int8 weights, per-channel
    or per-tensor scales, a bias or none; 3 input channels, or 4 and depthwise) -> BatchNormalization -> Q/DQ (int8)
    -> y, 4 output channels."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, size=(4, 1 if depthwise else 3, 3, 3)).astype(np.int8)
    w[:, 0, 0, 0] = weight_min  # -128 has no int8 negation: a channel with negative gamma must then stay unfolded
    weight_scale = rng.uniform(0.002, 0.01, 4) if per_channel else np.float64(0.005)
    arrays = {"w_q": w, "w_s": weight_scale.astype(np.float32), "w_zp": np.zeros(weight_scale.shape, np.int8),
              "a_s": np.float32(0.02), "a_zp": np.int8(3), "o_s": np.float32(0.05), "o_zp": np.int8(-5),
              "b": rng.normal(0, 0.3, 4).astype(np.float32), "g": np.asarray(gamma, np.float32),
              "beta": rng.normal(0, 0.1, 4).astype(np.float32), "mean": rng.normal(0, 0.1, 4).astype(np.float32),
              "var": np.asarray(var, np.float32)}
    axis = {"axis": 0} if per_channel else {}
    nodes = [helper.make_node("QuantizeLinear", ["x", "a_s", "a_zp"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "a_s", "a_zp"], ["xd"]),
             helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_zp"], ["wd"], **axis),
             helper.make_node("Conv", ["xd", "wd", "b"] if bias else ["xd", "wd"], ["c"], pads=[1, 1, 1, 1],
                              group=4 if depthwise else 1, name="conv"),
             helper.make_node("BatchNormalization", ["c", "g", "beta", "mean", "var"], ["n"], epsilon=eps),
             helper.make_node("QuantizeLinear", ["n", "o_s", "o_zp"], ["nq"]),
             helper.make_node("DequantizeLinear", ["nq", "o_s", "o_zp"], ["y"])]
    if not bias:
        del arrays["b"]
    channels = 4 if depthwise else 3
    graph = helper.make_graph(nodes, "conv_bn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, channels, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4, 8, 8])],
                              [numpy_helper.from_array(a, name) for name, a in arrays.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _operator_by_operator(model, *inputs_of_x):
    """The outputs of an ONNX model run by onnxruntime with no graph optimisation (each operator as written)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return [session.run(None, {"x": x})[0] for x in inputs_of_x]


def _pixels(seed=1, channels=3):
    import numpy as np

    return np.random.default_rng(seed).uniform(-1, 2, (2, channels, 8, 8)).astype(np.float32)


def test_uint8_activations_in_a_file_with_recorded_types_load_and_compute_the_same():
    # A file with value_info (shape inference, another exporter) recorded the activation Q outputs as int8: after the
    # switch to uint8 onnxruntime refused to load it ("Type (tensor(int8)) of output arg ... does not match").
    import numpy as np
    import onnx

    from compress.export import unsigned_activations

    model = onnx.shape_inference.infer_shapes(_conv_bn_qdq())
    assert any(v.name == "nq" for v in model.graph.value_info)
    x = _pixels()
    before = _operator_by_operator(model, x)
    assert unsigned_activations(model) == 2
    onnx.checker.check_model(model, full_check=True)
    np.testing.assert_array_equal(_operator_by_operator(model, x), before)


@pytest.mark.parametrize("gamma, var, eps, weight_min, folds", [
    ((1.5, -0.5, 2.0, -1.0), (0.5, 1.0, 1.5, 0.8), 1e-5, -127, 1),  # negative gammas: their int8 weights negated
    ((1.5, 0.5, 2.0, 1.0), (0.5, 1.0, 1.5, 0.8), 1e-5, -128, 1),  # -128 kept where gamma > 0
    ((1.5, -0.5, 2.0, -1.0), (0.5, 1.0, 1.5, 0.8), 1e-5, -128, 0),  # -(-128) is no int8
    ((1.5, 0.0, 2.0, -1.0), (0.5, 1.0, 1.5, 0.8), 1e-5, -127, 1),  # gamma 0: the channel is beta, its weights 0
    ((1.5, -1e-44, 2.0, 1.0), (0.5, 1.0, 1.5, 0.8), 1e-5, -128, 1),  # a zeroed channel's -128 needs no negation
    ((1.5, 1e-44, 2.0, -1.0), (0.5, 1.0, 1.5, 0.8), 1e-5, -127, 1),  # a weight scale that rounds to 0 in float32
    ((1.5, -0.5, 2.0, -1.0), (0.5, 0.0, 1.5, 0.8), 0.0, -127, 0),  # variance 0 with epsilon 0: k infinite
    ((1.5, -0.5, 2.0, -1.0), (0.5, 1e-30, 1.5, 0.8), 1e-5, -127, 1),  # a tiny variance: k = gamma / sqrt(epsilon)
], ids=["negative-gamma", "minus-128-positive-gamma", "minus-128-negative-gamma", "zero-gamma",
        "negative-scale-underflow-minus-128", "scale-underflow", "zero-variance-zero-epsilon", "tiny-variance"])
def test_folding_a_conv_batchnorm_pair_computes_what_the_pair_computes_or_leaves_it(gamma, var, eps, weight_min, folds):
    # A variance of 0 with epsilon 0 made k infinite: the folded file held an infinite weight scale and NaN biases, and
    # computed other numbers than the BatchNorm (which the Q after it saturates).
    import numpy as np
    import onnx

    from compress.export import fold_conv_batchnorms

    model = _conv_bn_qdq(gamma=gamma, var=var, eps=eps, weight_min=weight_min)
    x = _pixels()
    before = _operator_by_operator(model, x)[0]
    assert fold_conv_batchnorms(model) == folds
    onnx.checker.check_model(model, full_check=True)
    assert sum(n.op_type == "BatchNormalization" for n in model.graph.node) == 1 - folds
    after = _operator_by_operator(model, x)[0]
    assert np.isfinite(after).all()
    # the fold reorders float operations: at most one step of the output's int8 grid apart (a rounding tie)
    np.testing.assert_allclose(after, before, rtol=0, atol=0.05 * 1.0001)


@pytest.mark.parametrize("opset, folds", [(11, 0), (13, 1)])
def test_folding_a_batchnorm_into_a_per_tensor_conv_needs_opset_13(opset, folds):
    # The fold writes per-channel weight scales (DequantizeLinear's axis, opset 13): below it wrote a file that no
    # checker or runtime takes ("Unrecognized attribute: axis for operator DequantizeLinear").
    import numpy as np
    import onnx

    from compress.export import fold_conv_batchnorms

    model = _conv_bn_qdq(opset=opset, per_channel=False)
    x = _pixels()
    before = _operator_by_operator(model, x)[0]
    assert fold_conv_batchnorms(model) == folds
    onnx.checker.check_model(model, full_check=True)
    np.testing.assert_allclose(_operator_by_operator(model, x)[0], before, rtol=0, atol=0.05 * 1.0001)


def test_folding_the_weight_quantizers_of_a_weight_quantized_twice_keeps_both(tmp_path):
    # One fp32 weight read by two QuantizeLinear nodes of different scales (a module called twice): both int8 weights
    # were named "<weight>_quantized", and the file was refused ("initializer name is not unique").
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from compress.export import fold_weight_quantizers

    rng = np.random.default_rng(0)
    arrays = {"w": rng.normal(0, 1, (4, 3, 3, 3)).astype(np.float32), "s1": np.float32(0.02), "s2": np.float32(0.05),
              "zp": np.int8(0)}
    nodes = [helper.make_node("QuantizeLinear", ["w", "s1", "zp"], ["wq1"]),
             helper.make_node("DequantizeLinear", ["wq1", "s1", "zp"], ["wd1"]),
             helper.make_node("QuantizeLinear", ["w", "s2", "zp"], ["wq2"]),
             helper.make_node("DequantizeLinear", ["wq2", "s2", "zp"], ["wd2"]),
             helper.make_node("Conv", ["x", "wd1"], ["c1"], pads=[1] * 4),
             helper.make_node("Conv", ["x", "wd2"], ["c2"], pads=[1] * 4), helper.make_node("Add", ["c1", "c2"], ["y"])]
    graph = helper.make_graph(nodes, "shared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4, 8, 8])],
                              [numpy_helper.from_array(a, name) for name, a in arrays.items()])
    path = tmp_path / "shared.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    x = _pixels()
    before = _operator_by_operator(onnx.load(str(path)), x)[0]
    fold_weight_quantizers(path)
    model = onnx.load(str(path))
    assert sorted(numpy_helper.to_array(t).dtype.name for t in model.graph.initializer if t.dims) == ["int8", "int8"]
    np.testing.assert_array_equal(_operator_by_operator(model, x)[0], before)


@pytest.mark.parametrize("change", ["conv-output-read-twice", "weight-zero-point-1", "weight-dq-shared-by-two-convs",
                                    "batchnorm-after-relu"])
def test_a_batchnorm_the_fold_cannot_take_away_is_left_and_the_file_computes_the_same(change):
    # What must stay: a conv whose output another node also reads (the un-normalised value is needed), int8 weights with
    # a zero point other than 0 (the negation would move it), a weight DequantizeLinear two convs read (the other conv
    # would take this BatchNorm's scales), a BatchNorm not right after the conv.
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from compress.export import fold_conv_batchnorms

    model = _conv_bn_qdq()
    graph = model.graph
    if change == "conv-output-read-twice":
        graph.node.append(helper.make_node("Relu", ["c"], ["r"]))
        graph.output.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [None, 4, 8, 8]))
    elif change == "weight-zero-point-1":
        zp = next(t for t in graph.initializer if t.name == "w_zp")
        zp.CopyFrom(numpy_helper.from_array(np.ones(4, np.int8), "w_zp"))
    elif change == "weight-dq-shared-by-two-convs":
        graph.node.append(helper.make_node("Conv", ["xd", "wd"], ["r"], pads=[1, 1, 1, 1]))
        graph.output.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [None, 4, 8, 8]))
    else:
        bn = next(n for n in graph.node if n.op_type == "BatchNormalization")
        bn.input[0] = "cr"
        graph.node.insert(list(graph.node).index(bn), helper.make_node("Relu", ["c"], ["cr"]))
    x = _pixels()
    before = _operator_by_operator(model, x)[0]
    assert fold_conv_batchnorms(model) == 0
    onnx.checker.check_model(model, full_check=True)
    assert sum(n.op_type == "BatchNormalization" for n in model.graph.node) == 1
    np.testing.assert_array_equal(_operator_by_operator(model, x)[0], before)


@pytest.mark.parametrize("zero_point", [-128, -5, 0, 127])
def test_uint8_activations_are_the_same_grid_at_both_ends_of_the_zero_point(zero_point):
    # int8 zero point z -> uint8 z + 128: -128 -> 0 and 127 -> 255, saturating at the same values; an input wide
    # enough to saturate both ends.
    import numpy as np
    from onnx import numpy_helper

    from compress.export import unsigned_activations

    model = _conv_bn_qdq()
    for name in ("a_zp", "o_zp"):
        tensor = next(t for t in model.graph.initializer if t.name == name)
        tensor.CopyFrom(numpy_helper.from_array(np.int8(zero_point), name))
    x = _pixels() * 8 - 6
    before = _operator_by_operator(model, x)[0]
    assert unsigned_activations(model) == 2
    zero_points = {n.input[2] for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
    dtypes = {numpy_helper.to_array(t).dtype.name for t in model.graph.initializer if t.name in zero_points}
    assert dtypes == {"uint8", "int8"}  # activations uint8, the weights' zero point still int8
    np.testing.assert_array_equal(_operator_by_operator(model, x)[0], before)


def test_activations_already_uint8_or_read_as_int8_by_another_node_are_left():
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from compress.export import unsigned_activations

    model = _conv_bn_qdq()
    graph = model.graph
    zp = next(t for t in graph.initializer if t.name == "a_zp")
    zp.CopyFrom(numpy_helper.from_array(np.uint8(131), "a_zp"))  # the input pair already uint8
    graph.node.append(helper.make_node("Identity", ["nq"], ["nq_out"]))  # the output's int8 codes read as they are
    graph.output.append(helper.make_tensor_value_info("nq_out", TensorProto.INT8, [None, 4, 8, 8]))
    x = _pixels()
    before = _operator_by_operator(model, x)[0]
    assert unsigned_activations(model) == 0
    onnx.checker.check_model(model, full_check=True)
    np.testing.assert_array_equal(_operator_by_operator(model, x)[0], before)


@pytest.mark.parametrize("depthwise, bias", [(True, True), (False, False), (True, False)],
                         ids=["depthwise", "no-bias", "depthwise-no-bias"])
def test_folding_a_batchnorm_into_a_depthwise_or_bias_less_conv_computes_the_same_and_runs_in_int8(tmp_path, depthwise,
                                                                                                 bias):
    # A depthwise conv's weights are (channels, 1, k, k): still one scale per output channel along axis 0; a conv
    # without bias gets the BatchNorm's shift as its bias.
    import numpy as np
    import onnx
    import onnxruntime as ort

    from compress.export import fold_conv_batchnorms, unsigned_activations

    model = _conv_bn_qdq(depthwise=depthwise, bias=bias)
    x = _pixels(channels=4 if depthwise else 3)
    before = _operator_by_operator(model, x)[0]
    assert fold_conv_batchnorms(model) == 1 and unsigned_activations(model) == 2
    onnx.checker.check_model(model, full_check=True)
    np.testing.assert_allclose(_operator_by_operator(model, x)[0], before, rtol=0, atol=0.05 * 1.0001)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    assert "QLinearConv" in [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]


def test_a_batchnorm_whose_parameters_are_read_through_identity_nodes_is_folded():
    # torch's exporter stores equal parameters once and gives each other user an Identity of it: a new model's
    # BatchNorms (weight and running variance all ones, bias and running mean all zeros), the models that latency
    # profiles export, read their parameters that way, and none was folded (their convs ran in float in onnxruntime).
    import numpy as np
    import onnx
    from onnx import helper

    from compress.export import fold_conv_batchnorms

    model = _conv_bn_qdq(gamma=(1.0, 1.0, 1.0, 1.0), var=(1.0, 1.0, 1.0, 1.0))
    graph = model.graph
    bn = next(n for n in graph.node if n.op_type == "BatchNormalization")
    bn.input[4] = "var_shared"  # the running variance equals the weight: one tensor, read through an Identity
    graph.node.insert(0, helper.make_node("Identity", ["g"], ["var_shared"]))
    graph.initializer.remove(next(t for t in graph.initializer if t.name == "var"))
    x = _pixels()
    before = _operator_by_operator(model, x)[0]
    assert fold_conv_batchnorms(model) == 1
    onnx.checker.check_model(model, full_check=True)
    assert [n.op_type for n in graph.node if n.op_type in ("BatchNormalization", "Identity")] == []  # none left over
    np.testing.assert_allclose(_operator_by_operator(model, x)[0], before, rtol=0, atol=0.05 * 1.0001)


def test_the_int8_file_carries_its_contract_in_its_metadata_through_the_fold_and_its_ir_keeps_it(tmp_path):
    # model_int8.onnx, the file a deployment gets, held no class names, input size or preprocessing: they were in
    # compressed_metrics.json only. Its metadata is written by the export and kept through the weights' fold.
    import json

    import onnx
    import onnxruntime as ort
    import openvino as ov
    import torch

    from compress.export import export_int8_onnx, export_openvino
    from compress.quantize import quantize_ptq
    from nas.checkpoint import file_sha256, io_contract, onnx_metadata
    from nas.data import Split

    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    quantized, _ = quantize_ptq(build_model(ARCH).eval(), Split(x=images, y=torch.zeros(8, dtype=torch.long)), size=8,
                                seed=0)
    contract = io_contract(arch=ARCH, classes=[f"class {i}" for i in range(ARCH.num_classes)], mean=[0.3], std=[0.2],
                           preprocessing="idx grey images as stored; uint8 / 255", background=None)
    metadata = onnx_metadata(arch=ARCH, contract=contract, precision="int8", dataset="tiny", metric="accuracy")
    path = export_int8_onnx(quantized, tmp_path / "model_int8.onnx", in_chans=1, img_size=28, metadata=metadata)
    session = ort.InferenceSession(str(path))
    assert any(n.op_type == "DequantizeLinear" for n in onnx.load(str(path)).graph.node)  # folded QDQ
    meta = session.get_modelmeta().custom_metadata_map
    assert meta == metadata and meta["precision"] == "int8"
    assert json.loads(meta["class_names"]) == contract["output"]["class_names"]
    digest = file_sha256(path)  # the digest compressed_metrics.json records is of the file with its metadata
    xml = export_openvino(path, tmp_path / "model_int8.xml", in_chans=1, img_size=28)
    assert file_sha256(path) == digest  # the conversion reads the file, never writes it
    ir = ov.Core().read_model(str(xml))  # OpenVINO keeps ONNX metadata as rt_info: nothing relies on it
    assert ir.outputs[0].get_partial_shape()[1].get_length() == ARCH.num_classes
