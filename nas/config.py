"""Typed Hydra schemas of every config group, registered in the ConfigStore.

`conf/search.yaml` lists `search_schema` first in its defaults, so each group file (`conf/hw/*.yaml`,
`conf/space/*.yaml`, ...) is merged into a typed node: a misspelt key or a value of the wrong type
fails when the config is composed. Values that need more than a type check (ranges, enumerations,
cross-field rules) are checked by `validate_run_config`, which `run_search` calls before any work.
The command line's own checks and quoting are in `nas.overrides`; the one-line messages for a config that does not
compose in `nas.config_messages`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Optional, Sequence, TypeVar

import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf._utils import get_yaml_loader
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from nas.arch import MIN_IMG_SIZE
from nas.errors import ConfigError, module_logger, require_path, wrong_type
from nas.latency.hardware import (FITTED_FIELDS, HardwareProfile, IncompleteCalibration, check_name, check_threads,
                                   config_dir_option, element_size_warning, incomplete_calibration_message,
                                   lone_calibration_message)
from nas.latency.ops import OP_KINDS
from nas.memory import MEMORY_BUDGET_MAX_GB


T = TypeVar("T")


class Precision(str, Enum):
    """Arithmetic of the training step (the model's weights and evaluation stay float32)."""

    auto = "auto"  # bf16 where the CPU computes it natively (AVX512-BF16 / AMX), else fp32
    fp32 = "fp32"
    bf16 = "bf16"  # bfloat16 autocast for forward and backward, float32 master weights


class Sampler(str, Enum):
    """Optuna samplers the search can use."""

    tpe = "tpe"
    nsga2 = "nsga2"
    random = "random"


class DataFormat(str, Enum):
    """On-disk dataset layouts `nas.data` reads."""

    idx = "idx"  # MNIST-style idx(.gz) files, e.g. Fashion-MNIST
    imagefolder = "imagefolder"  # root/<class>/*.png or root/{train,val,test}/<class>/*


class Metric(str, Enum):
    """How predictions on a split are scored: what the search maximises and every accuracy of a run reports."""

    accuracy = "accuracy"  # share of the images predicted right
    # the mean over the classes of each class's share predicted right (its recall), so every class counts the same;
    # training then weights each class's loss by the inverse of its share of the training images
    balanced_accuracy = "balanced_accuracy"


@dataclass
class StageSpace:
    """Allowed values of one stage; the search picks one of each."""

    mixers: list[str] = field(default_factory=lambda: ["identity", "pool", "sepconv", "conv", "attn"])
    depths: list[int] = field(default_factory=lambda: [1, 2])
    widths: list[int] = field(default_factory=lambda: [32])
    kernels: list[int] = field(default_factory=lambda: [3])
    mlp_ratios: list[float] = field(default_factory=lambda: [4.0])
    head_dims: list[int] = field(default_factory=lambda: [16])
    expands: list[int] = field(default_factory=lambda: [2])


@dataclass
class SpaceConfig:
    """A search space over MetaFormer stages (`conf/space/*.yaml`)."""

    name: str = "???"
    stem_kernels: list[int] = field(default_factory=lambda: [3])
    stem_strides: list[int] = field(default_factory=lambda: [2])
    norms: list[str] = field(default_factory=lambda: ["bn"])
    acts: list[str] = field(default_factory=lambda: ["relu"])
    stages: list[StageSpace] = field(default_factory=list)


# Settings that change how fast a candidate trains or is evaluated (or the images load), not what it learns (float
# rounding aside): a study resumes under other values of them, e.g. with two 1-thread workers after one 2-thread process.
# Here, not in nas.study (Optuna), for nas.rebuild, which nas.report imports without it.
SPEED_SETTINGS = {"train": ("channels_last", "threads", "keep_freed_memory", "eval_batch_size"), "data": ("cache_dir",)}


@dataclass
class DataConfig:
    """Where the images are and how they are split and augmented (`conf/data/*.yaml`)."""

    name: str = "???"
    format: DataFormat = DataFormat.idx
    root: str = "???"
    img_size: Optional[int] = None  # resize every image to this side length at load time; None: native size
    channels: Optional[int] = None  # 1 or 3 (grey images repeated into 3 channels); None: 1 if every image is grey, else 3
    # imagefolder: images with transparency (cut-outs, icons) are composited onto this grey level (0 black .. 255
    # white), the background a camera will see behind the object; None: transparency dropped, as torchvision does
    background: Optional[int] = None
    val_size: float = 0.1  # held out of the *training* split for validation: fraction (<1) or count
    test_size: float = 0.2  # imagefolder without a test/ folder: held out as test split: fraction (<1) or count
    split_seed: int = 0  # the val/test split does not move with the search seed
    # Held-out splits take each class's share (rounded), so a small or unbalanced image folder keeps every class in
    # val and test; false: a plain random draw (what every split was before, kept by Fashion-MNIST's balanced data)
    stratify: bool = True
    metric: Metric = Metric.accuracy  # balanced_accuracy for unbalanced classes (see Metric)
    # imagefolder: a folder for the decoded images, read instead of the files while they, img_size and the colour
    # mode are unchanged (runs, resumes and workers then skip decoding); None: decode on every load
    cache_dir: Optional[str] = None
    hflip: bool = True  # horizontal flips are label-preserving for this data
    max_shift: int = 2  # random translation (pixels) during training


@dataclass
class TrainConfig:
    """Proxy-training recipe of each candidate (`conf/train/*.yaml`)."""

    epochs: int = 1  # the proxy ranks candidates; 1 epoch ranks like 2 (experiments/results/proxy_fidelity.md)
    subset: Optional[int] = None  # training images per candidate (a fixed random subset); None: all
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    warmup_frac: float = 0.1  # fraction of the steps with a linear warm-up, then cosine decay
    eval_batch_size: int = 512
    threads: int = 2  # torch intra-op threads
    channels_last: bool = True  # NHWC memory layout while training: faster on CPU, same math
    precision: Precision = Precision.auto  # bf16 autocast: faster on CPUs with native bf16, slightly other math
    keep_freed_memory: bool = True  # glibc malloc keeps freed buffers mapped: no page faults per step (nas.train.keep_freed_memory)
    # Augmentation strength belongs to the recipe, not the data: the proxy and the final training may want
    # different amounts (shifts cost the 2-epoch proxy 3.1 pt, experiments/results/design_probes.md; shifts +
    # erasing cost final training 1.4-1.8 pt at 6-15 epochs, experiments/results/final_recipe_aug.md).
    max_shift: Optional[int] = None  # random translation (pixels); None: the data group's `max_shift`
    erase_prob: float = 0.0  # random erasing (Zhong et al. 2017): share of training images with one rectangle erased


@dataclass
class EarlyStop:
    """Stopping the proxy training of candidates that cannot reach the front (`search.early_stop`).

    After `after_epochs` epochs a candidate's val acc is measured. It is stopped if even the largest
    gain from that point to the end of training seen so far (times `safety`, plus `slack`) would leave it
    below a fully trained trial that is no slower: it could not have joined the front. It is then
    recorded as complete, with the accuracy it had, and counts towards `search.n_trials`.
    """

    enabled: bool = False
    after_epochs: int = 1  # judge each candidate after this many proxy-training epochs (< train.epochs)
    min_reference: int = 3  # fully trained trials needed (with their mid-training val acc) before any stop
    safety: float = 1.5  # multiplies the largest mid-to-final val acc gain seen
    slack: float = 0.01  # added to the allowed gain (accuracy, 0.01 = 1 point)


@dataclass
class SearchOptions:
    """The Optuna study (`conf/search/*.yaml`)."""

    study_name: str = "${space.name}-${hw.name}-${data.name}"
    n_trials: int = 10  # finished trials the study should hold (a rerun only adds the missing ones)
    sampler: Sampler = Sampler.tpe
    n_startup_trials: int = 5  # tpe: random trials before the model is used
    population_size: int = 8  # nsga2: individuals per generation
    seed: int = 0
    latency_budget_ms: Optional[float] = None  # constraint: predicted latency <= budget
    storage: Optional[str] = None  # Optuna storage URL; None: SQLite file in the run folder
    runs_dir: str = "runs"  # run folders live here; workers on several machines need it on a shared path
    worker: int = 0  # index of this process among parallel workers: offsets the sampler seed
    heartbeat_s: int = 30  # a running trial records a heartbeat this often (seconds)
    grace_s: int = 120  # no heartbeat for this long: the worker is lost, its trial is failed and retried
    max_retry: int = 2  # how often a trial whose worker died is re-run with the same architecture
    timeout_s: Optional[float] = None  # stop starting new trials after this many seconds
    # Stop the search once this many trials in a row failed in training (NaN loss, an error): candidates this different
    # failing alike point at the recipe or the data. None: never stop for that.
    max_failures_in_a_row: Optional[int] = 5
    export_onnx: bool = True  # write model.onnx for each Pareto member and check it in onnxruntime
    # GiB the activations of one forward pass or training step may take (nas.memory); None: 70% of the memory available
    # when the run starts. A candidate whose training batch needs more fails with its reason, evaluation is split.
    memory_budget_gb: Optional[float] = None
    progress: bool = True
    early_stop: EarlyStop = field(default_factory=EarlyStop)
    # Architectures the study evaluates first (a warm start): hand-made family names such as convformer-M
    # (nas/families.py) or paths to arch.json files / checkpoint folders. Used only when the study is new.
    seed_archs: list[str] = field(default_factory=list)


class Members(str, Enum):
    """Which Pareto members a search compresses."""

    all = "all"
    top_k = "top_k"  # the k members with the best validation accuracy
    none = "none"


@dataclass
class PruneConfig:
    """Structured pruning (`compress/prune.py`). The first target set wins: target_latency_ms, then
    target_latency_fraction, then ratio (so a latency target on the command line overrides the default
    ratio); none set: no pruning."""

    ratio: Optional[float] = None  # fraction of the channels of every group to remove, in [0, 0.9]
    target_latency_ms: Optional[float] = None  # prune step by step until predicted latency on hw <= this
    target_latency_fraction: Optional[float] = None  # ... or <= this fraction of the unpruned prediction
    step: float = 0.05  # ratio added per pruning step (latency targets)


@dataclass
class FinetuneConfig:
    """Fine-tuning with knowledge distillation: `loss = alpha * T^2 * KL(teacher || student) + (1 - alpha) * CE`."""

    epochs: int = 1  # QAT: an upper bound (it stops once within tolerance); 0 disables it
    subset: Optional[int] = None  # training images per epoch (fixed random subset); None: all
    batch_size: int = 128
    lr: float = 1.0e-3
    weight_decay: float = 0.05
    alpha: float = 0.7
    temperature: float = 2.0
    warmup_frac: float = 0.05
    channels_last: bool = False  # NHWC memory layout while training: faster on CPU, same math
    # auto: bf16 autocast (and a bf16 teacher) where the CPU computes it natively, as the search trains; QAT: fp32 only
    precision: Precision = Precision.fp32


@dataclass
class QuantizeConfig:
    """int8 post-training quantization (NNCF), then QAT only if the accuracy drop is too large."""

    calibration_size: int = 300  # training images the quantization ranges are estimated from
    max_acc_drop: float = 0.3  # validation accuracy points int8 may lose against fp32 before QAT runs
    qat: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(epochs=2, subset=10000, lr=1.0e-5, warmup_frac=0.0))


