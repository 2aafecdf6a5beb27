import numpy as np
import pytest
import torch

from nas.arch import MIXERS, ArchConfig, StageConfig
from nas.checkpoint import export_onnx, onnx_session
from nas.model import build_model


def _single_mixer_arch(mixer: str, norm: str = "bn", act: str = "relu") -> ArchConfig:
    # Two stages so the mixer runs both before and after a downsampling conv.
    return ArchConfig(
        stages=(StageConfig(mixer=mixer, depth=1, width=16, kernel=5, head_dim=8),
                StageConfig(mixer=mixer, depth=2, width=32, kernel=3, head_dim=16, mlp_ratio=2)),
        norm=norm, act=act,
    )


@pytest.mark.parametrize("mixer", MIXERS)
@pytest.mark.parametrize(("norm", "act"), [("bn", "relu"), ("ln", "gelu")])
def test_every_mixer_runs_forward_and_backward(mixer, norm, act):
    torch.manual_seed(0)
    model = build_model(_single_mixer_arch(mixer, norm, act))
    x = torch.rand(4, 1, 28, 28)
    out = model(x)
    assert out.shape == (4, 10)
    out.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("mixer", MIXERS)
def test_onnx_export_matches_torch_in_onnxruntime(mixer, tmp_path):
    torch.manual_seed(0)
    norm = "ln" if mixer in ("attn", "pool") else "bn"  # cover both norms across the mixers
    model = build_model(_single_mixer_arch(mixer, norm=norm, act="gelu")).eval()
    model.set_normalization([0.3], [0.35])
    path = export_onnx(model, tmp_path / "m.onnx", in_chans=1, img_size=28)
    x = torch.rand(5, 1, 28, 28)  # batch 5 != export batch 1: the batch axis is dynamic
    onnx_out = onnx_session(path).run(None, {"pixels": x.numpy()})[0]
    with torch.no_grad():
        torch_out = model(x).numpy()
    np.testing.assert_allclose(onnx_out, torch_out, rtol=1e-4, atol=1e-4)


def test_normalization_lives_inside_the_model():
    model = build_model(_single_mixer_arch("conv")).eval()
    x = torch.rand(2, 1, 28, 28)
    before = model(x)
    model.set_normalization([0.1], [0.2])
    assert not torch.allclose(before, model(x))
    assert "pixel_mean" in model.state_dict() and "pixel_std" in model.state_dict()


