import dataclasses
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.arch import ArchConfig, StageConfig
from nas.config import DataConfig, DataFormat, Metric, Precision, TrainConfig
from nas.data import Split, iterate_batches, load_dataset
import nas.train
from nas.model import build_model
from nas.train import (TrainingDiverged, accuracy, class_weights, evaluate, native_bf16, per_class_accuracy, resolve_precision,
                       seed_everything, subset_split, train_candidate)

ARCH = ArchConfig(stages=(StageConfig(mixer="conv", depth=1, width=16), StageConfig(mixer="pool", depth=1, width=32)))
# Six epochs: the tiny task is then learnt to >= 0.95 val accuracy (ten reached 1.0 at twice the time). One thread: on
# a 2-core machine whose other core is busy (a shared runner, another process) a training's two threads keep waiting on
# each other; the determinism tests ask for two, where a race would show.
CFG = TrainConfig(epochs=6, subset=None, batch_size=32, lr=3e-3, threads=1)


@pytest.fixture(scope="module")
def data(tiny_idx_root):
    return load_dataset(DataConfig(name="tiny", format=DataFormat.idx, root=str(tiny_idx_root)))


def _train(data, cfg=CFG, seed=0):
    seed_everything(seed)
    model = build_model(ARCH)
    model.set_normalization(data.mean, data.std)
    return model, train_candidate(model, data, cfg, augment=DataConfig(name="t", hflip=False, max_shift=1), seed=seed)


def test_training_learns_the_tiny_task_well_above_chance(data):
    model, result = _train(data)
    assert result.val_acc > 0.5  # 10 classes: chance is 0.1
    assert result.images_seen == CFG.epochs * (len(data.train) // 32) * 32
    assert evaluate(model, data.val) == pytest.approx(result.val_acc)


def test_training_is_deterministic_for_a_seed(data):
    # Two epochs show it (each epoch reshuffles and re-augments from the seed); learning needs CFG's more.
    short = dataclasses.replace(CFG, epochs=2, threads=2)
    m1, r1 = _train(data, short, seed=3)
    m2, r2 = _train(data, short, seed=3)
    assert r1.val_acc == r2.val_acc
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))