@dataclass
class CompressConfig:
    """What happens to the winners after the search (`conf/compress/*.yaml`, `python -m compress.run`)."""

    members: Members = Members.all
    top_k: int = 3
    prune: PruneConfig = field(default_factory=PruneConfig)
    # Recovery trains like the search (experiments/results/recover_speed.md); QAT keeps fp32 fake-quantization.
    recover: FinetuneConfig = field(default_factory=lambda: FinetuneConfig(channels_last=True, precision=Precision.auto))
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    measure_latency: bool = True  # time torch fp32, OpenVINO fp32 and OpenVINO int8 on this host (batch 1)
    latency_threads: int = 1  # 1: reproducible on shared machines (experiments/results/design_probes.md)
    keep_freed_memory: bool = True  # as train.keep_freed_memory, for recovery and QAT (`python -m compress.run` too)
    seed: int = 0
    # Images of the val and of the test split each that the models and files are scored on (a fixed random subset, by
    # `seed`); None: all. Scoring, not training, takes most of a small compression (8 passes over test, 6 over val).
    eval_images: Optional[int] = None


ACC_DROP_MAX = 100.0
"""The largest compress.quantize.max_acc_drop, in accuracy points: 100 accepts any drop, so QAT never runs."""


COMPRESS_FIELD_UNITS: dict[str, tuple[str, str]] = {
    "top_k": ("> 0 of the Pareto members", "3"),
    "prune.ratio": ("in [0, 0.9], the fraction of the channels removed per group (null: no ratio)", "25% is 0.25"),
    "prune.target_latency_ms": ("> 0, in milliseconds of the chip's predicted latency (null: no target)", "0.5 ms is 0.5"),
    "prune.target_latency_fraction": ("in (0, 1], of the unpruned model's predicted latency (null: no target)",
                                      "50% is 0.5"),
    "prune.step": ("in (0, 0.9], the ratio added per pruning step", "5% is 0.05"),
    "quantize.calibration_size": ("> 0 of training images", "300"),
    "quantize.max_acc_drop": (f"in [0, {ACC_DROP_MAX:g}], in accuracy points", "0.3 pt is 0.3"),
    "latency_threads": ("> 0 of threads", "1"),
    "eval_images": ("> 0 of the val and of the test images each (null: all)", "1000"),
}
"""For the numbers of the compress group (keys below `compress.`): what is allowed and in which unit, and an example,
as `validate_compress_config` checks them; for the one-line refusal of a value written with its unit (`25%`) or as a
word, as `FIELD_UNITS` gives a chip's."""


@dataclass
class RunConfig:
    """Everything `run_search` needs; the composed `conf/search.yaml`."""

    hw: HardwareProfile = field(default_factory=HardwareProfile)
    space: SpaceConfig = field(default_factory=SpaceConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    search: SearchOptions = field(default_factory=SearchOptions)
    final_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=0))
    compress: CompressConfig = field(default_factory=CompressConfig)


