"""python -m compress.run: the hints of its refusals (its table and compression: tests/test_compress_pipeline.py)."""

import json
import shlex
from pathlib import Path

import pytest

from compress.run import check_members, unused_overrides
from nas.errors import ConfigError
from tests.test_rebuild import SMOKE, _recipe, _run_folder
from conftest import deliver_signal, lock_held_elsewhere

# compress=smoke with fewer images to calibrate int8 on (NNCF feeds them one at a time: most of a compression's time)
# and to recover and fine-tune on: these tests check which files are written and what is said, not how accurate.
SMALL_COMPRESSION = ["compress.recover.subset=64", "compress.quantize.qat.subset=64", "compress.quantize.calibration_size=8"]
# The searches that make the members to compress train on one thread (on a 2-core machine whose other core is busy, a
# training's two threads keep waiting on each other): what is checked is the compression of what they made.
ONE_THREAD = ["train.threads=1", "final_train.threads=1"]


@pytest.fixture(scope="module")
def compress_run_help() -> str:
    """The stdout of `python -m compress.run --help` (exit status 0), run once for the tests that read it: a Python
    process importing torch and Hydra costs seconds."""
    import pathlib
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "compress.run", "--help"], cwd=pathlib.Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_top_k_hint_names_the_runs_folder_and_final_train(tmp_path):
    run_dir = _run_folder(tmp_path, [{"epochs": 2, "recipe": _recipe(**SMOKE)}])
    want = (f"python -m nas.report search.runs_dir={tmp_path} search.study_name=t final_train=smoke compress.members=top_k "
            "compress.top_k=<k>")
    with pytest.raises(ConfigError, match="compress a run's best k with ") as refused:
        check_members("top_k", checkpoint=run_dir / "checkpoints" / "m0")
    assert str(refused.value).endswith(want)
    (run_dir / "checkpoints" / "m0" / "model.pt").write_bytes(b"")  # its model.pt named: the folder's run all the same
    said = unused_overrides([f"checkpoint={run_dir / 'checkpoints' / 'm0' / 'model.pt'}", "compress.top_k=2"])
    assert said is not None and said.startswith("compress.top_k=2 chooses") and said.endswith(want)
    # outside a run folder: placeholders, as before
    with pytest.raises(ConfigError) as refused:
        check_members("top_k", checkpoint=tmp_path / "ck")
    assert str(refused.value).endswith("python -m nas.report search.runs_dir=<folder above the run> search.study_name=<its "
                                       "name> compress.members=top_k compress.top_k=<k>")


def test_top_k_hint_of_a_renamed_run_folder_names_the_study_its_study_db_holds(tmp_path, capsys):
    # runs/r1 renamed to runs/t: the hint named search.study_name=t, which the rebuild refused (its study.db holds study
    # 'r1', and the rebuild reads the run folder search.runs_dir/search.study_name), as nas.report's own hints say
    import optuna

    run_dir = _run_folder(tmp_path, [{"epochs": 2, "recipe": _recipe(**SMOKE)}])
    optuna.create_study(study_name="r1", storage=f"sqlite:///{run_dir / 'study.db'}")
    capsys.readouterr()  # Optuna's line that it created the study
    with pytest.raises(ConfigError) as refused:
        check_members("top_k", checkpoint=run_dir / "checkpoints" / "m0")
    assert str(refused.value).endswith(
        f"compress a run's best k with python -m nas.report search.runs_dir={tmp_path} search.study_name=r1 "
        "final_train=smoke compress.members=top_k compress.top_k=<k> (its study.db holds study 'r1', so the folder was "
        "copied or renamed from a run of that name (the rebuild reads the run folder search.runs_dir/search.study_name): "
        f"move it back to {tmp_path / 'r1'}, then run that command)"), str(refused.value)
    assert "\n" not in str(refused.value)


def test_top_k_hint_quotes_the_runs_dir_for_hydra_as_well_as_the_shell(tmp_path):
    # In the shell's quotes alone, a runs_dir with a quote reached Hydra as `search.runs_dir=/x/it's runs`, which it refused
    from hydra.core.override_parser.overrides_parser import OverridesParser

    runs = tmp_path / "it's runs"
    run_dir = _run_folder(runs, [{"epochs": 2, "recipe": _recipe(**SMOKE)}])
    with pytest.raises(ConfigError) as refused:
        check_members("top_k", checkpoint=run_dir / "checkpoints" / "m0", data_root="/my data's")
    command = shlex.split(str(refused.value).split("compress a run's best k with ", 1)[1])
    assert command[:3] == ["python", "-m", "nas.report"] and command[6:] == ["final_train=smoke", "compress.members=top_k",
                                                                             "compress.top_k=<k>"]
    parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(command[3:6])}
    assert parsed == {"search.runs_dir": str(runs), "search.study_name": "t", "data.root": "/my data's"}


def test_top_k_hint_of_a_final_train_smoke_run_is_a_rebuild_that_runs(tiny_idx_root, tmp_path, compose_cfg):
    # The hint named no final_train: the nas.report command it gave was refused in turn for members final-trained with
    # final_train=smoke (`nas.study_export._redoing_refusal`).
    from hydra import compose, initialize_config_dir

    from compress.run import run_compress
    from nas.config import register_configs
    from nas.report import main
    from nas.search import run_search
    from tests.conftest import CONF_DIR

    result = run_search(compose_cfg(f"data.root={tiny_idx_root}", "train=smoke", "train.subset=128", "train.batch_size=32",
                                    f"search.runs_dir={tmp_path}", "search.study_name=t", "search.progress=false",
                                    "compress=none", "final_train=smoke", "search.n_trials=1", "final_train.subset=64", *ONE_THREAD))
    (member,) = result.pareto
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="compress_run", overrides=[f"checkpoint={result.run_dir / 'checkpoints' / member['arch_id']}",
                                                              f"data.root={tiny_idx_root}", "compress.members=top_k"])
    with pytest.raises(ConfigError) as refused:
        run_compress(cfg)
    command = shlex.split(str(refused.value).split("compress a run's best k with ", 1)[1].replace("<k>", "1"))
    # the data.root given here, too: the rebuild takes a study's data from this machine, as this command does
    assert command[:3] == ["python", "-m", "nas.report"] and {"final_train=smoke", f"data.root={tiny_idx_root}"} <= set(command)
    assert main([*command[3:], "compress=smoke", *SMALL_COMPRESSION]) == 0  # compress=smoke: seconds, not minutes
    assert (result.run_dir / "checkpoints" / member["arch_id"] / "compressed_metrics.json").is_file()


