"""Compress one checkpoint for a chip: `python -m compress.run checkpoint=<folder> hw=edge_npu`.

Writes the compressed files and compressed_metrics.json into the checkpoint folder (see
`compress.pipeline`) and prints the fp32 -> pruned -> int8 table. If the folder sits in a search's
run folder (`<run>/checkpoints/<arch_id>`), that run's report and pareto.csv are regenerated to include it.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Sequence

from nas.overrides import exit_on_bad_overrides, mappings_replaced

HELP_LINE = ("python -m compress.run checkpoint=<folder with model.pt>: compress one checkpoint for a chip (hw=): prune "
             "(compress.prune), recover by distillation, int8 post-training quantization (QAT where it loses more than "
             "compress.quantize.max_acc_drop), then write model_int8.onnx, the OpenVINO files and compressed_metrics.json "
             "into its folder.")
"""The first line of `python -m compress.run --help` (Hydra's said "run is powered by Hydra")."""

if __name__ == "__main__":  # before torch and torch-pruning load (seconds): a typo on the command line is named at once
    exit_on_bad_overrides(sys.argv[1:], config_name="compress_run")
    if any(a in ("-h", "--help") for a in sys.argv[1:]):  # Hydra's help names the hw= choices, not what each is
        from nas.config import hw_help
        from nas.errors import help_on_stdout

        with help_on_stdout():  # `--help | head -3`: a quiet end, not a BrokenPipeError traceback
            print(f"{HELP_LINE}\n\n{hw_help(sys.argv[1:], config_name='compress_run')}\n")

import hydra
from omegaconf import DictConfig

from nas.config import (CONF_DIR, CompressRunConfig, DataConfig, DataFormat, command_line_keys, ignored_efficiency_warning,
                        overridden_or_recorded, register_configs, to_compress_run_config, validate_data_config)
from nas.errors import (DISK_EXIT, WRITE_ERRNOS, CheckpointError, ConfigError, closed_stdout_ends_quietly, disk_failure,
                        disk_failure_text, exit_on_error, exit_with_error, help_on_stdout, interrupting_signal,
                        interrupts_honoured, module_logger, stop_on_sigterm, wrong_type)
from nas.latency.hardware import arch_extent_warning, element_size_warning, few_archs_warning, input_warning
from nas.overrides import shell_command, shell_override
from nas.rebuild import override_value, searched_final_train, setting_key
from nas.stats import format_p

if TYPE_CHECKING:
    from nas.data import Dataset

# nas.data and compress.pipeline (torch, torch-pruning: seconds) are imported where the run loads its data and
# compresses: the settings and the checkpoint are checked, and a bad one named, before that.

log = module_logger("compress.run")  # lines naming a file that is not UTF-8 written readably (ReadableNames)


def run_compress(cfg: DictConfig | CompressRunConfig, *, overridden: Collection[str] | None = None) -> dict[str, Any]:
    """Validate the config, load the data, compress the checkpoint; return compressed_metrics.json.

    `overridden`: the config keys set on the command line (`nas.config.overridden_keys`; `python -m compress.run` passes
    them), so that a data.test_size / data.val_size named there for data with that split of its own is warned about
    even at its default value (`nas.data.load_dataset`); None (the default): those of the overrides
    `compose_compress_config` recorded in `cfg` (`nas.config.composed_overrides`). The caller's torch threads, random
    states, NNCF's log level and the environment variables a run sets are as they were when it returns
    (`nas.train.caller_settings_kept`): compressing sets them all. Ctrl-C and SIGTERM stop it as a KeyboardInterrupt
    (`nas.errors.Terminated` for SIGTERM), also in a process that ignores SIGINT or leaves SIGTERM at its default
    (`nas.errors.interrupts_honoured`).

    From Python: `run_compress(compose_compress_config(["checkpoint=<folder>", "hw=cpu"]))` (both in `compress`).
    """
    if not isinstance(cfg, (DictConfig, CompressRunConfig)):  # OmegaConf's "Input cfg is not an OmegaConf config object"
        raise wrong_type("cfg", cfg, "pass the DictConfig that compress.compose_compress_config([\"checkpoint=<folder>\", "
                                     "...]) returns (or a CompressRunConfig)")
    overridden = overridden_or_recorded(cfg, overridden)
    # here, with the composed config: a value a group's file set is named with the file
    run = to_compress_run_config(cfg)
    # Ctrl-C and SIGTERM stop it, also in a process that ignores SIGINT (a script's background job, which went on to
    # its end as if `kill -INT` had not been sent): the member's files are written whole or not at all, an earlier
    # compression's put back as they were (`compress.pipeline.compress_checkpoint`)
    with interrupts_honoured():
        return _run_compress(run, overridden=overridden)


def _run_compress(run: CompressRunConfig, *, overridden: Collection[str]) -> dict[str, Any]:
    """`run_compress` once its config is resolved."""
    run.hw.validate()  # the compress group's values are checked (`run_compress`), naming the file that set one
    check_members(run.compress.members, checkpoint=run.checkpoint, data_root=_given_root(run.data))
    _finish_killed_swap(Path(run.checkpoint))
    run = _with_searched_data(run, overridden=overridden)
    validate_data_config(run.data)
    folder = Path(run.checkpoint)
    if folder.is_file():  # its model.pt named directly; any other file (model_int8.onnx, arch.json) is a slip
        if folder.name != "model.pt":
            raise CheckpointError(f"checkpoint={run.checkpoint!r} is a file other than model.pt; pass the checkpoint "
                                  "folder or its model.pt")
        folder = folder.parent
    from nas.checkpoint import read_checkpoint

    arch, _, meta = read_checkpoint(folder)  # a missing or corrupt checkpoint fails here, before the data is loaded
    from compress.pipeline import check_prune_target
    from compress.prune import latency_floor_ms

    # A latency target out of reach is bad input: refused before the data loads, and before the warning that this
    # compression replaces the folder's earlier files, which a refusal after it contradicted. The lowest latency that
    # pruning reaches is worked out here once: the compression and its pruning check the target with it too.
    floor_ms = latency_floor_ms(arch, hw=run.hw)
    check_prune_target(arch, hw=run.hw, cfg=run.compress, floor_ms=floor_ms)
    if run.data.format == DataFormat.imagefolder:  # before its images are read; other data after the shape check
        _check_background(folder, run.data)
    _export_unreadable_onnx_again(folder)
    from nas.data import SYSTEM_FOLDERS, load_dataset

    from compress.pipeline import check_data_shape

    data = load_dataset(run.data, overridden=overridden)
    # Before the test images: images resized to another data.img_size never match the search's test images, and that
    # check would blame the folder or its split, not the size.
    root = recorded_root(folder, meta)
    try:
        check_data_shape(folder, arch, meta, data, root=root, background=_searched_background(folder)[1],
                         recorded=recorded_data_settings(folder))
    except ConfigError as e:
        # the folders a NAS adds change the classes alone (one at the root was a class), never the input's size
        names = _recorded_class_names(folder)
        if not (any(n.lower() in SYSTEM_FOLDERS for n in names) if names is not None
                else arch.num_classes != data.num_classes):
            raise
        raise ConfigError(f"{e}{_system_folders_clause(run.data)}") from None
    _check_background(folder, run.data)
    data = _check_test_images(folder, data, run.data, root=root)
    # The pruning target and the table's latencies come from the same predictor a search uses: fitted on a handful of
    # archs they may be well off, and at an input or for an arch its calibration never measured extrapolated; a search
    # says so in these lines.
    for line in (few_archs_warning(run.hw), element_size_warning(run.hw), ignored_efficiency_warning(run.hw),
                 input_warning(run.hw, in_chans=arch.in_chans, img_size=arch.img_size, num_classes=arch.num_classes),
                 arch_extent_warning(run.hw, [arch], space=_searched_space(folder))):
        if line is not None:
            log.warning("%s", line)
    # A damaged pareto.json in the member's run stops no compression (its files go into the member's folder), but the
    # run's report and pareto.csv are written from it: said before the minutes of compressing, not as a traceback after.
    if (run_dir := _run_of(folder)) is not None and (problem := _not_refreshed(run_dir)) is not None:
        log.warning("%s", problem)
        run_dir = None
    # A member the search compressed for its chip, compressed here for another one (the README's `hw=cpu` example) or
    # with other settings, lost the search's deployable files without a word: said before the minutes of compressing
    from compress.pipeline import compressed_for_another_job

    if (otherwise := compressed_for_another_job(folder, cfg=run.compress, hw=run.hw)) is not None:
        in_run = _run_of(folder) is not None
        log.warning("%s", replacing_line(folder, otherwise, hw=run.hw.name, in_run=in_run))
    from nas.train import caller_settings_kept

    with caller_settings_kept():  # the latency timing's threads (compress.latency_threads), the compression's seeds
        metrics = compress_checkpoint(folder, hw=run.hw, data=data, cfg=run.compress, augment=run.data,
                                      floor=(arch, floor_ms))
    if run_dir is not None:
        from nas.checkpoint import FILES_LOCK, run_folder_lock
        from nas.pareto_csv import write_pareto_csv
        from nas.report import ReportInputError, write_reports

        # Under the lock a search's workers take turns through: written beside a worker writing the same files, the
        # report and pareto.csv could describe two states of the run at once (one's table, the other's int8 columns).
        waiting = (f"{run_dir}: waiting for another process (a search's worker) to finish writing the run's files "
                   f"({FILES_LOCK}), to refresh its report and pareto.csv...")
        try:
            with run_folder_lock(run_dir, waiting=waiting):
                write_reports(run_dir)
                write_pareto_csv(run_dir)  # its int8 columns: the member's new files, as the report shows them
        except ReportInputError as e:  # its trials.csv unreadable, or pareto.json damaged meanwhile: the work is done
            log.warning("%s", f"{_NOT_REFRESHED}: {e}")
    return metrics


_NOT_REFRESHED = "the run's report and pareto.csv are not refreshed after this compression"


def replacing_line(folder: Path, otherwise: str, *, hw: str, in_run: bool) -> str:
    """The warning of a compression of `folder` whose earlier one was made `otherwise` ("for hw=edge_npu", "with other
    compress settings: prune", `compress.pipeline.compressed_for_another_job`): its files are replaced, and how to keep
    both. `in_run`: the folder is a member of a search's run folder, whose next search compresses it again for its own
    chip and settings."""
    line = (f"{folder} holds files compressed {otherwise} (compressed_metrics.json); this compression for hw={hw} "
            "replaces them once it finishes (to keep both, compress a copy of the folder)")
    if in_run:
        line += (", and the next run of the search command over its run folder compresses the member again for the "
                 "search's own hw and compress settings where they differ from these")
    return line


def _finish_killed_swap(checkpoint: Path) -> None:
    """Put in place the member's new files that a search killed as it swapped them in left complete, as its next run
    would (`nas.run_folder.finish_member_replacing`, under the member's lock), one line each: compressed before then,
    the member's folder was missing (new files in retired/), or the weights compressed were the old ones the search
    was replacing, or new ones without their metrics.json."""
    from nas.run_folder import finish_member_replacing

    # (its model.pt named, maybe not there yet: the folder is the one it would be in)
    for line in finish_member_replacing(checkpoint.parent if checkpoint.name == "model.pt" else checkpoint):
        log.info("%s", line)


def _not_refreshed(run_dir: Path) -> str | None:
    """Why the report and pareto.csv of the run folder `run_dir` cannot be refreshed after a compression of one of its
    members, in one line with what to do (its pareto.json is damaged: rebuild it from the study); None when they can."""
    from nas.report import PARETO_JSON, ReportInputError, read_pareto_json

    try:
        read_pareto_json(run_dir / PARETO_JSON)
    except ReportInputError as e:
        return f"{_NOT_REFRESHED}: {e}"
    except OSError as e:
        return f"{_NOT_REFRESHED}: {PARETO_JSON} in {run_dir} cannot be read ({e.strerror or e})"
    return None


def compress_checkpoint(folder: Path, **kwargs: Any) -> dict[str, Any]:
    """`compress.pipeline.compress_checkpoint`, imported as a run gets that far (see the imports above)."""
    from compress.pipeline import compress_checkpoint as compress

    return compress(folder, **kwargs)


def _run_of(folder: Path) -> Path | None:
    """The search's run folder that checkpoint `folder` is a member of (`<run>/checkpoints/<arch_id>`), else None."""
    run_dir = folder.parent.parent
    return run_dir if folder.parent.name == "checkpoints" and (run_dir / "pareto.json").is_file() else None


def _folder_of(checkpoint: str | Path) -> Path:
    """The checkpoint folder that `checkpoint=` names: itself, or the folder of its model.pt."""
    folder = Path(checkpoint)
    return folder.parent if folder.is_file() else folder


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, modification time in ns) of the file at `path`, None where there is none: the stamps before and
    after a run differ where it wrote the file (anew, or again in place)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def closing_lines(metrics: dict[str, Any], *, checkpoint: str | Path, exported_onnx: bool = False) -> list[str]:
    """What `python -m compress.run` prints under its table: which file the int8 row's numbers are of, where the files
    went (the checkpoint folder; the table names none of it) and the run report it refreshed, if any. `exported_onnx`:
    the run wrote the folder's model.onnx (a bare model.pt has none, and one that no runtime can read is exported
    again), named among the files written; otherwise model.onnx is the search's, and left out."""
    from nas.report import int8_file_tolerance_text, int8_source_text, int8_test_acc_source

    folder = _folder_of(checkpoint)
    int8 = metrics["int8"]
    if int8_test_acc_source(int8) == "openvino":
        lines = [f"int8 row: test acc from {int8.get('file_ir')} in OpenVINO ({int8.get('file')} in onnxruntime: "
                 f"{100 * int8['test_acc_onnx']:.2f}%), size (KiB) of {int8.get('file')}"]
    else:  # the target chip's estimate: onnxruntime's (hw=cpu_ort), or the file's own where this CPU saturates
        lines = [f"int8 row: {int8_source_text(int8)}; size (KiB) of {int8.get('file')}"]
    if int8.get("note"):
        lines.append(f"note: {int8['note']}")
    pruned = (metrics.get("pruned") or {}).get("pruned") is True
    if (off := int8_file_tolerance_text(int8, quantized="pruned" if pruned else "fp32",
                                        float_file="model_pruned.onnx" if pruned else "model.onnx")) is not None:
        lines.append(f"note: {off}")
    files = set((metrics.get("files") or {}).values())
    if not exported_onnx:  # the search's file, there before the run
        files.discard("model.onnx")
    lines.append(f"written to {folder.resolve()}: {', '.join([*sorted(files), 'compressed_metrics.json'])}")
    if (run_dir := _run_of(folder)) is not None and _not_refreshed(run_dir) is None:  # else its warning said why not
        lines.append(f"report refreshed: {(run_dir / 'report.html').resolve()} (and report.md, pareto.csv)")
    return lines