@dataclass
class CompressRunConfig:
    """`python -m compress.run checkpoint=...`: one checkpoint folder, compressed for a chip."""

    checkpoint: str = "???"
    hw: HardwareProfile = field(default_factory=HardwareProfile)
    data: DataConfig = field(default_factory=DataConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore (idempotent)."""
    ConfigStore.instance().store(name="search_schema", node=schema_node(RunConfig))
    ConfigStore.instance().store(name="compress_schema", node=schema_node(CompressRunConfig))


def schema_node(cls: type) -> DictConfig:
    """The config dataclass `cls` as the node to register with Hydra's ConfigStore: its mapping-valued fields
    (`hw.calibration`, `hw.measured_extent`, `hw.efficiency`, ...) take new keys from a plain override. Hydra closes
    every mapping of a composed config, so `hw.measured_extent={macs: [1, 2]}` or `hw.calibration.conv.fixed=2.0` on a
    chip without that entry failed with its "Key ... is not in struct"; a misspelt key there is refused by the value's
    own check (`HardwareProfile.validate`), naming what is allowed. Keys of a dataclass stay closed."""
    node = OmegaConf.structured(cls)
    _open_mappings(node, cls)
    return node


def _open_mappings(node: DictConfig, cls: type) -> None:
    """Clear the struct flag of each mapping-valued field below `node`, the config of dataclass `cls` (its own flag,
    which the root's `set_struct` that Hydra calls does not override)."""
    import typing

    for name, hint in typing.get_type_hints(cls).items():
        args = typing.get_args(hint)
        if type(None) in args:  # Optional[X]: X
            hint = next(a for a in args if a is not type(None))
        child = node._get_node(name)
        if not isinstance(child, DictConfig) or child._is_none() or child._is_missing():
            continue
        if (typing.get_origin(hint) or hint) is dict:
            OmegaConf.set_struct(child, False)
            if (typing.get_origin(typing.get_args(hint)[1]) or typing.get_args(hint)[1]) is dict:
                # A mapping of mappings (hw.calibration) with untyped entries: OmegaConf's merge into a typed entry fails
                # ("Value 'AnyNode' is not a supported primitive type" for any hw.calibration={conv: {...}} given whole
                # on a chip whose file has a conv entry; "Value 3 (int) is incompatible" for a whole number in a new
                # one, which hw.calibration.conv.fixed=3 set alone passed). Their values are checked by the profile's
                # own `validate`, whole numbers taken there as set alone.
                child._metadata.element_type = Any
                child._metadata.ref_type = dict[str, Any]
        elif dataclasses.is_dataclass(hint):
            _open_mappings(child, hint)


def unknown_keys(node: DictConfig, *, prefix: str = "") -> list[tuple[str, type]]:
    """(dotted key, schema) of every key in `node` that its config dataclass does not declare: Hydra lets `+key=`
    and `++key=` add them, and converting to the dataclass would drop them without a word."""
    found = []
    schema = OmegaConf.get_type(node)
    fields = {f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
    for key, value in node.items_ex(resolve=False):
        if fields is not None and key not in fields:
            found.append((f"{prefix}{key}", schema))
        elif isinstance(value, DictConfig):
            found += unknown_keys(value, prefix=f"{prefix}{key}.")
        elif isinstance(value, ListConfig):  # e.g. space.stages: a list of typed nodes
            try:
                items = list(value)
            except OmegaConfBaseException:  # a missing or broken item: converting reports it
                continue
            for i, item in enumerate(items):
                if isinstance(item, DictConfig):
                    found += unknown_keys(item, prefix=f"{prefix}{key}.{i}.")
    return found


def structured(cfg: DictConfig, cls: type[T]) -> T:
    """Convert a composed config to its schema dataclass; OmegaConf errors and keys the schema lacks (added with
    `+key=`) become one-line `ConfigError`s. The overrides `compose_search_config` records (`hydra.overrides.task`)
    are Hydra's record, not a setting: left out."""
    from nas.config_messages import unknown_key_message  # at call time: it imports this module

    if isinstance(cfg, DictConfig) and "hydra" in cfg:
        cfg = copy.deepcopy(cfg)  # the caller's config keeps its record
        with open_dict(cfg):
            del cfg["hydra"]
    unknown = unknown_keys(cfg) if isinstance(cfg, DictConfig) else []
    if unknown:
        raise ConfigError(unknown_key_message(*unknown[0]))
    try:
        obj = OmegaConf.to_object(cfg)
    except ConfigError as e:  # a value a schema refuses (hw.mac_per_s=-1.0): the file it came from, if one did
        raise ConfigError(f"{e}{_source_file_note(cfg, str(e))}") from None
    except MissingMandatoryValue as e:
        key = e.full_key or "a value"
        raise ConfigError(f"{key} is required and has no default; pass {key}=... on the command line") from None
    except OmegaConfBaseException as e:  # its message carries a multi-line context; keep the first line
        prefix = f"{e.full_key}: " if getattr(e, "full_key", None) else ""
        raise ConfigError(prefix + str(e).splitlines()[0]) from None
    if not isinstance(obj, cls):
        raise ConfigError(f"config is not a {cls.__name__}; compose it from the project's conf/ folder")
    if isinstance(getattr(obj, "hw", None), HardwareProfile):
        _refuse_hand_calibration(obj.hw)
    return _with_fitted(obj)


def _refuse_hand_calibration(hw: HardwareProfile) -> None:
    # A calibration term set on the command line for a chip whose file holds no fitted calibration (edge_npu) made the
    # predictor price every other op kind at 0 (a calibrated chip's costs are the fitted terms alone), without a word.
    # Overriding a term of a fitted calibration stays allowed: it is merged into the fitted file's (`load_fitted`).
    if not hw.calibration:
        return
    path = group_file("hw", hw.name)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) if path else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return
    if not isinstance(raw, dict) or raw.get("calibration") or raw.get("fitted"):
        return
    raise ConfigError(lone_calibration_message(hw))


def _source_file_note(cfg: Any, message: str) -> str:
    """' (set in <file>)' for `message` about a group's value (`hw.mac_per_s=-1.0 must be ...`) that the group's file
    (`group_file`: conf/hw/<chip>.yaml, or the user's under --config-dir) holds as composed, not given on the command
    line; '' otherwise. Without it the user was told the key but had to find which of their files said it."""
    match = _MESSAGE_KEY.match(message)
    if match is None or not isinstance(cfg, DictConfig) or match.group(0)[:-1] in command_line_keys():
        return ""
    group, key = match.groups()
    node = cfg.get(group)
    path = group_file(group, str(node.get("name") or "")) if isinstance(node, DictConfig) else None
    if path is None:
        return ""
    composed = OmegaConf.select(node, key)
    composed = OmegaConf.to_container(composed) if isinstance(composed, (DictConfig, ListConfig)) else composed
    return _file_note(path, key, composed)


# The `<group>.<key>` a value's message starts with (`hw.mac_per_s=-1.0 must be ...`, `hw.efficiency has ...`)
_MESSAGE_KEY = re.compile(r"([A-Za-z_]\w*)\.([\w./]+)[=: ]")
_ANY = object()


def _file_note(path: Path, key: str, value: Any = _ANY) -> str:
    """' (set in <path>)' where the YAML file at `path` sets the dotted `key` (to `value`, where given); '' otherwise (a
    default of the schema's, a key set elsewhere, a file that cannot be read)."""
    try:
        found = yaml.load(path.read_text(encoding="utf-8"), Loader=get_yaml_loader())  # 2.0e12 a float, as composed
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return ""
    for part in key.split("."):
        if not isinstance(found, dict) or part not in found:
            return ""
        found = found[part]
    same = found == value or all(isinstance(v, float) and math.isnan(v) for v in (found, value))  # nan != nan
    return f" (set in {path})" if value is _ANY or same else ""


def _with_fitted(obj: T) -> T:
    # A composed `hw=<chip>` whose fitted numbers live in their own file (kept out of the composed nodes): read here,
    # from beside the file `hw=` chose, so that every command's profile is the whole one
    if isinstance(getattr(obj, "hw", None), HardwareProfile) and obj.hw.fitted:
        source = group_file("hw", obj.hw.name)
        return dataclasses.replace(obj, hw=load_fitted(obj.hw, folder=source.resolve().parent if source else None))
    return obj


def _conf_dir() -> Path:
    # An installed (non-editable) copy carries conf/ as nas/conf (pyproject.toml's package-dir); a checkout, or an
    # editable install of one, has conf/ beside nas/.
    here = Path(__file__).resolve().parent
    return here / "conf" if (here / "conf").is_dir() else here.parent / "conf"


CONF_DIR = _conf_dir()  # the project's Hydra config folder (conf/)
CONF_INSTALLED = CONF_DIR.parent == Path(__file__).resolve().parent  # conf/ is the copy inside an installed package
HW_DIR = CONF_DIR / "hw"


def group_folders(group: str) -> list[Path]:
    """The folders `<group>=<name>` is looked up in: in a Hydra run, the <group>/ folder of each folder of its config
    search path in Hydra's order (a user's `--config-dir` among them); otherwise the project's conf/<group>."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        folders = [Path(s.path) / group for s in HydraConfig.get().runtime.config_sources if s.schema == "file"]
        if folders:
            return folders
    return [CONF_DIR / group]


def hw_folders() -> list[Path]:
    """The folders `hw=<name>` is looked up in (`group_folders("hw")`)."""
    return group_folders("hw")


def group_file(group: str, name: str, folders: Sequence[str | Path] | None = None) -> Path | None:
    """The file `<group>=<name>` composes: `<name>.yaml` in the first of `folders` (default `group_folders(group)`) that
    holds one, None when none does. In a Hydra run the file named on its command line (`hw=my_chip`), whatever the
    `name:` key inside says."""
    from hydra.core.hydra_config import HydraConfig

    if folders is None and HydraConfig.initialized():
        name = HydraConfig.get().runtime.choices.get(group) or name
    found = (Path(f) / f"{name}.yaml" for f in (group_folders(group) if folders is None else folders))
    return next((path for path in found if path.is_file()), None)


def name_warning(group: str) -> str | None:
    """One line when, in a Hydra run, the file `<group>=<choice>` composed says another `name:` than its file's stem (a
    copy of edge_npu.yaml as hw/my_chip.yaml that kept `name: edge_npu`, README 'Onboarding a chip' step 1): the run
    then goes by the other name (the default search.study_name, the log, the report, pareto.json, the latency tools'
    default outputs), as if it were `<group>=<that name>`. None otherwise, and outside a Hydra run."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized() or not (choice := HydraConfig.get().runtime.choices.get(group)):
        return None
    path = group_file(group, choice)
    try:
        raw = yaml.safe_load(path.read_text()) if path else None
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(raw, dict) or "name" not in raw or str(raw["name"]) == path.stem:
        return None
    return (f"{group}={choice}: its file {path} says name: {raw['name']}, so the study name, the log, the report and "
            f"pareto.json call it {raw['name']}; set name: {path.stem} in it")


class _GroupFileLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's C parser where PyYAML has it
    """Reads a group file as `OmegaConf.load` does (its YAML 1.1 float resolver, under which 1e-5 and 2.0e12 are
    floats, not the strings yaml.safe_load makes them; no timestamps; a duplicate key refused), but in C."""

    yaml_implicit_resolvers = get_yaml_loader().yaml_implicit_resolvers

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        keys = [k.value for k, _ in node.value if k.tag == yaml.resolver.BaseResolver.DEFAULT_SCALAR_TAG]
        if len(keys) != len(set(keys)):
            raise yaml.constructor.ConstructorError(None, None, "found a duplicate key", node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _is_float_table(value: Any) -> bool:
    """Whether `value` is a plain `dict[str, dict[str, float]]`, floats only: OmegaConf takes such a value as it is (and
    refuses an int or a string in it)."""
    return isinstance(value, dict) and all(
        isinstance(key, str) and isinstance(terms, dict)
        and all(isinstance(term, str) and isinstance(x, float) for term, x in terms.items()) for key, terms in value.items())


def _is_float_rows(value: Any) -> bool:
    """Whether `value` is a plain `list[list[float]]`, floats only (as `_is_float_table`)."""
    return isinstance(value, list) and all(isinstance(row, list) and all(isinstance(x, float) for x in row) for row in value)


# Fields of a group's schema too big to build OmegaConf nodes for (a calibrated hw profile's hundreds of fitted numbers
# made OmegaConf most of the cost of reading it), each with the check that its value is one OmegaConf would take unchanged.
_PLAIN_BLOCKS: dict[type, dict[str, Callable[[Any], bool]]] = {
    HardwareProfile: {"calibration": _is_float_table, "residual": _is_float_rows}}


def _read_group_file_fast(path: Path, cls: type[T]) -> T | None:
    """`_read_group_file_omegaconf(path, cls)`, with the file parsed by libyaml and the plain values of `_PLAIN_BLOCKS`
    set without OmegaConf, the rest through the schema as before; None where the file is not a mapping or such a value
    is not plain."""
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_GroupFileLoader)
    if not isinstance(data, dict):
        return None
    blocks = {key: data[key] for key in _PLAIN_BLOCKS.get(cls, {}) if key in data}
    if not all(_PLAIN_BLOCKS[cls][key](value) for key, value in blocks.items()):
        return None
    rest = {key: value for key, value in data.items() if key not in blocks}
    obj = structured(OmegaConf.merge(OmegaConf.structured(cls), OmegaConf.create(rest)), cls)
    return dataclasses.replace(obj, **blocks) if blocks else obj  # validated again, with the blocks


def _read_group_file_omegaconf(path: Path, cls: type[T]) -> T:
    # Through the schema, as `<group>=` composes it: YAML 1.1's 2.0e12 (a string to yaml.safe_load) becomes a float, and a
    # whole number in a calibration (`conv: {fixed: 3}`) is taken, as `schema_node` takes it on the command line.
    return structured(OmegaConf.merge(schema_node(cls), OmegaConf.load(path)), cls)


def _read_group_file(path: Path, cls: type[T]) -> T:
    try:
        found = _read_group_file_fast(path, cls)
    except Exception:  # noqa: BLE001 - any failure is reported by the OmegaConf path, in its own words
        found = None
    # A file the fast path cannot read, or finds invalid (its checks ran without the blocks first, so the first error
    # may differ), is read again the way `<group>=` composes it: what it returns, or the error it raises, is the answer.
    try:
        found = found if found is not None else _read_group_file_omegaconf(path, cls)
    except ConfigError as e:  # a value the schema refuses (mac_per_s: -1.0): the file it is in, as `<group>=` names it
        match = _MESSAGE_KEY.match(str(e))
        raise ConfigError(f"{e}{_file_note(path, match.group(2)) if match else ''}") from None
    # beside the file itself where `path` is a link to it (a profile linked in from the user's own repository)
    return load_fitted(found, folder=path.resolve().parent) if isinstance(found, HardwareProfile) else found


def fitted_file_name(profile_stem: str) -> str:
    """The name of the file `python -m nas.latency.fit` writes a profile's fitted numbers to, beside `<stem>.yaml`:
    `<stem>.fitted.yml`. Not .yaml: Hydra would offer it as a choice `hw=<stem>.fitted`."""
    return f"{profile_stem}.fitted.yml"


def _other_yaml_suffix(path: Path) -> Path | None:
    """`path` with `.yml` for `.yaml` (or the reverse) where that file exists, else None."""
    other = {".yml": ".yaml", ".yaml": ".yml"}.get(path.suffix.lower())
    twin = path.with_suffix(other) if other else None
    return twin if twin is not None and twin.is_file() else None


def load_fitted(hw: HardwareProfile, *, folder: str | Path | None) -> HardwareProfile:
    """`hw` with the fields its `fitted` file holds (`FITTED_FIELDS`, written by `python -m nas.latency.fit`) read in,
    and `fitted` then ""; `hw` itself where it names none. A relative `fitted` lies in `folder`, that of the profile's
    own file (the linked one, where it is a link). A field that `hw` sets itself (in its file, or on the command line:
    `hw.calibrated_on=...`) takes precedence over the file's, a calibration term by term. Errors are one-line
    `ConfigError`s, naming the file for its own values."""
    if not hw.fitted:
        return hw
    path = Path(hw.fitted)
    if not path.is_absolute():
        if folder is None:
            raise ConfigError(f"hw.fitted={hw.fitted!r}: no file hw/{hw.name}.yaml found to read it beside; give its "
                              "absolute path")
        path = Path(folder) / path
    where = f"hw={hw.name}: its fitted numbers {str(path)!r}"
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_GroupFileLoader)
    except OSError as e:
        # Most often the profile was copied to another folder or machine without the file beside it
        copy = f"copy {path.name} along with the profile, from where it was fitted, or " if isinstance(e, FileNotFoundError) else ""
        # `fitted: acme.fitted.yaml` typed for the acme.fitted.yml a fit wrote (or the reverse): name the file that is there
        if isinstance(e, FileNotFoundError) and (twin := _other_yaml_suffix(path)) is not None:
            # a .yaml beside the profile would be a hw= choice of its own (hw=acme.fitted): the fit's name, .yml, is kept
            copy = (f"{twin} is there: rename it to {path.name}, or " if twin.suffix.lower() == ".yaml" else
                    f"{twin} is there: set `fitted: {twin.name}` in the profile, or ")
        raise ConfigError(f"{where} cannot be read ({e.strerror or e}); {copy}refit with `python -m nas.latency.fit "
                          f"{config_dir_option(hw.name)}hw={hw.name} measurements=[...]` (README, 'Onboarding a chip')") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{where} are not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{where} hold no mapping of {', '.join(FITTED_FIELDS)}")
    if unknown := [key for key in data if key not in FITTED_FIELDS]:
        raise ConfigError(f"{where} have unknown key {unknown[0]!r}; allowed: {', '.join(FITTED_FIELDS)}")
    try:
        fitted = dataclasses.replace(hw.without_calibration(), **data)  # the file's values alone, validated
    except IncompleteCalibration:  # damaged by hand: no fit writes it so
        raise ConfigError(f"{where}: {incomplete_calibration_message(hw, fitted_file=data)}") from None
    except (ConfigError, TypeError) as e:
        raise ConfigError(f"{where}: {str(e).splitlines()[0]}") from None
    # The types the profile's schema gives them inline (where OmegaConf refuses an int among the floats)
    if not isinstance(fitted.calibrated_on, str):
        raise ConfigError(f"{where}: calibrated_on={fitted.calibrated_on!r} must be a string")
    # (the file's own values: the profile makes a whole number in a calibration a float, which a fit never writes)
    if bad := next((key for key, plain in _PLAIN_BLOCKS[HardwareProfile].items() if key in data and not plain(data[key])), None):
        raise ConfigError(f"{where}: {bad} holds a value that is not a float; write numbers as a fit does (3.0, not 3)")
    unset = HardwareProfile(name=hw.name)
    own = {key: getattr(hw, key) for key in FITTED_FIELDS if getattr(hw, key) != getattr(unset, key)}
    if "calibration" in own:
        own["calibration"] = {**fitted.calibration, **{kind: {**fitted.calibration.get(kind, {}), **terms}
                                                       for kind, terms in hw.calibration.items()}}
    return dataclasses.replace(fitted, **own)  # validated again, with the profile's own values