def test_help_says_what_each_hw_choice_is_with_the_default_marked(compress_run_help):
    # `python -m compress.run --help` named the chips to compress for alone, as the search's did.
    # a line saying what the command does first; Hydra's header ("run is powered by Hydra.") says what its part lists
    from compress.run import HELP_LINE

    head, _, hydra_help = compress_run_help.partition("Settings (conf/compress_run.yaml): group=option picks a group's file")
    assert head.startswith(f"{HELP_LINE}\n\nTarget chip: hw=<name>") and "powered by Hydra." not in compress_run_help
    assert "== Configuration groups ==" in hydra_help
    lines = {line.split()[0]: line for line in head.splitlines() if line.startswith("  ")}
    assert "(default)" in lines["edge_npu"] and "mobile_cpu" in lines and "(default)" not in lines["cpu"]


def test_a_member_compresses_from_python_and_leaves_the_callers_threads_and_random_state(tiny_idx_root, tmp_path,
                                                                                       compose_cfg, monkeypatch):
    # From Python a member could be compressed only by composing Hydra's compress_run config by hand, and the compression
    # left torch on compress.latency_threads (1) and every generator seeded for the rest of the notebook.
    import logging
    import os

    import torch

    import compress
    from nas.search import run_search

    result = run_search(compose_cfg(f"data.root={tiny_idx_root}", "train=smoke", "train.subset=128", "train.batch_size=32",
                                    f"search.runs_dir={tmp_path}", "search.study_name=t", "search.progress=false",
                                    "compress=none", "final_train=none", "search.n_trials=1", *ONE_THREAD))
    (member,) = result.pareto
    with pytest.raises(TypeError, match=r"^cfg=\['hw=cpu'\] is a list; pass the DictConfig that "
                                        r"compress\.compose_compress_config\(\[\"checkpoint=<folder>\", \.\.\.\]\) returns"):
        compress.run_compress(["hw=cpu"])
    cfg = compress.compose_compress_config([f"checkpoint={result.run_dir / member['checkpoint']}", "hw=cpu",
                                            f"data.root={tiny_idx_root}", "compress=smoke", *SMALL_COMPRESSION])
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    torch.manual_seed(7)
    state = torch.get_rng_state()
    # the compression left NNCF's logger at ERROR for the notebook's own NNCF work
    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(logging.WARNING)
    monkeypatch.setenv("NNCF_EXTENSION_LOAD_TIMEOUT", "86400")  # a caller's own (long) timeout
    try:
        metrics = compress.run_compress(cfg)
        assert torch.get_num_threads() == 2 and torch.equal(torch.get_rng_state(), state)
        assert nncf_logger.level == logging.WARNING and os.environ["NNCF_EXTENSION_LOAD_TIMEOUT"] == "86400"
    finally:
        torch.set_num_threads(threads)
        nncf_logger.setLevel(level)
    folder = result.run_dir / member["checkpoint"]
    assert metrics["hw"] == "cpu" and (folder / "model_int8.onnx").is_file()
    assert json.loads((folder / "compressed_metrics.json").read_text())["created"] == metrics["created"]


