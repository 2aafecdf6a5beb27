"""MetaFormer built from an `ArchConfig` (layout after timm's metaformer.py).

Contract of every model (and every file exported from it): input float32 NCHW pixels in [0, 1];
the per-channel normalisation lives inside the model as buffers; output logits.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from nas.arch import ArchConfig, StageConfig, require_arch
from nas.mixers import ACT_CLASSES, MIXER_CLASSES, NORM_CLASSES, Mlp


class MetaFormerBlock(nn.Module):
    """`x = x + mixer(norm1(x)); x = x + mlp(norm2(x))`."""

    def __init__(
        self,
        dim: int,
        *,
        token_mixer: type[nn.Module],
        mixer_kwargs: dict[str, Any],
        mlp_hidden: int,
        norm_layer: type[nn.Module],
        act_layer: type[nn.Module],
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.token_mixer = token_mixer(dim, act_layer=act_layer, **mixer_kwargs)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, hidden=mlp_hidden, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mixer(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Downsample(nn.Sequential):
    """Strided conv followed by a norm (foldable into the conv when the norm is BatchNorm)."""

    def __init__(self, in_chs: int, out_chs: int, *, kernel: int, stride: int, norm_layer: type[nn.Module]) -> None:
        super().__init__(nn.Conv2d(in_chs, out_chs, kernel, stride=stride, padding=kernel // 2), norm_layer(out_chs))


class MetaFormerStage(nn.Module):
    """Optional downsample, then `depth` blocks sharing one token-mixer type."""

    def __init__(
        self,
        in_chs: int,
        cfg: StageConfig,
        *,
        downsample: bool,
        norm_layer: type[nn.Module],
        act_layer: type[nn.Module],
    ) -> None:
        super().__init__()
        self.downsample = (
            Downsample(in_chs, cfg.width, kernel=3, stride=2, norm_layer=norm_layer) if downsample else nn.Identity()
        )
        mixer_kwargs = {"kernel": cfg.kernel, "head_dim": cfg.head_dim, "num_heads": cfg.heads, "hidden": cfg.sepconv_hidden}
        self.blocks = nn.Sequential(
            *[
                MetaFormerBlock(
                    cfg.width,
                    token_mixer=MIXER_CLASSES[cfg.mixer],
                    mixer_kwargs=mixer_kwargs,
                    mlp_hidden=cfg.mlp_hidden,
                    norm_layer=norm_layer,
                    act_layer=act_layer,
                )
                for _ in range(cfg.depth)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class MetaFormer(nn.Module):
    """Hierarchical MetaFormer: stem -> stages -> norm -> global average pool -> linear head.

    `head_grad_channels_last` (default True): in channels-last training the head norm gets its gradient in
    channels-last too (see `forward_head`); False is the former behaviour, for timing it
    (experiments/train_speed.py, variant `nchwheadgrad`). Values are the same either way.
    """

    def __init__(self, arch: ArchConfig) -> None:
        super().__init__()
        self.head_grad_channels_last = True
        require_arch(arch, "arch")
        norm_layer = NORM_CLASSES[arch.norm]
        act_layer = ACT_CLASSES[arch.act]
        self.num_classes = arch.num_classes
        # Normalisation is part of the graph so deployed files take raw [0, 1] pixels.
        self.register_buffer("pixel_mean", torch.full((1, arch.in_chans, 1, 1), 0.5))
        self.register_buffer("pixel_std", torch.full((1, arch.in_chans, 1, 1), 0.5))
        first = arch.stages[0].width
        self.stem = Downsample(arch.in_chans, first, kernel=arch.stem_kernel, stride=arch.stem_stride, norm_layer=norm_layer)
        stages, prev = [], first
        for i, stage in enumerate(arch.stages):
            stages.append(MetaFormerStage(prev, stage, downsample=i > 0, norm_layer=norm_layer, act_layer=act_layer))
            prev = stage.width
        self.stages = nn.Sequential(*stages)
        self.head_norm = norm_layer(prev)
        self.head = nn.Linear(prev, arch.num_classes)

    def set_normalization(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Store the dataset's per-channel mean/std (of [0, 1] pixels) inside the model."""
        self.pixel_mean.copy_(torch.as_tensor(mean, dtype=torch.float32).view_as(self.pixel_mean))
        self.pixel_std.copy_(torch.as_tensor(std, dtype=torch.float32).view_as(self.pixel_std))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Raw [0, 1] pixels (B, in_chans, H, W) -> the last stage's feature map (B, width, h, w), e.g. for a new head."""
        x = (x - self.pixel_mean) / self.pixel_std
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map (B, width, h, w) -> logits (B, num_classes): norm, global average pool, linear."""
        x = self.head_norm(x)
        if (self.head_grad_channels_last and x.requires_grad and not x.is_contiguous()
                and x.is_contiguous(memory_format=torch.channels_last)):
            # Channels-last training: the mean's gradient comes back as a plain NCHW tensor, and BatchNorm's backward
            # on a channels-last input with an NCHW gradient takes a slow path, many times its time on the same
            # gradient in channels-last. Hand the norm its gradient in the input's layout: same values, one copy.
            x.register_hook(_channels_last)
        return self.head(x.mean((2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw [0, 1] pixels (B, in_chans, H, W) -> logits (B, num_classes)."""
        return self.forward_head(self.forward_features(x))


def _channels_last(grad: torch.Tensor) -> torch.Tensor:
    return grad.contiguous(memory_format=torch.channels_last)


def build_model(arch: ArchConfig) -> MetaFormer:
    """Build the (randomly initialised) MetaFormer described by `arch`."""
    return MetaFormer(arch)
