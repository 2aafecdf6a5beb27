import optuna
import pytest

from nas.arch import ArchConfig
from nas.config import SpaceConfig, StageSpace
from nas.errors import ConfigError
from nas.space import arch_params, sample_arch, validate_space
from omegaconf import OmegaConf


def _space(**stage_kw) -> SpaceConfig:
    st = dict(mixers=["pool", "sepconv", "attn"], depths=[1, 2], widths=[16, 32], kernels=[3, 5],
              mlp_ratios=[2.0, 4.0], head_dims=[8, 16], expands=[2])
    st.update(stage_kw)
    return SpaceConfig(name="t", stem_kernels=[3], stem_strides=[2], norms=["bn", "ln"], acts=["relu"],
                       stages=[StageSpace(**st), StageSpace(**st)])


def test_fixed_trial_gives_exactly_the_requested_arch():
    params = {"norm": "ln", "s0.mixer": "sepconv", "s0.depth": 2, "s0.width": 32, "s0.mlp_ratio": 4.0, "s0.kernel": 5,
              "s1.mixer": "attn", "s1.depth": 1, "s1.width": 16, "s1.mlp_ratio": 2.0, "s1.head_dim": 8}
    arch = sample_arch(optuna.trial.FixedTrial(params), _space(), in_chans=1, img_size=28, num_classes=10)
    assert arch.norm == "ln" and arch.act == "relu"  # single-value lists are constants
    assert arch.mixers == ("sepconv", "attn")
    assert (arch.stages[0].depth, arch.stages[0].width, arch.stages[0].kernel) == (2, 32, 5)
    assert (arch.stages[1].heads, arch.stages[1].head_dim) == (2, 8)


def test_conditional_params_are_only_suggested_for_their_mixer():
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        trial = study.ask()
        arch = sample_arch(trial, _space(), in_chans=1, img_size=28, num_classes=10)
        for i, stage in enumerate(arch.stages):
            assert (f"s{i}.kernel" in trial.params) == (stage.mixer in ("pool", "sepconv", "conv"))
            assert (f"s{i}.head_dim" in trial.params) == (stage.mixer == "attn")
        study.tell(trial, [0.5, 1.0])


def test_leanest_arch_needs_no_more_training_memory_than_any_sampled_arch(compose_cfg):
    from nas.memory import activation_bytes
    from nas.space import leanest_arch

    space = OmegaConf.to_object(compose_cfg("space=metaformer_s").space)
    arch, need = leanest_arch(space, in_chans=3, img_size=64, num_classes=10, batch_size=64)
    assert need == activation_bytes(arch, batch_size=64, training=True)
    arch_params(arch, space)  # an architecture the space offers
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(300):
        trial = study.ask()
        sampled = sample_arch(trial, space, in_chans=3, img_size=64, num_classes=10)
        assert activation_bytes(sampled, batch_size=64, training=True) >= need
        study.tell(trial, [0.0, 0.0])


@pytest.mark.parametrize("name", ["metaformer_t", "metaformer_s"])
def test_shipped_spaces_only_produce_valid_archs(name, compose_cfg):
    space = OmegaConf.to_object(compose_cfg(f"space={name}").space)
    validate_space(space)
    img = 28 if name == "metaformer_t" else 64
    sampler = optuna.samplers.RandomSampler(seed=1)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    seen = set()
    for _ in range(60):
        trial = study.ask()
        arch = sample_arch(trial, space, in_chans=1 if img == 28 else 3, img_size=img, num_classes=10)
        assert ArchConfig.from_json(arch.to_json()) == arch
        seen.add(arch.mixers)
        study.tell(trial, [0.0, 0.0])
    assert len(seen) > 30  # per-stage mixers really vary: hybrids are reachable


def test_default_space_reaches_conv_early_attention_late_hybrids(compose_cfg):
    space = OmegaConf.to_object(compose_cfg().space)
    assert {"identity", "pool", "sepconv", "conv"} <= set(space.stages[0].mixers)
    for stage in space.stages[1:]:
        assert set(stage.mixers) == {"identity", "pool", "sepconv", "conv", "attn"}


@pytest.mark.parametrize(
    ("change", "fragment"),
    # each value named by its key as an override writes it (it said stages[0].widths, and depth=0 for an item of depths)
    [(dict(mixers=["pool", "mamba"]), "space.stages.0.mixers has 'mamba'"),
     (dict(depths=[1, 0]), "space.stages.0.depths.1=0 must be an integer >= 1"),
     (dict(widths=[16, 24]), "space.stages.0.head_dims.1=16 does not divide space.stages.0.widths.1=24"),
     (dict(kernels=[]), "space.stages.0.kernels is empty"), (dict(kernels=[3, 2]), "space.stages.0.kernels.1=2 must be an odd integer"),
     # listed twice: drawn twice as often
     (dict(mixers=["pool", "attn", "pool"]), "space.stages.0.mixers has 'pool' twice; list each value once"),
     (dict(widths=[16, 32, 32]), "space.stages.0.widths has 32 twice")],
)
def test_invalid_space_is_rejected_at_load(change, fragment):
    with pytest.raises(ConfigError) as err:
        validate_space(_space(**change))
    assert fragment in str(err.value) and "space 't'" in str(err.value)