def test_subset_is_drawn_with_the_subset_seed_so_candidates_share_their_images(data, monkeypatch):
    import nas.train

    drawn = []

    def spy(split, size, *, seed):
        out = subset_split(split, size, seed=seed)
        drawn.append(out.x)
        return out

    monkeypatch.setattr(nas.train, "subset_split", spy)
    cfg = dataclasses.replace(CFG, epochs=1, subset=len(data.train) // 2)
    for seed in (1, 2):  # two candidates with their own init seeds
        seed_everything(seed)
        model = build_model(ARCH)
        train_candidate(model, data, cfg, augment=DataConfig(name="t"), seed=seed, subset_seed=7)
    seed_everything(1)
    train_candidate(build_model(ARCH), data, cfg, augment=DataConfig(name="t"), seed=1)  # default: the init seed
    assert len(drawn[0]) == len(data.train) // 2
    assert torch.equal(drawn[0], drawn[1])
    assert not torch.equal(drawn[2], drawn[0])


def test_diverging_candidate_raises_a_clear_error(data):
    with pytest.raises(TrainingDiverged, match="loss became"):
        _train(data, cfg=dataclasses.replace(CFG, lr=1e9, epochs=1))


def test_channels_last_training_is_the_same_math_and_hands_back_the_default_layout(data):
    cfg = dataclasses.replace(CFG, epochs=2)
    fast, r_fast = _train(data, dataclasses.replace(cfg, channels_last=True), seed=5)
    plain, r_plain = _train(data, dataclasses.replace(cfg, channels_last=False), seed=5)
    # Same data order and initial weights; only float summation order differs. (Weights are not compared:
    # a conv bias followed by BatchNorm has a ~0 gradient, and Adam turns its last-digit noise into steps of ~lr.)
    assert abs(r_fast.train_loss - r_plain.train_loss) < 1e-3
    assert abs(r_fast.val_acc - r_plain.val_acc) <= 0.05  # at most 2 of the 40 val images
    for name, a in fast.state_dict().items():
        assert a.is_contiguous(), name  # exporters and pruners get the default layout back


@pytest.mark.parametrize("error", [RuntimeError("a batch that cannot be read"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_channels_last_training_that_raises_partway_hands_back_the_default_layout(data, error):
    # A caller that catches the error goes on with the model (the search's next trial, a member's export or pruning):
    # it was left channels-last, which exporters and pruners do not expect.
    model = build_model(ARCH)

    def on_step(step, total):
        if step == 2:
            raise error

    with pytest.raises(type(error)):
        nas.train.fit(model, data.train, loss_fn=lambda logits, _x, y: torch.nn.functional.cross_entropy(logits, y),
                      epochs=1, batch_size=32, lr=1e-3, weight_decay=0.0, warmup_frac=0.1, seed=0, channels_last=True,
                      on_step=on_step)
    for name, t in model.state_dict().items():
        assert t.is_contiguous(), name
    # and it computes as before: its features in the default layout, no hook left behind (the head-grad hook is put on
    # an activation of each forward pass, never on the model)
    x, _ = next(iterate_batches(data.val, batch_size=4))
    assert model.eval().forward_features(x).is_contiguous()
    assert not any(m._forward_hooks or m._backward_hooks or m._forward_pre_hooks for m in model.modules())


def test_bf16_training_learns_keeps_float32_weights_and_is_deterministic(data):
    m1, r1 = _train(data, dataclasses.replace(CFG, precision="bf16"), seed=3)
    assert r1.precision == "bf16"
    assert r1.val_acc > 0.5  # learns the tiny task like float32 does (chance is 0.1)
    # Autocast computes in bf16 but the weights (what is saved, exported and quantized) stay float32.
    assert {t.dtype for t in m1.state_dict().values() if t.is_floating_point()} == {torch.float32}
    # Deterministic, and not float32 in disguise (the same seed in fp32 ends elsewhere): two epochs show either (bf16 is
    # emulated, slowly, on a CPU without it; the learning above needs CFG's more).
    short = dataclasses.replace(CFG, epochs=2, precision="bf16", threads=2)
    (m2, r2), (m3, r3) = _train(data, short, seed=3), _train(data, short, seed=3)
    assert r2.val_acc == r3.val_acc
    assert all(torch.equal(a, b) for a, b in zip(m2.state_dict().values(), m3.state_dict().values()))
    m4, _ = _train(data, dataclasses.replace(short, precision="fp32"), seed=3)
    assert not all(torch.equal(a, b) for a, b in zip(m2.state_dict().values(), m4.state_dict().values()))


@pytest.mark.parametrize("mixer", ["identity", "pool", "sepconv", "conv", "attn"])
@pytest.mark.parametrize(("norm", "act"), [("bn", "relu"), ("ln", "gelu")])
def test_bf16_training_runs_every_mixer_and_norm(data, mixer, norm, act):
    arch = ArchConfig(norm=norm, act=act, stages=(
        StageConfig(mixer=mixer, depth=1, width=16, head_dim=8), StageConfig(mixer=mixer, depth=1, width=32, head_dim=8)))
    seed_everything(0)
    model = build_model(arch)
    model.set_normalization(data.mean, data.std)
    cfg = dataclasses.replace(CFG, epochs=2, precision="bf16")
    result = train_candidate(model, data, cfg, augment=DataConfig(name="t", hflip=False, max_shift=0), seed=0)
    assert math.isfinite(result.train_loss) and result.train_loss < math.log(10) + 0.5  # finite, not exploding
    with torch.no_grad():
        assert model(data.val.x[:4].float() / 255).dtype == torch.float32  # eval runs in float32


def test_auto_precision_follows_the_cpu(data):
    assert resolve_precision("auto") == ("bf16" if native_bf16() else "fp32")
    assert resolve_precision("fp32") == "fp32" and resolve_precision(Precision.bf16) == "bf16"
    with pytest.raises(ValueError, match="'fp16'"):
        resolve_precision("fp16")


# A training step in miniature: allocate several activation-sized buffers, write them, free them all; repeat.
# Prints the page faults of the repeats (the first round may fault: that is when the pages are first mapped).
_STEPS = """
import ctypes, resource, sys
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes, libc.memset.argtypes = [ctypes.c_void_p], [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
if sys.argv[1] == "keep":
    from nas.train import keep_freed_memory
    assert keep_freed_memory()
def step():
    bufs = [libc.malloc(4 << 20) for _ in range(8)]
    for b in bufs:
        libc.memset(b, 1, 4 << 20)
    for b in bufs:
        libc.free(b)
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="keep_freed_memory tunes glibc's malloc only")
def test_keep_freed_memory_stops_each_step_from_page_faulting_its_buffers_afresh():
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _STEPS, mode], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parents[1])
        return int(out.stdout.split()[-1])

    pages = 10 * 8 * (4 << 20) // 4096  # what the 10 repeated steps write
    assert faults("default") > pages / 2  # glibc hands the freed buffers back and maps them again each step
    assert faults("keep") < pages / 20


def test_training_keeps_freed_memory_only_when_the_recipe_says_so(data, monkeypatch):
    calls = []
    monkeypatch.setattr(nas.train, "keep_freed_memory", lambda: calls.append(1) or True)
    _train(data, dataclasses.replace(CFG, epochs=1, keep_freed_memory=False))
    assert calls == []
    _train(data, dataclasses.replace(CFG, epochs=1))
    assert calls == [1]


def test_judge_stops_training_after_the_asked_epoch_and_keeps_that_accuracy(data):
    cfg = dataclasses.replace(CFG, epochs=3)
    asked = []
    seed_everything(0)
    model = build_model(ARCH)
    model.set_normalization(data.mean, data.std)
    r = train_candidate(model, data, cfg, augment=DataConfig(name="t", hflip=False, max_shift=0), seed=0,
                        judge=lambda acc: asked.append(acc) or True, judge_after_epochs=1)
    assert r.stopped and r.epochs_done == 1 and asked == [r.judged_val_acc] == [r.val_acc]
    assert r.images_seen == len(data.train) // 32 * 32  # one epoch
    assert evaluate(model, data.val) == pytest.approx(r.val_acc)  # the model handed back is the judged one
    assert all(t.is_contiguous() for t in model.state_dict().values())  # default layout back, as after full training

    kept, r_kept = _train(data, cfg, seed=0)  # without a judge: all 3 epochs
    seed_everything(0)
    model = build_model(ARCH)
    model.set_normalization(data.mean, data.std)
    r_no = train_candidate(model, data, cfg, augment=DataConfig(name="t", hflip=False, max_shift=1), seed=0,
                           judge=lambda acc: False, judge_after_epochs=2)
    # A judge that lets it go on changes nothing (the mid-training evaluation uses no randomness) and is recorded.
    assert not r_no.stopped and r_no.epochs_done == 3 and r_no.judged_val_acc is not None
    assert r_no.val_acc == r_kept.val_acc and r_no.images_seen == r_kept.images_seen


def test_the_recipe_sets_its_own_augmentation_over_the_data_group(data):
    """`max_shift` of the recipe wins over `data.max_shift`; `erase_prob` reaches the batches."""
    def run(cfg, shift):
        seed_everything(0)
        model = build_model(ARCH)
        model.set_normalization(data.mean, data.std)
        return train_candidate(model, data, cfg, augment=DataConfig(name="t", hflip=False, max_shift=shift), seed=0).val_acc

    cfg = dataclasses.replace(CFG, epochs=2)
    plain = run(cfg, 0)
    assert run(dataclasses.replace(cfg, max_shift=0), 2) == plain  # the recipe's 0 overrides the data's 2
    assert run(dataclasses.replace(cfg, max_shift=None), 2) == run(dataclasses.replace(cfg, max_shift=2), 0)
    assert run(dataclasses.replace(cfg, erase_prob=1.0), 0) != plain  # erasing changes what the model sees


def test_a_given_loss_fn_replaces_the_recipe_loss_and_sees_each_batch(data):
    """`loss_fn(logits, x, y)` (e.g. distillation) is what training minimises: here one that ignores the labels."""
    seen = []

    def always_class_3(logits, x, y):
        seen.append((tuple(x.shape), len(y)))
        return torch.nn.functional.cross_entropy(logits, torch.full_like(y, 3))

    seed_everything(0)
    model = build_model(ARCH)
    model.set_normalization(data.mean, data.std)
    cfg = dataclasses.replace(CFG, epochs=2)
    train_candidate(model, data, cfg, augment=DataConfig(name="t", hflip=False, max_shift=0), seed=0, loss_fn=always_class_3)
    assert len(seen) == 2 * (len(data.train) // 32)  # once per step
    assert all(shape[0] == n and shape[1:] == (ARCH.in_chans, ARCH.img_size, ARCH.img_size) for shape, n in seen)
    with torch.no_grad():
        preds = torch.cat([model(x).argmax(1) for x, _ in iterate_batches(data.val, batch_size=64)])
    assert (preds == 3).float().mean() > 0.95  # the labels were never used


def test_per_class_accuracy_is_each_classes_recall_by_name():
    split = Split(torch.zeros(5, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 0, 1, 1, 1]))
    logits = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0]], dtype=np.float32)  # 1 of 2, 2 of 3
    assert per_class_accuracy(logits, split, ("a", "b", "c")) == {"a": 0.5, "b": pytest.approx(2 / 3), "c": None}


def test_balanced_accuracy_is_the_mean_recall_of_the_classes_present():
    split = Split(torch.zeros(5, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 0, 1, 1, 1]))
    logits = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 1, 0], [1, 0, 0]], dtype=np.float32)  # 1 of 2, 2 of 3
    assert accuracy(logits, split) == pytest.approx(3 / 5)
    assert accuracy(logits, split, balanced=True) == pytest.approx((1 / 2 + 2 / 3) / 2)  # class "c" has no images
    # Predicting the large class for everything: 90% accurate, 50% balanced.
    skewed = Split(torch.zeros(10, 1, 2, 2, dtype=torch.uint8), torch.tensor([0] * 9 + [1]))
    always_0 = np.tile([1.0, 0.0], (10, 1))
    assert (accuracy(always_0, skewed), accuracy(always_0, skewed, balanced=True)) == (pytest.approx(0.9), pytest.approx(0.5))


def test_evaluate_scores_a_model_as_accuracy_scores_its_logits(data):
    model, _ = _train(data, dataclasses.replace(CFG, epochs=1))
    with torch.no_grad():
        logits = torch.cat([model.eval()(x) for x, _ in iterate_batches(data.val, batch_size=64)]).numpy()
    for balanced in (False, True):
        assert evaluate(model, data.val, batch_size=7, balanced=balanced) == pytest.approx(
            accuracy(logits, data.val, balanced=balanced))


def test_evaluate_given_the_whole_dataset_names_its_splits_in_one_line(data):
    # From a notebook, evaluate(model, data) failed deep in the batching: "object of type 'Dataset' has no len()".
    model = build_model(ArchConfig(stages=(StageConfig(mixer="pool", depth=1, width=8),)))
    with pytest.raises(TypeError, match=r"^split=Dataset\(.* is a Dataset; pass one of its splits, e\.g\. "
                                        r"evaluate\(model, data\.test, balanced=data\.balanced\)$"):
        evaluate(model, data)
    with pytest.raises(TypeError, match=r"^split=None is a NoneType; pass a nas\.data\.Split"):
        evaluate(model, None)


def test_class_weights_give_each_class_the_same_total_weight():
    split = Split(torch.zeros(8, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 0, 0, 0, 0, 0, 1, 1]))
    weights = class_weights(split, 3)
    assert weights.tolist() == pytest.approx([8 / (2 * 6), 8 / (2 * 2), 0.0])  # n / (classes present x n_c)
    assert float(weights[split.y].sum()) == pytest.approx(len(split))  # 1 per image on average


def test_balanced_data_trains_with_class_weighted_cross_entropy(data, monkeypatch):
    calls = []
    real = torch.nn.functional.cross_entropy

    def spy(logits, y, **kw):
        calls.append(kw.get("weight"))
        return real(logits, y, **kw)

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", spy)
    cfg = dataclasses.replace(CFG, epochs=1, subset=40)
    for balanced in (False, True):
        calls.clear()
        scored = dataclasses.replace(data, metric=Metric.balanced_accuracy if balanced else Metric.accuracy)
        train_candidate(build_model(ARCH), scored, cfg, augment=DataConfig(name="t", hflip=False, max_shift=0), seed=0)
        assert calls
        if balanced:  # the weights of the 40 training images the candidate saw
            expected = class_weights(subset_split(data.train, 40, seed=0), data.num_classes)
            assert all(torch.equal(w, expected) for w in calls)
        else:
            assert all(w is None for w in calls)


def test_the_judge_of_balanced_data_is_asked_with_balanced_val_accuracy(data):
    scored = dataclasses.replace(data, metric=Metric.balanced_accuracy)
    seed_everything(0)
    model = build_model(ARCH)
    model.set_normalization(data.mean, data.std)
    asked = []
    r = train_candidate(model, scored, dataclasses.replace(CFG, epochs=2), augment=DataConfig(name="t", hflip=False, max_shift=0),
                        seed=0, judge=lambda acc: asked.append(acc) or True, judge_after_epochs=1)
    assert r.stopped and asked == [r.val_acc] and r.val_acc == pytest.approx(evaluate(model, data.val, balanced=True))


def test_reset_autocast_turns_off_an_autocast_left_on_by_an_interrupt():
    from nas.train import reset_autocast

    layer = torch.nn.Linear(4, 4)
    torch.autocast("cpu", dtype=torch.bfloat16).__enter__()  # as a KeyboardInterrupt inside its __exit__ leaves it
    assert layer(torch.rand(2, 4)).dtype == torch.bfloat16
    reset_autocast()
    assert not torch.is_autocast_enabled("cpu") and layer(torch.rand(2, 4)).dtype == torch.float32
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a later autocast works as usual, and ends cleanly
        assert layer(torch.rand(2, 4)).dtype == torch.bfloat16
    assert layer(torch.rand(2, 4)).dtype == torch.float32
    reset_autocast()  # with nothing to undo: a no-op
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(torch.rand(2, 4)).dtype == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")


def test_caller_settings_kept_puts_back_the_environment_and_logger_levels_a_run_changes(monkeypatch):
    # run_search / run_compress from a notebook left NNCF_EXTENSION_LOAD_TIMEOUT=0 and TORCHINDUCTOR_CACHE_DIR set in
    # os.environ, and NNCF's logger at ERROR for the notebook's own NNCF work
    import logging
    import os

    from nas.train import caller_settings_kept

    monkeypatch.setenv("NNCF_EXTENSION_LOAD_TIMEOUT", "120")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(logging.WARNING)
    # a logger made during the run (its library first imported there) gets the library's own level
    monkeypatch.setattr(nas.train, "KEPT_LOGGER_LEVELS", {"nncf": logging.INFO, "test_train_lib_made_later": logging.DEBUG})
    try:
        with caller_settings_kept():
            monkeypatch.setenv("NNCF_EXTENSION_LOAD_TIMEOUT", "0")
            monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/tmp/torchinductor_test")
            nncf_logger.setLevel(logging.ERROR)
            logging.getLogger("test_train_lib_made_later").setLevel(logging.ERROR)
        assert os.environ["NNCF_EXTENSION_LOAD_TIMEOUT"] == "120" and "TORCHINDUCTOR_CACHE_DIR" not in os.environ
        assert nncf_logger.level == logging.WARNING
        assert logging.getLogger("test_train_lib_made_later").level == logging.DEBUG
    finally:
        nncf_logger.setLevel(level)


# OpenVINO's telemetry as `import openvino` and each `ov.convert_model` drive it (a message per event to the process's
# one TelemetrySender), with a backend that records instead of posting to the network, for a user who opted in (the
# consent file under a temporary HOME says 1): only then does a run send, and start the sender's threads
_TELEMETRY = """
import threading, time
import openvino_telemetry as tm
from nas.train import caller_settings_kept

class Backend:
    sent = []
    def send(self, message):
        time.sleep(0.05)
        self.sent.append(message)

def alive(threads):
    return sorted(t.name for t in threads if t.is_alive())

with caller_settings_kept():  # a run that imports openvino and converts a model
    telemetry = tm.Telemetry(app_name="test", app_version="0", tid="test", backend="ga4", enable_opt_in_dialog=False)
    for _ in range(3):
        telemetry.sender.send(Backend(), "in the run")
    time.sleep(0.3)
    run_threads = list(telemetry.sender.executor._threads)
    assert run_threads, "the sender started no thread"
print("left by the run:", alive(run_threads))
telemetry.sender.send(Backend(), "after the run")  # the telemetry still sends
time.sleep(0.3)
print("sent:", Backend.sent[-1])
caller_threads = list(telemetry.sender.executor._threads)
with caller_settings_kept():  # a pool the caller's own conversion started before the run is the caller's
    telemetry.sender.send(Backend(), "in a second run")
print("caller's kept:", alive(caller_threads) == sorted(t.name for t in caller_threads))
"""


def _telemetry_home(home: Path, consent: str | None) -> dict[str, str]:
    """The environment of a subprocess whose HOME (where OpenVINO reads its consent file) is `home`, the consent file
    there saying `consent` (None: none)."""
    if consent is not None:
        (home / "intel").mkdir()
        (home / "intel" / "openvino_telemetry").write_text(consent)
    return {**os.environ, "HOME": str(home)}


def test_caller_settings_kept_closes_the_openvino_telemetry_threads_the_block_started(tmp_path):
    # a notebook found idle ThreadPoolExecutor threads after run_search: OpenVINO's telemetry pool, started by
    # the compression's ov.convert_model, whose threads never end on their own
    pytest.importorskip("openvino_telemetry")
    out = subprocess.run([sys.executable, "-c", _TELEMETRY], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1], env=_telemetry_home(tmp_path, "1")).stdout.splitlines()
    assert out == ["left by the run: []", "sent: after the run", "caller's kept: True"]


_TELEMETRY_NOT_OPTED_IN = """
import openvino_telemetry as tm
from nas.train import caller_settings_kept

class Backend:
    sent = []
    def send(self, message):
        self.sent.append(message)

telemetry = tm.Telemetry(app_name="test", app_version="0", tid="test", backend="ga4", enable_opt_in_dialog=False)
with caller_settings_kept():  # a run that imports openvino and converts a model
    telemetry.sender.send(Backend(), "in the run")
    print("threads in the run:", len(telemetry.sender.executor._threads))
telemetry.sender.send(Backend(), "after the run")  # the caller's own telemetry, as OpenVINO would send it
telemetry.sender.executor.shutdown(wait=True)
print("sent:", Backend.sent)
"""


def test_caller_settings_kept_sends_no_openvino_telemetry_where_the_user_did_not_opt_in(tmp_path):
    # no consent file: OpenVINO sends (its converter and NNCF have no opt-in dialog), each message from a process forked
    # by a thread of the run, and one such child, deadlocked in the resolver, outlived a test run
    pytest.importorskip("openvino_telemetry")
    out = subprocess.run([sys.executable, "-c", _TELEMETRY_NOT_OPTED_IN], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1], env=_telemetry_home(tmp_path, None)).stdout.splitlines()
    assert out == ["threads in the run: 0", "sent: ['after the run']"]


def _counts(done, step, seen):
    from nas.train import FitState

    return FitState(epochs_done=done, step=step, images_seen=seen, seconds=1.0, train_loss=1.0, model={}, optimizer={},
                    rng={})


def test_resume_problem_names_counts_that_are_not_where_the_training_stands_after_an_epoch():
    # A hand-edited partial file with counts that are numbers: fit raised its own ValueError deep inside a final
    # training, and a wrong image count went through, making the recorded images per second wrong.
    from nas.train import resume_problem

    def problem(done, step, seen, *, images=240):
        return resume_problem(_counts(done, step, seen), epochs=2, train_images=images, batch_size=30)

    assert problem(0, 0, 0) is None and problem(1, 8, 240) is None and problem(2, 16, 480) is None
    assert problem(1, 1, 20, images=20) is None  # fewer images than a batch: one batch of them all per epoch
    assert problem(1, 7, 210, images=239) is None  # full batches only: the last 29 images are dropped
    assert problem(3, 24, 720) == "3 epochs done of 2"
    assert problem(1, 7, 210) == "7 steps done in 1 epoch of 8 steps"
    assert problem(1, 8, 239) == "239 images seen in 8 steps of 30 images"
    assert problem(1, 1, 30, images=20) == "30 images seen in 1 step of 20 images"
    assert problem(-1, -8, -240) == "a count below 0 (-1 epochs, -8 steps, -240 images)"


def test_fit_refuses_a_resume_whose_counts_are_not_of_its_training_before_touching_the_model():
    from nas.train import fit

    model = build_model(ARCH)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.zeros((20, 1, 28, 28), dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"^resume is of another training: 30 images seen in 1 step of 20 images$"):
        fit(model, Split(x, torch.arange(20) % 10), loss_fn=lambda logits, _x, y: logits.sum(), epochs=2, batch_size=32,
            lr=1e-3, weight_decay=0.0, warmup_frac=0.0, seed=0, resume=_counts(1, 1, 30))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