def test_attention_head_dim_is_read_from_weights_after_pruning():
    # Simulate a pruner removing one of two heads: shrink qkv/proj and update num_heads only.
    model = build_model(ArchConfig(stages=(StageConfig(mixer="attn", depth=1, width=32, head_dim=16),)))
    attn = model.stages[0].blocks[0].token_mixer
    assert attn.num_heads == 2
    keep = torch.cat([torch.arange(0, 16) + 32 * i for i in range(3)])  # q, k, v of head 0
    attn.qkv = torch.nn.Conv2d(32, 48, 1, bias=False)
    attn.qkv.weight.data = torch.randn(96, 32, 1, 1)[keep]
    attn.proj = torch.nn.Conv2d(16, 32, 1)
    attn.num_heads = 1
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("channels_last", [False, True])
def test_attention_runs_torchs_fused_cpu_kernel_on_either_layout_with_the_same_result(channels_last):
    # NCHW input (evaluation, export, BatchNorm models) left the head dim strided, and torch's CPU attention took its
    # math path, which stores batch x heads x N x N maps; the fused kernel stores none.
    from nas.mixers import Attention

    torch.manual_seed(0)
    mixer = Attention(32, head_dim=8)
    x = torch.randn(2, 32, 5, 6)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    mixer, xin = mixer.to(memory_format=fmt), x.contiguous(memory_format=fmt).requires_grad_()
    with torch.profiler.profile() as prof:
        out = mixer(xin)
        out.sum().backward()
    names = {e.key for e in prof.key_averages()}
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in names, sorted(names)
    assert "aten::_scaled_dot_product_attention_math" not in names
    # the attention itself, written out: 4 heads of 8 over the 30 tokens
    q, k, v = mixer.qkv(x).reshape(2, 3, 4, 8, 30).permute(1, 0, 2, 4, 3)
    ref = ((q @ k.transpose(-1, -2)) / 8 ** 0.5).softmax(-1) @ v
    torch.testing.assert_close(out, mixer.proj(ref.transpose(-1, -2).reshape(2, 32, 5, 6)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kernel", [3, 5, 7])
@pytest.mark.parametrize("size", [(1, 1), (2, 2), (7, 7), (4, 6)])
def test_box_mean_is_avgpool_without_padding_in_the_count(kernel, size):
    from nas.mixers import box_mean

    x = torch.randn(2, 5, *size)
    ref = torch.nn.AvgPool2d(kernel, stride=1, padding=kernel // 2, count_include_pad=False)(x)
    torch.testing.assert_close(box_mean(x, kernel), ref, rtol=1e-6, atol=1e-6)


def test_pooling_in_bf16_takes_the_box_route_with_avgpool_values_and_gradients():
    from nas.mixers import Pooling

    torch.manual_seed(0)
    x = torch.randn(4, 8, 7, 7)
    fast, slow = Pooling(8, kernel=5), Pooling(8, kernel=5, box_in_bf16=False)
    calls = []
    fast.pool.register_forward_hook(lambda *_: calls.append("avgpool"))
    grads = []
    for mixer in (fast, slow):
        xb = x.bfloat16().contiguous(memory_format=torch.channels_last).requires_grad_()
        out = mixer(xb)
        (out.float() * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append((out.float(), xb.grad.float()))
    assert calls == []  # bf16 never reached the AvgPool2d
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=0.02, atol=0.02)  # bf16 rounding only
    fast(x)
    assert calls == ["avgpool"]  # float32 (eval, export, QAT) keeps the AvgPool2d


def test_pooling_box_route_follows_the_input_width_after_pruning():
    from nas.mixers import Pooling

    mixer = Pooling(16, kernel=3)
    x = torch.randn(2, 12, 5, 5)  # 4 channels pruned away: nothing in the module knows the width
    torch.testing.assert_close(mixer(x.bfloat16()).float(), mixer(x), rtol=0.02, atol=0.03)


def test_attention_under_bf16_autocast_runs_its_sdpa_in_float32(monkeypatch):
    import nas.mixers
    from nas.mixers import Attention

    real = torch.nn.functional.scaled_dot_product_attention
    dtypes = []
    monkeypatch.setattr(nas.mixers.F, "scaled_dot_product_attention", lambda q, k, v: dtypes.append(q.dtype) or real(q, k, v))
    torch.manual_seed(0)
    fast = Attention(32, head_dim=8)
    slow = Attention(32, head_dim=8, sdpa_in_fp32=False)
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(4, 32, 5, 5)
    outs = []
    for mixer in (fast, slow):
        xb = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = mixer(xb)
        assert out.dtype == torch.bfloat16  # the projections still run in bf16
        (out.float() * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outs.append((out.float(), xb.grad, mixer.qkv.weight.grad))
    assert dtypes == [torch.float32, torch.bfloat16]
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=0.05, atol=0.05)  # bf16 rounding only
    fast(x)
    assert dtypes[-1] == torch.float32  # float32 (eval, export, QAT): as before


def test_channels_last_training_hands_the_head_norm_a_channels_last_gradient_with_the_same_values():
    # The global mean's gradient is a plain NCHW tensor; BatchNorm's backward on channels-last input took a slow path
    # with it. The values must not change: the same step in NCHW gives the same gradients.
    torch.manual_seed(0)
    model = build_model(_single_mixer_arch("conv"))
    x = torch.rand(4, 1, 28, 28)
    layouts, grads = [], {}
    model.head_norm.register_full_backward_hook(
        lambda m, gin, gout: layouts.append(gout[0].is_contiguous(memory_format=torch.channels_last)))
    for fmt in (torch.contiguous_format, torch.channels_last):
        model.zero_grad()
        model.to(memory_format=fmt)(x.contiguous(memory_format=fmt)).logsumexp(1).mean().backward()
        grads[fmt] = [p.grad.clone() for p in model.parameters()]
    assert layouts[-1], "channels-last: the head norm got an NCHW gradient"
    for a, b in zip(*grads.values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_gelu_on_channels_last_input_gives_the_contiguous_kernels_values_and_layout():
    # torch's GELU kernel for channels-last tensors is slower and rounds differently; the NHWC view takes the
    # contiguous kernel: bit for bit what evaluation (NCHW) computes, forward and backward.
    from nas.mixers import GELU

    torch.manual_seed(0)
    x = torch.randn(2, 24, 5, 7)
    g = torch.randn_like(x)
    outs = {}
    for fmt in (torch.contiguous_format, torch.channels_last):
        xin = x.clone(memory_format=fmt).requires_grad_()
        out = GELU()(xin)
        out.backward(g.contiguous(memory_format=fmt))
        assert out.is_contiguous(memory_format=fmt)
        outs[fmt] = (out, xin.grad)
    for a, b in zip(*outs.values()):
        assert torch.equal(a, b)
    assert isinstance(build_model(_single_mixer_arch("conv", act="gelu")).stages[0].blocks[0].mlp.act, GELU)