def changed_from_file(group: str, node: SpaceConfig | HardwareProfile, folders: Sequence[str | Path] | None = None) -> list[str]:
    """The keys of `node` (the run's space or hw) whose values differ from its file, `<node.name>.yaml` in `folders`
    (default `group_folders(group)`): set on the command line, so that its name alone no longer says what was searched.
    Empty when none differ or no such file is found (a space or chip of the user's own, named by them)."""
    path = group_file(group, node.name, folders)
    if path is None:
        return []
    try:
        shipped = _read_group_file(path, type(node))
    except (ConfigError, OmegaConfBaseException, OSError, yaml.YAMLError):
        return []
    return [f.name for f in dataclasses.fields(node) if getattr(node, f.name) != getattr(shipped, f.name)]


RECIPE_GROUPS = ("train", "final_train", "compress")  # the groups with a seconds-long `smoke` option (README dry run)
# The compress settings that change no member's accuracy (which members are compressed, the host timing), which
# `smoke_groups` leaves aside as it does the training's speed settings
_COMPRESS_NOT_ACCURACY = ("members", "top_k", "measure_latency", "latency_threads", "keep_freed_memory")


def smoke_groups(run: RunConfig) -> list[str]:
    """The groups of `RECIPE_GROUPS` that `run` took from their `smoke` files, seconds-long settings to try the pipeline
    whose accuracies mean nothing: in a Hydra run those chosen as `<group>=smoke` (other values set beside it too); outside
    one (`run_search` of a composed config, which keeps no choices), those whose values are their smoke file's, the
    settings that change only the training's speed (`SPEED_SETTINGS`) and the compress settings that change no accuracy
    (`_COMPRESS_NOT_ACCURACY`) aside."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        choices = HydraConfig.get().runtime.choices
        return [group for group in RECIPE_GROUPS if choices.get(group) == "smoke"]
    found = []
    for group in RECIPE_GROUPS:
        node = getattr(run, group)
        if smoke_file(group, node) == node:
            found.append(group)
    return found


def smoke_file(group: str, node: Any) -> Any | None:
    """The `smoke` file of `group` (one of `RECIPE_GROUPS`) read as `node`'s type, with `node`'s values of the settings
    that change no accuracy (`SPEED_SETTINGS`, `_COMPRESS_NOT_ACCURACY`), so that it compares with `node` on the others;
    None where the group has none or it does not load (a broken file of the user's)."""
    try:
        path = group_file(group, "smoke")
        if path is None:
            return None
        smoke = _read_group_file(path, type(node))
        if isinstance(node, TrainConfig):  # train and final_train
            # A rebuild from the study takes train from it, with the search's train.threads=1: its report lost the
            # 'Smoke run' line of the search's own (a 1-thread run on smoke settings is as meaningless)
            return dataclasses.replace(smoke, **{key: getattr(node, key) for key in SPEED_SETTINGS["train"]})
        if isinstance(node, CompressConfig):
            # which members, and whether and how the files are timed, change no accuracy: the rebuild line a
            # compress=smoke compress.measure_latency=true folder names (`nas.rebuild`) wrote it as no smoke run
            return dataclasses.replace(smoke, **{key: getattr(node, key) for key in _COMPRESS_NOT_ACCURACY})
        return smoke
    except (ConfigError, OmegaConfBaseException, OSError, yaml.YAMLError):
        return None


def group_presets(group: str, cls: type[T], folders: Sequence[str | Path] | None = None, *,
                  missing: Mapping[str, Any] | None = None) -> dict[str, T]:
    """The files `<group>=<name>` may choose in `folders` (default `group_folders(group)`), read as `cls`, by name in
    sorted order; where two folders hold the same file name, the first one's, as Hydra composes it. A file that does not
    load is left out (this serves hints, not `<group>=`). `missing`: values for the keys a file leaves required
    (`root: ???` of data=imagefolder), so that such a file can be compared on its other settings."""
    paths: dict[str, Path] = {}
    for folder in group_folders(group) if folders is None else folders:
        for path in sorted(Path(folder).glob("*.yaml")):
            paths.setdefault(path.stem, path)
    presets: dict[str, T] = {}
    for stem in sorted(paths):
        try:
            if missing:
                node = OmegaConf.merge(OmegaConf.structured(cls), OmegaConf.load(paths[stem]))
                for key, value in missing.items():
                    if key in node.keys() and OmegaConf.is_missing(node, key):  # `in` is False for a ??? value
                        node[key] = value
                presets[stem] = structured(node, cls)
            else:
                presets[stem] = _read_group_file(paths[stem], cls)
        except (ConfigError, OmegaConfBaseException, OSError, ValueError, yaml.YAMLError):
            continue
    return presets


def hw_profiles(folders: str | Path | Sequence[str | Path] | None = None) -> list[HardwareProfile]:
    """The hardware profiles in `folders` (default: `hw_folders()`), by file name; where two folders hold the same file
    name, the first one's, as Hydra composes it. A file that does not load as a profile is left out (this serves
    hints, such as which profile was calibrated on this host, not `hw=`)."""
    if isinstance(folders, (str, Path)):
        folders = [folders]
    return list(group_presets("hw", HardwareProfile, folders).values())


def hw_help(argv: Sequence[str], *, config_name: str) -> str:
    """The `hw=` choices `--help` of the command of `conf/<config_name>.yaml` lists with what each profile is
    (`nas.latency.measure.hw_choices`, its default marked): the shipped profiles and those of a `--config-dir` in
    `argv` (its `hw/` subfolder, after the shipped one, as Hydra looks them up). Hydra's own help lists the names alone."""
    from nas.latency.measure import hw_choices  # at call time: only --help needs it
    from nas.overrides import split_config_dir  # at call time: it imports this module

    config_dir = split_config_dir(argv)[1]
    folders = [CONF_DIR / "hw"] + ([Path(config_dir) / "hw"] if config_dir else [])
    defaults = (yaml.safe_load((CONF_DIR / f"{config_name}.yaml").read_text()) or {}).get("defaults") or []
    default = next((str(d["hw"]) for d in defaults if isinstance(d, dict) and "hw" in d), "")
    return hw_choices(hw_profiles(folders), default=default)


def load_hw_profile(name_or_path: str | os.PathLike) -> HardwareProfile:
    """The hardware profile `hw=<name>` would use (conf/hw/<name>.yaml), or the one in a .yaml file, for use from
    Python, e.g. `predict_latency(arch, load_hw_profile("edge_npu"))`. Errors are one-line `ConfigError`s (a
    `TypeError` for what is neither a name nor a path); a `bytes_per_element` other than the size of its `precision`'s
    values is a warning (`nas.latency.hardware.element_size_warning`), as in the commands."""
    # at call time: nas.config_messages imports this module
    from nas.config_messages import (NOT_A_LIST, file_wrong_kind_message, not_a_list_message, not_a_number_message,
                                     unknown_key_message, yaml_error_message)

    path = require_path(name_or_path, "name_or_path")
    if path.suffix not in (".yaml", ".yml"):
        found = group_file("hw", path.name)
        if found is None:
            names = sorted({p.stem for folder in hw_folders() for p in folder.glob("*.yaml")})
            # a path given without its suffix ('' and '.' have no name to add one to)
            meant = next((str(f) for f in (Path(f"{path}.yaml"), Path(f"{path}.yml")) if path.name and f.is_file()), None)
            # else the closest shipped name, as the command line's hw=<name> gets (case aside: 'Edge_NPU' is 'edge_npu')
            close = difflib.get_close_matches(path.name.lower(), names, n=1) if not meant and path.name else []
            hint = f" (did you mean {meant or close[0]!r}?)" if meant or close else ""
            raise ConfigError(f"hw profile {str(name_or_path)!r} is unknown{hint}; allowed: {names} or a path to a .yaml file")
        path = found
    elif not path.is_file():
        raise ConfigError(f"hw profile file {str(path)!r} does not exist")
    try:
        hw = _read_group_file(path, HardwareProfile)
    except yaml.YAMLError as e:
        raise ConfigError(yaml_error_message(e)) from None
    except (OmegaConfBaseException, OSError) as e:
        # an item of a list numbered after a dot (hw.residual.0.1), as an override writes it, not OmegaConf's residual[0][1]
        full_key = re.sub(r"\[(\d+)\]", r".\1", str(getattr(e, "full_key", None) or ""))
        if full_key and (NOT_A_LIST.match(str(e)) or isinstance(e, (ConfigKeyError, ConfigAttributeError))):
            # as the command line names them (compose_error_message): a misspelt key with the close and allowed ones
            message = (not_a_list_message(f"hw.{full_key}") if NOT_A_LIST.match(str(e))
                       else unknown_key_message(f"hw.{full_key}", HardwareProfile))
            raise ConfigError(f"hw profile file {str(path)!r} cannot be read: {message}") from None
        if full_key and (number := not_a_number_message(f"hw.{full_key}", str(e), path=path)) is not None:
            raise ConfigError(number) from None  # `mac_per_s: 4 TOPS`: the unit the number goes in
        if full_key and (wrong := file_wrong_kind_message(f"hw.{full_key}", str(e), path)) is not None:
            # `threads: [1]`: what the setting takes, as `hw=<name>` and the command line say it
            raise ConfigError(f"hw profile file {str(path)!r} cannot be read: {wrong}") from None
        key = f"hw.{full_key}: " if full_key else ""
        raise ConfigError(f"hw profile file {str(path)!r} cannot be read: {key}{str(e).splitlines()[0]}") from None
    if (sized := element_size_warning(hw)) is not None:  # as the commands say it, for a profile loaded in Python
        module_logger("nas.config").warning("%s", sized)  # hw.name is its file's stem
    return hw


DATASHEET_FIELDS = ("precision", "bytes_per_element", "mac_per_s", "vector_ops_per_s", "sram_bytes", "dram_bytes_per_s",
                    "launch_overhead_us", "invoke_overhead_us", "efficiency", "fused_kinds", "host_kinds", "channel_multiple")
"""The keys of a hw profile the roofline predictor reads: a file that leaves one out gets the generic NPU's value."""


def datasheet_warning(hw: HardwareProfile, folders: Sequence[str | Path] | None = None) -> str | None:
    """One line when `hw` is uncalibrated and its file (`<name>.yaml` in `folders`, default `hw_folders()`) leaves out
    datasheet numbers (`DATASHEET_FIELDS`, or the efficiency of an op kind it does not fuse): the predictor then uses
    HardwareProfile's defaults (a 4-TOPS NPU; efficiency 1.0, the peak), which a new chip's file usually means to set.
    None when nothing is left out, the profile is calibrated (fitted costs replace them) or no file is found."""
    if hw.calibration:
        return None
    path = group_file("hw", hw.name, folders)
    try:
        raw = yaml.safe_load(path.read_text()) if path else None
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(raw, dict):
        return None
    missing = [key for key in DATASHEET_FIELDS if key not in raw]
    written = raw.get("efficiency") if isinstance(raw.get("efficiency"), dict) else {}
    if "efficiency" not in missing:
        missing += [f"efficiency.{kind}" for kind in sorted(OP_KINDS - set(hw.fused_kinds)) if kind not in written]
    if not missing:
        return None
    return (f"hw={hw.name} ({path}) leaves out {', '.join(missing)}: the predictor uses the generic defaults for them "
            "(an efficiency left out is 1.0, the chip's peak), so its latencies may be optimistic; set them from the "
            "datasheet (README, 'Onboarding a chip')")


def _written_efficiency(hw: HardwareProfile, folders: Sequence[str | Path] | None) -> tuple[Path, dict] | None:
    """The chip file of `hw` (`<name>.yaml` in `folders`, default `hw_folders()`) and the efficiency mapping it writes
    ({} where it writes none); None where no file is found or it cannot be read."""
    if (path := group_file("hw", hw.name, folders)) is None:
        return None
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_GroupFileLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return path, (raw.get("efficiency") if isinstance(raw, dict) and isinstance(raw.get("efficiency"), dict) else {})


def ignored_efficiency_warning(hw: HardwareProfile, folders: Sequence[str | Path] | None = None) -> str | None:
    """One line when `hw` is calibrated and its efficiency differs from its file's (`<name>.yaml` in `folders`, default
    `hw_folders()`): set on the command line (`hw=cpu hw.efficiency.add=0.5`), where the predictor reads no efficiency
    once fitted costs replace the datasheet numbers, so the setting changes no latency. None otherwise, and when no
    file is found."""
    if not hw.calibration:
        return None
    if (found := _written_efficiency(hw, folders)) is None:
        return None
    path, written = found
    changed = [f"hw.efficiency.{kind}={hw.efficiency[kind]}" for kind in sorted(hw.efficiency)
               if hw.efficiency[kind] != written.get(kind)]
    if not changed:
        return None
    return (f"{', '.join(changed)}: hw={hw.name} is calibrated, and its fitted costs replace the efficiencies, so this "
            f"changes no latency; to change its costs, refit (`python -m nas.latency.fit {config_dir_option(hw.name)}"
            f"hw={hw.name} measurements=[...]`, README 'Onboarding a chip')")


def dropped_efficiency_warning(hw: HardwareProfile, folders: Sequence[str | Path] | None = None) -> str | None:
    """One line when `hw` is uncalibrated and lacks an efficiency its file (`<name>.yaml` in `folders`, default
    `hw_folders()`) sets for an op kind it does not fuse: dropped on the command line (`~hw.efficiency.conv`, or a
    whole `hw.efficiency={...}` without it), so the predictor prices that kind at 1.0, the chip's peak, where the file
    priced it lower. None otherwise, and when no file is found. In a Hydra run the file is the one `hw=` chose
    (`group_file`), whatever its `name:` or hw.name says."""
    if hw.calibration:
        return None
    if (found := _written_efficiency(hw, folders)) is None:
        return None
    path, written = found
    dropped = {kind: eff for kind, eff in sorted(written.items()) if kind not in hw.efficiency
               and kind not in hw.fused_kinds and eff != 1.0}
    if not dropped:
        return None
    # the file's option, which a copy that kept the original's `name:` (or hw.name=x) does not say
    return (f"hw.efficiency has no {', '.join(dropped)}, which hw={path.stem}'s file sets "
            f"({', '.join(f'{kind}: {eff}' for kind, eff in dropped.items())}): the predictor prices "
            f"{'it' if len(dropped) == 1 else 'them'} at 1.0, the chip's peak, so the latencies are optimistic; where "
            "that was not meant, set hw.efficiency.<op kind>=<share of peak>")


def compose_search_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The config `python -m nas.search <overrides>` runs with, for `nas.run_search(cfg)` from Python (a notebook, a
    pipeline). A wrong override is a one-line `ConfigError`, as on the command line; overrides that are not a list of
    "key=value" strings (a dict, say) a one-line `TypeError`. The config records `overrides` where a Hydra run keeps
    its command line, under `hydra.overrides.task` (`composed_overrides`): `run_search` takes the keys they set as the
    settings asked for (a copy or merge of the config keeps them; the run's config.yaml leaves them out)."""
    return _compose("search", overrides, example=["hw=edge_npu", "search.n_trials=30"])


def compose_compress_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The config `python -m compress.run <overrides>` runs with, for `compress.run_compress(cfg)` from Python, e.g.
    `compose_compress_config([f"checkpoint={result.run_dir / member['checkpoint']}", "hw=cpu"])`. Errors, and the
    overrides it records for `run_compress`, as `compose_search_config`'s."""
    return _compose("compress_run", overrides, example=["checkpoint=runs/<study>/checkpoints/<arch_id>", "hw=cpu"])


def _compose(config_name: str, overrides: Sequence[str], *, example: list[str]) -> DictConfig:
    """The config `config_name` (conf/<config_name>.yaml) composed with `overrides`, as its command would compose it.
    `example`: overrides of that command, for the error naming overrides of the wrong type."""
    from hydra import compose, initialize_config_dir

    from nas.config_messages import compose_error_message  # at call time: these import this module
    from nas.overrides import (flat_file_hint, number_for_a_switch, number_for_a_switch_in_files, override_syntax_problem,
                               searchpath_folder)

    if isinstance(overrides, str):  # one override given alone would be read character by character
        overrides = [overrides]
    # a dict's keys read as overrides without "=" ("Error parsing override 'hw'"), an int failed as "not iterable"
    if isinstance(overrides, Mapping) or not isinstance(overrides, Sequence):
        if isinstance(overrides, Mapping):
            example = [f"{k}={v}" for k, v in list(overrides.items())[:2]]
        raise wrong_type("overrides", overrides, f'pass a list of "key=value" strings, as on the command line, e.g. {example}')
    for i, override in enumerate(overrides):
        if not isinstance(override, str):
            raise wrong_type(f"overrides[{i}]", override, f'pass a "key=value" string, e.g. "{example[-1]}"')
    for override in overrides:  # a path with `(` or `'`: Hydra's parser error does not say to quote it
        if (problem := override_syntax_problem(override)) is not None:
            raise ConfigError(problem)
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        try:
            # with Hydra's node: its choices and search path name the group files, for `number_for_a_switch_in_files`
            cfg = compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
        except Exception as exc:  # Hydra/OmegaConf composition errors
            # a folder of the user's on Hydra's search path (`hydra.searchpath=[file://myconf]`, what --config-dir adds)
            # is where their group files are: named with the file, not told to pass --config-dir
            config_dir = searchpath_folder(overrides)
            raise ConfigError(compose_error_message(exc, config_dir=config_dir)
                              + flat_file_hint(overrides, config_dir)) from None
    if (problem := number_for_a_switch(cfg, overrides) or number_for_a_switch_in_files(cfg, overrides)) is not None:
        raise ConfigError(problem)
    with_whole_mappings(cfg, overrides)  # `hw.efficiency={conv: 0.5}` is the value, not merged into the chip file's
    # Where Hydra keeps a run's command line (its own `hydra` node, which compose leaves out), so that a Python caller's
    # run warns about settings asked for that do nothing, as the command does; only the overrides, not Hydra's settings.
    with open_dict(cfg):
        del cfg["hydra"]
        cfg.hydra = {"overrides": {"task": list(overrides)}}
    return cfg


def overridden_keys(overrides: Sequence[str]) -> frozenset[str]:
    """The config keys that Hydra command-line overrides set (`key=value`, `+key=value`, `++key=value`; a group choice
    such as `data=fashion_mnist` names its group), e.g. {'data.test_size'} of ['data.test_size=0.2']; a deletion
    (`~key`) sets nothing. In a Hydra run, `HydraConfig.get().overrides.task` holds them: a setting named there is one
    the user meant, even at its default value, which the composed config alone cannot tell apart."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides=list(overrides))
    return frozenset(o.key_or_group for o in parsed if not o.is_delete())


def key_hint(full_key: str) -> Any:
    """The type hint of the setting `full_key` (`hw.efficiency.conv`: float, `hw.calibration`: dict[str, dict[str,
    float]]), looked up from the run configs' schemas down its dotted path (Optional[X] read as X; an item of a list by
    its number); None where the path leaves them."""
    import typing

    hint: Any = None
    for root in (RunConfig, CompressRunConfig):
        hint = typing.get_type_hints(root).get(full_key.split(".", 1)[0])
        if hint is not None:
            break
    for part in full_key.split(".")[1:]:
        if hint is None:
            return None
        args = typing.get_args(hint)
        if type(None) in args:  # Optional[X]: X's fields or items
            hint = next(a for a in args if a is not type(None))
            args = typing.get_args(hint)
        origin = typing.get_origin(hint) or hint
        if dataclasses.is_dataclass(origin):
            try:
                hint = typing.get_type_hints(origin).get(part)
            except (NameError, TypeError):
                return None
        elif origin is dict and len(args) == 2:
            hint = args[1]
        elif origin in (list, tuple) and args and part.isdigit():
            hint = args[0]
        else:
            return None
    return hint


def _whole_mappings(overrides: Sequence[str]) -> list[tuple[int, str, dict]]:
    """(index, key, value) of each override of `overrides` that gives a mapping setting of the schemas (a field typed
    as a dict, `hw.efficiency`, or an entry of one that is a mapping itself, `hw.calibration.conv`) a mapping whole:
    `hw.efficiency={conv: 0.5}`, not a sweep, nor a deletion. Overrides that do not parse are left out."""
    import typing

    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    found = []
    for i, override in enumerate(overrides):
        if "=" not in override or "{" not in override:
            continue
        try:
            parsed = parser.parse_overrides([override])[0]
        except Exception:  # noqa: BLE001 - Hydra says what is wrong with it when it composes
            continue
        if parsed.is_delete() or parsed.is_sweep_override() or not isinstance(parsed.value(), dict):
            continue
        hint = key_hint(parsed.key_or_group)
        if (typing.get_origin(hint) or hint) is dict:
            found.append((i, parsed.key_or_group, parsed.value()))
    return found


def with_whole_mappings(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """`cfg`, composed with `overrides`, with each mapping they give whole (`_whole_mappings`) set to that mapping alone:
    Hydra merges it into the chip file's (`hw=cpu 'hw.efficiency={conv: 0.5}'` kept every other efficiency, and
    `hw.efficiency={}` cleared nothing), where a user writing a whole mapping means it as the value. The overrides after
    it of keys inside it (`hw.efficiency.pwconv=0.3`, `~hw.efficiency.conv`) are applied again, in order, on top. A
    mapping given whole that would not replace the chip's fitted file's (`hw.fitted`): a calibration (merged term by
    term under the command line's) or {} of another field the file sets (read as unset), is a `ConfigError`, as is a
    calibration term set alone to something other than a number."""
    if (problem := _calibration_term_problem(overrides)) is not None:
        raise ConfigError(problem)
    whole = _whole_mappings(overrides)
    fitted = _fitted_fields(cfg) if whole and OmegaConf.select(cfg, "hw.fitted", default="") else set()
    for i, key, value in whole:
        field_name = key.split(".")[1] if key.startswith("hw.") and key.count(".") >= 1 else ""
        # a calibration is merged term by term under the command line's; another field the file sets is replaced by a
        # mapping given whole, but an empty one reads as unset, so the file's stays
        if field_name in fitted and (field_name == "calibration" or not value):
            raise ConfigError(_fitted_whole_message(cfg, key, value, field_name))
        OmegaConf.update(cfg, key, value, merge=False)
        _reapply(cfg, overrides[i + 1:], under=key)
    return cfg


def _reapply(cfg: DictConfig, overrides: Sequence[str], *, under: str) -> None:
    """Apply again, in order, each of `overrides` that sets or deletes a key inside `under` (a mapping just set whole):
    `hw.efficiency={conv: 0.5} hw.efficiency.pwconv=0.3` is {conv: 0.5, pwconv: 0.3}, as Hydra's merge gave it, and a
    misspelt key after it (`hw.efficiency.bogus=0.3`) stays for the checks that name it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for override in overrides:
        if not override.lstrip("~+").startswith(f"{under}."):
            continue
        try:
            parsed = parser.parse_overrides([override])[0]
        except Exception:  # noqa: BLE001 - composed already, so it parses; a sweep's job holds one value
            continue
        if parsed.is_sweep_override():
            continue
        key = parsed.key_or_group
        if parsed.is_delete():
            parent_key, _, leaf = key.rpartition(".")
            parent = OmegaConf.select(cfg, parent_key, default=None)
            if isinstance(parent, DictConfig) and leaf in parent:
                with open_dict(parent):
                    del parent[leaf]
        else:
            OmegaConf.update(cfg, key, parsed.value(), merge=True, force_add=True)


def _calibration_term_problem(overrides: Sequence[str]) -> str | None:
    """The refusal of a calibration term set alone to other than a number (`hw.calibration.conv.fixed=true`, `=null`,
    `=abc`), in the words the schema's float gave it before `hw.calibration`'s entries were untyped; None otherwise."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for override in overrides:
        if not re.match(r"[+]{0,2}hw\.calibration\.[^.=]+\.[^.=]+=", override):
            continue
        try:
            parsed = parser.parse_overrides([override])[0]
        except Exception:  # noqa: BLE001 - Hydra says what is wrong with it when it composes
            continue
        if parsed.is_sweep_override():
            continue
        key, value, typed = parsed.key_or_group, parsed.value(), override.split("=", 1)[1]
        if isinstance(value, bool) or isinstance(value, (list, dict)):
            return f"{key}={typed} is not allowed; allowed: a number"
        if value is None:
            return f"{key}={typed} takes no null; allowed: a number"
        if isinstance(value, str):
            return f"{key}={value!r} (set on the command line) must be a plain number, without units"
    return None


def _fitted_fields(cfg: DictConfig) -> set[str]:
    """The fields of `cfg.hw` that its fitted file (`hw.fitted`) holds, read from beside the file `hw=` chose (its
    calibration always, which every fit writes; every field a fit writes where the file is not found or read)."""
    fitted = Path(str(OmegaConf.select(cfg, "hw.fitted", default="")))
    if not fitted.is_absolute():
        choice = OmegaConf.select(cfg, "hydra.runtime.choices.hw", default=None)
        sources = OmegaConf.select(cfg, "hydra.runtime.config_sources", default=None)
        folders = ([Path(s.path) / "hw" for s in sources if s.schema == "file"] or None) if sources else None
        source = group_file("hw", str(choice or OmegaConf.select(cfg, "hw.name", default="")), folders)
        if source is None:
            return set(FITTED_FIELDS)
        fitted = source.resolve().parent / fitted
    try:
        data = yaml.load(fitted.read_text(encoding="utf-8"), Loader=_GroupFileLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return set(FITTED_FIELDS)  # its own error comes when the profile is built
    return {"calibration"} | (set(data) if isinstance(data, dict) else set())


def _fitted_whole_message(cfg: DictConfig, key: str, value: Any, field_name: str) -> str:
    """The refusal of `key={value}`, a mapping given whole of `hw.<field_name>`, which the chip's fitted file sets."""
    name = str(OmegaConf.select(cfg, "hw.name", default=""))
    how, instead = (("term by term under the command line's, so a mapping given whole would not replace it",
                     "set a term alone (hw.calibration.conv.fixed=3.0)") if field_name == "calibration" else
                    ("taken where the command line gives none, so {} would not clear it", "give its entries"))
    return (f"{key}={_flow(value)}: hw={name}'s {field_name} is read from its fitted file "
            f"({OmegaConf.select(cfg, 'hw.fitted')}), {how}; {instead}, or refit (`python -m nas.latency.fit "
            f"{config_dir_option(name)}hw={name} measurements=[...]`)")


def _flow(value: Any) -> str:
    """`value` (a mapping) in YAML's flow style, as an override writes it: {conv: {fixed: 3}}."""
    return yaml.safe_dump(value, default_flow_style=True, width=math.inf).strip().removesuffix("...").strip()


def composed_overrides(cfg: Any) -> list[str] | None:
    """The overrides `cfg` was composed with, as `compose_search_config` (and `compose_compress_config`) record them
    under `hydra.overrides.task`; None for a config that records none (one a Hydra command hands its function, a
    `RunConfig`)."""
    if not isinstance(cfg, DictConfig):
        return None
    task = OmegaConf.select(cfg, "hydra.overrides.task", default=None)
    return [str(o) for o in task] if isinstance(task, ListConfig) else None


def overridden_or_recorded(cfg: Any, overridden: Collection[str] | None) -> Collection[str]:
    """`overridden` (the keys a caller says were set), or when None the keys of the overrides `cfg` records
    (`composed_overrides`), none if it records none. A str is a one-line `TypeError`: it was matched as a substring."""
    if isinstance(overridden, str):
        raise wrong_type("overridden", overridden, f"pass a collection of config keys, e.g. {{{overridden!r}}} "
                                                   "(nas.config.overridden_keys(overrides) makes it from overrides)")
    if overridden is not None:
        return overridden
    recorded = composed_overrides(cfg)
    return overridden_keys(recorded) if recorded else frozenset()


def command_line_keys() -> frozenset[str]:
    """`overridden_keys` of the running Hydra command's overrides; none outside a Hydra run (an entry point's function
    called with a composed config, as tests and Python callers do), where nothing says what was typed."""
    from hydra.core.hydra_config import HydraConfig

    return overridden_keys(HydraConfig.get().overrides.task) if HydraConfig.initialized() else frozenset()


def to_run_config(cfg: DictConfig | RunConfig) -> RunConfig:
    """Resolve a composed DictConfig into the typed `RunConfig` (and validate it). Anything else (a list of overrides, a
    dict) is a one-line `TypeError` naming `compose_search_config`, which makes the DictConfig."""
    if not isinstance(cfg, (DictConfig, RunConfig)):  # OmegaConf's own "Input cfg is not an OmegaConf config object (list)"
        raise wrong_type("cfg", cfg, "pass the DictConfig that nas.compose_search_config([\"key=value\", ...]) returns "
                                     "(or a RunConfig)")
    run = _with_fitted(cfg) if isinstance(cfg, RunConfig) else structured(cfg, RunConfig)
    checked_naming_file(cfg, check=lambda: validate_run_config(run))
    return run


def to_compress_run_config(cfg: DictConfig | CompressRunConfig) -> CompressRunConfig:
    """`python -m compress.run`'s composed config as the typed `CompressRunConfig`, its chip's profile, compress and data
    groups checked (a value a group's file set named with the file), as the command line's first check runs it
    (`nas.overrides`): a data value was refused only once Hydra ran the command, in a sweep by its own job, and
    without the file that set it. The data a run takes from its checkpoint's search instead, where none is chosen
    (`compress.run`), replaces only the default group's, which passes; it is checked again once merged in."""
    run = cfg if isinstance(cfg, CompressRunConfig) else structured(cfg, CompressRunConfig)

    def check() -> None:
        validate_compress_config(run.compress)
        validate_data_config(run.data)

    checked_naming_file(cfg, check=check)
    return run


def checked_naming_file(cfg: Any, *, check: Callable[[], None]) -> None:
    """Run `check`, the validation of the config composed as `cfg`; a `ConfigError` it raises about a value that a
    group's file set (`lr: 100` in the user's train/mine.yaml) is raised again with ' (set in <file>)', as `structured`
    names the file of a hw profile's value: the range checks of the other groups named only the key."""
    try:
        check()
    except ConfigError as e:
        note = _source_file_note(cfg, str(e)) if isinstance(cfg, DictConfig) else ""
        if not note:
            raise
        raise ConfigError(f"{e}{note}") from None


# Upper bounds of settings that had none: generous, far past any use, so that only a typo (1e12, a value meant for
# another setting) is refused, at once, instead of failing every trial or never finishing.
LR_MAX = 1.0
"""The largest learning rate (train.lr, final_train.lr, compress.recover.lr, compress.quantize.qat.lr). AdamW moves
each weight by about the learning rate per step whatever the gradient's size, and these models' weights are ~0.1 or
smaller: at 1 a step already overshoots them, above it the losses go NaN and every trial fails. The recipes use 1e-5
to 3e-3."""
EPOCHS_MAX = 10_000
"""The most epochs of any training (train, final_train, recovery, QAT); the recipes use 1 to 6."""
BATCH_MAX = 65_536
"""The largest batch_size and eval_batch_size (images per step). One larger than the training images is no error: the
training then takes all of them in one step per epoch (`nas.train.fit`), as a subset larger than the split is the
whole split."""
N_TRIALS_MAX = 1_000_000
"""The most trials a study may be asked to hold (search.n_trials, search.n_startup_trials); a search meant to run
until a time is up sets search.timeout_s instead."""
HEARTBEAT_MAX_S = 3600
"""The longest search.heartbeat_s: Optuna's heartbeat thread waits that long between beats, and past ~9.2e9 s
(`threading.TIMEOUT_MAX`) the wait itself fails."""
GRACE_MAX_S = 86_400
"""The longest search.grace_s (a day): a worker silent for longer is lost; its trial would never be retried."""
TEMPERATURE_MAX = 100.0
"""The highest distillation temperature (compress.recover / compress.quantize.qat.temperature): the loss is scaled by
its square, and at such temperatures the teacher's probabilities are uniform, teaching nothing; the recipes use 2."""
IMG_SIZE_MAX = 1024
"""The largest data.img_size: every image is resized to it and kept decoded in memory, and the search's candidates
are small MetaFormers for an edge chip."""
MAX_RETRY_MAX = 100
"""The most re-runs of a trial whose worker died (search.max_retry): a candidate that kills its worker every time (the
kernel's out-of-memory killer) is re-run this often, each time until search.grace_s declares it lost."""


def _positive(value: Any, name: str, *, allow_none: bool = False, integer: bool = False, most: float | None = None,
              why: str = "") -> None:
    """`ConfigError` unless `value` is a finite number > 0 (a whole one with `integer`; None with `allow_none`) and at
    most `most`, where given; `why` (what the value is, why the bound) is added to the message."""
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if integer:
        ok = ok and float(value).is_integer()
    if ok and most is not None:
        ok = value <= most
    if not ok:
        kind = "an integer" if integer else "a number"
        bound = "> 0" if most is None else f"in [1, {most}]" if integer else f"in (0, {most:g}]"
        raise ConfigError(f"{name}={value!r} must be {kind} {bound}" + (" or null" if allow_none else "")
                          + (f" ({why})" if why else ""))


def _is_int(value: Any) -> bool:
    """Whether `value` is an integer and not a bool (True is an int to Python, but never a count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_count(value: Any, name: str, *, least: int, most: int, why: str) -> None:
    """`ConfigError` unless `value` is an integer in [`least`, `most`]; `why` (what it counts, what `least` means) ends
    the message, worded as `_positive`'s: `rounds=0 must be an integer in [1, 1000] (interleaved timing blocks)`."""
    if not (_is_int(value) and least <= value <= most):
        raise ConfigError(f"{name}={value!r} must be an integer in [{least}, {most}] ({why})")


SEED_MAX = 2**32 - 1
"""The largest seed numpy's and Optuna's samplers accept (they refuse negative seeds too)."""


def check_seed(value: Any, name: str) -> None:
    """Raise `ConfigError` unless `value` is a seed the samplers take: an integer in [0, SEED_MAX]. Checked up front,
    because Optuna refuses others only when the sampler is built, with a traceback, after the run folder exists."""
    if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= SEED_MAX):
        raise ConfigError(f"{name}={value!r} must be an integer in [0, {SEED_MAX}] (the seed range of numpy and Optuna)")