def test_help_read_in_part_ends_quietly():
    # `python -m compress.run --help | head -3`: its help is written in two parts, the chips' lines before torch loads and
    # Hydra's help of the settings after; head gone by then ended it in a BrokenPipeError traceback printed by Hydra.
    import pathlib
    import subprocess
    import sys

    from nas.errors import CLOSED_STDOUT_EXIT

    proc = subprocess.Popen([sys.executable, "-m", "compress.run", "--help"], cwd=pathlib.Path(__file__).resolve().parents[1],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("python -m compress.run")  # the first part, then the reader is gone
        proc.stdout.close()
        stderr = proc.communicate(timeout=120)[1]
    finally:
        proc.kill()
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr
    assert proc.returncode == CLOSED_STDOUT_EXIT, stderr


def test_help_says_what_each_compress_setting_means_and_its_unit(compress_run_help):
    # `python -m compress.run --help` listed the settings' values only (prune.ratio: 0.25, max_acc_drop: 0.3,
    # eval_images: null): not that the ratio is a fraction of channels, the drop in accuracy points, nor that null
    # scores all images. Under Hydra's list it now prints conf/compress/default.yaml, whose comments say it.
    from nas.config import CONF_DIR

    assert "== Config ==" in compress_run_help  # Hydra's own help first
    tail = compress_run_help.split("== Config ==", 1)[1]
    assert f"== What the compress settings mean ({CONF_DIR / 'compress' / 'default.yaml'}) ==" in tail
    for said in ("ratio: 0.25                # fraction of channels removed per group, in [0, 0.9]",
                 "max_acc_drop: 0.3          # val accuracy points int8 may lose before QAT runs",
                 "calibration_size: 300      # training images for NNCF's range estimation",
                 "eval_images: null            # val and test images scored, each (a fixed random subset); null = all"):
        assert said in tail


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"], ids=["SIGINT-ignored", "SIGTERM-default"])
def test_a_compression_stops_on_a_signal_in_a_process_that_ignores_it_and_keeps_no_half_file(tiny_idx_root, tmp_path,
                                                                                            monkeypatch, signum):
    # `sh -c 'python -m compress.run ... &'`: a script's background job inherits SIGINT ignored, and `kill -INT` let the
    # compression run to its end; a library caller's SIGTERM, at its default, killed the process mid-file without a
    # line. The (stubbed) compression is stopped half-way through writing model_int8.onnx as the pipeline writes its
    # files (nas.checkpoint.replacing: a temporary file renamed into place once whole).
    import signal
    import time

    import compress
    import compress.pipeline
    from nas.arch import ArchConfig, StageConfig
    from nas.checkpoint import replacing, save_checkpoint
    from nas.errors import Terminated
    from nas.model import build_model

    arch = ArchConfig(stages=(StageConfig(mixer="pool", depth=1, width=16), StageConfig(mixer="conv", depth=1, width=32)))
    folder = tmp_path / "ck"
    save_checkpoint(folder / "model.pt", build_model(arch), arch, meta={})  # 1x28x28, as the tiny data
    files_before = sorted(p.name for p in folder.iterdir())
    sig = signal.Signals[signum]

    def signalled(folder, **kwargs):  # `kill -INT <pid>` (`kill <pid>`) mid-file
        with replacing(folder / "model_int8.onnx") as tmp:
            tmp.write_bytes(b"half of it")
            deliver_signal(sig)
            time.sleep(5)  # the compression going on: a signal ignored lets it run to its end
        raise RuntimeError(f"{signum} was ignored")

    monkeypatch.setattr(compress.pipeline, "compress_checkpoint", signalled)
    cfg = compress.compose_compress_config([f"checkpoint={folder}", f"data.root={tiny_idx_root}", "data.name=tiny",
                                            "hw=cpu"])
    as_it_was = signal.SIG_IGN if sig == signal.SIGINT else signal.SIG_DFL
    before = signal.signal(sig, as_it_was)
    try:
        with pytest.raises(KeyboardInterrupt) as stopped:
            compress.run_compress(cfg)
        assert signal.getsignal(sig) == as_it_was  # as the process had it (no lasting state)
    finally:
        signal.signal(sig, before)
    assert isinstance(stopped.value, Terminated) == (sig == signal.SIGTERM)  # the command exits 143 / 130, one line
    assert sorted(p.name for p in folder.iterdir()) == files_before  # no model_int8.onnx, half or whole; no temp file


def test_a_compression_replacing_one_for_another_chip_says_so_before_it_starts(tiny_idx_root, tmp_path, monkeypatch,
                                                                              caplog):
    # A member a search compressed for hw=edge_npu, compressed again with the README's `compress.run ... hw=cpu`: the
    # search's int8 files were replaced without a word (a search over the run says so when it replaces them; this
    # command did not). The (stubbed) compression is not what is checked: the line before it is.
    import logging

    import compress
    import compress.pipeline
    from compress.pipeline import FORMAT
    from nas.arch import ArchConfig, StageConfig
    from nas.checkpoint import save_checkpoint
    from nas.model import build_model

    arch = ArchConfig(stages=(StageConfig(mixer="pool", depth=1, width=16), StageConfig(mixer="conv", depth=1, width=32)))
    folder = tmp_path / "ck"
    save_checkpoint(folder / "model.pt", build_model(arch), arch, meta={})  # 1x28x28, as the tiny data
    monkeypatch.setattr(compress.pipeline, "compress_checkpoint", lambda folder, **kwargs: {"hw": kwargs["hw"].name})

    def said(hw):
        caplog.clear()
        cfg = compress.compose_compress_config([f"checkpoint={folder}", f"data.root={tiny_idx_root}", "data.name=tiny",
                                                f"hw={hw}"])
        with caplog.at_level(logging.WARNING, logger="compress"):
            compress.run_compress(cfg)
        return [r.getMessage() for r in caplog.records if "holds files compressed" in r.getMessage()]

    assert said("cpu") == []  # nothing compressed before: nothing replaced
    (folder / "compressed_metrics.json").write_text(json.dumps({"format": FORMAT, "hw": "edge_npu"}))
    assert said("cpu") == [
        f"{folder} holds files compressed for hw=edge_npu (compressed_metrics.json); this compression for hw=cpu "
        "replaces them once it finishes (to keep both, compress a copy of the folder)"]
    assert said("edge_npu") == []  # the same chip (and no settings recorded to differ): nothing to say
    # a member of a run folder: the next search over it compresses the member again for the search's own settings
    from compress.run import replacing_line

    assert replacing_line(folder, "with other compress settings: prune", hw="cpu", in_run=True).endswith(
        "(to keep both, compress a copy of the folder), and the next run of the search command over its run folder "
        "compresses the member again for the search's own hw and compress settings where they differ from these")


def test_a_latency_target_out_of_reach_is_refused_before_the_data_loads_and_the_replacing_warning(
        tmp_path, monkeypatch, caplog):
    # A member a search compressed, given `compress.prune.target_latency_ms=` below what 90% pruning reaches: the
    # command loaded the photos, warned that "this compression ... replaces them once it finishes", then refused the
    # target, so the warning announced a compression that never ran.
    import logging

    import compress
    import compress.pipeline
    import nas.data
    from compress.pipeline import FORMAT
    from nas.arch import ArchConfig, StageConfig
    from nas.checkpoint import save_checkpoint
    from nas.errors import ConfigError
    from nas.model import build_model

    arch = ArchConfig(stages=(StageConfig(mixer="pool", depth=1, width=16), StageConfig(mixer="conv", depth=1, width=32)))
    folder = tmp_path / "ck"
    save_checkpoint(folder / "model.pt", build_model(arch), arch, meta={})
    (folder / "compressed_metrics.json").write_text(json.dumps({"format": FORMAT, "hw": "edge_npu"}))

    def not_reached(*args, **kwargs):
        raise AssertionError("reached past the refusal")

    monkeypatch.setattr(nas.data, "load_dataset", not_reached)
    monkeypatch.setattr(compress.pipeline, "compress_checkpoint", not_reached)
    cfg = compress.compose_compress_config([f"checkpoint={folder}", f"data.root={tmp_path}", "hw=cpu",
                                            "compress.prune.target_latency_ms=0.00001"])
    with caplog.at_level(logging.WARNING, logger="compress"), pytest.raises(ConfigError) as refused:
        compress.run_compress(cfg)
    assert str(refused.value).startswith("compress.prune.target_latency_ms=1e-05 cannot be met for ")
    assert [r.getMessage() for r in caplog.records if "holds files compressed" in r.getMessage()] == []
    # a target_latency_fraction names the setting given, with the milliseconds it asks for
    cfg = compress.compose_compress_config([f"checkpoint={folder}", f"data.root={tmp_path}", "hw=cpu",
                                            "compress.prune.target_latency_fraction=0.001"])
    with pytest.raises(ConfigError, match=r"^compress\.prune\.target_latency_fraction=0\.001 \(0\.\d{3} ms\) cannot be met"):
        compress.run_compress(cfg)


def test_the_latency_floor_checked_before_the_data_loads_is_handed_to_the_compression(tiny_idx_root, tmp_path,
                                                                                       monkeypatch):
    # The command checked a latency target against the lowest latency pruning reaches, then the compression worked
    # that floor out again (and its pruning a third time): it is worked out once and passed along.
    import compress
    import compress.pipeline
    import compress.prune
    from nas.arch import ArchConfig, StageConfig
    from nas.checkpoint import save_checkpoint
    from nas.model import build_model

    arch = ArchConfig(stages=(StageConfig(mixer="pool", depth=1, width=16), StageConfig(mixer="conv", depth=1, width=32)))
    folder = tmp_path / "ck"
    save_checkpoint(folder / "model.pt", build_model(arch), arch, meta={})  # 1x28x28, as the tiny data
    floors, given = [], {}
    real_floor = compress.prune.latency_floor_ms
    monkeypatch.setattr(compress.prune, "latency_floor_ms", lambda a, **k: floors.append(real_floor(a, **k)) or floors[-1])
    monkeypatch.setattr(compress.pipeline, "compress_checkpoint", lambda folder, **kw: given.update(kw) or {"hw": "cpu"})
    cfg = compress.compose_compress_config([f"checkpoint={folder}", f"data.root={tiny_idx_root}", "data.name=tiny",
                                            "hw=cpu", "compress.prune.target_latency_fraction=0.99"])
    compress.run_compress(cfg)
    assert len(floors) == 1 and given["floor"] == (arch, floors[0]) and floors[0] > 0


def test_a_compression_checks_its_compress_settings_once(tiny_idx_root, tmp_path, monkeypatch):
    # run_compress checked the compress group's values (naming the file that set a bad one), and _run_compress checked
    # them all again
    import compress
    import compress.pipeline
    import nas.config
    from nas.arch import ArchConfig, StageConfig
    from nas.checkpoint import save_checkpoint
    from nas.config import validate_compress_config
    from nas.model import build_model

    arch = ArchConfig(stages=(StageConfig(mixer="pool", depth=1, width=16), StageConfig(mixer="conv", depth=1, width=32)))
    folder = tmp_path / "ck"
    save_checkpoint(folder / "model.pt", build_model(arch), arch, meta={})  # 1x28x28, as the tiny data
    checked = []
    # looked up where run_compress's check (nas.config.to_compress_run_config, the command line's first check too) is
    monkeypatch.setattr(nas.config, "validate_compress_config", lambda c: checked.append(c) or validate_compress_config(c))
    monkeypatch.setattr(compress.pipeline, "compress_checkpoint", lambda folder, **kw: {"hw": "cpu"})
    compress.run_compress(compress.compose_compress_config([f"checkpoint={folder}", f"data.root={tiny_idx_root}",
                                                            "data.name=tiny", "hw=cpu"]))
    assert len(checked) == 1


def test_a_checkpoints_test_images_are_hashed_once(tmp_path, monkeypatch):
    # The test split was compared with the checkpoint's record (split_as_recorded_and_digests) and then hashed again to
    # check it: every test pixel twice before a compression.
    import nas.data
    import nas.data_records
    from compress.run import _check_test_images
    from nas.config import DataConfig, DataFormat
    from nas.data import SPLIT_SETTINGS, load_dataset, split_digest
    from tests.test_data import _folder

    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(_folder(tmp_path / "img", {"a": 20, "b": 20})),
                     img_size=None)
    data = load_dataset(cfg)
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "metrics.json").write_text(json.dumps({"test_images": {
        "digest": split_digest(data.test), "count": len(data.test), "split": {k: getattr(cfg, k) for k in SPLIT_SETTINGS}}}))
    hashed: list[int] = []
    for where in (nas.data, nas.data_records):  # where split_as_recorded_and_digests, data_identity look it up
        monkeypatch.setattr(where, "split_digest", lambda split: hashed.append(len(split)) or split_digest(split))
    assert _check_test_images(tmp_path / "ck", data, cfg) is data
    assert hashed == [len(data.test)]


