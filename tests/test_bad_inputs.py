"""Bad input, through the user's entry points: each case must end in one clear line that names the bad
value (and what is allowed), and must leave no partial output behind (no run folder, no study, no new file
next to a checkpoint). Config values, paths, storage URLs, checkpoints, image folders."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException
from PIL import Image

from compress.run import run_compress
from nas.arch import ArchConfig, StageConfig
from nas.checkpoint import load_checkpoint, save_checkpoint
from nas.config import register_configs
from nas.config_messages import compose_error_message
from nas.errors import CLOSED_STDOUT_EXIT, NasError
from nas.model import build_model
from nas.search import run_search
from tests.conftest import make_idx_dataset

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
ARCH = ArchConfig(stages=(StageConfig(mixer="pool", depth=1, width=16), StageConfig(mixer="conv", depth=1, width=32)))


def _png(path: Path, size: int, channels: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(0).integers(0, 255, (size, size, channels) if channels == 3 else (size, size), dtype=np.uint8)
    Image.fromarray(arr).save(path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """Image folders that are wrong in one way each, plus a good RGB 32x32 one."""
    base = tmp_path_factory.mktemp("bad_images")
    for c in ("a", "b"):  # mixed sizes, no data.img_size
        for i in range(10):
            _png(base / "mixed" / c / f"{i}.png", 8 if c == "a" else 12, 1)
    for c in ("a", "b"):
        _png(base / "corrupt" / c / "0.png", 8, 1)
    (base / "corrupt" / "b" / "1.png").write_bytes(b"not a png")
    _png(base / "one_class" / "a" / "0.png", 8, 1)
    (base / "empty_class" / "a").mkdir(parents=True)
    _png(base / "empty_class" / "b" / "0.png", 8, 1)
    for c in ("a", "b"):  # 12x8 images, no data.img_size
        (base / "wide" / c).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.zeros((8, 12), dtype=np.uint8)).save(base / "wide" / c / f"{i}.png")
    for c in ("a", "b", "c"):  # valid, but 3x32x32 images: wrong for a 1x28x28 checkpoint
        for i in range(8):
            _png(base / "rgb32" / c / f"{i}.png", 32, 3)
    make_idx_dataset(base / "tiny3", n_train=40, n_test=10, size=3)  # idx images smaller than a model takes
    return {p.name: p for p in base.iterdir()}


def _message(exc: BaseException) -> str:
    return compose_error_message(exc) if isinstance(exc, (HydraException, OmegaConfBaseException)) else str(exc)


# (overrides, fragment the one-line message must contain). {tiny} is the tiny idx dataset, {img} the folder above.
SEARCH_CASES = [
    # config groups, keys and types (Hydra composition)
    (["hw=tpu9000"], "hw=tpu9000 is not an option of hw; available: cpu, cpu_int8, cpu_ort, cpu_xeon, cpu_xeonb, cpu_zen2, edge_npu, mobile_cpu"),
    # Hydra's "In 'search': Could not find 'hw/edge_npuu'" read as a fault of the search.* settings, and named no close option
    (["hw=edge_npuu"], "hw=edge_npuu is not an option of hw (did you mean hw=edge_npu?); available: cpu, cpu_int8,"),
    (["data=imagefolders"], "data=imagefolders is not an option of data (did you mean data=imagefolder?); available: fashion_mnist"),
    (["space=huge"], "space=huge is not an option of space; available: metaformer_s, metaformer_t"),
    (["search.n_trials=abc"], "search.n_trials='abc' (set on the command line) must be a whole number, without units"),
    # a chip's number with its unit, as a datasheet writes it: the same line as in the chip's file, set on the command line
    (["hw.mac_per_s='4 TOPS'"], "hw.mac_per_s='4 TOPS' (set on the command line) must be a plain number in MAC/s, without "
                                "units (1 MAC = 2 ops: 4 TOPS is 2.0e12)"),
    (["train.epochs=1.5"], "train.epochs='1.5' (set on the command line) must be a whole number, written as digits, "
                           "without a point or exponent"),
    (["search.sampler=cmaes"], "cmaes"),
    (["train.precision=fp16"], "train.precision=fp16 is unknown; allowed: auto, fp32, bf16"),
    (["search.nope=1"], "search.nope is not a setting of search; allowed: study_name, n_trials, sampler,"),
    (["train.epoch=3"], "train.epoch is not a setting of train (did you mean train.epochs?); allowed: epochs, subset,"),
    (["space.stages.0.mixer=[pool]"], "space.stages.0.mixer is not a setting of space.stages.0 (did you mean space.stages.0.mixers?)"),
    # keys that Hydra's + and ++ add without a schema check: refused, not dropped
    (["+train.epoch=3"], "train.epoch is not a setting of train (did you mean train.epochs?)"),
    (["++search.n_trails=3"], "search.n_trails is not a setting of search (did you mean search.n_trials?)"),
    (["+space.stages.1.kernel=[7]"], "space.stages.1.kernel is not a setting of space.stages.1 (did you mean space.stages.1.kernels?)"),
    (["+epochs=3"], "epochs is not a setting of the config (did you mean train.epochs or final_train.epochs or "
                    "compress.recover.epochs or compress.quantize.qat.epochs?); allowed: hw, space, data, train, search, "
                    "final_train, compress"),
    # a group's setting without its group: the groups were listed as allowed, not which one holds it
    (["n_trials=3"], "n_trials is not a setting of the config (did you mean search.n_trials?); allowed: hw, space,"),
    (["n_trail=3"], "n_trail is not a setting of the config (did you mean search.n_trials?)"),
    (["+nope=1"], "nope is not a setting of the config; allowed: hw, space, data, train, search, final_train, compress"),
    # values (validated before any work)
    (["search.n_trials=0"], "search.n_trials=0 must be an integer in [1, 1000000]"),
    (["search.n_trials=-5"], "search.n_trials=-5 must be an integer in [1, 1000000]"),
    # finite bounds, far past any use: a typo such as 1e12 trained every trial to NaN, or never finished
    (["search.n_trials=1000000000000"], "search.n_trials=1000000000000 must be an integer in [1, 1000000] (for a search "
                                        "that runs until a time is up, set search.timeout_s)"),
    (["search.n_startup_trials=1000001"], "search.n_startup_trials=1000001 must be an integer in [0, 1000000]"),
    # Optuna's heartbeat thread failed waiting past threading.TIMEOUT_MAX (~9.2e9 s)
    (["search.heartbeat_s=1000000000000"], "search.heartbeat_s=1000000000000 must be an integer in [1, 3600] (seconds"),
    (["search.grace_s=1000000000000"], "search.grace_s=1000000000000 is too long; allowed: up to 86400 seconds"),
    (["train.lr=1000000000000"], "train.lr=1000000000000.0 must be a number in (0, 1] (AdamW's learning rate: larger "
                                 "steps make the losses NaN)"),
    (["final_train.lr=1.5"], "final_train.lr=1.5 must be a number in (0, 1]"),
    (["compress.recover.lr=2"], "compress.recover.lr=2.0 must be a number in (0, 1]"),
    (["compress.quantize.qat.lr=10"], "compress.quantize.qat.lr=10.0 must be a number in (0, 1]"),
    (["compress.recover.temperature=1000"], "compress.recover.temperature=1000.0 must be a number in (0, 100]"),
    (["train.epochs=1000000000000"], "train.epochs=1000000000000 must be an integer in [1, 10000]"),
    (["final_train.epochs=10001"], "final_train.epochs=10001 must be an integer in [0, 10000] (0: no final training"),
    (["compress.quantize.qat.epochs=1000000000000"], "compress.quantize.qat.epochs=1000000000000 must be an integer in "
                                                     "[0, 10000] (0: disabled)"),
    (["compress.recover.epochs=10001"], "compress.recover.epochs=10001 must be an integer in [1, 10000]"),
    (["train.batch_size=1000000000000"], "train.batch_size=1000000000000 must be an integer in [1, 65536] (images per "
                                         "step; more than the training images is one step of all of them)"),
    (["final_train.eval_batch_size=65537"], "final_train.eval_batch_size=65537 must be an integer in [1, 65536]"),
    (["compress.recover.batch_size=65537"], "compress.recover.batch_size=65537 must be an integer in [1, 65536]"),
    # empty names: the default study name was 'metaformer_t--fashion_mnist', the report titled by nothing
    (["hw.name=''"], "hw.name='' is empty; allowed: a name, usually its file's (it names the study, the run folder"),
    (["hw.name=' '"], "hw.name=' ' is empty; allowed: a name"),
    (["data.name=''"], "data.name='' is empty; allowed: a name"),
    (["data.name='  '"], "data.name='  ' is empty; allowed: a name"),
    (["space.name=''"], "space.name='' is empty; allowed: a name"),
    (["search.latency_budget_ms=-1"], "search.latency_budget_ms=-1.0 must be a number > 0 or null"),
    (["search.latency_budget_ms=0.001"], "search.latency_budget_ms=0.001 cannot be met: the fastest architecture of space"),
    (["search.timeout_s=0"], "search.timeout_s=0.0 must be a number > 0 or null"),
    (["search.memory_budget_gb=0"], "search.memory_budget_gb=0.0 must be a number in (0, 65536] or null (GiB of working "
                                    "memory per step; null: 70% of the memory available at the start)"),
    # a budget past any machine's memory let every candidate through, to be killed by the kernel without its reason
    (["search.memory_budget_gb=1000000000000"], "search.memory_budget_gb=1000000000000.0 must be a number in (0, 65536] "
                                                "or null"),
    (["search.worker=-1"], "search.worker=-1 must be an integer >= 0"),
    (["search.heartbeat_s=10", "search.grace_s=5"], "search.grace_s=5 must be larger than search.heartbeat_s=10"),
    (["search.max_retry=-1"], "search.max_retry=-1 must be an integer in [0, 100] (re-runs of a trial whose worker "
                              "died; 0: none)"),
    # a candidate that kills its worker every time (out of memory) was re-run without end
    (["search.max_retry=1000000000000"], "search.max_retry=1000000000000 must be an integer in [0, 100]"),
    (["search.study_name=a/b"], "search.study_name='a/b' must be a non-empty folder name"),
    (["train.lr=0"], "train.lr=0.0 must be a number in (0, 1]"),
    (["train.batch_size=0"], "train.batch_size=0 must be an integer in [1, 65536]"),
    (["train.weight_decay=1.5"], "train.weight_decay=1.5 must be in [0, 1)"),
    (["search.early_stop.enabled=true"], "search.early_stop.after_epochs=1 must be < train.epochs=1"),
    (["search.early_stop.safety=0.5"], "search.early_stop.safety=0.5 must be a finite number >= 1"),
    # inf x a gain of 0 seen so far is NaN: every candidate would be stopped
    (["search.early_stop.safety=inf"], "search.early_stop.safety=inf must be a finite number >= 1"),
    (["search.early_stop.slack=inf"], "search.early_stop.slack=inf must be a finite number >= 0"),
    (["search.seed_archs=[convformer-XL]"], "search.seed_archs has 'convformer-XL': neither a model family (poolformer-S"),
    (["search.seed_archs=[vit-S]"], "search.seed_archs has 'vit-S', which the space cannot express: bn/relu"),
    (["search.seed_archs=[vit-S]"], "s0.mixer='attn' is not in space 'metaformer_t'; allowed: ['identity', 'pool', 'sepconv', 'conv']"),
    # the 4-stage space takes the families' 4-stage layout, which for ViT still attends in stage 0
    (["space=metaformer_s", "search.seed_archs=[vit-S]"],
     "s0.mixer='attn' is not in space 'metaformer_s'; allowed: ['identity', 'pool', 'sepconv', 'conv']"),
    # Optuna's samplers refuse seeds outside numpy's range only when built, after the run folder exists
    (["search.seed=-1"], "search.seed=-1 must be an integer in [0, 4294967295]"),
    (["search.seed=4294967296"], "search.seed=4294967296 must be an integer in [0, 4294967295]"),
    # -1, "random" to many tools, gave a fixed split as any seed does
    (["data.split_seed=-1"], "data.split_seed=-1 must be an integer in [0, 4294967295]"),
    (["compress.seed=-1"], "compress.seed=-1 must be an integer in [0, 4294967295]"),
    (["search.runs_dir=''"], "search.runs_dir='' is empty; allowed: a folder path (default: runs)"),
    (["search.study_name=' '"], "search.study_name=' ' is empty; allowed: a name"),
    (["search.population_size=1"], "search.population_size=1 must be an integer in [2, 1000000] (NSGA-II breeds pairs "
                                   "of parents; a generation holds at most the trials a study does)"),
    (["search.population_size=1000001"], "search.population_size=1000001 must be an integer in [2, 1000000]"),
    # more references than a study holds trials: the early stop, enabled, stopped nothing
    (["search.early_stop.min_reference=1000000000000"], "search.early_stop.min_reference=1000000000000 must be an "
     "integer in [1, 1000000] (fully trained trials before any candidate is stopped early)"),
    (["search.early_stop.after_epochs=10001"], "search.early_stop.after_epochs=10001 must be an integer in [1, 10000]"),
    (["search.seed_archs=['{img}']"], "is not a readable arch.json"),
    # the message said "must be a number > 0", as 0.0, and not that a fraction or a count of images is taken
    (["data.val_size=0"], "data.val_size=0 holds out no images; allowed: a fraction of the images (0 < val_size < 1, "
                          "e.g. 0.2) or a whole count of images (>= 1, e.g. 500)"),
    (["data.test_size=0"], "data.test_size=0 holds out no images; allowed: a fraction of the images (0 < test_size < 1"),
    (["data.test_size=1.5"], "data.test_size=1.5 is neither a fraction (< 1) nor a whole count of images; allowed:"),
    (["data.channels=2"], "data.channels=2; allowed: 1, 3 or null"),
    # every trial failed building its model (a traceback each), in a run folder already made
    (["data.img_size=3"], "data.img_size=3 is too small; allowed: an integer in [4, 1024], or null (native size)"),
    # it said "must be an integer > 0 or null", and then data.img_size=1 was refused as too small, allowed >= 4
    (["data.img_size=0"], "data.img_size=0 is too small; allowed: an integer in [4, 1024], or null (native size)"),
    (["data.img_size=-5"], "data.img_size=-5 is too small; allowed: an integer in [4, 1024], or null (native size)"),
    (["data.img_size=1000000000000"], "data.img_size=1000000000000 is too large; allowed: an integer in [4, 1024], or null"),
    (["data.root={img}/tiny3", "data.img_size=null"], "dataset 'fashion_mnist' has 3x3 images; models take >= 4x4: set data.img_size=4"),
    # a random shift as large as the images blanks many of them
    (["train.max_shift=28"], "train.max_shift=28 shifts 28x28 images entirely out of view; allowed: 0..27"),
    (["data.img_size=8", "data.max_shift=8"], "data.max_shift=8 shifts 8x8 images entirely out of view; allowed: 0..7"),
    (["final_train.max_shift=100"], "final_train.max_shift=100 shifts 28x28 images"),
    (["data.background=300"], "data.background=300; allowed: a grey level 0 (black) to 255 (white), or null"),
    # image-folder settings on Fashion-MNIST's idx files would be recorded but do nothing
    (["data.background=128"], "data.background=128 applies to image folders (data=imagefolder); fashion_mnist's idx images"),
    (["data.cache_dir=/tmp/c"], "data.cache_dir='/tmp/c' caches decoded image folders (data=imagefolder); fashion_mnist's"),
    (["data.metric=f1"], "data.metric=f1 is unknown; allowed: accuracy, balanced_accuracy"),
    (["hw.precision=int3"], "hw.precision='int3'"),
    (["hw.efficiency.conv=2"], "hw.efficiency.conv=2"),
    # OpenVINO refused it only when timing the Pareto members, after the whole search had trained
    (["hw=cpu", "hw.threads=-1"], "hw.threads=-1 must be an integer in [1, 1024]"),
    (["hw=cpu", "hw.threads=0"], "hw.threads=0 must be an integer in [1, 1024]"),
    (["hw=cpu", "hw.threads=1000000000000"], "hw.threads=1000000000000 must be an integer in [1, 1024]"),
    # pruning rounds widths to it: wider than every layer, it pruned nothing in every compression
    (["hw.channel_multiple=1000000000000"], "hw.channel_multiple=1000000000000 must be an integer in [1, 256]"),
    # torch failed every trial ("Overflow when unpacking long"), in a run folder already made
    (["train.threads=1000000000000"], "train.threads=1000000000000 must be an integer in [1, 1024] (threads)"),
    (["final_train.threads=1025"], "final_train.threads=1025 must be an integer in [1, 1024] (threads)"),
    (["compress.latency_threads=5000"], "compress.latency_threads=5000 must be an integer in [1, 1024] (threads)"),
    # a mapping takes new keys without + (hw=cpu hw.efficiency.add=0.5 composes); a misspelt one is named by its check
    (["hw=cpu", "hw.efficiency.ad=0.5"], "hw.efficiency has unknown op kind 'ad'; allowed: ['add', 'bn',"),
    # (a calibrated profile's fitted numbers are read from their own file, not composed: + still adds an entry)
    (["hw=cpu", "+hw.calibration.weight_spill.above_bytes=-1"],
     "hw.calibration.weight_spill.above_bytes=-1: terms of weight_spill are per_byte/above_bytes, finite and >= 0"),
    (["hw=cpu", "+hw.calibration.weight_spill.per_byte=1.0"],
     "needs both per_byte and above_bytes"),
    (["space.stages.0.mixers=[pool,mamba]"], "mixers has 'mamba'"),
    (["space.stages.1.depths=[0]"], "space.stages.1.depths.0=0 must be an integer >= 1"),
    (["compress.prune.ratio=0.95"], "compress.prune.ratio=0.95 must be in [0, 0.9]"),
    (["compress.quantize.max_acc_drop=-1"], "compress.quantize.max_acc_drop=-1.0 must be a number in [0, 100] "
                                            "(accuracy points; 100 accepts any drop)"),
    (["compress.quantize.max_acc_drop=101"], "compress.quantize.max_acc_drop=101.0 must be a number in [0, 100]"),
    (["compress.quantize.max_acc_drop=inf"], "compress.quantize.max_acc_drop=inf must be a number in [0, 100]"),
    (["compress.quantize.qat.precision=bf16"], "compress.quantize.qat.precision='bf16' is not supported; allowed: 'fp32'"),
    (["compress.recover.precision=fp16"], "compress.recover.precision"),
    (["compress.top_k=0"], "compress.top_k=0 must be an integer > 0"),
    # 0 is allowed for these two: the message said "> 0"
    (["final_train.epochs=-1"], "final_train.epochs=-1 must be an integer in [0, 10000] (0: no final training"),
    (["compress.quantize.qat.epochs=-1"], "compress.quantize.qat.epochs=-1 must be an integer in [0, 10000] (0: disabled)"),
    # paths
    (["data.root=/nonexistent/fmnist"], "apt-get install -y dataset-fashion-mnist"),
    # a folder of class folders without data=imagefolder: it was told to install Fashion-MNIST
    (["data.root={img}/mixed"], "/mixed holds folders of images (a, b), not the idx files that data=fashion_mnist reads: "
     "for your own images pass data=imagefolder too"),
    (["search.runs_dir={img}/corrupt/b/1.png"], "/corrupt/b/1.png' is a file, so the folder"),
    (["data=imagefolder", "data.root=/nonexistent/images"], "data.root=/nonexistent/images does not exist"),
    # storage URLs
    (["search.storage=not-a-url"], "search.storage='not-a-url' is not a database URL; expected e.g. sqlite:///"),
    (["search.storage=oracle://u:p@db/x"], "database 'oracle' is not supported; use sqlite, postgresql or mysql"),
    (["search.storage=postgresql://nas:s3cret@127.0.0.1:1/nas"], "search.storage='postgresql://nas:***@127.0.0.1:1/nas' cannot be opened"),
    (["search.storage=mysql://u:p@127.0.0.1:1/x"], "cannot be opened: its driver is not installed"),
    (["search.storage=sqlite:////nonexistent/dir/study.db"], "search.storage='sqlite:////nonexistent/dir/study.db' cannot be opened"),
    # image folders
    (["data=imagefolder", "data.root={img}/mixed", "data.img_size=null"], "set data.img_size=N to resize all images"),
    (["data=imagefolder", "data.root={img}/corrupt", "data.img_size=8"], "cannot read image"),
    # a count held as a float was echoed "data.test_size=93.0"
    (["data=imagefolder", "data.root={img}/rgb32", "data.test_size=93"], "data.test_size=93 holds out 93 of 24 images and"),
    (["data=imagefolder", "data.root={img}/one_class"], "has 1 class folder; an image-folder dataset needs >= 2"),
    # one class's folder given as the root: its images were not named, and nothing said where the root is
    (["data=imagefolder", "data.root={img}/mixed/a"], "/mixed/a has 0 class folders; an image-folder dataset needs "
     ">= 2 (root/<class>/images) (it holds 10 image files itself, as one class's folder does: data.root is the folder above the class folders, e.g. data.root="),
    (["data=imagefolder", "data.root={img}/empty_class"], "has no images"),
    (["data=imagefolder", "data.root={img}/wide", "data.img_size=null"], "is not square"),
    (["data=imagefolder", "data.root={img}/mixed", "data.cache_dir={img}/corrupt/b/1.png/cache"],
     "/corrupt/b/1.png/cache': '"),
]


@pytest.mark.parametrize(("overrides", "fragment"), SEARCH_CASES, ids=[" ".join(o) for o, _ in SEARCH_CASES])
def test_bad_search_input_is_one_clear_line_and_writes_nothing(overrides, fragment, tmp_path, compose_cfg, tiny_idx_root, folders):
    runs = tmp_path / "runs"
    args = [f"data.root={tiny_idx_root}", f"search.runs_dir={runs}", "search.progress=false", "compress=none", "train=smoke"]
    args += [o.format(img=folders["mixed"].parent) for o in overrides]
    with pytest.raises((NasError, HydraException, OmegaConfBaseException)) as err:
        run_search(compose_cfg(*args))
    message = _message(err.value)
    assert fragment in message
    assert "\n" not in message and "s3cret" not in message
    assert not runs.exists() or not any(runs.rglob("*")), sorted(runs.rglob("*"))


def test_resuming_under_other_settings_is_refused_and_changes_nothing(tmp_path, compose_cfg, tiny_idx_root):
    args = [f"data.root={tiny_idx_root}", f"search.runs_dir={tmp_path}", "search.study_name=t", "search.progress=false",
            "compress=none", "final_train=none", "train=smoke", "train.subset=64", "train.threads=1", "search.n_trials=1",
            "search.export_onnx=false"]
    run_search(compose_cfg(*args))
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "t").rglob("*") if p.is_file()}
    with pytest.raises(NasError, match=r"was created with other space settings \(space\.name: \"metaformer_t\" then, "
                                       r"\"metaformer_s\" now; .*\); rerun with the same ones"):
        run_search(compose_cfg(*args, "space=metaformer_s"))
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "t").rglob("*") if p.is_file()} == before


# --------------------------------------------------------------------------------------- checkpoints


def _compress_cfg(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="compress_run", overrides=list(overrides))


class _Exploit:
    """A pickle that would create a file when unpickled with weights_only=False."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _damage(folder: Path, how: str, marker: Path) -> None:
    path = folder / "model.pt"
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "garbage":
        path.write_bytes(b"\x00garbage" * 100)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "pickled_code":
        torch.save({"format": "metaformer-nas/checkpoint-v1", "payload": _Exploit(marker)}, path)
    elif how == "plain_pickle":
        path.write_bytes(pickle.dumps(_Exploit(marker)))
    elif how == "foreign_format":
        torch.save({"state_dict": build_model(ARCH).state_dict()}, path)
    elif how == "weights_do_not_fit":
        other = ARCH.replace(stages=(StageConfig(mixer="pool", depth=1, width=24), ARCH.stages[1]))
        payload = torch.load(path, weights_only=True)
        payload["arch"] = other.to_json()
        torch.save(payload, path)
    elif how == "other_classes":  # trained on another 10-class dataset of the same image size
        payload = torch.load(path, weights_only=True)
        payload["meta"] = json.dumps({"dataset": "fashion_mnist", "classes": ["T-shirt/top", "shoe", *"abcdefgh"]})
        torch.save(payload, path)
    elif how == "missing":
        path.unlink()
    elif how == "composited":  # a search member whose images had their transparency composited onto white
        (folder / "metrics.json").write_text(json.dumps({"input": {"background": 255}}))


