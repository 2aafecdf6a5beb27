"""Structured channel pruning with torch-pruning's DepGraph, kept representable as an `ArchConfig`.

Every pruned model is rebuildable from its spec: the pruner first decides the new *shape* as an
`ArchConfig` (`plan_pruned_arch`: per stage the residual width, the MLP hidden width, the sepconv
hidden width and the attention heads, each shrunk by the same ratio and rounded to the chip's channel
multiple), then removes the least important channels to reach exactly that shape:

- residual width of a stage: one DepGraph group rooted at the stem/downsample conv, which couples
  every norm, mixer input/output, MLP input/output and residual add of the stage, and the next
  stage's downsample input (or the classifier input, whose outputs are never pruned);
- MLP hidden width and sepconv hidden width: DepGraph groups rooted at `fc1` / `pw1`;
- attention: whole heads. DepGraph cannot follow the qkv reshape into heads, so the heads with the
  smallest L2 norm (their q, k, v rows and proj columns) are removed with torch-pruning's
  per-layer functions and `num_heads` is updated; head_dim is kept.

Blocks of one stage have identical shapes, so the same counts apply to each block and the result
stays a per-stage spec. The returned model is built fresh from the pruned spec with the pruned
weights loaded (strict), which proves the spec describes the weights.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch_pruning as tp
from torch import nn

from nas.arch import ArchConfig, StageConfig, require_arch
from nas.errors import ConfigError, NasError, module_logger
from nas.latency import HardwareProfile, predict_latency
from nas.mixers import Attention, SepConv
from nas.model import MetaFormer, build_model

log = module_logger(__name__)  # as every package logger: a line naming a file that is not UTF-8 written readably

MAX_RATIO = 0.9
"""Largest fraction of channels a pruning step plan may remove from any group."""


class PruningError(NasError):
    """The pruned weights do not match the planned spec (a bug, reported instead of a silent mismatch)."""


def shrink_channels(channels: int, ratio: float, *, multiple: int) -> int:
    """Channels left after removing `ratio` of `channels`, rounded to a multiple of `multiple`.

    Never grows a layer and never goes below one multiple (or the layer's own size if smaller).
    """
    if ratio <= 0 or channels <= multiple:
        return channels
    target = channels * (1.0 - ratio)
    rounded = int(math.floor(target / multiple + 0.5)) * multiple
    largest = (channels // multiple) * multiple  # rounding must not exceed the original
    return max(multiple, min(rounded, largest))


def plan_pruned_arch(arch: ArchConfig, ratio: float, *, multiple: int = 1) -> ArchConfig:
    """The spec left after removing `ratio` of the channels of every prunable group (pure function)."""
    require_arch(arch, "arch")
    if not (isinstance(ratio, (int, float)) and 0 <= ratio <= MAX_RATIO):
        raise ConfigError(f"compress.prune.ratio={ratio!r} must be a number in [0, {MAX_RATIO}]")
    stages: list[StageConfig] = []
    for s in arch.stages:
        width = shrink_channels(s.width, ratio, multiple=multiple)
        hidden = shrink_channels(s.mlp_hidden, ratio, multiple=multiple)
        changes: dict[str, object] = {"width": width, "mlp_ratio": hidden / width}
        if s.mixer == "sepconv":
            changes["expand"] = shrink_channels(s.sepconv_hidden, ratio, multiple=multiple) / width
        if s.mixer == "attn":
            changes["num_heads"] = max(1, int(math.floor(s.heads * (1.0 - ratio) + 0.5)))
        new = dataclasses.replace(s, **changes)
        # Ratios are stored as floats; make sure they reproduce the integer widths exactly.
        assert new.mlp_hidden == hidden and (s.mixer != "sepconv" or new.sepconv_hidden == round(width * changes["expand"]))
        stages.append(new)
    return arch.replace(stages=tuple(stages))


def _lowest(scores: torch.Tensor, n: int) -> list[int]:
    # Stable order: ties (e.g. all-zero channels) go by index, so pruning is deterministic.
    order = sorted(range(len(scores)), key=lambda i: (float(scores[i]), i))
    return sorted(order[:n])


def _prune_group(dg: tp.DependencyGraph, root: nn.Conv2d, n_remove: int, imp: Callable) -> None:
    if n_remove <= 0:
        return
    full = dg.get_pruning_group(root, tp.prune_conv_out_channels, idxs=list(range(root.out_channels)))
    idxs = _lowest(imp(full), n_remove)
    dg.get_pruning_group(root, tp.prune_conv_out_channels, idxs=idxs).prune()


def _prune_heads(attn: Attention, keep_heads: int) -> None:
    heads = attn.num_heads
    if keep_heads >= heads:
        return
    inner = attn.proj.in_channels
    hd = inner // heads
    qkv = attn.qkv.weight.detach().reshape(3, heads, hd, -1)  # channel = t*inner + h*hd + d (see forward)
    proj = attn.proj.weight.detach().reshape(-1, heads, hd)
    scores = qkv.pow(2).sum(dim=(0, 2, 3)) + proj.pow(2).sum(dim=(0, 2))
    drop = _lowest(scores, heads - keep_heads)
    qkv_idxs = [t * inner + h * hd + d for t in range(3) for h in drop for d in range(hd)]
    proj_idxs = [h * hd + d for h in drop for d in range(hd)]
    tp.prune_conv_out_channels(attn.qkv, qkv_idxs)
    tp.prune_conv_in_channels(attn.proj, proj_idxs)
    attn.num_heads = keep_heads


def prune_to_arch(model: MetaFormer, arch: ArchConfig, target: ArchConfig) -> MetaFormer:
    """Remove the least important channels of `model` (whose spec is `arch`) to reach `target`.

    `target` must be `arch` with smaller or equal widths/heads (e.g. from `plan_pruned_arch`).
    Importance: L2 magnitude over each DepGraph group (torch-pruning's GroupMagnitudeImportance).
    Returns a new model built from `target` holding the kept weights; `model` is consumed.
    """
    if len(target.stages) != len(arch.stages) or target.mixers != arch.mixers:
        raise ConfigError(f"pruning target {target.summary()} does not have the stages of {arch.summary()}")
    model = model.eval()
    example = torch.rand(1, arch.in_chans, arch.img_size, arch.img_size)
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=example, verbose=False)
    imp = tp.importance.GroupMagnitudeImportance(p=2)
    for i, (old, new) in enumerate(zip(arch.stages, target.stages)):
        stage = model.stages[i]
        root = model.stem[0] if i == 0 else stage.downsample[0]
        _prune_group(dg, root, old.width - new.width, imp)
        for block in stage.blocks:
            _prune_group(dg, block.mlp.fc1, old.mlp_hidden - new.mlp_hidden, imp)
            if isinstance(block.token_mixer, SepConv):
                _prune_group(dg, block.token_mixer.pw1, old.sepconv_hidden - new.sepconv_hidden, imp)
    # Heads last: DepGraph's view of the qkv reshape would be stale after a manual head removal.
    for i, (old, new) in enumerate(zip(arch.stages, target.stages)):
        for block in model.stages[i].blocks:
            if isinstance(block.token_mixer, Attention):
                _prune_heads(block.token_mixer, new.heads)
    rebuilt = build_model(target)
    try:
        rebuilt.load_state_dict(model.state_dict(), strict=True)
    except RuntimeError as e:
        raise PruningError(f"pruned weights do not fit the pruned spec {target.summary()}: {str(e).splitlines()[0]}") from None
    return rebuilt.eval()


@dataclass(frozen=True)
class PruneResult:
    """A pruned model, its spec, and how the pruning went."""

    model: MetaFormer
    arch: ArchConfig
    ratio: float  # fraction of channels removed from each group (before rounding)
    steps: int  # pruning steps taken (0: nothing was pruned)
    latency_before_ms: float  # predicted on the chip
    latency_ms: float
    target_latency_ms: float | None
    target_met: bool


def _distinct_ms(ms: float, target_ms: float) -> tuple[str, str]:
    """`ms` and `target_ms` with the fewest decimals (3 to 6) that tell them apart: at 3, a step predicted at 0.3004 ms
    read "0.300 ms predicted (target 0.300)" and another step followed, as if the target had been missed for nothing."""
    for decimals in range(3, 7):
        pair = f"{ms:.{decimals}f}", f"{target_ms:.{decimals}f}"
        if pair[0] != pair[1]:
            break
    return pair


def latency_floor_ms(arch: ArchConfig, *, hw: HardwareProfile) -> float:
    """`arch`'s predicted latency on `hw` with `MAX_RATIO` of its channels pruned (rounded to `hw.channel_multiple`):
    the lowest latency target that pruning reaches (pure function)."""
    multiple = max(1, int(hw.channel_multiple or 1))
    return predict_latency(plan_pruned_arch(arch, MAX_RATIO, multiple=multiple), hw).total_ms


def check_reachable(arch: ArchConfig, *, hw: HardwareProfile, target_latency_ms: float, setting: str | None = None,
                    floor_ms: float | None = None) -> None:
    """Raise `ConfigError` if even `MAX_RATIO` channel pruning keeps `arch` above `target_latency_ms` on `hw`; the
    message names `setting` (the user's setting the target came from; default: target_latency_ms itself). `floor_ms`:
    `latency_floor_ms(arch, hw=hw)` where the caller has it (worked out when None)."""
    if floor_ms is None:
        floor_ms = latency_floor_ms(arch, hw=hw)
    if floor_ms > target_latency_ms:
        before = predict_latency(arch, hw).total_ms
        raise ConfigError(
            f"{setting or f'compress.prune.target_latency_ms={target_latency_ms:g}'} cannot be met for {arch.arch_id} on {hw.name}: "
            f"it is predicted at {before:.3f} ms and still at {floor_ms:.3f} ms with {MAX_RATIO:.0%} of its channels pruned"
        )


def prune(
    model: MetaFormer,
    arch: ArchConfig,
    *,
    hw: HardwareProfile,
    ratio: float | None = None,
    target_latency_ms: float | None = None,
    step: float = 0.05,
    floor_ms: float | None = None,
) -> PruneResult:
    """Prune by a channel `ratio`, or step by step until the chip's predicted latency <= `target_latency_ms`.

    Exactly one of `ratio` / `target_latency_ms` is given. Channel counts are rounded to
    `hw.channel_multiple`. A target the pruner cannot reach even at `MAX_RATIO` raises `ConfigError`
    before any weight is touched; `floor_ms`: `latency_floor_ms(arch, hw=hw)` where the caller has it (a compression
    checked its target against it before loading its data), worked out when None.
    """
    if (ratio is None) == (target_latency_ms is None):
        raise ConfigError("compress.prune: set exactly one of ratio or target_latency_ms (or target_latency_fraction)")
    multiple = max(1, int(hw.channel_multiple or 1))
    before = predict_latency(arch, hw).total_ms
    if ratio is not None:
        target = plan_pruned_arch(arch, ratio, multiple=multiple)
        pruned = prune_to_arch(model, arch, target) if target != arch else model
        ms = predict_latency(target, hw).total_ms
        return PruneResult(pruned, target, float(ratio), int(target != arch), before, ms, None, True)
    if not (isinstance(step, (int, float)) and 0 < step <= MAX_RATIO):
        raise ConfigError(f"compress.prune.step={step!r} must be a number in (0, {MAX_RATIO}]")
    if not (isinstance(target_latency_ms, (int, float)) and target_latency_ms > 0):
        raise ConfigError(f"compress.prune.target_latency_ms={target_latency_ms!r} must be a number > 0")
    if before <= target_latency_ms:
        return PruneResult(model, arch, 0.0, 0, before, before, target_latency_ms, True)
    check_reachable(arch, hw=hw, target_latency_ms=target_latency_ms, floor_ms=floor_ms)
    current, current_arch, r, steps = model, arch, 0.0, 0
    ms = before
    while ms > target_latency_ms:
        r = min(MAX_RATIO, round(r + step, 6))
        plan = plan_pruned_arch(arch, r, multiple=multiple)
        if plan != current_arch:
            # One step: importance is re-evaluated on what the previous steps left.
            current = prune_to_arch(current, current_arch, plan)
            current_arch = plan
            steps += 1
            ms = predict_latency(plan, hw).total_ms
            shown, target_shown = _distinct_ms(ms, target_latency_ms)
            log.info("prune step %d: ratio %.2f -> %s ms predicted (target %s: %s)", steps, r, shown, target_shown,
                     "met" if ms <= target_latency_ms else "not met yet")
        if r >= MAX_RATIO:
            break
    return PruneResult(current, current_arch, r, steps, before, ms, target_latency_ms, ms <= target_latency_ms)