def _refused_at_8px(tmp_path, monkeypatch, *, images, img_size, num_classes):
    """The `ConfigError` of `compress.run` refusing a colour pool-mixer checkpoint of `img_size` px and `num_classes`
    (saved to tmp_path/ck) on the image folder `images` at data.img_size=8 (2 test and 2 val images), before it
    compresses anything."""
    import compress
    import compress.pipeline
    from nas.arch import ArchConfig, StageConfig
    from nas.checkpoint import save_checkpoint
    from nas.model import build_model

    arch = ArchConfig(stages=(StageConfig(mixer="pool", depth=1, width=16),), in_chans=3, img_size=img_size,
                      num_classes=num_classes)
    save_checkpoint(tmp_path / "ck" / "model.pt", build_model(arch), arch, meta={})
    monkeypatch.setattr(compress.pipeline, "compress_checkpoint", lambda folder, **kw: pytest.fail("compressed"))
    with pytest.raises(ConfigError) as refused:
        compress.run_compress(compress.compose_compress_config(
            [f"checkpoint={tmp_path / 'ck'}", "hw=cpu", "data=imagefolder", f"data.root={images}", "data.img_size=8",
             "data.test_size=2", "data.val_size=2"]))
    return refused.value


def test_a_member_trained_with_a_nas_folder_among_its_images_is_refused_naming_it(tmp_path, monkeypatch):
    # Until 2026-12-07 a Synology's @eaDir/ at data.root was read as a class: a member trained then expects one class
    # more than the folder gives now, and the refusal said to pass the data.root it was given
    import numpy as np
    from PIL import Image

    images = tmp_path / "images"
    for name in ("a", "b", "@eaDir"):
        (images / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(images / name / f"{i}.png")
    refused = _refused_at_8px(tmp_path, monkeypatch, images=images, img_size=8, num_classes=3)
    assert str(refused) == (
        f"checkpoint {tmp_path / 'ck'} expects 3x8x8 images and 3 classes; dataset 'imagefolder' has 3x8x8 and 2; pass the "
        "data it was trained on; data.root holds @eaDir/, a folder a NAS or a USB disk adds, whose images were read until 2026-12-07 and are skipped since "
        "('@eaDir' was a class): trained before then, it cannot be compressed on any data.root (compress a member of a "
        "search made since)")


def test_a_member_refused_for_another_input_size_is_not_told_of_nas_folders(tmp_path, monkeypatch):
    # A Synology share has @eaDir/ in every folder: a member searched at 16 px, given data.img_size=8, was told it
    # "cannot be compressed on any data.root", though data.img_size=16 compresses it
    import numpy as np
    from PIL import Image

    images = tmp_path / "images"
    for name in ("a", "b"):
        (images / name / "@eaDir" / "0.png").mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(images / name / f"{i}.png")
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(images / name / "@eaDir" / "0.png" / f"{i}.png")
    refused = _refused_at_8px(tmp_path, monkeypatch, images=images, img_size=16, num_classes=2)
    assert str(refused).startswith(f"checkpoint {tmp_path / 'ck'} expects 3x16x16 images and 2 classes")
    assert "@eaDir" not in str(refused)


def test_a_member_refused_for_its_test_images_is_told_of_nas_folders_only_where_no_split_setting_differs(
        tmp_path, monkeypatch):
    # A member trained before @eaDir/ was skipped had its thumbnails among each class's test images: refused, naming the
    # folders. Given other split settings, its test images differ whatever the folders: told to pass the search's
    # split (which compresses a member of a search made since), not that it "cannot be compressed on any data.root"
    import dataclasses

    import numpy as np
    from PIL import Image

    import nas.image_folder
    from compress.run import _check_test_images
    from nas.config import DataConfig, DataFormat
    from nas.data import SPLIT_SETTINGS, load_dataset, per_class_test_images, split_digest

    images = tmp_path / "images"
    for c, name in enumerate(("a", "b")):
        (images / name / "@eaDir" / "0.png").mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((8, 8, 3), 20 * c + i, np.uint8)).save(images / name / f"{i}.png")
            thumb = images / name / "@eaDir" / "0.png" / f"{i}.png"
            Image.fromarray(np.full((8, 8, 3), 100 + 20 * c + i, np.uint8)).save(thumb)
    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(images), img_size=8, test_size=0.2, val_size=0.2)
    with monkeypatch.context() as before:  # searched before they were skipped: 20 images a class
        before.setattr(nas.image_folder, "SYSTEM_FOLDERS", frozenset())
        searched = load_dataset(cfg)
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "metrics.json").write_text(json.dumps({"output": {"class_names": ["a", "b"]}, "test_images": {
        "digest": split_digest(searched.test), "count": len(searched.test),
        "split": {k: getattr(cfg, k) for k in SPLIT_SETTINGS}, "per_class": per_class_test_images(searched)}}))

    def refusal(given: DataConfig) -> str:
        with pytest.raises(ConfigError) as refused:
            _check_test_images(tmp_path / "ck", load_dataset(given), given)
        return str(refused.value)

    assert refusal(cfg).endswith(
        "; data.root holds @eaDir/ (2 folders, e.g. a/@eaDir/), folders a NAS or a USB disk adds, whose images were "
        "read until 2026-12-07 and are skipped since: trained before then, it cannot be compressed on any data.root "
        "(compress a member of a search made since)")
    resplit = refusal(dataclasses.replace(cfg, test_size=0.3))
    assert resplit.endswith("tested on these it may be scored on images it was trained on: pass data.test_size=0.2 as "
                            "its search did"), resplit
    assert "@eaDir" not in resplit