def recorded_root(folder: Path, meta: dict[str, Any]) -> str | None:
    """The data.root the checkpoint's search used: its run's pareto.json's (a member folder `<run>/checkpoints/<id>`;
    the latest, should a resumed study have found its images elsewhere), else the checkpoint's own `data_root` (its
    metadata from 2026-12-05 on, kept when the folder is copied out of its run); None when neither says."""
    import json

    root = None
    if folder.parent.name == "checkpoints":
        try:
            root = json.loads((folder.parent.parent / "pareto.json").read_text())["data"]["root"]
        except (OSError, ValueError, KeyError, TypeError):  # not in a run folder, or a pareto.json before data.root
            pass
    if not isinstance(root, str) or not root:
        root = meta.get("data_root")
    return str(root) if root else None


# What compress.run takes instead of the settings that choose among a search's Pareto members; the nas.report command
# (`_top_k_command`) follows it.
_ONE_CHECKPOINT = ("compress.run compresses the one checkpoint= it is given: pass checkpoint=<run>/checkpoints/<arch_id> "
                   "for each member, or compress a run's best k with ")


def _top_k_command(checkpoint: str | Path | None, data_root: str | None) -> str:
    """The `python -m nas.report` command that compresses the best k members of the run that `checkpoint` is a member
    of: its runs_dir and study_name from the folder's path, the data settings its search's records show
    (`recorded_data_settings`, with the `data_root` this command was given in place of the recorded one: the rebuild
    takes a study's data.root from the command, on this machine; a recorded root alone was left out, and the rebuild
    then read the default data's folder), and the final_train its members were trained with where that is not
    final_train's default (`nas.rebuild.searched_final_train`): without it the rebuild refuses to train them again with
    the default recipe (`nas.study_export.export_study`), a second refusal after this one. The study name is the one
    the folder's study.db holds, with where to move the folder first, for a folder renamed from its run's
    (`nas.report.hints._moved_from`, as nas.report's rebuild hints name it): the folder's name was refused by the rebuild, which
    reads the run folder search.runs_dir/search.study_name. Outside a run folder the settings are named by
    placeholders."""
    from nas.report.hints import _moved_from, _rebuild_command  # the rebuild's own hints: one reading of study.db

    run_dir = _run_of(_folder_of(checkpoint)) if checkpoint else None
    if run_dir is None:
        return ("python -m nas.report search.runs_dir=<folder above the run> search.study_name=<its name> "
                "compress.members=top_k compress.top_k=<k>")
    moved, study = _moved_from(run_dir)
    # Values found, not typed, quoted for Hydra as well as the shell (a runs_dir with a quote: Hydra refused it in the
    # shell's quotes alone); the data and final_train settings are one shell argument each already.
    named = [_rebuild_command(str(run_dir), [], study_name=study),
             *recorded_data_settings(_folder_of(checkpoint), root=data_root), *searched_final_train(run_dir),
             "compress.members=top_k"]
    command = f"python -m nas.report {' '.join(named)} compress.top_k=<k>"  # <k> left to the user, unquoted
    return f"{command} ({moved}run that command)" if moved else command


