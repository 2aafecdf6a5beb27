"""Hand-made model families written as ArchConfigs: the designs an engineer would pick without a search.

They serve twice: as the baselines the searched front is compared with (`experiments/baselines.py`),
and as known-good starting points a study can evaluate first (`search.seed_archs=[convformer-M, ...]`).
A name is `<family>-<scale>`, e.g. `caformer-L`. All use the metaformer_t layout (stride-2 stem, three
stages), BatchNorm + ReLU and MLP ratio 4, like the MetaFormer papers' small variants.
"""

from __future__ import annotations

from nas.arch import ArchConfig, StageConfig
from nas.errors import ConfigError

FAMILIES: dict[str, tuple[str, str, str]] = {
    "poolformer": ("pool", "pool", "pool"),
    "convformer": ("sepconv", "sepconv", "sepconv"),
    "caformer": ("sepconv", "attn", "attn"),
    "vit": ("attn", "attn", "attn"),
    "resnet": ("conv", "conv", "conv"),
}
"""Mixer per stage of each family."""

SCALES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "S": ((16, 32, 64), (1, 1, 1)),
    "M": ((24, 48, 96), (1, 2, 2)),
    "L": ((32, 64, 128), (2, 3, 2)),
}
"""(widths, depths) per stage of each scale."""

KERNELS: dict[str, int] = {"pool": 3, "sepconv": 5, "conv": 3, "attn": 3}


def family_names() -> list[str]:
    """Every `<family>-<scale>` name."""
    return [f"{f}-{s}" for f in FAMILIES for s in SCALES]


def family_arch(name: str, *, in_chans: int = 1, img_size: int = 28, num_classes: int = 10) -> ArchConfig:
    """The ArchConfig of one hand-made model, e.g. `family_arch("convformer-M")`."""
    family, _, scale = name.rpartition("-")
    if family not in FAMILIES or scale not in SCALES:
        raise ConfigError(f"model family {name!r} is unknown; allowed: {family_names()}")
    widths, depths = SCALES[scale]
    stages = tuple(
        # head_dim 8 in the 14x14 stage keeps ViT's first stage at 2 heads of the 16 channels.
        StageConfig(mixer=m, depth=d, width=w, kernel=KERNELS[m], mlp_ratio=4.0, head_dim=8 if i == 0 else 16, expand=2)
        for i, (m, w, d) in enumerate(zip(FAMILIES[family], widths, depths))
    )
    arch = ArchConfig(stages=stages, stem_kernel=3, stem_stride=2, norm="bn", act="relu",
                      in_chans=in_chans, img_size=img_size, num_classes=num_classes)
    arch.validate()
    return arch