def _image_folder_member(tmp_path, compose_cfg):
    """(run folder, member folder, image folder) of a one-trial search on a tiny folder of 12x12 colour images, with
    data.img_size and data.val_size other than the imagefolder group's: a member compress.run must load as searched."""
    import numpy as np
    from PIL import Image

    from nas.search import run_search

    rng = np.random.default_rng(3)
    images = tmp_path / "images"
    for c, name in enumerate(("a", "b", "c")):
        (images / name).mkdir(parents=True)
        for i in range(10):
            pixels = (rng.random((12, 12, 3)) * 80).astype(np.uint8)
            pixels[..., c] += 150
            Image.fromarray(pixels).save(images / name / f"{i}.png")
    result = run_search(compose_cfg("data=imagefolder", f"data.root={images}", "data.img_size=12", "data.val_size=0.25",
                                    "train=smoke", "train.batch_size=8", "final_train=none", "compress=none",
                                    "search.n_trials=1", f"search.runs_dir={tmp_path / 'runs'}", "search.study_name=s",
                                    "search.progress=false", "search.export_onnx=false", *ONE_THREAD))
    (member,) = result.pareto
    return result.run_dir, result.run_dir / member["checkpoint"], images


def test_a_member_of_an_image_folder_search_compresses_on_its_own_images_unless_the_command_line_names_data(
        tmp_path, compose_cfg, monkeypatch, caplog):
    # Without data settings compress.run loaded Fashion-MNIST for a member searched on the user's images and refused it,
    # naming the settings to paste; its run folder's config.yaml records them. The compression itself is stubbed.
    import logging
    import shutil

    import compress
    import compress.run

    run_dir, folder, images = _image_folder_member(tmp_path, compose_cfg)
    given = {}

    def compressed(folder, **kw):
        given.update(kw)
        return {}

    monkeypatch.setattr(compress.run, "compress_checkpoint", compressed)
    monkeypatch.setattr(compress.run, "_run_of", lambda folder: None)  # no report refresh: the stub wrote no files
    with caplog.at_level(logging.INFO, logger="compress.run"):
        compress.run_compress(compress.compose_compress_config([f"checkpoint={folder}", "hw=cpu"]))
    tested = json.loads((folder / "metrics.json").read_text())["test_images"]
    data = given["data"]
    assert data.classes == ("a", "b", "c") and data.img_size == 12 and len(data.test) == tested["count"]
    assert given["augment"].root == str(images) and given["augment"].val_size == 0.25
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("data: ")]
    assert said == [f"data: the search's (data=imagefolder data.root={images} data.img_size=12 data.val_size=0.25), "
                    f"from {run_dir / 'config.yaml'}"]
    # a data setting on the command line wins: the search's are not merged into it
    caplog.clear()
    with pytest.raises(ConfigError) as refused:
        compress.run_compress(compress.compose_compress_config(
            [f"checkpoint={folder}", "hw=cpu", "data=imagefolder", f"data.root={images}", "data.img_size=16"]))
    assert not any(r.getMessage().startswith("data: ") for r in caplog.records)
    # the search's split too (config.yaml's data.val_size=0.25): the hint named the size alone, and pasted it loaded
    # another split than the search's (another test_size or split_seed: refused for its test images)
    assert str(refused.value) == (
        f"checkpoint {folder} expects 3x12x12 images and 3 classes; dataset 'imagefolder' has 3x16x16 and 3; pass the "
        f"data it was trained on: data=imagefolder data.root={images} data.img_size=12 data.channels=3 data.val_size=0.25")
    given.clear()
    compress.run_compress(compress.compose_compress_config(
        [f"checkpoint={folder}", "hw=cpu", *shlex.split(str(refused.value).split("trained on: ", 1)[1])]))
    assert given["data"].img_size == 12 and given["augment"].val_size == 0.25
    # the images moved: the search's root is named, with the settings to pass
    moved = shutil.move(images, tmp_path / "moved")
    with pytest.raises(ConfigError) as refused:
        compress.run_compress(compress.compose_compress_config([f"checkpoint={folder}", "hw=cpu"]))
    assert str(refused.value) == (
        f"checkpoint {folder} was searched on data.root={images} ({run_dir / 'config.yaml'}), which does not exist here; "
        f"pass its data with the folder its images are in now: data=imagefolder data.root=<its image folder, {images} "
        "when searched> data.img_size=12 data.val_size=0.25")
    given.clear()
    compress.run_compress(compress.compose_compress_config([f"checkpoint={folder}", "hw=cpu", "data=imagefolder",
                                                            f"data.root={moved}", "data.img_size=12", "data.val_size=0.25"]))
    assert given["data"].classes == ("a", "b", "c") and given["augment"].root == str(moved)
    # a checkpoint copied out of its run folder keeps the default data
    assert compress.run.searched_data(Path(shutil.copytree(folder, tmp_path / "copy"))) is None