def check_members(members: Any, *, checkpoint: str | Path | None = None, data_root: str | None = None) -> None:
    """`ConfigError` for a `compress.members` other than `all`: it chooses among a search's Pareto members, and
    compress.run, given one checkpoint, compressed it whatever the value said (none included). `checkpoint`: the
    checkpoint= given, whose run the nas.report command named instead is for; `data_root`: a data.root given on the
    command line, which that command repeats (`_top_k_command`)."""
    mode = getattr(members, "value", members)
    if mode == "top_k":
        raise ConfigError(f"compress.members=top_k chooses among a search's Pareto members; {_ONE_CHECKPOINT}"
                          f"{_top_k_command(checkpoint, data_root)}")
    if mode == "none":
        raise ConfigError("compress.members=none (compress=none) compresses nothing, but compress.run always compresses "
                          "the checkpoint= it is given: leave it out")


def unused_overrides(args: list[str]) -> str | None:
    """One line for a `compress.top_k=` on the command line (it only means something with compress.members=top_k,
    refused by `check_members`; compress=smoke sets it too, so only the user's own is caught here), else None."""
    given = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if "=" in a}
    hint = f"{_ONE_CHECKPOINT}{_top_k_command(given.get('checkpoint'), given.get('data.root'))}"
    for arg in args:
        if arg.lstrip("+").split("=", 1)[0] == "compress.top_k":
            return f"{arg.lstrip('+')} chooses among a search's Pareto members; {hint}"
    return None


