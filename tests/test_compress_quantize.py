"""int8 quantization (NNCF) and deployable export: accuracy kept, files agree with the torch int8 model."""

import contextlib
import dataclasses
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from compress.export import (
    accuracy, agreement, export_int8_onnx, export_openvino, onnx_logits, openvino_logits, torch_logits,
)
from compress.pipeline import INT8_AGREEMENT_TOLERANCE
from compress.quantize import quantize
from nas.arch import ArchConfig, StageConfig
from nas.config import DataConfig, FinetuneConfig, QuantizeConfig, TrainConfig
from nas.data import load_dataset
from nas.errors import CheckpointError
from nas.latency.measure import int8_saturates
from nas.model import build_model
from nas.train import evaluate, seed_everything, train_candidate
from tests.conftest import make_idx_dataset

ARCH = ArchConfig(stages=(StageConfig(mixer="sepconv", depth=1, width=16, kernel=3),
                          StageConfig(mixer="attn", depth=1, width=32, head_dim=16, mlp_ratio=2)),
                   norm="bn", act="relu", stem_stride=4)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = make_idx_dataset(tmp_path_factory.mktemp("fm"), n_train=1500, n_test=500)
    return load_dataset(DataConfig(name="tiny", root=str(root), max_shift=0, hflip=False))


@pytest.fixture(scope="module")
def trained(data):
    seed_everything(0)
    model = build_model(ARCH)
    model.set_normalization(data.mean, data.std)
    train_candidate(model, data, TrainConfig(epochs=5, batch_size=32, lr=3e-3, label_smoothing=0.0), augment=DataConfig(name="x", root="x", max_shift=0, hflip=False), seed=0)
    return model.eval()


@pytest.fixture(scope="module")
def int8(trained, data):
    cfg = QuantizeConfig(calibration_size=64, max_acc_drop=1.0, qat=FinetuneConfig(epochs=1, subset=256, batch_size=32, lr=1e-5))
    return quantize(trained, data, cfg, seed=0)


def test_ptq_keeps_accuracy_within_tolerance(trained, data, int8):
    fp32_test = evaluate(trained, data.test)
    assert fp32_test > 0.9  # the task is learnable; otherwise this test would prove nothing
    assert int8.fp32_val_acc == pytest.approx(evaluate(trained, data.val))
    # Stated tolerance: at most 1 pt (5 of 500 test images) lost to int8 on this tiny task.
    assert evaluate(int8.model, data.test) >= fp32_test - 0.01
    assert int8.within_tolerance and int8.acc_drop <= 1.0
    # The quantized model really is quantized (NNCF fake-quant modules were inserted).
    from nncf.torch.quantization.layers import BaseQuantizer

    assert sum(isinstance(m, BaseQuantizer) for m in int8.model.modules()) >= 5
    assert evaluate(trained, data.test) == fp32_test  # the source model was not modified


def test_exported_int8_onnx_and_openvino_ir_agree_with_the_torch_int8_model(int8, data, tmp_path):
    onnx_path = export_int8_onnx(int8.model, tmp_path / "model_int8.onnx", in_chans=1, img_size=28)
    xml = export_openvino(onnx_path, tmp_path / "model_int8.xml", in_chans=1, img_size=28)
    assert xml.with_suffix(".bin").is_file()
    import onnx

    graph = onnx.load(str(onnx_path)).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and not any("FakeQuantize" in o for o in ops)
    assert any(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)  # weights stored as int8
    ref = torch_logits(int8.model, data.test)
    # The file computes the int8 model, run operator by operator (onnxruntime without fusions). Its runtimes' int8
    # kernels agree too where the CPU has VNNI; on x86 without it both saturate (well outside the tolerance for this
    # model on an AVX2-only host), which compress_checkpoint reports instead (int8_agreement_warning).
    runs = [onnx_logits(onnx_path, data.test, reference=True)]
    runs += [] if int8_saturates() else [onnx_logits(onnx_path, data.test), openvino_logits(xml, data.test)]
    for logits in runs:
        agree = agreement(ref, logits)
        assert agree["top1_agreement"] >= INT8_AGREEMENT_TOLERANCE["top1_agreement"], agree
        assert agree["max_rel_diff"] <= INT8_AGREEMENT_TOLERANCE["max_rel_diff"], agree
        assert abs(accuracy(logits, data.test) - accuracy(ref, data.test)) <= 0.01


def test_compact_graph_shares_constants_and_shortens_names_without_changing_outputs(int8, data, tmp_path, monkeypatch):
    import numpy as np
    import onnx

    from compress.export import compact_graph

    path = export_int8_onnx(int8.model, tmp_path / "model_int8.onnx", in_chans=1, img_size=28)  # compacted
    # Rebuild the uncompacted file: the same export without the final compaction step.
    import compress.export as export_mod

    monkeypatch.setattr(export_mod, "compact_graph", lambda model: None)
    long_path = export_int8_onnx(int8.model, tmp_path / "long.onnx", in_chans=1, img_size=28)
    short, long = onnx.load(str(path)).graph, onnx.load(str(long_path)).graph
    consts = [n.attribute[0].t.SerializeToString() for n in short.node if n.op_type == "Constant"]
    assert len(consts) == len(set(consts)) < sum(n.op_type == "Constant" for n in long.node)  # shared
    assert [i.name for i in short.input] == ["pixels"] and [o.name for o in short.output] == ["logits"]
    assert all(len(n) <= 4 for node in short.node for n in node.output if n != "logits")  # t0..t999
    assert path.stat().st_size < 0.9 * long_path.stat().st_size
    np.testing.assert_array_equal(onnx_logits(path, data.test), onnx_logits(long_path, data.test))
    compact_graph(onnx.load(str(path)))  # idempotent on an already compact graph (no error)


