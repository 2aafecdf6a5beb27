"""Structured pruning (compress/prune.py): every mixer stays runnable, exportable and rebuildable."""

import numpy as np
import pytest
import torch

from compress.prune import MAX_RATIO, plan_pruned_arch, prune, prune_to_arch, shrink_channels
from nas.arch import MIXERS, ArchConfig, StageConfig
from nas.checkpoint import export_onnx, load_checkpoint, onnx_session, save_checkpoint
from nas.errors import ConfigError
from nas.latency import count_params, predict_latency
from nas.latency.hardware import HardwareProfile
from nas.model import build_model


def _arch(mixer: str, norm: str = "bn", act: str = "relu") -> ArchConfig:
    return ArchConfig(
        stages=(StageConfig(mixer=mixer, depth=1, width=32, kernel=5, head_dim=8),
                StageConfig(mixer=mixer, depth=2, width=64, head_dim=16, mlp_ratio=2)),
        norm=norm, act=act,
    )


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("mixer", MIXERS)
@pytest.mark.parametrize(("norm", "act"), [("bn", "relu"), ("ln", "gelu")])
def test_pruning_every_mixer_keeps_the_model_runnable_exportable_and_rebuildable(mixer, norm, act, tmp_path):
    torch.manual_seed(0)
    arch = _arch(mixer, norm, act)
    model = build_model(arch).eval()
    target = plan_pruned_arch(arch, 0.5, multiple=8)
    pruned = prune_to_arch(model, arch, target)
    assert [s.width for s in target.stages] == [16, 32]
    assert _n_params(pruned) == count_params(target) < count_params(arch)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        out = pruned(x)
    assert out.shape == (3, 10) and torch.isfinite(out).all()  # the classifier keeps its 10 outputs
    # Rebuilt from the spec alone (as any consumer of the checkpoint would) -> same function.
    save_checkpoint(tmp_path / "model.pt", pruned, target)
    rebuilt = load_checkpoint(tmp_path / "model.pt")
    assert rebuilt.arch.arch_id == target.arch_id
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), out)
    onnx_out = onnx_session(export_onnx(rebuilt, tmp_path / "m.onnx", in_chans=1, img_size=28)).run(None, {"pixels": x.numpy()})[0]
    np.testing.assert_allclose(onnx_out, out.numpy(), rtol=1e-4, atol=1e-4)


def test_attention_loses_whole_heads_and_the_spec_records_them():
    arch = _arch("attn", "ln", "gelu")
    target = plan_pruned_arch(arch, 0.5, multiple=8)
    assert [s.heads for s in arch.stages] == [4, 4] and [s.heads for s in target.stages] == [2, 2]
    pruned = prune_to_arch(build_model(arch).eval(), arch, target)
    attn = pruned.stages[1].blocks[0].token_mixer
    assert attn.num_heads == 2 and attn.qkv.out_channels == 3 * 2 * 16 and attn.proj.in_channels == 32
    assert ArchConfig.from_json(target.to_json()).arch_id == target.arch_id


def test_pruning_by_ratio_zero_takes_no_step_and_keeps_the_model():
    arch = _arch("attn", "ln", "gelu")
    model = build_model(arch).eval()
    hw = HardwareProfile(name="t", precision="fp32", bytes_per_element=4, mac_per_s=1e10, vector_ops_per_s=1e10,
                         sram_bytes=1 << 20, dram_bytes_per_s=1e10, launch_overhead_us=1.0, invoke_overhead_us=5.0)
    result = prune(model, arch, hw=hw, ratio=0.0)
    assert result.steps == 0 and result.arch == arch and result.model is model