STORAGE_EXAMPLES = "sqlite:///path/study.db or postgresql://user:password@host:5432/dbname"


def validate_storage_url(url: str) -> None:
    """Check that `url` parses as a database URL with a known scheme (no connection is made)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if url.strip().lower() == "none":  # Python's word for no value, a text to YAML and Hydra: theirs is null
        raise ConfigError(f"search.storage={url!r} is not a database URL; allowed: a URL (e.g. {STORAGE_EXAMPLES}) or "
                          "null (not none: the study's SQLite file in the run folder)")
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"search.storage={url!r} is not a database URL; expected e.g. {STORAGE_EXAMPLES}") from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql", "mysql"):
        raise ConfigError(f"search.storage: database {backend!r} is not supported; use sqlite, postgresql or mysql "
                          f"(e.g. {STORAGE_EXAMPLES})")


def _epochs_from_zero(value: Any, name: str, zero: str) -> None:
    """`ConfigError` unless `value` is an integer in [0, EPOCHS_MAX], naming what 0 means (e.g. final_train.epochs=0: no
    final training)."""
    if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= EPOCHS_MAX):
        raise ConfigError(f"{name}={value!r} must be an integer in [0, {EPOCHS_MAX}] (0: {zero})")


_LR_WHY = "AdamW's learning rate: larger steps make the losses NaN"
_BATCH_WHY = "images per step; more than the training images is one step of all of them"


def _validate_train(t: TrainConfig, where: str, *, allow_zero_epochs: bool = False) -> None:
    if allow_zero_epochs:  # the message must not say "> 0" where 0 is allowed
        _epochs_from_zero(t.epochs, f"{where}.epochs", "no final training, the proxy-trained weights are kept")
    else:
        _positive(t.epochs, f"{where}.epochs", integer=True, most=EPOCHS_MAX)
    _positive(t.subset, f"{where}.subset", allow_none=True, integer=True)
    _positive(t.batch_size, f"{where}.batch_size", integer=True, most=BATCH_MAX, why=_BATCH_WHY)
    _positive(t.eval_batch_size, f"{where}.eval_batch_size", integer=True, most=BATCH_MAX, why="images per forward pass")
    _positive(t.lr, f"{where}.lr", most=LR_MAX, why=_LR_WHY)
    check_threads(t.threads, name=f"{where}.threads")
    for name in ("weight_decay", "label_smoothing", "warmup_frac"):
        if not (0 <= getattr(t, name) < 1):
            raise ConfigError(f"{where}.{name}={getattr(t, name)!r} must be in [0, 1)")
    if t.max_shift is not None and (isinstance(t.max_shift, bool) or t.max_shift < 0):
        raise ConfigError(f"{where}.max_shift={t.max_shift!r} must be >= 0 or null (use data.max_shift)")
    if not (0 <= t.erase_prob <= 1):
        raise ConfigError(f"{where}.erase_prob={t.erase_prob!r} must be in [0, 1]")


def validate_run_config(run: RunConfig) -> None:
    """Check value ranges that types cannot express; raise `ConfigError` naming the first bad value."""
    run.hw.validate()
    _validate_train(run.train, "train")
    _validate_train(run.final_train, "final_train", allow_zero_epochs=True)
    s = run.search
    _positive(s.n_trials, "search.n_trials", integer=True, most=N_TRIALS_MAX,
              why="for a search that runs until a time is up, set search.timeout_s")
    # Optuna's NSGA-II refuses fewer than 2; a first generation larger than a study holds would never be bred from
    check_count(s.population_size, "search.population_size", least=2, most=N_TRIALS_MAX,
                why="NSGA-II breeds pairs of parents; a generation holds at most the trials a study does")
    check_seed(s.seed, "search.seed")
    if not str(s.runs_dir).strip():  # '' would put run folders (and every trial's weights) into the current folder
        raise ConfigError(f"search.runs_dir={s.runs_dir!r} is empty; allowed: a folder path (default: runs)")
    if not str(s.study_name).strip():
        raise ConfigError(f"search.study_name={s.study_name!r} is empty; allowed: a name for the run folder and study")
    if not 0 <= s.n_startup_trials <= N_TRIALS_MAX:
        raise ConfigError(f"search.n_startup_trials={s.n_startup_trials!r} must be an integer in [0, {N_TRIALS_MAX}]")
    _positive(s.latency_budget_ms, "search.latency_budget_ms", allow_none=True)
    _positive(s.timeout_s, "search.timeout_s", allow_none=True)
    _positive(s.max_failures_in_a_row, "search.max_failures_in_a_row", allow_none=True, integer=True)
    _positive(s.memory_budget_gb, "search.memory_budget_gb", allow_none=True, most=MEMORY_BUDGET_MAX_GB,
              why="GiB of working memory per step; null: 70% of the memory available at the start")
    if not (isinstance(s.worker, int) and s.worker >= 0):
        raise ConfigError(f"search.worker={s.worker!r} must be an integer >= 0 (index of this worker)")
    _positive(s.heartbeat_s, "search.heartbeat_s", integer=True, most=HEARTBEAT_MAX_S, why="seconds between heartbeats")
    if not s.grace_s > s.heartbeat_s:
        raise ConfigError(f"search.grace_s={s.grace_s!r} must be larger than search.heartbeat_s={s.heartbeat_s!r} "
                          "(a live worker would be declared dead between two heartbeats)")
    if s.grace_s > GRACE_MAX_S:
        raise ConfigError(f"search.grace_s={s.grace_s!r} is too long; allowed: up to {GRACE_MAX_S} seconds (a day): a "
                          "worker silent that long is lost")
    check_count(s.max_retry, "search.max_retry", least=0, most=MAX_RETRY_MAX,
                why="re-runs of a trial whose worker died; 0: none")
    es = s.early_stop
    _positive(es.after_epochs, "search.early_stop.after_epochs", integer=True, most=EPOCHS_MAX)
    # more references than a study's trials: the early stop, enabled, would never stop a candidate
    _positive(es.min_reference, "search.early_stop.min_reference", integer=True, most=N_TRIALS_MAX,
              why="fully trained trials before any candidate is stopped early")
    # Finite: an infinite safety times a gain of 0 seen so far is NaN, which would stop every candidate.
    if not (es.safety >= 1 and math.isfinite(es.safety)):
        raise ConfigError(f"search.early_stop.safety={es.safety!r} must be a finite number >= 1 (it widens the gain seen so far)")
    if not (es.slack >= 0 and math.isfinite(es.slack)):
        raise ConfigError(f"search.early_stop.slack={es.slack!r} must be a finite number >= 0 (accuracy, 0.01 = 1 point)")
    if es.enabled and es.after_epochs >= run.train.epochs:
        raise ConfigError(f"search.early_stop.after_epochs={es.after_epochs} must be < train.epochs={run.train.epochs} "
                          "(a candidate is judged before its training ends)")
    if s.storage is not None:
        validate_storage_url(s.storage)
    if not s.study_name or any(c in s.study_name for c in "/\\") or s.study_name.startswith("."):
        raise ConfigError(f"search.study_name={s.study_name!r} must be a non-empty folder name without '/' or a leading '.'")
    validate_data_config(run.data)
    from nas.space import validate_space  # local import: space imports this module's schemas

    validate_space(run.space)
    validate_compress_config(run.compress)


def _validate_finetune(f: FinetuneConfig, where: str, *, allow_zero_epochs: bool = False) -> None:
    if allow_zero_epochs:
        _epochs_from_zero(f.epochs, f"{where}.epochs", "disabled")
    else:
        _positive(f.epochs, f"{where}.epochs", integer=True, most=EPOCHS_MAX)
    _positive(f.subset, f"{where}.subset", allow_none=True, integer=True)
    _positive(f.batch_size, f"{where}.batch_size", integer=True, most=BATCH_MAX, why=_BATCH_WHY)
    _positive(f.lr, f"{where}.lr", most=LR_MAX, why=_LR_WHY)
    _positive(f.temperature, f"{where}.temperature", most=TEMPERATURE_MAX,
              why="of the distillation; higher makes the teacher's answer uniform")
    if not (0 <= f.alpha <= 1):
        raise ConfigError(f"{where}.alpha={f.alpha!r} must be in [0, 1] (weight of the distillation term)")
    if not (0 <= f.weight_decay < 1):
        raise ConfigError(f"{where}.weight_decay={f.weight_decay!r} must be in [0, 1)")
    if not (0 <= f.warmup_frac < 1):
        raise ConfigError(f"{where}.warmup_frac={f.warmup_frac!r} must be in [0, 1)")


def validate_data_config(d: DataConfig) -> None:
    """Check the data group's values (name, sizes, channels, shifts); `ConfigError` naming the value otherwise."""
    check_name(d.name, name="data.name")
    if isinstance(d.root, str) and not d.root.strip():
        # '' (data.root=$DATA with DATA unset) was read as the current folder: a search run from the repository
        # listed its code folders as classes without images, and idx data looked for Fashion-MNIST in '.'
        raise ConfigError(f"data.root={d.root!r} is empty (an unset shell variable?); allowed: the folder of the "
                          "images (data=imagefolder: root/<class>/*.png) or of the idx files")
    for name in ("val_size", "test_size"):
        # Hydra holds the value as a float: echoed with :g, as typed (93, not 93.0), and with both forms it takes
        size = getattr(d, name)
        if not isinstance(size, (int, float)) or isinstance(size, bool):  # from Python, not through Hydra's schema
            raise ConfigError(f"data.{name}={size!r} is not a number; allowed: a fraction of the images or a whole count")
        if not (math.isfinite(size) and size > 0 and (size < 1 or float(size).is_integer())):  # 1.5 would be cut to 1
            what = ("holds out no images" if math.isfinite(size) and size <= 0
                    else "is neither a fraction (< 1) nor a whole count of images")
            raise ConfigError(f"data.{name}={size:g} {what}; allowed: a fraction of the images (0 < {name} < 1, e.g. "
                              f"0.2) or a whole count of images (>= 1, e.g. 500)")
    # before `_positive`, whose "> 0" would pass 1 to be refused next as below 4: one line with the real bounds
    if isinstance(d.img_size, (int, float)) and not isinstance(d.img_size, bool) and not (
            MIN_IMG_SIZE <= d.img_size <= IMG_SIZE_MAX):
        # too small: every trial of a search fails building its model; too large: the resized images fill the memory
        raise ConfigError(f"data.img_size={d.img_size!r} is too {'small' if d.img_size < MIN_IMG_SIZE else 'large'}; "
                          f"allowed: an integer in [{MIN_IMG_SIZE}, {IMG_SIZE_MAX}], or null (native size)")
    _positive(d.img_size, "data.img_size", allow_none=True, integer=True)
    if d.channels not in (None, 1, 3):
        raise ConfigError(f"data.channels={d.channels!r}; allowed: 1, 3 or null (detect)")
    if d.background is not None and not 0 <= d.background <= 255:
        raise ConfigError(f"data.background={d.background!r}; allowed: a grey level 0 (black) to 255 (white), or null "
                          "(transparency dropped)")
    if d.max_shift < 0:
        raise ConfigError(f"data.max_shift={d.max_shift!r} must be >= 0")
    # -1, "random" to many tools, gave a fixed split like any other seed; seeds of the search's range, as search.seed
    check_seed(d.split_seed, "data.split_seed")
    if isinstance(d.cache_dir, str) and not d.cache_dir.strip():  # as search.runs_dir='': a $CACHE unset, say
        raise ConfigError(f"data.cache_dir={d.cache_dir!r} is empty; allowed: a folder, or null for no cache")
    if isinstance(d.cache_dir, str) and d.cache_dir.strip().lower() == "none":  # YAML's and Hydra's no value is null
        raise ConfigError(f"data.cache_dir={d.cache_dir!r} would be a folder named {d.cache_dir.strip()}; allowed: a folder "
                          f"or null (not none: decode on every load); a folder of that name is written ./{d.cache_dir.strip()}")
    if DataFormat(d.format) == DataFormat.idx:  # image-folder settings that idx files would silently ignore
        if d.background is not None:
            raise ConfigError(f"data.background={d.background!r} applies to image folders (data=imagefolder); "
                              f"{d.name}'s idx images have no transparency: leave it null")
        if d.cache_dir:
            raise ConfigError(f"data.cache_dir={d.cache_dir!r} caches decoded image folders (data=imagefolder); "
                              f"{d.name}'s idx files are read as they are: leave it null")