def test_a_spaces_own_lists_are_named_as_an_override_writes_them():
    # it said stages[0].mixers (a key no override takes) and arch.stem_kernel=2 (a setting of an arch, not the space's)
    import dataclasses

    for change, text in ((dict(stem_kernels=[3, 2]), "space.stem_kernels.1=2 must be an odd integer >= 1"),
                         (dict(stem_strides=[2, 0]), "space.stem_strides.1=0; allowed: [1, 2, 4]"),
                         (dict(norms=["bn", "bn"]), "space.norms has 'bn' twice"), (dict(acts=[]), "space.acts is empty"),
                         (dict(stages=[]), "space.stages is empty")):
        with pytest.raises(ConfigError) as err:
            validate_space(dataclasses.replace(_space(), **change))
        assert str(err.value).startswith(f"space 't': {text}"), err.value


def test_fastest_arch_is_no_slower_than_any_sampled_arch(compose_cfg):
    from nas.latency import predict_latency
    from nas.space import fastest_arch

    cfg = compose_cfg()
    space, hw = OmegaConf.to_object(cfg.space), OmegaConf.to_object(cfg.hw)
    arch, ms = fastest_arch(space, hw, in_chans=1, img_size=28, num_classes=10)
    assert ms == predict_latency(arch, hw).total_ms
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=2))
    for _ in range(300):
        trial = study.ask()
        sampled = sample_arch(trial, space, in_chans=1, img_size=28, num_classes=10)
        assert predict_latency(sampled, hw).total_ms >= ms - 1e-12
        study.tell(trial, [0.0, 0.0])


@pytest.mark.parametrize("name", ["metaformer_t", "metaformer_s"])
def test_arch_params_inverts_sample_arch(name, compose_cfg):
    space = OmegaConf.to_object(compose_cfg(f"space={name}").space)
    shape = dict(in_chans=1, img_size=28) if name == "metaformer_t" else dict(in_chans=3, img_size=64)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(30):
        trial = study.ask()
        arch = sample_arch(trial, space, num_classes=10, **shape)
        assert arch_params(arch, space) == trial.params  # exactly what the sampler suggested, nothing more
        assert sample_arch(optuna.trial.FixedTrial(arch_params(arch, space)), space, num_classes=10, **shape) == arch
        study.tell(trial, [0.0, 0.0])


def test_arch_params_names_the_value_the_space_lacks(compose_cfg):
    space = OmegaConf.to_object(compose_cfg().space)
    from nas.families import family_arch

    with pytest.raises(ConfigError, match=r"s0\.mixer='attn' is not in space 'metaformer_t'; allowed: \['identity'"):
        arch_params(family_arch("vit-S"), space)  # the default space keeps attention out of stage 0
    wide = family_arch("convformer-S").replace(stem_kernel=7)
    with pytest.raises(ConfigError, match=r"stem_kernel=7 is not in space"):
        arch_params(wide, space)


def test_every_family_but_vit_is_in_the_default_space(compose_cfg):
    from nas.families import FAMILIES, SCALES, family_arch, family_names

    space = OmegaConf.to_object(compose_cfg().space)
    assert len(family_names()) == len(FAMILIES) * len(SCALES)
    for name in family_names():
        if name.startswith("vit-"):
            continue
        arch = family_arch(name)
        rebuilt = sample_arch(optuna.trial.FixedTrial(arch_params(arch, space)), space, in_chans=1, img_size=28, num_classes=10)
        assert rebuilt.arch_id == arch.arch_id, name
    with pytest.raises(ConfigError, match="model family 'convformer-XL' is unknown; allowed: "):
        family_arch("convformer-XL")


def test_every_family_but_vit_has_a_4_stage_layout_in_metaformer_s(compose_cfg):
    from nas.families import family_arch, family_names

    space = OmegaConf.to_object(compose_cfg("space=metaformer_s").space)
    shape = dict(in_chans=3, img_size=64, num_classes=5)
    for name in family_names():
        arch = family_arch(name, n_stages=4, **shape)
        assert len(arch.stages) == 4, name
        if name.startswith("vit-"):
            with pytest.raises(ConfigError, match=r"s0\.mixer='attn' is not in space 'metaformer_s'"):
                arch_params(arch, space)
            continue
        rebuilt = sample_arch(optuna.trial.FixedTrial(arch_params(arch, space)), space, **shape)
        assert rebuilt.arch_id == arch.arch_id, name
    assert [s.mixer for s in family_arch("caformer-M", n_stages=4).stages] == ["sepconv", "sepconv", "attn", "attn"]
    with pytest.raises(ConfigError, match=r"model family 'resnet-S' with n_stages=2: the families come in \[3, 4\] stages"):
        family_arch("resnet-S", n_stages=2)


def test_stride1_stem_override_reaches_full_resolution_models(compose_cfg):
    # README: `'space.stem_strides=[1,2]'` lets the search find stride-1-stem models such as the ConvFormer-L of
    # final_recipe_stem1_kd.md, which the default space cannot express.
    import torch

    from nas.families import family_arch
    from nas.model import build_model

    stem1 = family_arch("convformer-L").replace(stem_stride=1)
    with pytest.raises(ConfigError, match=r"stem_stride=1 is not in space 'metaformer_t'"):
        arch_params(stem1, OmegaConf.to_object(compose_cfg().space))
    space = OmegaConf.to_object(compose_cfg("space.stem_strides=[1,2]").space)
    validate_space(space)
    rebuilt = sample_arch(optuna.trial.FixedTrial(arch_params(stem1, space)), space, in_chans=1, img_size=28, num_classes=10)
    assert rebuilt.arch_id == stem1.arch_id and rebuilt.stage_resolutions()[0] == 28
    assert build_model(rebuilt).eval()(torch.rand(2, 1, 28, 28)).shape == (2, 10)