def _with_searched_data(run: CompressRunConfig, *, overridden: Collection[str]) -> CompressRunConfig:
    """`run` with the data of the search its checkpoint is a member of (`searched_data`, said in one line) where
    nothing chose its data: no `data` group nor `data.*` setting among `overridden`, and the data the default group
    composes (a config composed without a record of its overrides, by Hydra's compose, says what was chosen only by
    its values). Anything chosen wins, as does a checkpoint outside a run folder: `run` as it is. A member searched
    on the user's own images was refused until given `data=imagefolder data.root=...` and its search's size,
    channels and split settings again, all of which its run folder records."""
    from dataclasses import replace

    if any(key == "data" or key.startswith("data.") for key in overridden) or run.data != _default_data():
        return run
    if not (_folder_of(run.checkpoint) / "model.pt").is_file():
        # a checkpoint that is not there (an arch_id mistyped) is refused next, alone: its run's "data: the search's
        # ..." line came first, as if the compression had started
        return run
    found = searched_data(_folder_of(run.checkpoint))
    if found is None:
        return run
    data, line = found
    log.info("%s", line)
    return replace(run, data=data)  # the caller's CompressRunConfig is left as it was


def _data_group(name: str) -> dict[str, Any] | None:
    """conf/data/<name>.yaml over `DataConfig`'s defaults, as a plain dict (enums as their values); None where there
    is no such file."""
    from omegaconf import OmegaConf

    path = CONF_DIR / "data" / f"{name}.yaml"
    if not path.is_file():
        return None
    return OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(DataConfig), OmegaConf.load(path)),
                                  enum_to_str=True)


# conf/compress_run.yaml's data group, and conf/search.yaml's
_DEFAULT_DATA = "fashion_mnist"


def _default_data() -> DataConfig:
    """The data `python -m compress.run` loads when none is chosen: conf/compress_run.yaml's default group."""
    from omegaconf import OmegaConf

    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DataConfig), _data_group(_DEFAULT_DATA)))


def searched_data(folder: Path) -> tuple[DataConfig, str] | None:
    """The data settings of the search that the checkpoint in `folder` is a member of (`<run>/checkpoints/<arch_id>`),
    every `data.*` its run's config.yaml records (so its split and test images are the search's), with the data.root
    its run's pareto.json records where it does (absolute, the latest of a resumed study); and the line that says
    so. None outside a run folder, and where config.yaml is missing, unreadable, holds no data settings or names other
    data than the member's metrics.json. `ConfigError` where that data.root is no folder here (moved, or another
    machine's), naming it and the settings to pass with the folder the images are in now."""
    from dataclasses import replace

    found = _searched_config(folder)
    if found is None:
        return None
    data, source = found
    root = data.root
    if not Path(root).is_dir():
        from compress.pipeline import root_setting  # torch with it: imported only for this refusal

        # the root named even where it is its group's own (Fashion-MNIST's default folder, not installed here)
        settings = _with_root(_data_settings(data), root_setting(root))
        said = "is a file, not a folder" if Path(root).exists() else "does not exist"
        raise ConfigError(f"checkpoint {folder} was searched on data.root={root} ({source}), which {said} here; pass "
                          f"its data with the folder its images are in now: {' '.join(settings)}")
    if not Path(root).is_absolute():  # a folder from here: named as one, whatever the command's folder later
        data = replace(data, root=str(Path(root).absolute()))
    return data, f"data: the search's ({' '.join(_data_settings(data))}), from {source}"


def _searched_config(folder: Path) -> tuple[DataConfig, str] | None:
    """`searched_data`'s data as its run's config.yaml (and pareto.json's data.root) records it, whether that root is a
    folder here or not, and the file(s) it is from, as `searched_data`'s line names them; None where `searched_data`
    is."""
    import json
    from dataclasses import fields, replace

    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    found = _run_config_data(folder)
    if found is None:
        return None
    config, searched = found
    known = {f.name for f in fields(DataConfig)}
    try:
        searched = {k: v for k, v in searched.items() if k in known}  # a key of another version's schema
        fmt = searched.get("format", DataFormat.idx.value)
        group = (_data_group(str(searched["name"]))
                 or _data_group("imagefolder" if fmt == DataFormat.imagefolder.value else "fashion_mnist"))
        data = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(DataConfig), group, searched))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError, OmegaConfBaseException):
        return None
    try:
        dataset = json.loads((folder / "metrics.json").read_text()).get("dataset")
    except (OSError, ValueError, AttributeError):  # no metrics.json (a search from before it): config.yaml alone
        dataset = None
    if isinstance(dataset, str) and dataset != data.name:  # a config.yaml of other data than the member's
        return None
    recorded = recorded_root(folder, {})  # pareto.json's; config.yaml's root is as typed, maybe relative
    root = recorded or data.root
    # a cache folder given relative to where the search ran would be made anew wherever this command runs; the
    # images are decoded without it (the same pixels)
    cache_dir = data.cache_dir if data.cache_dir and Path(data.cache_dir).is_absolute() else None
    data = replace(data, root=root, cache_dir=cache_dir)
    source = str(config) + (f" (data.root from {config.parent / 'pareto.json'})"
                            if recorded is not None and recorded != searched.get("root") else "")
    return data, source