def test_qat_runs_when_ptq_loses_too_much_and_keeps_the_best_epoch(trained, data):
    # int8 cannot beat fp32 by 100 points: QAT must spend its whole budget, and the result must say so.
    cfg = QuantizeConfig(calibration_size=32, max_acc_drop=0.0, qat=FinetuneConfig(epochs=2, subset=128, batch_size=32, lr=1e-4))
    cfg = dataclasses.replace(cfg, max_acc_drop=-100.0)
    result = quantize(trained, data, cfg, seed=0)
    assert result.qat_epochs == 2 and result.qat_seconds > 0
    assert not result.within_tolerance and "after 2 QAT epochs" in result.note
    assert result.val_acc >= result.ptq_val_acc  # the best epoch (or PTQ) is kept


def test_a_ptq_drop_of_exactly_max_acc_drop_runs_no_qat(monkeypatch):
    # compress=smoke on 1,000 val images: pruned 17.9%, PTQ 17.6%, a drop of exactly 0.3 pt (max_acc_drop=0.3, QAT
    # only for a drop "by more than" it), yet QAT ran: 0.179 - 0.176 is 0.30000000000000027 points in floats.
    import torch

    import compress.quantize as q

    monkeypatch.setattr(q, "quantize_ptq", lambda model, train, **kw: (model, ""))
    monkeypatch.setattr(q, "evaluate", lambda model, split, **kw: 0.176)
    monkeypatch.setattr(q, "distill", lambda *a, **kw: pytest.fail("QAT ran for a drop within max_acc_drop"))
    cfg = QuantizeConfig(calibration_size=32, max_acc_drop=0.3, qat=FinetuneConfig(epochs=1, subset=128, batch_size=32))
    data = dataclasses.make_dataclass("D", ["train", "val", "balanced"])(None, None, False)
    result = q.quantize(torch.nn.Linear(2, 2), data, cfg, fp32_val_acc=0.179)
    assert result.qat_epochs == 0 and result.within_tolerance and result.note == ""
    # the drop it reports is the one it judged: 0.30000000000000027 beside within_tolerance read as a wrong decision
    assert result.acc_drop == 0.3 and result.acc_drop <= result.max_acc_drop


def test_a_drop_over_max_acc_drop_is_printed_as_over_it(monkeypatch):
    # 0.304 pt lost (balanced accuracy, or more than 10,000 val images) was printed "int8 loses 0.30 pt ..., more than
    # compress.quantize.max_acc_drop=0.3": a number that reads as within the allowance beside a verdict of over it.
    import torch

    import compress.quantize as q

    monkeypatch.setattr(q, "quantize_ptq", lambda model, train, **kw: (model, ""))
    monkeypatch.setattr(q, "evaluate", lambda model, split, **kw: 0.17596)
    cfg = QuantizeConfig(calibration_size=32, max_acc_drop=0.3, qat=FinetuneConfig(epochs=0))
    data = dataclasses.make_dataclass("D", ["train", "val", "balanced"])(None, None, False)
    result = q.quantize(torch.nn.Linear(2, 2), data, cfg, fp32_val_acc=0.179)
    assert not result.within_tolerance and result.acc_drop == 0.304
    assert result.note == ("int8 loses 0.304 pt of val accuracy, more than compress.quantize.max_acc_drop=0.3; QAT is "
                           "disabled (compress.quantize.qat.epochs=0)")


def test_missing_or_corrupt_files_give_a_clear_error(tmp_path, data):
    with pytest.raises(CheckpointError, match="model_int8.onnx not found"):
        onnx_logits(tmp_path / "model_int8.onnx", data.test)
    bad = tmp_path / "model_int8.xml"
    bad.write_text("<net>not really</net>")
    with pytest.raises(CheckpointError, match="not a readable OpenVINO IR"):
        openvino_logits(bad, data.test)


def test_ptq_calibrates_on_one_torch_thread_and_restores_the_callers_count(trained, data, monkeypatch):
    import nncf
    import torch

    from compress.quantize import quantize_ptq

    seen = []
    real = nncf.quantize

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(nncf, "quantize", spy)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        quantize_ptq(trained, data.train, size=4)
        assert seen == [1]  # NNCF calibrated on one thread ...
        assert torch.get_num_threads() == 2  # ... and the caller gets its own count back
    finally:
        torch.set_num_threads(before)