def test_attention_heads_that_no_longer_fill_the_width_survive_the_checkpoint(tmp_path):
    # 48 channels of 3 heads of 16, pruned by a quarter on a chip of 8-channel multiples: width 40, 2 whole heads.
    arch = ArchConfig(stages=(StageConfig(mixer="sepconv", depth=1, width=16),
                              StageConfig(mixer="attn", depth=1, width=48, head_dim=16)))
    target = plan_pruned_arch(arch, 0.25, multiple=8)
    assert (target.stages[1].width, target.stages[1].heads) == (40, 2)
    save_checkpoint(tmp_path / "model_pruned.pt", prune_to_arch(build_model(arch).eval(), arch, target), target)
    assert load_checkpoint(tmp_path / "model_pruned.pt").arch == target  # it failed: "head_dim=16 does not divide width=40"


def test_magnitude_importance_removes_the_dead_channels_and_heads_exactly():
    # Zero half the MLP hidden units and one attention head: they contribute nothing, the pruner must
    # pick exactly those (lowest magnitude), so the pruned model computes the same function.
    arch = ArchConfig(stages=(StageConfig(mixer="attn", depth=1, width=32, head_dim=16, mlp_ratio=2),), norm="ln")
    torch.manual_seed(0)
    model = build_model(arch).eval()
    block = model.stages[0].blocks[0]
    dead = torch.arange(0, 64, 2)
    with torch.no_grad():
        block.mlp.fc1.weight[dead] = 0
        block.mlp.fc1.bias[dead] = 0
        block.mlp.fc2.weight[:, dead] = 0
        attn = block.token_mixer
        for t in range(3):  # head 1 of 2: q, k and v rows, and its proj columns
            attn.qkv.weight[t * 32 + 16 : t * 32 + 32] = 0
        attn.proj.weight[:, 16:32] = 0
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        before = model(x)
    stage = arch.stages[0]
    target = arch.replace(stages=(StageConfig(mixer="attn", depth=1, width=32, head_dim=16, mlp_ratio=1.0, num_heads=1),))
    assert target.stages[0].mlp_hidden == stage.mlp_hidden // 2
    pruned = prune_to_arch(model, arch, target)
    with torch.no_grad():
        torch.testing.assert_close(pruned(x), before, rtol=1e-5, atol=1e-5)


def test_channel_counts_round_to_the_chip_multiple_and_never_grow():
    assert shrink_channels(64, 0.25, multiple=16) == 48
    assert shrink_channels(64, 0.0, multiple=16) == 64
    assert shrink_channels(40, 0.05, multiple=16) == 32  # nearest multiple not above the original
    assert shrink_channels(64, 0.9, multiple=16) == 16  # never below one multiple
    assert shrink_channels(12, 0.5, multiple=16) == 12  # already below one multiple: left alone
    arch = ArchConfig(stages=(StageConfig(mixer="sepconv", depth=1, width=96, mlp_ratio=3, expand=2),))
    for ratio in (0.1, 0.3, 0.5, 0.7, MAX_RATIO):
        s = plan_pruned_arch(arch, ratio, multiple=16).stages[0]
        assert s.width % 16 == 0 and s.mlp_hidden % 16 == 0 and s.sepconv_hidden % 16 == 0
        assert s.width <= 96 and s.mlp_hidden <= 288


def _hw(**changes) -> HardwareProfile:
    base = dict(name="t", precision="fp32", bytes_per_element=4, mac_per_s=1e10, vector_ops_per_s=1e10, sram_bytes=1 << 20,
                dram_bytes_per_s=1e10, launch_overhead_us=1.0, invoke_overhead_us=5.0, channel_multiple=8)
    return HardwareProfile(**{**base, **changes})


