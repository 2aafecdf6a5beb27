"""Search space: `conf/space/*.yaml` -> ArchConfigs sampled from an Optuna trial.

Every parameter is suggested under a fixed name with a fixed choice list, so Optuna's samplers see
a static (conditional) space; parameters that do not apply to the chosen mixer (kernel, head_dim,
expand) are not suggested at all. Every value combination is validated when the space is loaded,
so sampling can never produce an invalid architecture.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, Any, Sequence

from nas.arch import ACTS, KERNEL_MIXERS, MIXERS, NORMS, ArchConfig, StageConfig
from nas.config import SpaceConfig
from nas.errors import ConfigError
from nas.latency import HardwareProfile, predict_latency
from nas.latency.hardware import check_name

if TYPE_CHECKING:  # only the trials' type: validating a space (every latency tool's start) needs no Optuna
    import optuna


def _choose(trial: optuna.trial.BaseTrial, name: str, choices: Sequence[Any]) -> Any:
    # A single allowed value is a constant, not a search dimension: keep it out of the study.
    if len(choices) == 1:
        return choices[0]
    return trial.suggest_categorical(name, list(choices))


# The lists of a stage of the space, each with the field of a stage (`StageConfig`) it offers values of
_STAGE_LISTS = {"mixers": "mixer", "depths": "depth", "widths": "width", "kernels": "kernel", "mlp_ratios": "mlp_ratio",
                "head_dims": "head_dim", "expands": "expand"}


def validate_space(space: SpaceConfig) -> None:
    """Raise `ConfigError` if any combination the space allows is not a valid architecture."""
    check_name(space.name, name="space.name")
    where = f"space {space.name!r}"
    # keys as an override writes them (space.stages.1.widths.1), as every other message of the project does
    if not space.stages:
        raise ConfigError(f"{where}: space.stages is empty; list at least one stage")
    def once(values: Any, key: str) -> None:
        # a value listed twice is drawn twice as often (Optuna samples the list's positions): a typo, not a weight
        seen = [v for i, v in enumerate(values) if v in list(values)[:i]]
        if seen:
            raise ConfigError(f"{where}: {key} has {seen[0]!r} twice; list each value once")

    for key in ("stem_kernels", "stem_strides", "norms", "acts"):
        if not getattr(space, key):
            raise ConfigError(f"{where}: space.{key} is empty; list at least one value")
        once(getattr(space, key), f"space.{key}")
    for norm in space.norms:
        if norm not in NORMS:
            raise ConfigError(f"{where}: space.norms has {norm!r}; allowed: {list(NORMS)}")
    for act in space.acts:
        if act not in ACTS:
            raise ConfigError(f"{where}: space.acts has {act!r}; allowed: {list(ACTS)}")
    for i, st in enumerate(space.stages):
        for key in _STAGE_LISTS:
            if not getattr(st, key):
                raise ConfigError(f"{where}: space.stages.{i}.{key} is empty; list at least one value")
            once(getattr(st, key), f"space.stages.{i}.{key}")
        for m in st.mixers:
            if m not in MIXERS:
                raise ConfigError(f"{where}: space.stages.{i}.mixers has {m!r}; allowed: {list(MIXERS)}")
        for combo in itertools.product(*(enumerate(getattr(st, key)) for key in _STAGE_LISTS)):
            fields = dict(zip(_STAGE_LISTS.values(), (value for _, value in combo)))
            item = dict(zip(_STAGE_LISTS.values(), (f"space.stages.{i}.{key}.{j}" for key, (j, _) in zip(_STAGE_LISTS, combo))))
            try:
                StageConfig(**fields).validate("stage")
            except ConfigError as err:
                # stage.head_dim=16 does not divide width=24: each field named by the item of the space's list it came from
                text = re.sub(r"\b(?:stage\.)?(\w+)=", lambda m: f"{item[m[1]]}=" if m[1] in item else m[0], str(err))
                raise ConfigError(f"{where}: {text}") from None
    for (ki, k), (si, s) in itertools.product(enumerate(space.stem_kernels), enumerate(space.stem_strides)):
        probe = StageConfig(mixer="identity", depth=1, width=8)
        try:
            ArchConfig(stages=(probe,), stem_kernel=k, stem_stride=s)
        except ConfigError as err:  # arch.stem_kernel=2: the item of the space's list
            item = {"stem_kernel": f"space.stem_kernels.{ki}", "stem_stride": f"space.stem_strides.{si}"}
            text = re.sub(r"\barch\.(stem_kernel|stem_stride)=", lambda m: f"{item[m[1]]}=", str(err))
            raise ConfigError(f"{where}: {text}") from None


def sample_arch(
    trial: optuna.trial.BaseTrial,
    space: SpaceConfig,
    *,
    in_chans: int,
    img_size: int,
    num_classes: int,
) -> ArchConfig:
    """Suggest one architecture from `space` (works with `optuna.trial.FixedTrial` too).

    Parameter names: `norm`, `act`, `stem_kernel`, `stem_stride`, and per stage i `s{i}.mixer`,
    `s{i}.depth`, `s{i}.width`, `s{i}.mlp_ratio`, `s{i}.kernel` (pool/sepconv/conv),
    `s{i}.head_dim` (attn), `s{i}.expand` (sepconv). Lists with one value are not suggested.
    """
    stages = []
    for i, st in enumerate(space.stages):
        mixer = _choose(trial, f"s{i}.mixer", st.mixers)
        kwargs: dict[str, Any] = {
            "mixer": mixer,
            "depth": _choose(trial, f"s{i}.depth", st.depths),
            "width": _choose(trial, f"s{i}.width", st.widths),
            "mlp_ratio": float(_choose(trial, f"s{i}.mlp_ratio", st.mlp_ratios)),
        }
        if mixer in KERNEL_MIXERS:
            kwargs["kernel"] = _choose(trial, f"s{i}.kernel", st.kernels)
        if mixer == "attn":
            kwargs["head_dim"] = _choose(trial, f"s{i}.head_dim", st.head_dims)
        if mixer == "sepconv":
            kwargs["expand"] = _choose(trial, f"s{i}.expand", st.expands)
        stages.append(StageConfig(**kwargs))
    return ArchConfig(
        stages=tuple(stages),
        stem_kernel=_choose(trial, "stem_kernel", space.stem_kernels),
        stem_stride=_choose(trial, "stem_stride", space.stem_strides),
        norm=_choose(trial, "norm", space.norms),
        act=_choose(trial, "act", space.acts),
        in_chans=in_chans,
        img_size=img_size,
        num_classes=num_classes,
    )


def arch_params(arch: ArchConfig, space: SpaceConfig) -> dict[str, Any]:
    """The trial parameters under which `sample_arch` suggests `arch` (the inverse of `sample_arch`).

    For `study.enqueue_trial` (a study that starts from known designs) and `FixedTrial`. Raises
    `ConfigError` naming the first value of `arch` that `space` does not offer.
    """
    params: dict[str, Any] = {}

    def put(name: str, value: Any, choices: Sequence[Any]) -> None:
        if value not in choices:
            raise ConfigError(f"{arch.summary()}: {name}={value!r} is not in space {space.name!r}; allowed: {list(choices)}")
        if len(choices) > 1:  # one allowed value is not suggested (see _choose)
            params[name] = next(c for c in choices if c == value)  # the space's own spelling (2 vs 2.0)

    if len(arch.stages) != len(space.stages):
        raise ConfigError(f"{arch.summary()}: {len(arch.stages)} stages; space {space.name!r} has {len(space.stages)}")
    for i, (s, st) in enumerate(zip(arch.stages, space.stages)):
        put(f"s{i}.mixer", s.mixer, st.mixers)
        put(f"s{i}.depth", s.depth, st.depths)
        put(f"s{i}.width", s.width, st.widths)
        put(f"s{i}.mlp_ratio", s.mlp_ratio, st.mlp_ratios)
        if s.mixer in KERNEL_MIXERS:
            put(f"s{i}.kernel", s.kernel, st.kernels)
        if s.mixer == "attn":
            put(f"s{i}.head_dim", s.head_dim, st.head_dims)
        if s.mixer == "sepconv":
            put(f"s{i}.expand", s.expand, st.expands)
    put("stem_kernel", arch.stem_kernel, space.stem_kernels)
    put("stem_stride", arch.stem_stride, space.stem_strides)
    put("norm", arch.norm, space.norms)
    put("act", arch.act, space.acts)
    return params


def fastest_arch(
    space: SpaceConfig, hw: HardwareProfile, *, in_chans: int, img_size: int, num_classes: int
) -> tuple[ArchConfig, float]:
    """The architecture of `space` with the lowest predicted latency on `hw`, and that latency (ms).

    Smallest depth, width, MLP ratio, kernel and expansion and the largest head dim are never slower,
    so only the mixers need a search; with widths fixed, each stage's layers depend on that stage's
    choice alone, so the mixer is picked stage by stage.
    """

    def stage(st: Any, mixer: str) -> StageConfig:
        return StageConfig(mixer=mixer, depth=min(st.depths), width=min(st.widths), kernel=min(st.kernels),
                           mlp_ratio=float(min(st.mlp_ratios)), head_dim=max(st.head_dims), expand=min(st.expands))

    best: tuple[ArchConfig, float] | None = None
    for norm, act, sk, ss in itertools.product(space.norms, space.acts, space.stem_kernels, space.stem_strides):
        common = dict(stem_kernel=sk, stem_stride=ss, norm=norm, act=act, in_chans=in_chans, img_size=img_size, num_classes=num_classes)
        stages = [stage(st, st.mixers[0]) for st in space.stages]
        for i, st in enumerate(space.stages):
            timed = []
            for m in st.mixers:
                trial_stages = stages[:i] + [stage(st, m)] + stages[i + 1 :]
                timed.append((predict_latency(ArchConfig(stages=tuple(trial_stages), **common), hw).total_ms, m))
            stages[i] = stage(st, min(timed)[1])
        arch = ArchConfig(stages=tuple(stages), **common)
        ms = predict_latency(arch, hw).total_ms
        if best is None or ms < best[1]:
            best = (arch, ms)
    assert best is not None
    return best


def leanest_arch(
    space: SpaceConfig, *, in_chans: int, img_size: int, num_classes: int, batch_size: int
) -> tuple[ArchConfig, int]:
    """The architecture of `space` whose training step on `batch_size` images needs the least working memory
    (`nas.memory.activation_bytes`), and those bytes.

    Smallest depth, width, MLP ratio and expansion never need more; the stem stride and the mixers are tried in every
    combination (a few hundred estimates, spec arithmetic only, and no assumption about how the estimate combines the
    stages)."""
    from nas.memory import activation_bytes  # spec arithmetic only

    def stage(st: Any, mixer: str) -> StageConfig:
        return StageConfig(mixer=mixer, depth=min(st.depths), width=min(st.widths), kernel=min(st.kernels),
                           mlp_ratio=float(min(st.mlp_ratios)), head_dim=max(st.head_dims), expand=min(st.expands))

    best: tuple[ArchConfig, int] | None = None
    for stride in space.stem_strides:
        common = dict(stem_kernel=space.stem_kernels[0], stem_stride=stride, norm=space.norms[0], act=space.acts[0],
                      in_chans=in_chans, img_size=img_size, num_classes=num_classes)
        for mixers in itertools.product(*(st.mixers for st in space.stages)):
            arch = ArchConfig(stages=tuple(stage(st, m) for st, m in zip(space.stages, mixers)), **common)
            need = activation_bytes(arch, batch_size=batch_size, training=True)
            if best is None or need < best[1]:
                best = (arch, need)
    assert best is not None
    return best
