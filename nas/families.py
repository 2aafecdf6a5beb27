"""Hand-made model families written as ArchConfigs: the designs an engineer would pick without a search.

They serve twice: as the baselines the searched front is compared with (`experiments/baselines.py`),
and as known-good starting points a study can evaluate first (`search.seed_archs=[convformer-M, ...]`).
A name is `<family>-<scale>`, e.g. `caformer-L`. Each family comes in two layouts: 3 stages like
`space=metaformer_t` (the default) and 4 stages like `space=metaformer_s` (`n_stages=4`), both with a
stride-2 stem, BatchNorm + ReLU and MLP ratio 4, like the MetaFormer papers' small variants.
"""

from __future__ import annotations

from nas.arch import ArchConfig, StageConfig
from nas.errors import ConfigError

FAMILIES: dict[str, dict[int, tuple[str, ...]]] = {
    "poolformer": {3: ("pool",) * 3, 4: ("pool",) * 4},
    "convformer": {3: ("sepconv",) * 3, 4: ("sepconv",) * 4},
    # CAFormer convolves the early, large feature maps and attends on the late, small ones: with 4 stages
    # the papers' half and half; with 3, attention from the second (14x14 on Fashion-MNIST) stage on.
    "caformer": {3: ("sepconv", "attn", "attn"), 4: ("sepconv", "sepconv", "attn", "attn")},
    "vit": {3: ("attn",) * 3, 4: ("attn",) * 4},
    "resnet": {3: ("conv",) * 3, 4: ("conv",) * 4},
}
"""Mixer per stage of each family, per stage count (the layouts: 3 like metaformer_t, 4 like metaformer_s)."""

SCALES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "S": ((16, 32, 64), (1, 1, 1)),
    "M": ((24, 48, 96), (1, 2, 2)),
    "L": ((32, 64, 128), (2, 3, 2)),
}
"""(widths, depths) per stage of each scale, 3-stage layout."""

SCALES_4: dict[str, tuple[tuple[int, int, int, int], tuple[int, int, int, int]]] = {
    # Widths and depths metaformer_s offers; like the papers' S12-S36, the third stage is the deepest.
    "S": ((32, 64, 128, 192), (1, 1, 2, 1)),
    "M": ((48, 96, 160, 256), (1, 2, 3, 1)),
    "L": ((64, 128, 192, 320), (2, 3, 4, 2)),
}
"""(widths, depths) per stage of each scale, 4-stage layout."""

KERNELS: dict[str, int] = {"pool": 3, "sepconv": 5, "conv": 3, "attn": 3}


def family_names() -> list[str]:
    """Every `<family>-<scale>` name."""
    return [f"{f}-{s}" for f in FAMILIES for s in SCALES]


def family_arch(name: str, *, n_stages: int = 3, in_chans: int = 1, img_size: int = 28, num_classes: int = 10) -> ArchConfig:
    """The ArchConfig of one hand-made model, e.g. `family_arch("convformer-M")`.

    `n_stages` picks the layout: 3 (metaformer_t's, the default) or 4 (metaformer_s's).
    """
    family, _, scale = name.rpartition("-")
    if family not in FAMILIES or scale not in SCALES:
        raise ConfigError(f"model family {name!r} is unknown; allowed: {family_names()}")
    if n_stages not in FAMILIES[family]:
        raise ConfigError(f"model family {name!r} with n_stages={n_stages!r}: the families come in {list(FAMILIES[family])} stages")
    widths, depths = (SCALES if n_stages == 3 else SCALES_4)[scale]
    # 3 stages: head_dim 8 in the 14x14 stage keeps ViT's first stage at 2 heads of the 16 channels.
    # 4 stages: head_dims metaformer_s offers; 16 in the first two stages, whose widths 48 and 96 32 does not divide.
    head_dims = (8, 16, 16) if n_stages == 3 else (16, 16, 32, 32)
    stages = tuple(
        StageConfig(mixer=m, depth=d, width=w, kernel=KERNELS[m], mlp_ratio=4.0, head_dim=h, expand=2)
        for m, w, d, h in zip(FAMILIES[family][n_stages], widths, depths, head_dims)
    )
    arch = ArchConfig(stages=stages, stem_kernel=3, stem_stride=2, norm="bn", act="relu",
                      in_chans=in_chans, img_size=img_size, num_classes=num_classes)
    arch.validate()
    return arch