def test_ptq_calibrates_in_batches_on_exactly_size_images_each_ranged_on_its_own():
    # Images were fed to NNCF one at a time: one pass of its Python hooks per image, most of a calibration's time on
    # small images. In batches, each image's range must still be its own (NNCF's mean of per-image maxima), over
    # exactly the `size` images drawn: the input quantizer's scale is that mean.
    import nncf
    import torch
    from torch import nn

    from compress.quantize import CALIBRATION_BATCH_SIZE, quantize_ptq
    from nas.data import Split
    from nas.train import subset_split

    class Tiny(nn.Module):  # not an nn.Sequential, which NNCF does not take as the top-level module
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 1)
            self.fc = nn.Linear(2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.relu(self.conv(x)).mean((2, 3)))

    n, size = 80, 70  # 70 images: three batches of 24, 23 and 23
    assert CALIBRATION_BATCH_SIZE < size
    x = torch.zeros(n, 1, 4, 4, dtype=torch.uint8)  # black images with one lit pixel each, of its own brightness
    peaks = torch.randint(1, 256, (n,), generator=torch.Generator().manual_seed(0))
    x[torch.arange(n), 0, torch.arange(n) % 4, torch.arange(n) // 4 % 4] = peaks.to(torch.uint8)
    split = Split(x, torch.zeros(n, dtype=torch.int64))
    fed: list[list[int]] = []
    real = nncf.quantize

    def spy(model, dataset, **kwargs):
        fed.append([int(item.shape[0]) for item in dataset.get_inference_data()])
        assert kwargs["subset_size"] == len(fed[-1])  # NNCF counts items, not images: every item is used
        return real(model, dataset, **kwargs)

    torch.manual_seed(0)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(nncf, "quantize", spy)
        quantized, _ = quantize_ptq(Tiny().eval(), split, size=size, seed=3)
    batches = -(-size // CALIBRATION_BATCH_SIZE)
    assert len(fed) == 1 and sum(fed[0]) == size and len(fed[0]) == batches
    assert max(fed[0]) - min(fed[0]) <= 1  # nearly equal batches, not full ones and a small remainder
    drawn = subset_split(split, size, seed=3).x
    expected = drawn.flatten(1).amax(1).float().div(255.0).mean()  # per image, averaged over the 70 drawn
    scales = [v for k, v in quantized.state_dict().items() if k.endswith("x__0.0.scale")]  # the model input's quantizer
    assert len(scales) == 1
    assert float(scales[0]) == pytest.approx(float(expected), rel=1e-6)
    assert float(expected) < 0.9 < float(drawn.max()) / 255.0  # a range over whole batches would be about the maximum


def test_ptq_hides_nncfs_progress_bars(trained, data, capsys):
    # NNCF draws two rich progress bars per quantized model ("Statistics collection", "Applying Fast Bias correction"):
    # two lines each per member on a log or a pipe, among the compression's one line per step.
    import rich

    quiet = rich.get_console().quiet
    from compress.quantize import quantize_ptq

    quantize_ptq(trained, data.train, size=4)
    printed = capsys.readouterr()
    assert "Statistics collection" not in printed.out + printed.err and "Fast Bias" not in printed.out + printed.err
    assert rich.get_console().quiet == quiet  # the caller's console as it was


def test_nncf_log_level_leaves_other_handlers_levels_alone():
    # nncf.set_log_level set every handler on NNCF's logger to ERROR: one attached by the caller (pytest's capture,
    # a tool's own) saw nothing below ERROR from then on, from any logger it served.
    import logging

    from compress.quantize import _nncf

    nncf_logger = logging.getLogger("nncf")
    handler = logging.Handler(logging.INFO)
    nncf_logger.addHandler(handler)
    try:
        _nncf()
        assert handler.level == logging.INFO
        assert not nncf_logger.isEnabledFor(logging.WARNING)  # NNCF's own chatter below ERROR still silenced
    finally:
        nncf_logger.removeHandler(handler)


def test_importing_the_compression_leaves_the_callers_environment_alone():
    # run_compress imports compress.pipeline (and so this module) before it records the caller's settings to put back:
    # compress.quantize's import set NNCF_EXTENSION_LOAD_TIMEOUT=0 in a notebook's environment for good, so its own NNCF
    # loads waited without end, and every subprocess it started inherited the setting. `_nncf` sets it where it is used.
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {name: value for name, value in os.environ.items() if name != "NNCF_EXTENSION_LOAD_TIMEOUT"}
    code = "import os, compress.pipeline; print(os.environ.get('NNCF_EXTENSION_LOAD_TIMEOUT'))"
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"


def test_nncf_extension_load_timeout_is_lifted_again_after_a_run_put_the_callers_environment_back(monkeypatch):
    # compress.quantize set it only as it was imported: once a first run from Python (which imported it) put the
    # caller's environment back, a later run's first NNCF extension load had NNCF's 60 s timeout again
    import os

    from compress.quantize import _nncf

    monkeypatch.delenv("NNCF_EXTENSION_LOAD_TIMEOUT", raising=False)
    _nncf()
    assert os.environ["NNCF_EXTENSION_LOAD_TIMEOUT"] == "0"
    monkeypatch.setenv("NNCF_EXTENSION_LOAD_TIMEOUT", "300")  # a caller's own value is left alone
    _nncf()
    assert os.environ["NNCF_EXTENSION_LOAD_TIMEOUT"] == "300"


LOADING = r" \(\d+\.\d s of it loading NNCF: importing it, building its extension or waiting for another process's load\)"


def test_quantize_says_when_a_members_calibration_starts_and_how_long_it_took(trained, data, caplog, monkeypatch):
    # With NNCF's progress bars hidden, a member's calibration (a minute on 2 cores) was a pause with nothing printed.
    import logging
    import re

    import nncf

    from compress.quantize import quantize_ptq

    said_before = []
    real = nncf.quantize

    def spy(*args, **kwargs):
        said_before.append([r.getMessage() for r in caplog.records if r.name == "compress.quantize"])
        return real(*args, **kwargs)

    monkeypatch.setattr(nncf, "quantize", spy)
    cfg = QuantizeConfig(calibration_size=8, max_acc_drop=100.0, qat=FinetuneConfig(epochs=0))
    with caplog.at_level(logging.INFO, logger="compress.quantize"):
        quantize(trained, data, cfg, label="a1b2c3", fp32_val_acc=0.5)
    lines = [r.getMessage() for r in caplog.records if r.name == "compress.quantize"]
    start = "a1b2c3: int8 calibration on 8 training images (NNCF, 1 torch thread)..."
    assert said_before == [[start]]  # said before NNCF starts, not after
    assert lines[0] == start and re.fullmatch(rf"a1b2c3: int8 calibration done in \d+\.\d s({LOADING})?", lines[1]) and len(lines) == 2
    # The latency profiler's int8 exports say their own line per model: no calibration lines from quantize_ptq there.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="compress.quantize"):
        quantize_ptq(trained, data.train, size=4)
    assert [r for r in caplog.records if r.name == "compress.quantize"] == []


def test_the_over_tolerance_note_and_qat_log_name_the_setting_and_the_model_judged(monkeypatch, caplog):
    # compress.quantize.max_acc_drop=0 qat.epochs=0 noted "int8 loses 0.70 pt of val accuracy and QAT is disabled, more
    # than compress.quantize.max_acc_drop=0.0" ("more than" hung on "QAT is disabled"), and a pruned member's QAT log
    # line read "(fp32 18.60%, PTQ ...)" beside a table whose fp32 row scored 27%: that 18.60% was the pruned model's.
    import logging
    import types

    import torch

    import compress.quantize as q

    monkeypatch.setattr(q, "quantize_ptq", lambda model, train, **kw: (model, ""))
    monkeypatch.setattr(q, "evaluate", lambda model, split, **kw: 0.172)
    data = dataclasses.make_dataclass("D", ["train", "val", "balanced"])(None, None, False)
    off = QuantizeConfig(calibration_size=32, max_acc_drop=0.0, qat=FinetuneConfig(epochs=0))
    result = q.quantize(torch.nn.Linear(2, 2), data, off, fp32_val_acc=0.179)
    assert result.note == ("int8 loses 0.70 pt of val accuracy, more than compress.quantize.max_acc_drop=0; QAT is "
                           "disabled (compress.quantize.qat.epochs=0)")
    monkeypatch.setattr(q, "distill", lambda *a, **kw: types.SimpleNamespace(val_acc=0.174, seconds=1.0))
    on = dataclasses.replace(off, qat=FinetuneConfig(epochs=1, subset=8, batch_size=4))
    with caplog.at_level(logging.INFO, logger="compress.quantize"):
        result = q.quantize(torch.nn.Linear(2, 2), data, on, fp32_val_acc=0.179, source="pruned", label="m1")
    # why QAT runs, before its epochs: python -m compress.run's table gave the epochs alone (the report says why)
    assert caplog.messages == [
        "m1: QAT: PTQ lost 0.70 pt of val accuracy (pruned model before int8 17.90%, PTQ 17.20%), more than "
        "compress.quantize.max_acc_drop=0: up to 1 epoch of QAT, until within it",
        "m1: QAT epoch 1: val acc 17.40% (pruned model before int8 17.90%, PTQ 17.20%)"]  # whose epoch, as the line above
    assert result.note == "int8 loses 0.50 pt of val accuracy after 1 QAT epoch, more than compress.quantize.max_acc_drop=0"


# A process quantizing a tiny model, whose NNCF calibration loads NNCF's extension; its log lines on stderr.
_LOAD_NNCF = """
import logging
import torch
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
from compress.quantize import quantize_ptq
from nas.data import Split
class Tiny(torch.nn.Module):  # not an nn.Sequential, which NNCF's PTQ does not take at the top
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)
    def forward(self, x):
        return self.conv(x).relu()
quantize_ptq(Tiny(), Split(x=torch.rand(4, 1, 8, 8), y=torch.zeros(4, dtype=torch.long)), size=4)
print("loaded", flush=True)
"""


@pytest.fixture(scope="module")
def built_extension(tmp_path_factory):
    """A private TORCH_EXTENSIONS_DIR holding a copy of this machine's built NNCF extension, loaded once there (no
    `lock` in it) so that the tests' loads are up to date and take seconds, not a build."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from nncf.torch.quantization.extensions import QuantizedFunctionsCPULoader

    built = Path(QuantizedFunctionsCPULoader.get_build_dir())
    if not (built / f"{QuantizedFunctionsCPULoader.name()}.so").exists():
        pytest.skip(f"NNCF's extension is not built in {built} (make setup builds it)")
    root = tmp_path_factory.mktemp("torch_extensions")
    # a `lock` there may be a live load's, not a leftover: it is not copied
    shutil.copytree(built, root / built.relative_to(built.parents[2]), ignore=shutil.ignore_patterns("lock"))
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(root)}
    # a copy built from another checkout's paths (torch's include folders) is rebuilt here once; an up-to-date one loads
    subprocess.run([sys.executable, "-c", _LOAD_NNCF], cwd=Path(__file__).resolve().parent.parent, env=env, check=True,
                   capture_output=True, timeout=600)
    return root


def _private_extension(built_extension, tmp_path):
    """A copy of `built_extension` of the test's own: (its TORCH_EXTENSIONS_DIR, build folder, environment)."""
    import os
    import shutil

    root = tmp_path / "torch_extensions"
    shutil.copytree(built_extension, root)
    (build_dir,) = root.glob("nncf/quantized_functions_cpu/*/")
    return root, build_dir, {**os.environ, "TORCH_EXTENSIONS_DIR": str(root)}


def test_ptq_sends_no_openvino_telemetry_where_the_user_did_not_opt_in(built_extension, tmp_path):
    # NNCF's import (which imports openvino) and nncf.quantize send OpenVINO's usage statistics wherever no consent file
    # says otherwise, each from a process forked by a thread of the run: one such child, deadlocked in the resolver on a
    # machine without internet, outlived a test run. Here OpenVINO's backend records them instead of posting them.
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("openvino_telemetry")
    _, _, env = _private_extension(built_extension, tmp_path)
    env = {k: v for k, v in env.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}  # OpenVINO's CI switches
    env["HOME"] = str(tmp_path)  # where OpenVINO reads its consent file: none there
    code = ("from openvino_telemetry.backend.backend_ga4 import GA4Backend\n"
            "sent = []\n"
            "GA4Backend.send = lambda self, message: sent.append(message)\n"
            + _LOAD_NNCF +
            "import openvino_telemetry as tm\n"
            "tm.Telemetry().sender.executor.shutdown(wait=True)  # what was queued is handed to the backend\n"
            "print('sent', len(sent))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["loaded", "sent 0"]


def test_a_lock_left_by_a_process_killed_while_loading_nncfs_extension_is_removed(built_extension, tmp_path):
    # torch's cpp_extension.load takes a `lock` file in the extension's build folder on every load: one killed while
    # holding it left the file, and every later compression waited on it forever without a word
    # (NNCF_EXTENSION_LOAD_TIMEOUT=0)
    import subprocess
    import sys
    from pathlib import Path

    _, build_dir, env = _private_extension(built_extension, tmp_path)
    (build_dir / "lock").touch()
    try:
        done = subprocess.run([sys.executable, "-c", _LOAD_NNCF], cwd=Path(__file__).resolve().parent.parent, env=env,
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the load still waits on the leftover {build_dir / 'lock'}")
    assert done.returncode == 0 and done.stdout == "loaded\n", done.stderr
    warned = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert warned == [f"WARNING {build_dir / 'lock'}: left by a process that was stopped while loading NNCF's "
                      "extension; removed"]
    assert not (build_dir / "lock").exists()


def test_a_load_waits_for_another_toolkit_process_loading_nncfs_extension(built_extension, tmp_path):
    # The `lock` of a load under way (a first build, tens of seconds) is not a leftover: its process holds the
    # toolkit's flock beside the build folder, and a second process waits for it, saying so, instead of removing it.
    import fcntl
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    _, build_dir, env = _private_extension(built_extension, tmp_path)
    guard = build_dir.with_name(f"{build_dir.name}.metaformer-nas.lock")
    held = os.open(guard, os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # this process is the one loading
    (build_dir / "lock").touch()
    err = tmp_path / "stderr"
    with err.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", _LOAD_NNCF], cwd=Path(__file__).resolve().parent.parent, env=env,
                                stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        deadline = time.monotonic() + 60
        while "waiting" not in err.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # without the toolkit's flock, it waits on torch's `lock` without a word
        assert err.read_text().splitlines() == [
            f"INFO waiting for another process to finish loading NNCF's extension ({guard})..."]
        time.sleep(0.5)
        assert proc.poll() is None and (build_dir / "lock").exists()  # still waiting, the other's lock untouched
        (build_dir / "lock").unlink()  # the other load is done: torch drops its lock, then the flock goes
        os.close(held)
        held = None
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0 and out == "loaded\n"
        assert "WARNING" not in err.read_text()
    finally:
        if held is not None:
            os.close(held)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _load_waiting_behind(held: int, build_dir: Path,
                         caplog) -> Iterator[tuple[threading.Thread, list, Callable[[int], None]]]:
    """A load of NNCF's extension in `build_dir` (`_locked_guard`) started in a thread while the descriptor `held` holds
    its lock, logging at INFO. Yields, once that load has said its first line (or 10 s have passed), the thread, the
    list its descriptor lands in, and `logged(n)`, which waits until n lines are said (within the same 10 s). Leaving
    closes `held` (that load done) and joins the thread."""
    import logging
    import os
    import time

    import compress.quantize as q

    got: list[int | None] = []
    deadline = time.monotonic() + 10

    def logged(count: int) -> None:
        while len(caplog.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    with caplog.at_level(logging.INFO, logger="compress.quantize"):
        waiter = threading.Thread(target=lambda: got.append(q._locked_guard(build_dir)))
        waiter.start()
        try:
            logged(1)
            yield waiter, got, logged
        finally:
            os.close(held)  # that load is done
            waiter.join(10)


def test_a_load_waiting_for_nncfs_extension_names_the_process_loading_it_and_each_next_one(tmp_path, caplog):
    # Several checkouts' test runs sharing ~/.cache/torch_extensions each rebuilt the extension (torch's include folders
    # differ by the path the venv is reached by), one after another: a compression waited about 15 minutes behind them
    # on one line said as it began, which named no process.
    import fcntl
    import os
    import time

    build_dir = tmp_path / "2.13.0+cpu"
    build_dir.mkdir()
    guard = build_dir.with_name(f"{build_dir.name}.metaformer-nas.lock")
    held = os.open(guard, os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # another toolkit process loading, as its record says
    first, second = time.time() - 95, time.time() - 3
    # live pids: a record naming a process that is gone is not said
    os.write(held, f"{os.getpid()} {first:.0f}\n".encode())
    with _load_waiting_behind(held, build_dir, caplog) as (waiter, got, logged):
        # the next process took its turn first (flock keeps no queue): its record replaces the first's
        os.pwrite(held, f"{os.getppid()} {second:.0f}\n".encode(), 0)
        logged(2)
        assert waiter.is_alive()  # still waiting
    assert not waiter.is_alive() and got and got[0] is not None
    try:
        clock = [time.strftime("%H:%M:%S", time.localtime(round(t))) for t in (first, second)]
        assert caplog.messages == [
            f"waiting for another process (pid {os.getpid()}, loading since {clock[0]}) to finish loading NNCF's "
            f"extension ({guard})...",
            f"waiting for another process (pid {os.getppid()}, loading since {clock[1]}) to finish loading NNCF's "
            f"extension ({guard})..."]
        # and it names this process to the next one waiting, while this one loads
        pid, since = guard.read_text().split()
        assert int(pid) == os.getpid() and abs(float(since) - time.time()) < 10
    finally:
        os.close(got[0])


def test_a_load_waiting_for_nncfs_extension_names_no_process_that_is_gone(tmp_path, caplog):
    # A process killed while loading leaves its record in the file (the kernel drops its flock, not its words): the
    # holder now (one writing none, or not yet) is not that process.
    import fcntl
    import os
    import subprocess
    import time

    build_dir = tmp_path / "2.13.0+cpu"
    build_dir.mkdir()
    guard = build_dir.with_name(f"{build_dir.name}.metaformer-nas.lock")
    gone = subprocess.Popen(["true"])
    gone.wait()
    guard.write_text(f"{gone.pid} {time.time() - 60:.0f}\n")
    held = os.open(guard, os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)
    with _load_waiting_behind(held, build_dir, caplog) as (_, got, _):
        pass  # the holder's load ends once the one waiting behind it has said its line
    assert got and got[0] is not None
    os.close(got[0])
    assert caplog.messages == [f"waiting for another process to finish loading NNCF's extension ({guard})..."]


# Two members quantized in one process, then NNCF's log level as the toolkit left it.
_QUANTIZE_TWICE = _LOAD_NNCF.replace('print("loaded", flush=True)', """\
quantize_ptq(Tiny(), Split(x=torch.rand(4, 1, 8, 8), y=torch.zeros(4, dtype=torch.long)), size=4)
print("loaded", logging.getLevelName(logging.getLogger("nncf").level), flush=True)""")


def _failed_build(root: Path, compiler: str) -> tuple[subprocess.Popen, str]:
    """`_QUANTIZE_TWICE` started in a process whose C++ compiler fails at once (`compiler`: "unusable", which cannot say its
    version, or "headers missing", whose compile fails as without Python's headers), with the TORCH_EXTENSIONS_DIR
    `root/torch_extensions`: (the process, the reason the warning is to name)."""
    import os
    import sys

    if compiler == "unusable":
        cxx, reason = "/bin/false", "Command '['/bin/false', '--version']' returned non-zero exit status 1."
    else:  # a compiler that runs, but cannot find Python's headers (its error line among ninja's compile commands)
        cxx, reason = root / "c++", "fatal error: Python.h: No such file or directory"
        cxx.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "g++ 12.2.0" && exit 0\n'
                       'echo "functions_cpu.cpp:1:10: fatal error: Python.h: No such file or directory" >&2; exit 1\n')
        cxx.chmod(0o755)
        reason = "functions_cpu.cpp:1:10: " + reason
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(root / "torch_extensions"), "CXX": str(cxx)}
    return subprocess.Popen([sys.executable, "-c", _QUANTIZE_TWICE], cwd=Path(__file__).resolve().parent.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), reason


_COMPILERS = ["unusable", "headers missing"]


@pytest.fixture(scope="module")
def failed_builds(request, tmp_path_factory):
    """The cases of test_a_failed_build_of_nncfs_extension_is_one_warning_line_per_process this session runs, started
    together (each a process importing torch and NNCF and quantizing twice, seconds of one core): compiler -> (its
    folder, its process, the reason)."""
    wanted = [item.callspec.params["compiler"] for item in request.session.items
              if getattr(item, "originalname", None) == "test_a_failed_build_of_nncfs_extension_is_one_warning_line_per_process"
              and item.module is request.module]
    started = {}
    try:
        for compiler in wanted:
            root = tmp_path_factory.mktemp("failed_build")
            started[compiler] = (root, *_failed_build(root, compiler))
        yield started
    finally:
        for _, proc, _ in started.values():  # a test that failed before it read its process's output
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(ValueError):  # read already
                proc.communicate()


@pytest.mark.parametrize("compiler", _COMPILERS)
def test_a_failed_build_of_nncfs_extension_is_one_warning_line_per_process(failed_builds, compiler):
    # NNCF falls back on its slower torch functions where its extension cannot be built (no compiler, missing headers,
    # a full disk), saying so in a warning below the ERROR level the toolkit sets for NNCF: calibration and QAT were
    # slower without a word. Simulated with a compiler that fails at once, in a TORCH_EXTENSIONS_DIR of the test's own.
    root, proc, reason = failed_builds[compiler]
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0 and stdout == "loaded ERROR\n", stderr  # NNCF's level as it was set
    (build_dir,) = (root / "torch_extensions").glob("nncf/quantized_functions_cpu/*/")
    warned = [line for line in stderr.splitlines() if line.startswith("WARNING")]
    assert warned == [  # once for the process, not per member
        f"WARNING {build_dir}: NNCF's C++ extension could not be built ({reason}): int8 calibration and QAT run on "
        "NNCF's slower torch functions in this process. Install a C++ compiler (g++) and Python's development headers "
        "(or free disk space); the next process builds it again. NNCF's whole build output: python -c \"from "
        "nncf.torch.quantization.extensions import QuantizedFunctionsCPU as f; f.get('Quantize_forward')\""]
    assert "Reason:" not in stderr  # NNCF's own warning, with the whole build output, still hidden


def test_a_leftover_lock_that_cannot_be_removed_is_one_line_naming_it_and_what_to_do(tmp_path, monkeypatch):
    # Another user's `lock` in a folder this user cannot write (a shared TORCH_EXTENSIONS_DIR) ended the compression in
    # a PermissionError traceback. Simulated: running as root, a folder's permissions do not stop the removal.
    from pathlib import Path

    from nncf.torch.quantization.extensions import QuantizedFunctionsCPU, QuantizedFunctionsCPULoader

    import compress.quantize
    from nas.errors import ConfigError

    build_dir = tmp_path / "nncf" / "quantized_functions_cpu" / "2.13.0+cpu"
    build_dir.mkdir(parents=True)
    (build_dir / "lock").touch()
    monkeypatch.setattr(QuantizedFunctionsCPULoader, "get_build_dir", classmethod(lambda cls: str(build_dir)))
    monkeypatch.setattr(QuantizedFunctionsCPU, "get", lambda name: pytest.fail("loaded, to wait on the lock forever"))
    monkeypatch.setattr(compress.quantize, "_extension_loaded", False)
    unlink = Path.unlink

    def refused(path, missing_ok=False):
        if path == build_dir / "lock":
            raise PermissionError(13, "Permission denied", str(path))
        return unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", refused)
    with pytest.raises(ConfigError) as refusal:
        compress.quantize.load_nncf_extension()
    assert str(refusal.value) == (
        f"{build_dir / 'lock'}: left by a process that was stopped while loading NNCF's extension, and it cannot be "
        "removed (Permission denied); delete it by hand (as its owner), or set TORCH_EXTENSIONS_DIR to a folder of your "
        "own, where torch builds the extension once")
    assert (build_dir / "lock").exists() and not compress.quantize._extension_loaded
    # The next member's compression in the same process is refused the same way, at once: the refusal left no flock
    # held by a thread waiting for that `lock` to go, on which this process's next load would have waited forever.
    done = threading.Event()

    def again():
        with pytest.raises(ConfigError):
            compress.quantize.load_nncf_extension()
        done.set()

    threading.Thread(target=again, daemon=True).start()
    assert done.wait(10), "the second load waited on the flock the refused one left held"


@pytest.mark.parametrize("failing", ["build folder", "flock"])
def test_nncfs_extension_is_loaded_by_nncf_alone_where_the_toolkits_lock_cannot_be_taken(tmp_path, monkeypatch,
                                                                                          failing):
    # A build folder that cannot be made (a read-only home or TORCH_EXTENSIONS_DIR; here a file in its way), or a file
    # system without flock: NNCF's own load falls back on its torch functions there, but the toolkit's lock raised the
    # OSError first, and every compression stopped. No lock: a `lock` found is not known to be a leftover, and is kept.
    import errno
    import fcntl
    from pathlib import Path

    import compress.quantize as quantize
    from nncf.torch.quantization.extensions import QuantizedFunctionsCPU, QuantizedFunctionsCPULoader

    root = tmp_path / "torch_extensions"
    if failing == "build folder":
        root.write_text("")
    else:
        def no_flock(fd, operation):
            raise OSError(errno.ENOLCK, "No locks available")

        monkeypatch.setattr(fcntl, "flock", no_flock)  # the module's, as every importer calls it
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(root))
    monkeypatch.setattr(quantize, "_extension_loaded", False)
    asked: list[str] = []
    monkeypatch.setattr(QuantizedFunctionsCPU, "get", asked.append)  # NNCF's load itself, not this process's extension
    if failing == "flock":
        build_dir = Path(QuantizedFunctionsCPULoader.get_build_dir())
        (build_dir / "lock").touch()
    quantize.load_nncf_extension()
    assert asked == ["Quantize_forward"] and quantize._extension_loaded
    if failing == "flock":
        assert (build_dir / "lock").exists()


def test_a_load_nncf_stopped_waiting_for_keeps_the_toolkits_lock_until_its_build_ends(tmp_path, monkeypatch):
    # With NNCF_EXTENSION_LOAD_TIMEOUT set to seconds (180, as NNCF's timeout message suggests), a first build that
    # takes longer raises while NNCF's thread goes on building under torch's `lock`. The toolkit's flock went with the
    # exception, so the next load (the next member's compression, which goes on after a member's error, or another
    # worker's) took that live `lock` for a leftover, removed it and built alongside it in the same folder.
    import threading
    from pathlib import Path

    import compress.quantize as quantize
    from nncf.torch.extensions import ExtensionLoaderTimeoutException
    from nncf.torch.quantization.extensions import QuantizedFunctionsCPU, QuantizedFunctionsCPULoader

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(quantize, "_extension_loaded", False)
    lock = Path(QuantizedFunctionsCPULoader.get_build_dir()) / "lock"

    def timed_out(name):
        lock.touch()  # NNCF's thread building under torch's lock as NNCF stops waiting for it
        raise ExtensionLoaderTimeoutException("The extension load function failed to execute within 180 seconds.")

    monkeypatch.setattr(QuantizedFunctionsCPU, "get", timed_out)
    with pytest.raises(ExtensionLoaderTimeoutException):
        quantize.load_nncf_extension()
    asked: list[str] = []
    monkeypatch.setattr(QuantizedFunctionsCPU, "get", asked.append)
    retry = threading.Thread(target=quantize.load_nncf_extension, daemon=True)  # the next member's compression
    retry.start()
    retry.join(1.0)
    assert retry.is_alive() and lock.exists() and asked == []  # waits for that build; its lock is not a leftover
    lock.unlink()  # the build ends
    retry.join(10)
    assert not retry.is_alive() and asked == ["Quantize_forward"]


def test_a_calibrations_seconds_say_how_much_of_them_was_loading_nncf(trained, data, caplog, monkeypatch):
    # A search on a shared machine logged "int8 calibration done in 524.8 s" for 129 images: nearly all of it waiting
    # for other processes' builds of NNCF's extension, read as minutes of calibration.
    import logging

    import compress.quantize
    from compress.quantize import quantize_ptq

    real = compress.quantize._nncf
    clock = [0.0]  # the seconds only the load takes: 7 of them, the calibration itself none

    def slow_load():
        clock[0] += 7.0
        return real()

    monkeypatch.setattr(compress.quantize, "_nncf", slow_load)
    monkeypatch.setattr(compress.quantize.time, "perf_counter", lambda: clock[0])
    with caplog.at_level(logging.INFO, logger="compress.quantize"):
        quantize_ptq(trained, data.train, size=4, announce="a1b2c3")
    lines = [r.getMessage() for r in caplog.records if r.name == "compress.quantize"]
    assert lines[-1] == ("a1b2c3: int8 calibration done in 7.0 s (7.0 s of it loading NNCF: importing it, "
                         "building its extension or waiting for another process's load)")
    # a load under LOAD_NAMED_SECONDS (NNCF loaded already in the process): the seconds alone
    monkeypatch.setattr(compress.quantize, "LOAD_NAMED_SECONDS", 8.0)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="compress.quantize"):
        quantize_ptq(trained, data.train, size=4, announce="a1b2c3")
    lines = [r.getMessage() for r in caplog.records if r.name == "compress.quantize"]
    assert lines[-1] == "a1b2c3: int8 calibration done in 7.0 s"