def _run_config_data(folder: Path, *, group: str = "data") -> tuple[Path, dict[str, Any]] | None:
    """The run's config.yaml of the member in `folder` (`<run>/checkpoints/<id>`) and the `group` mapping it records, as
    written (no group or default merged in); None outside a run folder, and where config.yaml is missing, unreadable or
    holds no such mapping. The one reader of the search's data settings (`_searched_config`,
    `_searched_shape_settings`) and space (`_searched_space`)."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if folder.parent.name != "checkpoints":
        return None
    config = folder.parent.parent / "config.yaml"
    try:
        searched = OmegaConf.to_container(OmegaConf.load(config))[group]
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError, OmegaConfBaseException):
        return None
    return (config, searched) if isinstance(searched, dict) else None


def _searched_space(folder: Path) -> str | None:
    """The name of the space the search that the checkpoint in `folder` is a member of searched, as its run's config.yaml
    records it; None outside a run folder or where it records none."""
    found = _run_config_data(folder, group="space")
    name = found[1].get("name") if found is not None else None
    return name if isinstance(name, str) and name else None


def _data_settings(data: DataConfig) -> list[str]:
    """`data` as the command-line settings that give it: its group (data=<name>, or the group of its format where
    no file has its name) and each `data.*` that differs from that group's file; paths quoted for the shell."""
    from dataclasses import fields

    name = data.name if _data_group(data.name) is not None else (
        "imagefolder" if data.format == DataFormat.imagefolder else "fashion_mnist")
    group = _data_group(name) or {}
    settings = [f"data={name}"]
    for f in fields(DataConfig):
        value = getattr(data, f.name)
        value = getattr(value, "value", value)  # an enum, as its group's file and the command line spell it
        if value == group.get(f.name):
            continue
        settings.append(shell_override(key=f"data.{f.name}", value=value) if f.name in ("root", "cache_dir")
                        and value is not None else f"data.{f.name}={override_value(value)}")
    return settings


def _given_root(data: DataConfig) -> str | None:
    """`data.root` where it is not the root of its data group's file (given on the command line), else None."""
    from omegaconf import OmegaConf

    from nas.config import group_file

    path = group_file("data", data.name)
    return data.root if path is None or OmegaConf.load(path).get("root") != data.root else None


def _searched_background(folder: Path) -> tuple[bool, int | None]:
    """Whether the search's metrics.json beside the checkpoint records the data.background its images were made with,
    and that grey level (None: transparency dropped)."""
    import json

    try:
        return True, json.loads((folder / "metrics.json").read_text())["input"].get("background")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # a checkpoint from elsewhere: nothing recorded
        return False, None


def _check_background(folder: Path, data: DataConfig) -> None:
    """`ConfigError` when the search's metrics.json beside the checkpoint says its images had their transparency
    composited onto another grey level (data.background) than this run's: the test images would be made otherwise.
    Data other than an image folder (which has no transparency, and refuses data.background) is named as such, with
    the settings to pass: "pass data.background=255" with Fashion-MNIST (the default data) was refused in turn as
    applying to image folders only, and so round. `run_compress` checks such data after the data-shape check, whose
    hint names every setting its search used, the background among them."""
    recorded, trained = _searched_background(folder)
    if not recorded or trained == data.background:
        return
    if data.format != DataFormat.imagefolder:  # trained is a grey level: data.background was set, so an image folder
        raise ConfigError(f"checkpoint {folder} was trained on an image folder with transparency composited onto grey "
                          f"level {trained}, not on dataset {data.name!r}; pass data=imagefolder, the data.root its "
                          f"search used and data.background={trained}")
    said = "dropped (null)" if trained is None else f"composited onto grey level {trained}"
    raise ConfigError(f"checkpoint {folder} was trained on images with transparency {said}, not data.background="
                      f"{'null' if data.background is None else data.background}; pass data.background="
                      f"{'null' if trained is None else trained}")


def _export_unreadable_onnx_again(folder: Path) -> None:
    """Export the folder's model.onnx again from its model.pt where the file there is no readable ONNX model (cut short
    by a copy or a full disk): the compression scores that file and compares the others with it, and failed on it only
    after deleting the previous compression's files, with an error that did not say the file can be made again."""
    onnx_file = folder / "model.onnx"
    if not onnx_file.is_file():  # the compression exports it (a checkpoint from elsewhere)
        return
    from nas.checkpoint import export_onnx, load_checkpoint, member_lock, onnx_metadata, onnx_session

    from compress.pipeline import recorded_io_contract

    # under the folder's lock: a search final-training the member meanwhile replaces model.pt and model.onnx together
    with member_lock(folder, doing="exporting its model.onnx again"):
        try:
            onnx_session(onnx_file, threads=1)
        except CheckpointError as e:
            model = load_checkpoint(folder)
            # with the contract the member's metrics.json records, as the search's export wrote it into the file
            # its data set and metric as the checkpoint records them (one from before data.metric: plain accuracy)
            metadata = onnx_metadata(arch=model.arch, contract=recorded_io_contract(folder), precision="fp32",
                                     dataset=model.meta.get("dataset"), metric=model.meta.get("metric", "accuracy"))
            export_onnx(model, onnx_file, in_chans=model.arch.in_chans, img_size=model.arch.img_size, metadata=metadata)
            log.warning("%s; exported it again from %s", e, folder / "model.pt")