def test_the_searched_data_of_a_member_is_its_run_config_yamls_with_the_root_its_pareto_json_records(tmp_path,
                                                                                                      tiny_idx_root):
    # Fashion-MNIST searched at data.img_size=16 data.channels=3 was loaded at its native 1x28x28 and refused; a resumed
    # study's pareto.json records the root it last found the data at, config.yaml the one first typed (here relative).
    import yaml

    from compress.run import searched_data
    from nas.config import DataFormat

    run = tmp_path / "run"
    folder = run / "checkpoints" / "m0"
    folder.mkdir(parents=True)
    searched = {"name": "fashion_mnist", "format": "idx", "root": "data/fmnist", "img_size": 16, "channels": 3,
                "val_size": 0.1, "test_size": 0.2, "split_seed": 4, "stratify": False, "metric": "accuracy"}
    (run / "config.yaml").write_text(yaml.safe_dump({"data": searched, "search": {"study_name": "run"}}))
    (run / "pareto.json").write_text(json.dumps({"data": {"root": str(tiny_idx_root)}}))
    (folder / "metrics.json").write_text(json.dumps({"dataset": "fashion_mnist"}))
    data, line = searched_data(folder)
    assert (data.root, data.img_size, data.channels, data.split_seed, data.format) == (
        str(tiny_idx_root), 16, 3, 4, DataFormat.idx)
    assert line == (f"data: the search's (data=fashion_mnist data.root={tiny_idx_root} data.img_size=16 data.channels=3 "
                    f"data.split_seed=4), from {run / 'config.yaml'} (data.root from {run / 'pareto.json'})")
    # a config.yaml of other data than the member's metrics.json names says nothing of the member's
    (folder / "metrics.json").write_text(json.dumps({"dataset": "imagefolder"}))
    assert searched_data(folder) is None