CHECKPOINT_CASES = [
    ("truncated", [], "is corrupt or not a metaformer-nas checkpoint"),
    ("garbage", [], "is corrupt or not a metaformer-nas checkpoint"),
    ("empty", [], "is corrupt or not a metaformer-nas checkpoint"),
    ("pickled_code", [], "is corrupt or not a metaformer-nas checkpoint"),
    ("plain_pickle", [], "is corrupt or not a metaformer-nas checkpoint"),
    ("foreign_format", [], "expected 'metaformer-nas/checkpoint-v1'"),
    ("weights_do_not_fit", [], "weights do not fit its arch spec"),
    ("missing", [], "not found; expected a model.pt file or a folder holding one"),
    ("other_classes", [], "was trained on other classes than dataset 'fashion_mnist' has: class 1 is 'shoe' there and "
                          "'Trouser' here; give the data it was trained on"),
    ("none", ["data=imagefolder", "data.root={img}/rgb32"], "expects 1x28x28 images and 10 classes; dataset 'imagefolder' has 3x32x32 and 3"),
    ("none", ["compress.prune.target_latency_ms=0.0001"], "compress.prune.target_latency_ms=0.0001 cannot be met"),
    # a fraction: the message names the setting given, and the target in ms it makes
    ("none", ["compress.prune.target_latency_fraction=0.05"], "compress.prune.target_latency_fraction=0.05 (0.0"),
    # of Fashion-MNIST's shape: named as no image folder ("pass data.background=255" was then refused for idx data)
    ("composited", [], "was trained on an image folder with transparency composited onto grey level 255, not on dataset "
                       "'fashion_mnist'; pass data=imagefolder, the data.root its search used and data.background=255"),
    ("composited", ["data=imagefolder", "data.root={img}/rgb32"], "was trained on images with transparency composited "
                                                                  "onto grey level 255, not data.background=null; pass "
                                                                  "data.background=255"),
]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the plain-pickle case, refused all the same
@pytest.mark.parametrize(("how", "overrides", "fragment"), CHECKPOINT_CASES, ids=[f"{h}-{len(o)}" for h, o, _ in CHECKPOINT_CASES])
def test_bad_checkpoint_is_one_clear_line_runs_no_code_and_writes_nothing(how, overrides, fragment, tmp_path, tiny_idx_root, folders):
    folder = tmp_path / "ck"
    model = build_model(ARCH)
    save_checkpoint(folder / "model.pt", model, ARCH)
    marker = tmp_path / "code_ran"
    _damage(folder, how, marker)
    before = sorted(p.name for p in folder.iterdir())
    args = [f"checkpoint={folder}", f"data.root={tiny_idx_root}", "compress=smoke",
            *(o.format(img=folders["rgb32"].parent) for o in overrides)]
    with pytest.raises(NasError) as err:
        run_compress(_compress_cfg(*args))
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert not marker.exists()  # weights_only loading: pickled code never runs
    assert sorted(p.name for p in folder.iterdir()) == before