def validate_compress_config(c: CompressConfig) -> None:
    """Check the compress group's values; raise `ConfigError` naming the first bad one."""
    _positive(c.top_k, "compress.top_k", integer=True)
    check_threads(c.latency_threads, name="compress.latency_threads")
    _positive(c.eval_images, "compress.eval_images", allow_none=True, integer=True)
    check_seed(c.seed, "compress.seed")  # -1 ("random" to many tools) was taken as a fixed seed, as search.seed refuses it
    p = c.prune
    if p.ratio is not None and not (0 <= p.ratio <= 0.9):
        raise ConfigError(f"compress.prune.ratio={p.ratio!r} must be in [0, 0.9] (fraction of channels removed)")
    _positive(p.target_latency_ms, "compress.prune.target_latency_ms", allow_none=True)
    if p.target_latency_fraction is not None and not (0 < p.target_latency_fraction <= 1):
        raise ConfigError(f"compress.prune.target_latency_fraction={p.target_latency_fraction!r} must be in (0, 1]")
    if not (0 < p.step <= 0.9):
        raise ConfigError(f"compress.prune.step={p.step!r} must be in (0, 0.9]")
    _validate_finetune(c.recover, "compress.recover")
    q = c.quantize
    _positive(q.calibration_size, "compress.quantize.calibration_size", integer=True)
    if not (isinstance(q.max_acc_drop, (int, float)) and not isinstance(q.max_acc_drop, bool)
            and 0 <= q.max_acc_drop <= ACC_DROP_MAX):
        raise ConfigError(f"compress.quantize.max_acc_drop={q.max_acc_drop!r} must be a number in [0, {ACC_DROP_MAX:g}] "
                          f"(accuracy points; {ACC_DROP_MAX:g} accepts any drop)")
    _validate_finetune(q.qat, "compress.quantize.qat", allow_zero_epochs=True)
    if Precision(q.qat.precision) != Precision.fp32:  # NNCF's fake quantizers are trained in float32 here, never checked in bf16
        raise ConfigError(f"compress.quantize.qat.precision={Precision(q.qat.precision).value!r} is not supported; allowed: "
                          "'fp32' (quantization-aware training runs in float32)")