def test_a_missing_member_of_a_run_folder_is_refused_without_its_searched_data_line_first(tmp_path, tiny_idx_root,
                                                                                         caplog):
    # "data: the search's (...), from .../config.yaml" was logged before the error that the checkpoint is not found
    import logging

    import yaml

    import compress
    from nas.errors import CheckpointError

    run = tmp_path / "run"
    (run / "checkpoints" / "m0").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {
        "name": "fashion_mnist", "format": "idx", "root": str(tiny_idx_root), "img_size": 16}}))
    (run / "checkpoints" / "m0" / "metrics.json").write_text(json.dumps({"dataset": "fashion_mnist"}))
    assert compress.run.searched_data(run / "checkpoints" / "m0") is not None  # the line it would give
    with caplog.at_level(logging.INFO, logger="compress.run"), pytest.raises(CheckpointError, match="not found"):
        compress.run_compress(compress.compose_compress_config([f"checkpoint={run / 'checkpoints' / 'm0'}", "hw=cpu"]))
    assert not [r.getMessage() for r in caplog.records if r.getMessage().startswith("data: ")]


def _recorded_member(tmp_path):
    """(member folder, image folder) of a run folder whose config.yaml records an image folder searched at its own
    size and split, relative as typed, and whose pareto.json records that folder's absolute path."""
    import yaml

    images = tmp_path / "images"
    images.mkdir()
    run = tmp_path / "runs" / "s"
    member = run / "checkpoints" / "m0"
    member.mkdir(parents=True)
    searched = {"name": "imagefolder", "format": "imagefolder", "root": "images", "img_size": 12, "val_size": 0.25,
                "test_size": 0.3, "split_seed": 5, "metric": "accuracy"}
    (run / "config.yaml").write_text(yaml.safe_dump({"data": searched}))
    (run / "pareto.json").write_text(json.dumps({"data": {"root": str(images)}}))
    (member / "metrics.json").write_text(json.dumps({"dataset": "imagefolder"}))
    return member, images


def test_recorded_data_settings_name_every_data_setting_the_search_set(tmp_path):
    # The hints that send the user to a command on the search's data named its size (compress.run's data-shape refusal)
    # or a data.root typed on the command line (the top_k rebuild), not its split: pasted, the command loaded another.
    from compress.run import recorded_data_settings

    member, images = _recorded_member(tmp_path)
    split = ["data.img_size=12", "data.val_size=0.25", "data.test_size=0.3", "data.split_seed=5"]
    assert recorded_data_settings(member) == ["data=imagefolder", f"data.root={images}", *split]
    # a root given on the command line (where the images are here) in place of the recorded one
    assert recorded_data_settings(member, root="/here") == ["data=imagefolder", "data.root=/here", *split]
    images.rmdir()  # moved: its old place named, not pasted as if it were there
    assert recorded_data_settings(member) == ["data=imagefolder", f"data.root=<its image folder, {images} when searched>",
                                              *split]
    # a member copied out of its run: what its metrics.json records (its test images' split among them)
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "metrics.json").write_text(json.dumps({
        "dataset": "imagefolder", "metric": "balanced_accuracy", "input": {"channels": 3, "img_size": 12},
        "test_images": {"split": {"split_seed": 5, "val_size": 0.25, "test_size": 0.3, "stratify": True}}}))
    assert recorded_data_settings(copy, root="/here") == [
        "data=imagefolder", "data.root=/here", "data.img_size=12", "data.channels=3", "data.split_seed=5",
        "data.val_size=0.25", "data.test_size=0.3", "data.metric=balanced_accuracy"]
    assert recorded_data_settings(tmp_path / "nothing") == [] and recorded_data_settings(tmp_path / "nothing",
                                                                                         root="/x") == ["data.root=/x"]


def test_top_k_hint_names_the_searchs_recorded_data(tmp_path):
    # It named only a data.root typed on the command line, not the search's recorded one: the rebuild of a search of
    # Fashion-MNIST in another folder then read the default folder. Named as compress.run's data-shape refusal names them.
    member, images = _recorded_member(tmp_path)
    split = "data.img_size=12 data.val_size=0.25 data.test_size=0.3 data.split_seed=5"
    with pytest.raises(ConfigError) as refused:
        check_members("top_k", checkpoint=member)
    assert str(refused.value).endswith(
        f"python -m nas.report search.runs_dir={tmp_path / 'runs'} search.study_name=s data=imagefolder "
        f"data.root={images} {split} compress.members=top_k compress.top_k=<k>")
    with pytest.raises(ConfigError) as refused:
        check_members("top_k", checkpoint=member, data_root="/here")
    assert f"search.study_name=s data=imagefolder data.root=/here {split} compress.members=top_k" in str(refused.value)
    fashion = tmp_path / "fashion"
    fashion.mkdir()
    (member.parent.parent / "config.yaml").write_text("data: {name: fashion_mnist, format: idx, root: fashion}\n")
    (member.parent.parent / "pareto.json").write_text(json.dumps({"data": {"root": str(fashion)}}))
    (member / "metrics.json").write_text(json.dumps({"dataset": "fashion_mnist"}))
    with pytest.raises(ConfigError) as refused:
        check_members("top_k", checkpoint=member)
    assert str(refused.value).endswith(f"search.study_name=s data=fashion_mnist data.root={fashion} "
                                       "compress.members=top_k compress.top_k=<k>")