def test_latency_target_pruning_meets_the_target_on_the_predictor():
    arch = ArchConfig(stages=(StageConfig(mixer="sepconv", depth=1, width=32, kernel=5),
                              StageConfig(mixer="conv", depth=2, width=64),
                              StageConfig(mixer="attn", depth=1, width=96, head_dim=16)))
    hw = _hw()
    torch.manual_seed(0)
    model = build_model(arch).eval()
    before = predict_latency(arch, hw).total_ms
    result = prune(model, arch, hw=hw, target_latency_ms=0.5 * before, step=0.05)
    assert result.target_met and result.steps >= 1
    assert result.latency_ms <= 0.5 * before
    assert result.latency_ms == pytest.approx(predict_latency(result.arch, hw).total_ms)
    assert _n_params(result.model) == count_params(result.arch)
    # Stops at the first step that meets it: one step less would not have.
    previous = plan_pruned_arch(arch, round(result.ratio - 0.05, 6), multiple=8)
    assert predict_latency(previous, hw).total_ms > 0.5 * before
    assert result.model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_unreachable_latency_target_is_refused_before_touching_the_model():
    arch = _arch("conv")
    model = build_model(arch).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    hw = _hw(invoke_overhead_us=500.0)  # a fixed cost pruning cannot remove
    with pytest.raises(ConfigError, match=r"target_latency_ms=0.1 cannot be met .* 90% of its channels pruned"):
        prune(model, arch, hw=hw, target_latency_ms=0.1)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_a_latency_floor_the_caller_worked_out_is_not_worked_out_again(monkeypatch):
    # compress.run checked a latency target against the lowest latency pruning reaches, the compression checked it
    # again, and so did its pruning: three predictions of one number. Given, it is used as it is.
    import compress.prune

    arch = _arch("conv")
    hw = _hw(invoke_overhead_us=500.0)
    floor_ms = compress.prune.latency_floor_ms(arch, hw=hw)
    assert floor_ms == predict_latency(plan_pruned_arch(arch, MAX_RATIO, multiple=8), hw).total_ms
    monkeypatch.setattr(compress.prune, "latency_floor_ms", lambda *a, **k: pytest.fail("worked out again"))
    with pytest.raises(ConfigError, match=rf"still at {floor_ms:.3f} ms with 90% of its channels pruned"):
        prune(build_model(arch).eval(), arch, hw=hw, target_latency_ms=0.1, floor_ms=floor_ms)
    before = predict_latency(arch, hw).total_ms
    result = prune(build_model(arch).eval(), arch, hw=hw, target_latency_ms=0.99 * before, floor_ms=floor_ms)
    assert result.target_met and result.steps >= 1


def test_bad_prune_arguments_name_the_value():
    arch = _arch("pool")
    with pytest.raises(ConfigError, match=r"ratio=1.5 must be a number in \[0, 0.9\]"):
        plan_pruned_arch(arch, 1.5)
    with pytest.raises(ConfigError, match="exactly one of ratio or target_latency_ms"):
        prune(build_model(arch), arch, hw=_hw())
    with pytest.raises(ConfigError, match="does not have the stages"):
        prune_to_arch(build_model(arch), arch, _arch("conv"))


def test_each_prune_step_says_whether_it_met_the_target_with_the_decimals_that_show_it(caplog):
    # A step predicted 0.3004 ms was logged "0.300 ms predicted (target 0.300)" and another step followed.
    import logging

    from compress.prune import _distinct_ms

    assert _distinct_ms(0.30042, 0.3) == ("0.3004", "0.3000")
    assert _distinct_ms(0.31, 0.3) == ("0.310", "0.300")
    arch = ArchConfig(stages=(StageConfig(mixer="sepconv", depth=1, width=32, kernel=5),
                              StageConfig(mixer="conv", depth=2, width=64)))
    hw = _hw()
    first = predict_latency(plan_pruned_arch(arch, 0.05, multiple=8), hw).total_ms  # what the first step reaches
    torch.manual_seed(0)
    with caplog.at_level(logging.INFO, logger="compress.prune"):
        result = prune(build_model(arch).eval(), arch, hw=hw, target_latency_ms=first - 1e-4, step=0.05)
    steps = [r.getMessage() for r in caplog.records if r.name == "compress.prune" and "prune step" in r.getMessage()]
    assert result.steps == len(steps) >= 2
    shown, target = _distinct_ms(first, first - 1e-4)
    assert steps[0] == f"prune step 1: ratio 0.05 -> {shown} ms predicted (target {target}: not met yet)" and shown != target
    assert steps[-1].endswith(": met)")
