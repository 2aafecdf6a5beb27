"""Token mixers and the channel MLP, all channels-first (NCHW) so NPUs and ONNX see plain convs.

Modules cache no shapes: every reshape derives sizes from the input or from weight shapes, so they
keep working after structured channel pruning (torch-pruning) changes their widths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dim of an NCHW tensor (exports as ONNX LayerNormalization)."""

    def __init__(self, num_channels: int, *, eps: float = 1e-6) -> None:
        super().__init__(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        # Width from the weight (not a cached int): stays right after channel pruning, static for ONNX.
        x = F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class GELU(nn.GELU):
    """`nn.GELU` that computes a channels-last input on its NHWC view.

    torch's CPU GELU takes a slower kernel, forward and backward, for channels-last NCHW tensors than for
    contiguous ones, and rounds differently from it. On the NHWC view (a plain contiguous tensor, no copy)
    channels-last training gets the contiguous kernel: the same values as a contiguous input. Contiguous inputs (evaluation, export, quantization, pruning) take plain `nn.GELU`.
    `nhwc_view=False` is plain `nn.GELU` on every input (for timing: experiments/train_speed.py, variant `clgelu`).
    """

    def __init__(self, approximate: str = "none", *, nhwc_view: bool = True) -> None:
        super().__init__(approximate=approximate)
        self.nhwc_view = nhwc_view

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.nhwc_view and x.dim() == 4 and not x.is_contiguous()
                and x.is_contiguous(memory_format=torch.channels_last)):
            return F.gelu(x.permute(0, 2, 3, 1), approximate=self.approximate).permute(0, 3, 1, 2)
        return super().forward(x)


class IdentityMixer(nn.Module):
    """No token mixing: the block reduces to its channel MLP (cheapest possible stage)."""

    def __init__(self, dim: int, **_: object) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Pooling(nn.Module):
    """PoolFormer mixer: `avgpool(x) - x` (the block's residual adds x back).

    `box_in_bf16`: bfloat16 inputs (autocast training) take the mean as a depthwise box convolution divided
    by the count of real pixels: the same mean as `nn.AvgPool2d(count_include_pad=False)`, faster than
    AvgPool2d's bf16 kernel on CPU (experiments/results/train_speed.md, variant `avgpool`). Float32, export,
    quantization and pruning all see the `AvgPool2d`.
    """

    def __init__(self, dim: int, *, kernel: int = 3, box_in_bf16: bool = True, **_: object) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(kernel, stride=1, padding=kernel // 2, count_include_pad=False)
        self.box_in_bf16 = box_in_bf16 and kernel % 2 == 1  # odd kernels keep the size, as the pool does

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.box_in_bf16 and x.dtype == torch.bfloat16:
            return box_mean(x, self.pool.kernel_size) - x
        return self.pool(x) - x


def box_mean(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """Mean over each odd `kernel` x `kernel` window (stride 1, zero padding left out of the count) of an NCHW
    tensor: `AvgPool2d(kernel, 1, kernel // 2, count_include_pad=False)` as a depthwise convolution."""
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    p = kernel // 2
    ones = torch.ones(1, 1, kernel, kernel, dtype=x.dtype).expand(c, 1, kernel, kernel)  # sizes from the input: prunable
    total = F.conv2d(x, ones, padding=p, groups=c)

    def count(n: int) -> torch.Tensor:  # window positions inside the image along one axis
        i = torch.arange(n)
        return (i + p).clamp(max=n - 1) - (i - p).clamp(min=0) + 1

    return total / (count(h)[:, None] * count(w)[None, :]).to(x.dtype)


class SepConv(nn.Module):
    """ConvFormer mixer: pointwise expand -> activation -> depthwise kxk -> pointwise project."""

    def __init__(self, dim: int, *, kernel: int = 3, hidden: int | None = None, act_layer: type[nn.Module] = nn.ReLU,
                 **_: object) -> None:
        super().__init__()
        med = hidden if hidden is not None else 2 * dim
        self.pw1 = nn.Conv2d(dim, med, 1, bias=False)
        self.act = act_layer()
        self.dw = nn.Conv2d(med, med, kernel, padding=kernel // 2, groups=med, bias=False)
        self.pw2 = nn.Conv2d(med, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw2(self.dw(self.act(self.pw1(x))))


class DenseConv(nn.Module):
    """Dense kxk convolution: more MACs than sepconv but runs near peak on NPU matrix engines."""

    def __init__(self, dim: int, *, kernel: int = 3, **_: object) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Attention(nn.Module):
    """Multi-head self-attention over the H*W tokens, with 1x1-conv projections.

    `num_heads` is the only stored hyper-parameter; the head dim is read from the qkv weight at
    run time, so a pruner may remove heads (update `num_heads`) or head dims (nothing to update).

    `sdpa_in_fp32`: with bfloat16 q/k/v (autocast training) the attention itself runs in float32: torch's CPU
    scaled-dot-product attention trains far slower in bf16, enough to make a bf16 training step of attention
    models barely faster than eager float32 (experiments/results/train_speed_xeon_attn.md, variant `bf16attn`). The projections stay in bf16. Float32, export, quantization and pruning are unchanged.
    """

    def __init__(self, dim: int, *, head_dim: int = 16, num_heads: int | None = None, sdpa_in_fp32: bool = True,
                 **_: object) -> None:
        super().__init__()
        self.num_heads = num_heads if num_heads is not None else max(1, dim // head_dim)
        self.sdpa_in_fp32 = sdpa_in_fp32
        inner = self.num_heads * head_dim
        self.qkv = nn.Conv2d(dim, 3 * inner, 1, bias=False)
        self.proj = nn.Conv2d(inner, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        # (B, 3*heads*hd, H, W) -> (3, B, heads, N, hd); hd inferred from the weight via -1.
        qkv = self.qkv(x).reshape(b, 3, self.num_heads, -1, h * w).permute(1, 0, 2, 4, 3)
        fp32 = self.sdpa_in_fp32 and qkv.dtype == torch.bfloat16
        if fp32:
            qkv = qkv.float()
        if qkv.stride(-1) != 1:
            # NCHW input (evaluation, export, training without channels-last) leaves hd strided by N. torch's CPU
            # attention then takes its math path, which materialises batch x heads x N x N maps; with hd contiguous
            # it runs its fused kernel, which keeps none (experiments/results/attention_layout.md). Channels-last
            # input already has hd contiguous: no copy there. Export sees a no-op.
            qkv = qkv.contiguous()
        if fp32:
            with torch.autocast(x.device.type, enabled=False):
                out = F.scaled_dot_product_attention(*qkv.unbind(0))
        else:
            out = F.scaled_dot_product_attention(*qkv.unbind(0))  # (B, heads, N, hd)
        out = out.transpose(-1, -2).reshape(b, -1, h, w)
        return self.proj(out)


class Mlp(nn.Module):
    """Channel MLP: 1x1 conv expand -> activation -> 1x1 conv project."""

    def __init__(self, dim: int, *, hidden: int, act_layer: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


# Plain dicts (no registry): the spec's strings map to module classes here and nowhere else.
MIXER_CLASSES: dict[str, type[nn.Module]] = {
    "identity": IdentityMixer,
    "pool": Pooling,
    "sepconv": SepConv,
    "conv": DenseConv,
    "attn": Attention,
}
NORM_CLASSES: dict[str, type[nn.Module]] = {"bn": nn.BatchNorm2d, "ln": LayerNorm2d}
ACT_CLASSES: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": GELU}