def test_pickled_code_is_refused_by_plain_checkpoint_loading_too(tmp_path):
    marker = tmp_path / "code_ran"
    torch.save({"format": "metaformer-nas/checkpoint-v1", "arch": ARCH.to_json(), "state_dict": _Exploit(marker)},
               tmp_path / "model.pt")
    with pytest.raises(NasError, match="corrupt or not a metaformer-nas checkpoint"):
        load_checkpoint(tmp_path)
    assert not marker.exists()


# --------------------------------------------------------------------------- command lines (no traceback)


def _run_importing(*argv: str) -> tuple[subprocess.CompletedProcess, set[str], str]:
    """`python -X importtime *argv` from the checkout: the process, the top-level packages it imported before it
    answered (-X importtime writes one "import time:" line each, on stderr) and its stderr without those lines."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if line.startswith("import time:")}
    stderr = "".join(line + "\n" for line in proc.stderr.splitlines() if not line.startswith("import time:"))
    return proc, imported, stderr


_BAD_INPUTS = [
    ("nas.search", ["hw=tpu9000"], "error: hw=tpu9000 is not an option of hw; available: cpu, cpu_int8"),
    ("nas.search", ["hw=EDGE_NPU"], "error: hw=EDGE_NPU is not an option of hw (did you mean hw=edge_npu?); available: cpu,"),
    ("nas.search", ["search.n_trials=many"], "error: search.n_trials='many' (set on the command line) must be a whole number, "
                                             "without units"),
    # Hydra's "Error merging override data.metric=f1: Invalid value 'f1', expected one of [...]"
    ("nas.search", ["data.metric=f1"], "error: data.metric=f1 is unknown; allowed: accuracy, balanced_accuracy"),
    ("nas.search", ["search.n_trails=3"], "error: search.n_trails is not a setting of search (did you mean search.n_trials?); allowed:"),
    ("nas.search", ["+train.epoch=3"], "error: train.epoch is not a setting of train (did you mean train.epochs?); allowed:"),
    # local workers through Hydra's multirun: checked too, each swept value once
    ("nas.search", ["-m", "hydra/launcher=joblib", "search.worker=0,1", "train.epoch=3"],
     "error: train.epoch is not a setting of train (did you mean train.epochs?)"),
    # Hydra's own groups: README's local workers pass hydra/launcher=joblib; a typo got Hydra's multi-line message
    ("nas.search", ["-m", "hydra/launcher=jobib", "search.worker=0,1"],
     "error: hydra/launcher=jobib is not an option of hydra/launcher (did you mean hydra/launcher=joblib?); available: basic"),
    ("nas.search", ["hydra/launcher=submitit_slurm"], "(a launcher other than these comes with its plugin, e.g. pip install "
                                                      "hydra-submitit-launcher for submitit_slurm)"),
    ("nas.search", ["--multirun", "hw=edge_npu,tpu9000"], "hw=tpu9000 is not an option of hw; available: cpu, cpu_int8"),
    ("nas.latency.fit", ["hw=tpu9000"], "error: hw=tpu9000 is not an option of hw; available: cpu, cpu_int8"),
    ("nas.latency.validate", ["hw=tpu9000"], "error: hw=tpu9000 is not an option of hw; available: cpu, cpu_int8"),
    ("compress.run", ["hw=tpu9000"], "error: hw=tpu9000 is not an option of hw; available: cpu, cpu_int8"),
    ("compress.run", ["+checkpiont=/x"], "error: checkpiont is not a setting of the config (did you mean checkpoint?)"),
    ("compress.run", ["ratio=0.5"], "error: ratio is not a setting of the config (did you mean compress.prune.ratio?)"),
    ("nas.latency.profile", ["+repeat=3"], "error: repeat is not a setting of the config (did you mean repeats?)"),
    ("nas.search", ["data.root=/nonexistent/fmnist"], "apt-get install -y dataset-fashion-mnist"),
    # a path Hydra's grammar refuses unquoted: Hydra said "mismatched input ' (' expecting <EOF>", not to quote it
    ("nas.search", ["data=imagefolder", "data.root=/data/Photos (2024)"],
     "error: data.root=/data/Photos (2024): Hydra's override syntax takes '(', ')' only inside quotes; quote the value: "
     "\"data.root='/data/Photos (2024)'\""),
    ("nas.search", ["search.storage=postgresql://nas:s3cret@127.0.0.1:1/nas"], "error: search.storage='postgresql://nas:***@"),
    ("nas.report", ["search.storage=sqlite:////nonexistent/x.db", "search.study_name=x"], "error: search.storage="),
    ("compress.run", ["checkpoint=/nonexistent/ck"], "error: checkpoint /nonexistent/ck not found"),
    ("compress.predict", ["/nonexistent/ck", "photo.jpg"], "error: /nonexistent/ck not found; pass a checkpoint folder"),
    # argparse's refusals: its usage (four lines) and then the error
    ("compress.predict", ["/nonexistent/ck", "photo.jpg", "--top", "x"],
     "error: argument --top: invalid int value: 'x'; python -m compress.predict takes a model and image files or folders, "
     "with the options --top, --csv, --memory-budget-gb, --skip-unreadable (python -m compress.predict --help says"),
    # a path given alone: Hydra said only "missing EQUAL at '<EOF>'"
    ("compress.run", ["runs/x/checkpoints/abc"], "error: 'runs/x/checkpoints/abc' is not a setting: every argument is "
                                                 "key=value; e.g. checkpoint=runs/x/checkpoints/abc"),
    ("nas.latency.fit", ["hw=cpu", "m.csv"], "e.g. 'measurements=[m.csv]'"),
    # a chip's measurements fitted without hw=<chip>: the default hw=cpu, this host's shipped profile, was recalibrated
    # on them and its files rewritten
    ("nas.latency.fit", ["measurements=[m.csv]"],
     "error: hw= is required: the chip whose profile the fit calibrates and rewrites (<config folder>/hw/<chip>.yaml)"),
    # ... and validated without it: scored against hw=cpu, this host's profile, without a word
    ("nas.latency.validate", ["measurements=[m.csv]"],
     "error: hw= is required: the chip whose profile's predictions the measurements are scored against"),
    # a flag in the style of other tools: Hydra printed its usage lines and "unrecognized arguments"
    ("nas.latency.profile", ["hw=edge_npu", "--export-only", "n=3"],
     "error: --export-only is not an option of this command: settings are key=value, without dashes (export_only=...)"),
    # a list setting given one value without brackets: Hydra said "str is not a ListConfig, list or tuple"
    ("nas.latency.fit", ["hw=cpu", "measurements=m.csv"],
     "error: measurements=m.csv must be a list, in brackets and quoted for the shell: 'measurements=[m.csv]'"),
    # a seed the search refused only once torch, Optuna and the data had loaded (seconds)
    ("nas.search", ["search.seed_archs=[convformer-XL]"], "error: search.seed_archs has 'convformer-XL': neither a "
                                                          "model family (poolformer-S"),
    ("nas.search", ["space=metaformer_s", "search.seed_archs=[vit-S]"],
     "error: search.seed_archs has 'vit-S', which the space cannot express: "),
    ("nas.search", ["search.seed_archs=[convformer-M,/nonexistent/arch.json]"],
     "error: search.seed_archs has '/nonexistent/arch.json': neither a model family"),
    ("nas.search", ["search.seed_archs=convformer-M"],
     "error: search.seed_archs=convformer-M must be a list, in brackets and quoted for the shell: "
     "'search.seed_archs=[convformer-M]'"),
    ("nas.latency.profile", ["select=best"], "select='best' is unknown; allowed: ['random', 'cover']"),
    ("nas.latency.profile", ["seed=-1", "export_only=true"], "error: seed=-1 must be an integer in [0, 4294967295]"),
    # its archs run on the user's images: Fashion-MNIST's 28x28 grey was profiled without a word
    ("nas.latency.profile", ["space=metaformer_s", "export_only=true"],
     "error: space=metaformer_s has no default input: set img_size=... in_chans=... to what the search feeds it")
]


def _bad_input_command(module: str, args: list[str], runs_dir: Path) -> list[str]:
    where = [f"search.runs_dir={runs_dir}"] if module == "nas.search" else []
    return ["-m", module, *where, *args]


@pytest.fixture(scope="module")
def bad_input_answers(request, tmp_path_factory):
    """`_run_importing`'s answer to the command of each case of test_command_line_bad_input_is_one_line_without_traceback
    this session runs, with the runs folder it was given (made empty), keyed by (module, args): run up front, as many at
    once as there are CPUs. Each is a Python process that imports Hydra (some torch too): one after another, the cases
    took their seconds each on one core while the other idled."""
    import concurrent.futures

    cases = [(item.callspec.params["module"], tuple(item.callspec.params["args"])) for item in request.session.items
             if getattr(item, "originalname", None) == "test_command_line_bad_input_is_one_line_without_traceback"
             and item.module is request.module]
    folders = {case: tmp_path_factory.mktemp("runs") for case in cases}
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=cpus) as pool:
        runs = {case: pool.submit(_run_importing, *_bad_input_command(case[0], list(case[1]), folders[case]))
                for case in cases}
    return {case: (run, folders[case]) for case, run in runs.items()}  # a case's error (a timeout) is raised in its test


@pytest.mark.parametrize(("module", "args", "fragment"), _BAD_INPUTS)
def test_command_line_bad_input_is_one_line_without_traceback(module, args, fragment, bad_input_answers):
    run, runs_dir = bad_input_answers[module, tuple(args)]
    proc, imported, stderr = run.result()
    assert proc.returncode == 2 and fragment in stderr, (proc.returncode, stderr)  # every command's status for bad input
    assert "Traceback" not in stderr and "s3cret" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert not any(runs_dir.rglob("*"))
    # A bad setting or checkpoint is named before torch or Optuna load (seconds); what the search's data or study shows
    # wrong needs them, but never the compression's or the runtimes' libraries.
    heavy = {"nncf", "openvino", "onnxruntime", "onnx", "sklearn"}
    if not any(arg.startswith(("data.root=", "search.storage=")) for arg in args) or "quote the value" in fragment:
        heavy |= {"torch", "optuna", "torch_pruning", "plotly", "matplotlib", "scipy"}
    assert not imported & heavy, sorted(imported & heavy)


def test_a_bad_value_in_a_users_group_file_or_a_sweep_is_named_before_torch_loads(tmp_path):
    # `lr: 100` in the user's train/mine.yaml (--config-dir), a chip's misspelt op kind or a value out of range among a
    # sweep's values: refused only once the command had imported torch and Optuna (seconds; in a sweep, by every job
    # it had launched). The command line's first check runs the command's own value check on the config it composes.
    folder = tmp_path / "mine"
    train, compress = folder / "train" / "mine.yaml", folder / "compress" / "mine.yaml"
    search, data = folder / "search" / "mine.yaml", folder / "data" / "mine.yaml"
    for path in (train, compress, search, data):
        path.parent.mkdir(parents=True)
    data.write_text("defaults:\n  - fashion_mnist\n  - _self_\nname: mine\nval_size: 0\n")
    train.write_text((ROOT / "conf" / "train" / "default.yaml").read_text().replace("lr: 3.0e-3", "lr: 100"))
    compress.write_text("recover:\n  temperature: 1000\n")
    search.write_text("seed_archs: [convformer-M, vit-S]\n")
    seed = tmp_path / "seed" / "arch.json"  # an arch.json edited by hand: a key ArchConfig does not have
    seed.parent.mkdir()
    seed.write_text(json.dumps({**ARCH.to_dict(), "widths": [16, 32]}))
    runs = f"search.runs_dir={tmp_path / 'runs'}"
    cases = [
        (["nas.search", "--config-dir", str(folder), "train=mine", runs],
         f"error: train.lr=100.0 must be a number in (0, 1] (AdamW's learning rate: larger steps make the losses NaN) "
         f"(set in {train})"),
        (["compress.run", "--config-dir", str(folder), "compress=mine", f"checkpoint={tmp_path / 'ck'}"],
         "error: compress.recover.temperature=1000.0 must be a number in (0, 100] (of the distillation; higher makes the "
         f"teacher's answer uniform) (set in {compress})"),
        (["nas.search", "-m", "hydra/launcher=joblib", "hw.efficiency.cnv=0.5,0.6", runs],
         "error: hw.efficiency has unknown op kind 'cnv'; allowed: ['add', 'bn', 'conv',"),
        (["nas.search", "-m", "hw.efficiency.conv=0.5,1.5", runs],  # the sweep's second value
         "error: hw.efficiency.conv=1.5 must be in (0, 1]"),
        # the search's seeds: refused only once torch, Optuna and the data had loaded
        (["nas.search", "--config-dir", str(folder), "search=mine", runs],
         "error: search.seed_archs has 'vit-S', which the space cannot express: "),
        (["nas.search", f"search.seed_archs=[convformer-S,'{seed.parent}']", runs],
         f"error: search.seed_archs: '{seed}' is not a readable arch.json (arch spec has unknown field ['widths']; "),
        # compress.run's data group and the latency tools' values: refused only once Hydra ran the command, a sweep's
        # second value after its first job, a data value without the file that set it
        (["compress.run", "--config-dir", str(folder), "data=mine", f"checkpoint={tmp_path / 'ck'}"],
         f"error: data.val_size=0 holds out no images; allowed: a fraction of the images (0 < val_size < 1, e.g. 0.2) "
         f"or a whole count of images (>= 1, e.g. 500) (set in {data})"),
        (["compress.run", "-m", "data.img_size=28,3", f"checkpoint={tmp_path / 'ck'}"],
         "error: data.img_size=3 is too small; allowed: an integer in [4, 1024], or null (native size)"),
        (["nas.latency.fit", "-m", "hw=edge_npu", f"measurements=[{tmp_path / 'm.csv'}]", "img_size=28,3"],
         "error: img_size=3 is too small; allowed: an integer in [4, 1024]")]
    for args, expected in cases:
        proc, imported, stderr = _run_importing("-m", *args)
        assert proc.returncode == 2 and stderr.startswith(expected) and len(stderr.splitlines()) == 1, stderr
        assert "search=mine" not in args or stderr.rstrip().endswith(f"(set in {search})"), stderr
        assert not imported & {"torch", "optuna"}, (args, sorted(imported & {"torch", "optuna"}))
    assert not (tmp_path / "runs").exists() and not (tmp_path / "ck").exists()


@pytest.mark.parametrize(
    ("argv", "answer", "unloaded"),
    [(["-c", "import nas.report"], "", {"plotly", "matplotlib", "torch", "optuna"}),  # the search and compress.run read its constants and notes
     (["-m", "compress.predict", "--help"], "usage: python -m compress.predict", {"torch", "optuna"}),
     (["-m", "compress.predict", "--frobnicate"], "error: the following arguments are required: model, images; python "
                                                  "-m compress.predict takes a model", {"torch", "optuna"}),
     # Hydra prints the config without running the search
     (["-m", "nas.search", "--cfg", "job", "hw=cpu"], "latency_budget_ms:", {"torch", "optuna", "plotly", "matplotlib"}),
     (["-m", "nas.search", "--help"], "== Config ==", {"torch", "optuna", "plotly", "matplotlib"})],
)
def test_help_config_and_the_light_modules_load_no_heavy_library(argv, answer, unloaded, tmp_path):
    # torch and Optuna take seconds to import, plotly and matplotlib about one: a command that needs none of them (its
    # help, its config, a bad flag, the report module's notes imported by others) answers without loading them.
    where = [f"search.runs_dir={tmp_path}"] if "nas.search" in argv else []
    proc, imported, stderr = _run_importing(*argv, *where)
    assert answer in proc.stdout + stderr and "Traceback" not in stderr, stderr
    assert proc.returncode == (2 if "--frobnicate" in argv else 0), stderr
    assert not imported & unloaded, sorted(imported & unloaded)
    assert not any(tmp_path.rglob("*"))


@pytest.mark.parametrize("module", ["nas.search", "compress.run", "nas.latency.profile", "nas.report", "compress.predict"])
def test_help_into_a_closed_pipe_ends_quietly(module):
    # `python -m <module> --help | head -3`: head gone before the help was all written ended in a BrokenPipeError
    # traceback. The pipe's read end is closed before the command starts, so that every write finds no reader, as the
    # last parts of a help written in several did.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.returncode == CLOSED_STDOUT_EXIT == 141, proc.stderr  # as a shell tool killed by SIGPIPE ends


def test_wrong_python_types_to_the_api_are_named_in_one_line():
    # An ML engineer's first calls from Python: a dict or JSON instead of an ArchConfig, a chip's name instead of its
    # profile. Each is one line naming the argument and how to build the right object, not an AttributeError inside.
    from compress.prune import plan_pruned_arch
    from nas.config import load_hw_profile
    from nas.latency import count_params, predict_latency, predict_latency_batch

    arch = ArchConfig(stages=(StageConfig(mixer="pool", depth=1, width=16),))
    hw = load_hw_profile("edge_npu")
    cases = [
        (lambda: build_model(arch.to_dict()), "arch={'stem_kernel'", "ArchConfig.from_dict"),
        (lambda: predict_latency(arch.to_json(), hw), "is a str", "ArchConfig.from_json"),
        (lambda: predict_latency(arch, "edge_npu"), "hw='edge_npu' is a str", "load_hw_profile('edge_npu')"),
        (lambda: predict_latency_batch([arch, {"stages": []}], hw), "archs[1]=", "ArchConfig.from_dict"),
        (lambda: count_params(None), "arch=None", "ArchConfig(stages="),
        (lambda: plan_pruned_arch(arch.to_dict(), 0.25), "arch=", "ArchConfig.from_dict"),
        (lambda: save_checkpoint("/tmp/never.pt", build_model(arch), arch.to_dict()), "arch=", "ArchConfig.from_dict"),
    ]
    for call, *fragments in cases:
        with pytest.raises(TypeError) as err:
            call()
        assert all(f in str(err.value) for f in fragments) and "\n" not in str(err.value), str(err.value)
    assert predict_latency(arch, hw).total_ms > 0  # the right types still work
    assert not Path("/tmp/never.pt").exists()


def test_load_hw_profile_reads_a_shipped_name_or_a_file_and_names_what_is_allowed(tmp_path):
    from nas.config import load_hw_profile

    assert load_hw_profile("edge_npu").name == "edge_npu" and load_hw_profile("edge_npu").mac_per_s == 2.0e12
    # A copy edited by the user, as onboarding a chip starts: numbers like 4.0e12 are floats, as under hw=.
    text = (Path(__file__).resolve().parents[1] / "conf" / "hw" / "edge_npu.yaml").read_text()
    (tmp_path / "my_npu.yaml").write_text(text.replace("name: edge_npu", "name: my_npu").replace("2.0e12", "4.0e12"))
    mine = load_hw_profile(tmp_path / "my_npu.yaml")
    assert mine.name == "my_npu" and mine.mac_per_s == 4.0e12
    with pytest.raises(NasError, match=r"hw profile 'edge' is unknown \(did you mean 'edge_npu'\?\); allowed: \[.*'edge_npu'.*\] or a path"):
        load_hw_profile("edge")
    with pytest.raises(NasError, match="does not exist"):
        load_hw_profile(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text(text.replace("2.0e12", "fast"))
    with pytest.raises(NasError, match="mac_per_s") as err:
        load_hw_profile(tmp_path / "bad.yaml")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("module", ["nas.search", "compress.run"])
def test_hydra_flags_hydra_refuses_together_are_one_line(module, tmp_path):
    # `-m --cfg job` (the sweep's settings, the user hoped) ended in Hydra's ValueError as a traceback; it is named at the
    # command's first check, before torch and Optuna load.
    where = f"search.runs_dir={tmp_path}" if module == "nas.search" else f"checkpoint={tmp_path}"
    proc, imported, stderr = _run_importing("-m", module, "-m", "--cfg", "job", where)
    assert proc.returncode == 2 and "Traceback" not in stderr, stderr
    assert stderr.strip() == ("error: --multirun and --cfg cannot be given together: a command takes one of --run, "
                              "--multirun, --cfg, --info and --shell-completion; drop all but one"), stderr
    assert not imported & {"torch", "optuna"}
    assert not any(tmp_path.rglob("*"))