def _recorded_class_names(folder: Path) -> list[str] | None:
    """The class names the search's metrics.json beside the checkpoint in `folder` records; None where none are."""
    import json

    try:
        return [str(n) for n in json.loads((folder / "metrics.json").read_text())["output"]["class_names"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _system_folders_clause(data: DataConfig) -> str:
    """The clause ending a refusal of `data`'s images as other than the checkpoint's, where its data.root holds the
    folders a NAS or USB disk adds (`nas.image_folder.system_folders_note`): a member trained on such a folder before
    they were skipped had their images, which no data.root gives now. Empty where it holds none. For a refusal those
    folders can explain alone (`nas.data_records.system_folders_may_explain`): a Synology share has @eaDir/ in every
    folder."""
    from nas.data import system_folders_note

    if (note := system_folders_note(data)) is None:
        return ""
    return (f"; {note}: trained before then, it cannot be compressed on any data.root (compress a member of a search "
            "made since)")


def _check_test_images(folder: Path, data: Dataset, cfg: DataConfig, *, root: str | None = None) -> Dataset:
    """`data`, split as the search's metrics.json beside the checkpoint says its test images were
    (`split_as_recorded_and_digests`); `ConfigError` when they are other test images than `data`'s: another data.root,
    or another split of the same folder, whose test images the model may have been trained on (and whose training images
    would include its test images). `root`: the data.root its search recorded (`recorded_root`), named in the error
    where it is not `cfg`'s."""
    import json

    from nas.data import (CLASS_SUMMARY, SPLIT_SETTINGS, class_changes, per_class_test_images,
                          split_as_recorded_and_digests, split_digest, system_folders_may_explain)

    from compress.pipeline import root_setting

    try:
        recorded = json.loads((folder / "metrics.json").read_text())
        then = recorded["test_images"]
        digest, count, split = str(then["digest"]), int(then["count"]), dict(then["split"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # from elsewhere, or before 2026-12-05
        return data
    data, known = split_as_recorded_and_digests(cfg, data, {"test": digest})
    # the digest its comparison computed where it made one: hashing every test pixel again would double the work
    if (known.get("test") or split_digest(data.test)) == digest:
        return data
    # a size recorded as "own test split" (`split_record`: the data brought that split) is no setting to pass
    differ = [f"data.{k}={override_value(split.get(k))}" for k in SPLIT_SETTINGS
              if split.get(k) != getattr(cfg, k) and not isinstance(split.get(k), str)]
    # the recorded root, as the data-shape refusal names it (it said only "the data.root its search used"), unless it
    # is the one given: then another split of it is what differs
    if root is not None and Path(root).resolve() != Path(cfg.root).resolve():
        differ.insert(0, root_setting(root))
    fix = (f"pass {' '.join(differ)} as its search did" if differ
           else "pass the data.root (and data settings) its search used")
    by_class, note = [], ""
    if not any(d.startswith(tuple(f"data.{k}=" for k in SPLIT_SETTINGS)) for d in differ):
        # another split draws every class's test images anew, which names no class that changed; the same split of
        # changed images (a folder with photos added or removed) says which classes did (a checkpoint from before
        # 2026-12-06 recorded no per_class, and keeps the message without them)
        names = _recorded_class_names(folder) or []
        try:
            rows = [[0, 0, int(n), str(d)] for n, d in then["per_class"]]
        except (KeyError, TypeError, ValueError):
            rows = []
        if rows:
            now = {"classes": list(data.classes), CLASS_SUMMARY: [[0, 0, *r] for r in per_class_test_images(data)]}
            by_class = class_changes({"classes": names, CLASS_SUMMARY: rows}, now, then_was="in its search")
        else:
            now = {"images": {"test": len(data.test)}}
        # the folders a NAS adds are named where a class's test count (or, unrecorded, the total) differs or one was a
        # class then: not for another split, which draws other test images without them
        then_rec = {"classes": names, **({CLASS_SUMMARY: rows} if rows else {"images": {"test": count}})}
        note = _system_folders_clause(cfg) if system_folders_may_explain(then_rec, now) else ""
    raise ConfigError(f"checkpoint {folder} was tested on other images ({count:,} test images then, {len(data.test):,} "
                      f"here{''.join('; ' + c for c in by_class)}); tested on these it may be scored on images it was "
                      f"trained on: {fix}{note}")


def searched_data_settings(folder: Path) -> list[str]:
    """The data settings, each one shell argument, that `python -m compress.run checkpoint=<folder>` needs to be given
    for the data the checkpoint in `folder` was searched on, as its metrics.json records them (and its run's pareto.json
    or the checkpoint's own data_root the data.root, `recorded_root`): for an image folder those its data-shape refusal
    names (`compress.pipeline.trained_data_settings`), then the split settings its test-images refusal would name
    (those other than `DataConfig`'s defaults, which the imagefolder group keeps), then data.metric where it was not
    plain accuracy, which the compression refuses otherwise. For other data data=<its name>, data.img_size and
    data.channels where its run's config.yaml set them otherwise than the data's config group
    (`_searched_shape_settings`), and data.metric where the metric was not accuracy; nothing where neither applies.
    Empty where nothing is recorded (a checkpoint from elsewhere): the command's default data then. For a hint that
    would otherwise send the user to a command refused in turn for each setting it lacks."""
    import json
    from dataclasses import fields

    from nas.data import SPLIT_SETTINGS

    from compress.pipeline import trained_data_settings

    try:
        recorded = json.loads((folder / "metrics.json").read_text())
        dataset, metric = recorded.get("dataset"), recorded.get("metric", "accuracy")  # no metric: from before it
    except (OSError, ValueError, AttributeError):  # no metrics.json, or no object in it
        return []
    metric = metric if isinstance(metric, str) else "accuracy"
    if not isinstance(dataset, str) or not dataset:
        return []
    if dataset == "imagefolder":
        try:
            contract = recorded["input"]
            channels, img_size = int(contract["channels"]), int(contract["img_size"])
        except (KeyError, TypeError, ValueError):
            return []
        root = recorded_root(folder, {})
        if root is None and (folder / "model.pt").is_file():  # a checkpoint copied out of its run keeps its data_root
            from nas.checkpoint import read_checkpoint

            try:
                root = recorded_root(folder, read_checkpoint(folder)[2])
            except CheckpointError:
                pass
        settings = trained_data_settings(dataset=dataset, root=root, channels=channels, img_size=img_size,
                                         background=_searched_background(folder)[1], loaded=None)
        test_images = recorded.get("test_images")
        split = test_images.get("split") if isinstance(test_images, dict) else None
        defaults = {f.name: f.default for f in fields(DataConfig)}
        # a size recorded as "own test split" (`split_record`: the folder brought that split) is no setting to pass
        settings += [f"data.{k}={override_value(split[k])}" for k in SPLIT_SETTINGS
                     if isinstance(split, dict) and k in split and not isinstance(split[k], str)
                     and split[k] != defaults[k]]
    else:
        shape = _searched_shape_settings(folder, dataset)
        settings = [f"data={dataset}"] + shape if shape or metric != "accuracy" else []
    return settings + ([f"data.metric={metric}"] if metric != "accuracy" else [])


def recorded_data_settings(folder: Path, *, root: str | None = None) -> list[str]:
    """The data settings, each one shell argument, of the data that the search of the checkpoint in `folder` ran on, as
    its records show them: for a member of a run folder every `data.*` its run's config.yaml records otherwise than
    its data group's file, with the data.root its pareto.json records (`searched_data`'s); else those the checkpoint's
    metrics.json records (`searched_data_settings`: an image folder's root, size, channels, background and split
    settings, data.metric). A recorded root that is no folder here is named by a placeholder saying where it was
    (`compress.pipeline.root_setting`). `root`: a data.root given on the command line (where the images are on this
    machine), named instead of the recorded one. [] where nothing but the default data is recorded and no root given.
    For the hints that send the user to a command on the search's data (compress.run's data-shape refusal, the
    nas.report command of `compress.members=top_k`): one naming the size alone was refused in turn for the test images
    of another split."""
    from dataclasses import replace

    found = _searched_config(folder)
    if found is not None:
        data = found[0]
        if root is not None:
            settings = _data_settings(replace(data, root=root))
        elif Path(data.root).is_dir():  # absolute, as `searched_data` loads it: the hint may be pasted elsewhere
            settings = _data_settings(replace(data, root=str(Path(data.root).absolute())))
        elif data.root == (_data_group(data.name) or {}).get("root"):  # its group's own: what the command reads too
            settings = _data_settings(data)
        else:  # moved, or another machine's: named even where it is its group's own, as `searched_data` names it
            from compress.pipeline import root_setting  # torch with it: imported only for this

            settings = _with_root(_data_settings(data), root_setting(data.root))
    else:
        settings = searched_data_settings(folder)
        if root is not None:
            settings = _with_root(settings, shell_override(key="data.root", value=root))
    return [] if settings == [f"data={_DEFAULT_DATA}"] else settings


def _with_root(settings: list[str], root: str) -> list[str]:
    """`settings` with `root` (a data.root setting) in place of theirs, after their data group."""
    rest = [s for s in settings if setting_key(s) != "data.root"]
    at = 1 if rest and setting_key(rest[0]) == "data" else 0
    return [*rest[:at], root, *rest[at:]]


def _searched_shape_settings(folder: Path, dataset: str) -> list[str]:
    """data.img_size and data.channels as the search of the member in `folder` set them (its run's config.yaml, for a
    member folder `<run>/checkpoints/<id>`), where they differ from what compress.run loads `dataset` with
    (conf/data/<dataset>.yaml over `DataConfig`'s defaults); [] outside a run folder, or where config.yaml is missing,
    unreadable or of other data. Fashion-MNIST searched at data.img_size=32 data.channels=3 is refused at its native
    1x28x28, and its native size is known only from its files: the search's settings say it without reading them."""
    from dataclasses import fields

    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    found = _run_config_data(folder)
    if found is None:
        return []
    searched = found[1]
    try:
        group = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "data" / f"{dataset}.yaml"))
        if searched["name"] != dataset:  # a config.yaml of other data than the member's metrics.json names
            return []
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError, OmegaConfBaseException):
        return []
    default = {**{f.name: f.default for f in fields(DataConfig)}, **group}
    return [f"data.{k}={override_value(searched[k])}" for k in ("img_size", "channels")
            if k in searched and searched[k] != default[k]]


def format_table(metrics: dict[str, Any]) -> str:
    """The fp32 -> pruned -> int8 summary as plain text; its predicted latency column is named as the report's, and
    under it the report's note says what those latencies are (the chip's, at its own precision, for each row's
    architecture). Its test acc column says how many images it is of where compress.eval_images scored part of them."""
    from nas.report import predicted_precision_note, scored_images

    def pct(v: Any) -> str:
        return f"{100 * v:.2f}%" if isinstance(v, (int, float)) else "-"

    def ms(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, (int, float)) else "-"

    def interval(v: Any) -> str:
        return f"{100 * v[0]:.2f}-{100 * v[1]:.2f}%" if isinstance(v, (list, tuple)) and len(v) == 2 else "-"

    def change(c: Any) -> str:  # test images now wrong / now right vs the file before, McNemar's p (nas.stats)
        # counted with thousands separators, as the report and the member's log line (changed_images_text) count them
        return f"-{c['now_wrong']:,} / +{c['now_right']:,} ({format_p(c['p_value'])})" if isinstance(c, dict) else "-"

    # compress.eval_images scored part of the test images: the column says how many, as the report's note does
    test = scored_images(metrics).get("test")
    acc = f"test acc (file; {test[0]:,} of {test[1]:,} images)" if test else "test acc (file)"
    rows = [("stage", acc, "95% interval", "images changed (p)", "predicted latency (ms)", "host ms (OpenVINO)", "params",
             "size (KiB)")]
    for name in ("fp32", "pruned", "int8"):
        s = metrics[name]
        if name == "pruned" and not s.get("pruned"):
            rows.append((name, "(not pruned)", "", "", "", "", "", ""))
            continue
        host = (s.get("host_latency_ms") or {}).get("openvino")
        rows.append((name, pct(s.get("test_acc")), interval(s.get("test_acc_ci95")), change(s.get("changed_vs_before")),
                     ms(s.get("latency_ms")), ms(host), f"{s.get('params', 0):,}", f"{s.get('size_bytes', 0) / 1024:.0f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    # "pred. <chip> ms" left open whose time it was: the fp32 model's, or the int8 file's? Neither, as the report says.
    # A compressed_metrics.json from before hw_precision names the chip only.
    # Not pruned, the table has no pruned row: the int8 file is the fp32 model quantized, and its row repeats fp32's.
    repeats = "pruned" if (metrics.get("pruned") or {}).get("pruned") else "fp32"
    note = (predicted_precision_note({str(metrics["hw"]): str(metrics["hw_precision"])}, int8_repeats=[repeats])
            if metrics.get("hw_precision")
            else f"Predicted latencies are {metrics['hw']}'s for each row's architecture.")
    # the row's "(not pruned)" said nothing of why: compress.prune.ratio=0, a latency target met already, ...
    reason = (metrics.get("pruned") or {}).get("reason") if repeats == "fp32" else None
    # the host column's times of a busy machine say so, as the report's note under its table does
    busy = (metrics.get("host_latency") or {}).get("busy")
    return ("\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows) + f"\nnote: {note}"
            + (f"\npruned: not pruned, as {reason}" if reason else "")
            + (f"\nhost: timed on a busy machine ({busy})" if busy else ""))


def _report_refresh(folder: Path, *, lead: str) -> str:
    """`lead` and the command that refreshes the report of the run `folder` is a member of; '' for a folder outside
    a run (no report to refresh)."""
    run_dir = _run_of(folder)
    return f"{lead}python -m nas.report {shlex.quote(str(run_dir))}" if run_dir is not None else ""


def interrupted_line(checkpoint: str | Path, argv: Sequence[str], *, compressed: bool = False) -> str:
    """What `python -m compress.run <argv>` prints when Ctrl-C or SIGTERM stops it: the folder holds no file of this
    run's compression, and the files of an earlier one are as they were (`compress.pipeline.compress_checkpoint`), and
    the command that does the same job, every setting of `argv` repeated (`nas.overrides.shell_command`), not only
    checkpoint=. `compressed`: the compression had written its compressed_metrics.json, and the signal struck after it
    (refreshing the run's report): nothing is to compress again, the report is to refresh."""
    folder = _folder_of(checkpoint)
    if compressed:
        refresh = _report_refresh(folder, lead=", while the run's report was refreshed; to refresh it: ")
        return (f"interrupted after the compression of {folder} finished (its files and compressed_metrics.json are "
                f"written){refresh}")
    return (f"interrupted before the compression of {folder} finished (none of its files was kept; those "
            f"of an earlier compression are as they were); to compress it, rerun: {shell_command('compress.run', argv)}")


def disk_failure_line(checkpoint: str | Path, argv: Sequence[str], failed: OSError, *, compressed: bool = False) -> str:
    """What `python -m compress.run <argv>` says (after "error: ", exit status `DISK_EXIT`) when a write fails under it
    (`failed`: a full disk or quota, a read-only folder, a file over the size limit): the file and the problem, what the
    folder keeps (as after Ctrl-C: none of this compression's files, those of an earlier one as they were), and the
    command that does the job once the disk takes the files. `compressed`: the compression had written its
    compressed_metrics.json, and the write that failed was the run's report's: that is what is left to do."""
    folder = _folder_of(checkpoint)
    problem = disk_failure_text(failed)
    if compressed:
        refresh = _report_refresh(folder, lead="; fix that and refresh it: ")
        return (f"{problem} after the compression of {folder} finished (its files and compressed_metrics.json are "
                f"written), while the run's report was refreshed{refresh}")
    return (f"{problem}: the compression of {folder} stopped (none of its files was kept; those of an earlier "
            f"compression are as they were); fix that (free space, the folder's permissions, the file size limit) and rerun: "
            f"{shell_command('compress.run', argv)}")


def settings_help() -> str:
    """What `python -m compress.run --help` prints under Hydra's list of the settings: conf/compress/default.yaml as
    written, whose comments say what each compress setting means and its unit (Hydra's list gives the values only)."""
    path = CONF_DIR / "compress" / "default.yaml"
    return f"== What the compress settings mean ({path}) ==\n\n{path.read_text().rstrip()}\n"


register_configs()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="compress_run")
def main(cfg: DictConfig) -> None:
    """CLI entry point: errors become one line and exit code 2; a write the disk refused one line naming the file, with
    the command to rerun, and exit code 1 (`DISK_EXIT`); Ctrl-C or SIGTERM one line with the command to rerun, and exit
    code 130 or 143 (the shell's codes for death by each)."""
    onnx_file = _folder_of(cfg.checkpoint) / "model.onnx"
    before = file_stamp(onnx_file)  # exported by the run (a bare model.pt has none), it is one of the files written
    # written last by the compression (an earlier one's is put back as it was if this one stops): stamped anew, it is done
    metrics_file = _folder_of(cfg.checkpoint) / "compressed_metrics.json"
    metrics_before = file_stamp(metrics_file)
    # SIGTERM (a scheduler's time limit, `kill`) killed the process mid-file without a word: now it stops as Ctrl-C does
    stop_on_sigterm()
    try:
        with exit_on_error():
            # the command line's own settings: a data.test_size=0.2 typed there is one the user expects to act
            # hw.efficiency={conv: 0.5} is the value, not merged into the chip file's
            metrics = run_compress(mappings_replaced(cfg), overridden=command_line_keys())
    except KeyboardInterrupt as e:  # Ctrl-C: it ended in a traceback, and the command to finish the job was the user's
        done = file_stamp(metrics_file) not in (None, metrics_before)
        print(interrupted_line(cfg.checkpoint, sys.argv[1:], compressed=done), file=sys.stderr)
        sys.exit(128 + interrupting_signal(e))  # the shell's codes for death by SIGTERM (143) / SIGINT (130)
    except Exception as e:  # noqa: BLE001 - only a write the disk refused becomes one line
        # A full disk or quota, a read-only folder, a file over the size limit: it ended in Hydra's traceback of the
        # OSError (or of the runtime's own exception around it), which read as the toolkit's bug.
        if (failed := disk_failure(e, errnos=WRITE_ERRNOS)) is None:
            raise
        done = file_stamp(metrics_file) not in (None, metrics_before)
        exit_with_error(disk_failure_line(cfg.checkpoint, sys.argv[1:], failed, compressed=done), code=DISK_EXIT)
    print(format_table(metrics))
    print("\n".join(closing_lines(metrics, checkpoint=cfg.checkpoint, exported_onnx=file_stamp(onnx_file) != before)))


if __name__ == "__main__":
    if (problem := unused_overrides(sys.argv[1:])) is not None:  # the overrides composed (checked at the top)
        exit_with_error(problem)
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        with help_on_stdout():
            try:
                main()  # Hydra prints its help and exits
            except SystemExit as e:
                if not e.code:
                    print(settings_help())
                raise
    with closed_stdout_ends_quietly():  # `compress.run ... | head -3`: a quiet end, the compression done all the same
        main()