def test_a_member_compressed_in_a_run_refreshes_its_report_under_the_run_folders_lock(tiny_idx_root, tmp_path,
                                                                                       monkeypatch, caplog):
    # compress.run of a member refreshed the run's report and pareto.csv without the run folder's .files.lock, which a
    # search's workers take turns through: beside a worker writing them, the files could mix the two writers' states.
    # It now waits for the worker's turn, saying so, and writes them holding the lock. (The compression is stubbed.)
    import logging
    import threading

    import compress
    import compress.pipeline
    import nas.pareto_csv
    import nas.report
    from nas.arch import ArchConfig, StageConfig
    from nas.checkpoint import FILES_LOCK, run_folder_lock, save_checkpoint
    from nas.model import build_model

    run_dir = tmp_path / "run"
    folder = run_dir / "checkpoints" / "m0"
    arch = ArchConfig(stages=(StageConfig(mixer="pool", depth=1, width=16), StageConfig(mixer="conv", depth=1, width=32)))
    save_checkpoint(folder / "model.pt", build_model(arch), arch, meta={})  # 1x28x28, as the tiny data
    (run_dir / "pareto.json").write_text("{}")
    monkeypatch.setattr(compress.pipeline, "compress_checkpoint", lambda folder, **kwargs: {"hw": kwargs["hw"].name})
    refreshed = []
    lock = run_dir / FILES_LOCK
    monkeypatch.setattr(nas.report, "write_reports", lambda d, **kw: refreshed.append(("report", lock_held_elsewhere(lock))))
    monkeypatch.setattr(nas.pareto_csv, "write_pareto_csv", lambda d, **kw: refreshed.append(("csv", lock_held_elsewhere(lock))))
    cfg = compress.compose_compress_config([f"checkpoint={folder}", f"data.root={tiny_idx_root}", "data.name=tiny",
                                            "hw=cpu"])
    failed = []

    def compress_member() -> None:
        try:
            compress.run_compress(cfg)
        except BaseException as e:  # noqa: BLE001 - shown by the assertion below
            failed.append(e)

    waiting = f"{run_dir}: waiting for another process (a search's worker) to finish writing the run's files ({FILES_LOCK})"
    with caplog.at_level(logging.INFO, logger="nas"):
        with run_folder_lock(run_dir):  # a worker's turn
            compressing = threading.Thread(target=compress_member)
            compressing.start()
            for _ in range(1200):  # until it waits (or ends): 60 s at most
                if any(r.getMessage().startswith(waiting) for r in caplog.records) or not compressing.is_alive():
                    break
                compressing.join(0.05)
            assert refreshed == [] and not failed, failed  # not refreshed during the worker's turn
        compressing.join(120)
    assert not compressing.is_alive() and not failed, failed
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith(waiting)] == [
        f"{waiting}, to refresh its report and pareto.csv..."]
    assert refreshed == [("report", True), ("csv", True)]  # both written holding the lock


@pytest.mark.parametrize("killed", ["between its renames", "before its metrics.json"])
def test_a_member_whose_new_files_a_killed_search_left_complete_is_put_in_place_before_it_is_compressed(
        tiny_idx_root, tmp_path, monkeypatch, caplog, killed):
    # A search killed (kill -9) as it swapped a member's new files in left them for its next run to put in place;
    # compress.run of the member before then found its folder missing (the old one moved to retired/, "checkpoint ...
    # not found"), or the new model.pt without its metrics.json. It now finishes the swap first, under the member's
    # lock, as the search's start does.
    import logging

    import compress
    import compress.pipeline
    from nas.arch import ArchConfig, StageConfig
    from nas.checkpoint import save_checkpoint
    from nas.model import build_model
    from tests.test_checkpoint import _KILLED_DESCRIBED, _KILLED_SWAP, killed_writer

    folder = tmp_path / "checkpoints" / "m"
    folder.mkdir(parents=True)
    arch = ArchConfig(stages=(StageConfig(mixer="pool", depth=1, width=16), StageConfig(mixer="conv", depth=1, width=32)))
    weights = save_checkpoint(tmp_path / "new" / "model.pt", build_model(arch), arch, meta={})  # 1x28x28, as the tiny data
    if killed == "between its renames":  # a member final-trained again: its folder as it was is in retired/m/
        (folder / "model.pt").write_bytes(b"old")
        killed_writer(_KILLED_SWAP, tmp_path, "between", weights)
        assert not folder.exists()
    else:  # a first final training
        killed_writer(_KILLED_DESCRIBED, folder, "model.pt", weights)
        assert not (folder / "metrics.json").exists()
    seen = []
    monkeypatch.setattr(compress.pipeline, "compress_checkpoint",
                        lambda folder, **kw: seen.append(sorted(p.name for p in folder.iterdir())) or {"hw": "cpu"})
    cfg = compress.compose_compress_config([f"checkpoint={folder / 'model.pt'}", f"data.root={tiny_idx_root}",
                                            "data.name=tiny", "hw=cpu"])
    with caplog.at_level(logging.INFO):
        compress.run_compress(cfg)
    assert (folder / "model.pt").read_bytes() == weights.read_bytes()
    assert seen == [["metrics.json", "model.onnx", "model.pt"] if killed == "before its metrics.json"
                    else ["metrics.json", "model.pt"]]  # compressed with the new files in place
    said = [r.getMessage() for r in caplog.records if "swapped them in" in r.getMessage()]
    assert said == [f"{Path('checkpoints') / 'm'}/: the new files that a run killed as it swapped them in left complete "
                    "are put in place" + ("; the folder as it was is in retired/m/" if killed == "between its renames"
                                          else "")]
