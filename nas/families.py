"""Hand-made model families written as ArchConfigs: the designs an engineer would pick without a search.

They serve twice: as the baselines the searched front is compared with (`experiments/baselines.py`),
and as known-good starting points a study can evaluate first (`search.seed_archs=[convformer-M, ...]`).
A name is `<family>-<scale>`, e.g. `caformer-L`. Each family comes in two layouts: 3 stages like
`space=metaformer_t` (the default) and 4 stages like `space=metaformer_s` (`n_stages=4`), both with a
stride-2 stem, BatchNorm + ReLU and MLP ratio 4, like the MetaFormer papers' small variants.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from nas.arch import ArchConfig, StageConfig
from nas.errors import ConfigError

if TYPE_CHECKING:  # only the type: nas.config imports this module's users
    from nas.config import SpaceConfig

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


def seed_archs(entries: Sequence[str], *, space: SpaceConfig, in_chans: int | None = None, img_size: int | None = None,
               num_classes: int | None = None) -> list[ArchConfig]:
    """The architectures `search.seed_archs` names (`entries`: family names, arch.json files or checkpoint folders),
    checked against `space`; a `ConfigError` names the first entry that is neither or that the space cannot express.
    The input keys given (the data's) replace the arch's own; None keeps a family's default or the arch.json's value.
    Needs no torch: the search checks its command line's seeds with it before torch loads (`nas.overrides`), and again
    with its data's input once loaded (`nas.search_checks.resolve_seed_archs`)."""
    from nas.space import arch_params  # local import: nas.space imports nas.config, whose checks may import this module

    shape = {k: v for k, v in (("in_chans", in_chans), ("img_size", img_size), ("num_classes", num_classes))
             if v is not None}
    archs = []
    for entry in entries:
        path = Path(entry)
        if entry in family_names():
            try:  # the family's layout with the space's stage count (3 like metaformer_t, 4 like metaformer_s)
                arch = family_arch(entry, n_stages=len(space.stages), **shape)
            except ConfigError as e:
                raise ConfigError(f"search.seed_archs has {entry!r}, but space {space.name!r} has "
                                  f"{len(space.stages)} stages: {e}; seed it with the arch.json (or checkpoint "
                                  "folder) of a run of that space instead") from None
        elif path.is_dir() or path.is_file():
            file = path / "arch.json" if path.is_dir() else path
            try:
                arch = ArchConfig.from_json(file.read_text())
            except (OSError, UnicodeDecodeError, ConfigError) as e:
                raise ConfigError(f"search.seed_archs: {str(file)!r} is not a readable arch.json ({str(e).splitlines()[0]})") from None
            arch = arch.replace(**shape)
        else:
            raise ConfigError(f"search.seed_archs has {entry!r}: neither a model family ({', '.join(family_names())}) "
                              "nor an arch.json file or checkpoint folder")
        try:
            arch_params(arch, space)  # raises, naming the value the space does not offer
        except ConfigError as e:
            raise ConfigError(f"search.seed_archs has {entry!r}, which the space cannot express: {e}") from None
        archs.append(arch)
    return archs
