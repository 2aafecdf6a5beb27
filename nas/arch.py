"""The architecture spec: one frozen `ArchConfig` describes a MetaFormer completely.

The same object is consumed by the model builder, the latency predictor, the pruner and the reports,
and it is saved (as canonical JSON) inside every checkpoint, so any saved model can be rebuilt from
its spec alone.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import operator
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from nas.errors import ConfigError, wrong_type

MIXERS: tuple[str, ...] = ("identity", "pool", "sepconv", "conv", "attn")
"""Token mixers a stage may use."""
KERNEL_MIXERS: frozenset[str] = frozenset({"pool", "sepconv", "conv"})
"""Mixers whose spatial kernel size is a searched parameter."""
NORMS: tuple[str, ...] = ("bn", "ln")
"""`bn`: BatchNorm (folds into convs, NPU friendly); `ln`: LayerNorm over channels."""
ACTS: tuple[str, ...] = ("relu", "gelu")
"""Activations: ReLU runs everywhere; GELU needs a lookup table or the host on many NPUs."""
SCHEMA_VERSION = 1
MIN_IMG_SIZE = 4
"""The smallest input side a model is built for (`ArchConfig.img_size`)."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _check_mixer(mixer: Any, where: str) -> None:
    _check(mixer in MIXERS, f"{where}.mixer={mixer!r} is unknown; allowed: {list(MIXERS)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """An int or float, not a bool, and finite (an infinite ratio would build no model)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _CachedHash:
    """Mixin for frozen dataclasses: the field hash is computed once per instance. Specs key the latency
    predictor's caches, so they are hashed for every prediction. The cached value is left out of pickles and
    copies: string hashes differ between processes."""

    def __hash__(self) -> int:
        h = self.__dict__.get("_hash")
        if h is None:
            cls = type(self)
            fields_of = cls.__dict__.get("_fields_of")
            if fields_of is None:  # once per class: a C-level getter of all its fields, as a tuple
                fields_of = operator.attrgetter(*(f.name for f in dataclasses.fields(cls)))
                setattr(cls, "_fields_of", fields_of)
            h = hash(fields_of(self))
            object.__setattr__(self, "_hash", h)
        return h

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}


@dataclass(frozen=True)
class StageConfig(_CachedHash):
    """One hierarchical stage: `depth` identical blocks `x + mixer(norm(x))`, `x + mlp(norm(x))`.

    Every stage after the first starts with a stride-2 3x3 convolution (the first stage follows
    the stem). `kernel` is used by pool/sepconv/conv mixers, `head_dim` by attention
    (heads = width // head_dim unless `num_heads` is given), `expand` by sepconv (its pointwise
    expansion ratio: round(width * expand) channels). Searched specs use integer `expand` and no
    `num_heads`; pruned specs (`compress.prune`) may carry a fractional `expand`/`mlp_ratio` and an
    explicit `num_heads`, because pruning shrinks hidden widths and heads independently of `width`.
    """

    __hash__ = _CachedHash.__hash__  # explicit, so that @dataclass keeps it

    mixer: str
    depth: int
    width: int
    kernel: int = 3
    mlp_ratio: float = 4.0
    head_dim: int = 16
    expand: float = 2
    num_heads: Optional[int] = None

    def __post_init__(self) -> None:
        # An unknown mixer was accepted here and refused only once the stage was put in an ArchConfig, far from the typo.
        # The numeric fields are left to `validate`, which an ArchConfig calls with the stage's index in its message.
        _check_mixer(self.mixer, "stage")

    def validate(self, where: str = "stage") -> None:
        """Raise `ConfigError` naming the first invalid field. An unknown `mixer` is refused already on construction."""
        _check_mixer(self.mixer, where)
        _check(_is_int(self.depth) and self.depth >= 1, f"{where}.depth={self.depth!r} must be an integer >= 1")
        _check(_is_int(self.width) and self.width >= 1, f"{where}.width={self.width!r} must be an integer >= 1")
        _check(
            _is_int(self.kernel) and self.kernel >= 1 and self.kernel % 2 == 1,
            f"{where}.kernel={self.kernel!r} must be an odd integer >= 1 (same padding)",
        )
        _check(
            _is_number(self.mlp_ratio) and self.mlp_ratio > 0, f"{where}.mlp_ratio={self.mlp_ratio!r} must be a finite number > 0",
        )
        _check(_is_number(self.expand) and self.expand > 0, f"{where}.expand={self.expand!r} must be a finite number > 0")
        _check(_is_int(self.head_dim) and self.head_dim >= 1, f"{where}.head_dim={self.head_dim!r} must be an integer >= 1")
        _check(
            self.num_heads is None or (_is_int(self.num_heads) and self.num_heads >= 1),
            f"{where}.num_heads={self.num_heads!r} must be an integer >= 1 or null (width // head_dim)",
        )
        if self.mixer == "attn" and self.num_heads is None:
            _check(
                self.width % self.head_dim == 0,
                f"{where}.head_dim={self.head_dim} does not divide width={self.width}; attention needs whole heads",
            )

    @property
    def mlp_hidden(self) -> int:
        """Hidden width of the channel MLP."""
        return max(1, int(round(self.width * self.mlp_ratio)))

    @property
    def heads(self) -> int:
        """Attention heads (only meaningful for `mixer == "attn"`)."""
        return self.num_heads if self.num_heads is not None else max(1, self.width // self.head_dim)

    @property
    def attn_dim(self) -> int:
        """Inner width of attention: heads x head_dim (equals `width` unless heads were pruned)."""
        return self.heads * self.head_dim

    @property
    def sepconv_hidden(self) -> int:
        """Channels between the two pointwise convs of a sepconv mixer."""
        return max(1, int(round(self.width * self.expand)))

    def canonical(self) -> dict[str, Any]:
        """Fields as a dict with the irrelevant ones reset, so equal networks get equal ids."""
        d = dataclasses.asdict(self._canonical_stage())
        if d["num_heads"] is None:
            del d["num_heads"]  # absent, not null: specs written before the field existed hash the same
        return d

    def _canonical_stage(self) -> "StageConfig":
        """This stage with the fields its mixer does not use reset to their defaults (itself when none differ)."""
        attn = self.mixer == "attn"
        # num_heads is dropped only where width // head_dim gives it back: after pruning, 2 heads of 16 in width 40 keep it
        keep_heads = attn and not (self.width % self.head_dim == 0 and self.num_heads == self.width // self.head_dim)
        expand = self.expand if self.mixer == "sepconv" else 2
        # Integral expand stays an int so searched specs keep the ids they had before pruning existed.
        expand = int(expand) if float(expand).is_integer() else float(expand)
        fields = dict(
            kernel=self.kernel if self.mixer in KERNEL_MIXERS else 3,
            mlp_ratio=float(self.mlp_ratio),
            head_dim=self.head_dim if attn else 16,
            expand=expand,
            num_heads=self.num_heads if keep_heads else None,
        )
        if all(getattr(self, k) == v and type(getattr(self, k)) is type(v) for k, v in fields.items()):
            return self
        return dataclasses.replace(self, **fields)


@dataclass(frozen=True)
class ArchConfig(_CachedHash):
    """A complete MetaFormer: stem, hierarchical stages, norm/activation, input and classes.

    The model takes float32 NCHW pixels in [0, 1] of shape (B, in_chans, img_size, img_size)
    and returns logits of shape (B, num_classes).
    """

    __hash__ = _CachedHash.__hash__  # explicit, so that @dataclass keeps it

    stages: tuple[StageConfig, ...]
    stem_kernel: int = 3
    stem_stride: int = 2
    norm: str = "bn"
    act: str = "relu"
    in_chans: int = 1
    img_size: int = 28
    num_classes: int = 10
    version: int = field(default=SCHEMA_VERSION)

    def __post_init__(self) -> None:
        # Accept lists / dicts (e.g. from JSON or YAML) but store an immutable, hashable tuple.
        if not isinstance(self.stages, (tuple, list)) or not all(isinstance(s, (StageConfig, Mapping)) for s in self.stages):
            raise ConfigError(f"arch.stages={self.stages!r} must be a list of StageConfig (or of stage dicts)")
        stages = tuple(s if isinstance(s, StageConfig) else _stage_from_dict(s, f"arch.stages[{i}]")
                       for i, s in enumerate(self.stages))
        object.__setattr__(self, "stages", stages)
        self.validate()
        # Stored canonical, so that `==` and hashing agree with arch_id: an explicit num_heads of width // head_dim,
        # or a kernel on an attention stage, describes the same network and must compare equal to its canonical form.
        object.__setattr__(self, "stages", tuple(s._canonical_stage() for s in stages))

    def validate(self) -> None:
        """Raise `ConfigError` naming the first invalid field; called on construction."""
        _check(len(self.stages) >= 1, "arch.stages is empty; at least one stage is required")
        for i, stage in enumerate(self.stages):
            stage.validate(f"stages[{i}]")
        _check(
            _is_int(self.stem_kernel) and self.stem_kernel >= 1 and self.stem_kernel % 2 == 1,
            f"arch.stem_kernel={self.stem_kernel!r} must be an odd integer >= 1",
        )
        _check(_is_int(self.stem_stride) and self.stem_stride in (1, 2, 4), f"arch.stem_stride={self.stem_stride!r}; allowed: [1, 2, 4]")
        _check(self.norm in NORMS, f"arch.norm={self.norm!r} is unknown; allowed: {list(NORMS)}")
        _check(self.act in ACTS, f"arch.act={self.act!r} is unknown; allowed: {list(ACTS)}")
        _check(_is_int(self.in_chans) and self.in_chans >= 1, f"arch.in_chans={self.in_chans!r} must be an integer >= 1")
        _check(_is_int(self.img_size) and self.img_size >= MIN_IMG_SIZE,
               f"arch.img_size={self.img_size!r} must be an integer >= {MIN_IMG_SIZE}")
        _check(_is_int(self.num_classes) and self.num_classes >= 2, f"arch.num_classes={self.num_classes!r} must be an integer >= 2")
        _check(self.version == SCHEMA_VERSION, f"arch.version={self.version!r} is not supported; this toolkit reads version {SCHEMA_VERSION}")

    # -- geometry -----------------------------------------------------------------------------
    def stage_resolutions(self) -> tuple[int, ...]:
        """Feature-map side length inside each stage (stride-2 downsampling rounds up)."""
        return _stage_resolutions(self.img_size, self.stem_kernel, self.stem_stride, len(self.stages))

    @property
    def mixers(self) -> tuple[str, ...]:
        """Mixer per stage, e.g. ('sepconv', 'conv', 'attn')."""
        return tuple(s.mixer for s in self.stages)

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON-compatible dict (irrelevant per-mixer fields reset)."""
        d = {k: v for k, v in dataclasses.asdict(self).items() if k != "stages"}
        d["stages"] = [s.canonical() for s in self.stages]
        return d

    def to_json(self, *, indent: int | None = None) -> str:
        """Canonical JSON (sorted keys): equal architectures give equal strings."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent, separators=None if indent else (",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ArchConfig":
        """Build from `to_dict()` output; unknown or missing fields give a `ConfigError`."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"arch spec must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        _check(not unknown, f"arch spec has unknown field{'s' * (len(unknown) > 1)} {unknown}; allowed: {sorted(known)}")
        _check("stages" in data, "arch spec has no 'stages'")
        if not isinstance(data["stages"], (list, tuple)):
            raise ConfigError(f"arch spec 'stages' must be a list of stage objects, got {data['stages']!r}")
        stages = []
        for i, s in enumerate(data["stages"]):
            if not isinstance(s, Mapping):
                raise ConfigError(f"arch spec stages[{i}] must be an object, got {s!r}")
            stages.append(_stage_from_dict(s, f"arch spec stages[{i}]"))
        return cls(**{**dict(data), "stages": tuple(stages)})

    @classmethod
    def from_json(cls, source: "str | os.PathLike[str]") -> "ArchConfig":
        """Inverse of `to_json`: from its JSON text (a str), or from a JSON file such as a member's `arch.json` (a
        path: `pathlib.Path`)."""
        # README says from_json "reads the arch.json of any member": its path was read as JSON text ("not valid JSON:
        # Expecting value: line 1 column 1"), and a pathlib.Path raised json's TypeError
        where = ""
        if not isinstance(source, (str, bytes, os.PathLike)):  # json's own "the JSON object must be str, ... not dict"
            hint = "ArchConfig.from_dict(...) takes a dict; " if isinstance(source, Mapping) else ""
            raise wrong_type("source", source, f"{hint}pass JSON text (a str) or the pathlib.Path of an arch.json")
        if isinstance(source, os.PathLike):
            where = f" {os.fspath(source)}"
            try:
                with open(source, encoding="utf-8") as fh:
                    text = fh.read()
            except (OSError, UnicodeDecodeError) as e:
                raise ConfigError(f"cannot read arch spec{where}: {getattr(e, 'strerror', None) or e}") from None
        else:
            text = source
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            # a str is always the text (a CSV cell or a seed's contents must not turn into a file read); a path given
            # as one is told how to pass it
            hint = ""
            if not where and isinstance(text, str) and "\n" not in text:
                if os.path.isfile(text):
                    hint = f" ({text!r} is a file: pass pathlib.Path({text!r}) to read it)"
                elif text.endswith(".json") or os.sep in text:  # a path, of no file either
                    hint = f" (a str is read as JSON text; a file is read from a pathlib.Path, and {text!r} does not exist)"
            raise ConfigError(f"arch spec{where} is not valid JSON: {e}{hint}") from None
        return cls.from_dict(data)

    @property
    def arch_id(self) -> str:
        """Stable 10-hex-digit id: hash of the canonical JSON."""
        return hashlib.sha1(self.to_json().encode()).hexdigest()[:10]

    def summary(self) -> str:
        """Short human-readable form for tables and hover texts: norm/act, the stem (kernel, stride), then per stage
        mixer, kernel or heads, depth, width and MLP ratio, e.g. `bn/relu stemk3s2 | sepconvk5x2@32r4 | attnh4x1@64r3`."""
        parts = [f"stemk{self.stem_kernel}s{self.stem_stride}"]  # the stride sets every stage's resolution
        for s in self.stages:
            extra = f"k{s.kernel}" if s.mixer in KERNEL_MIXERS else (f"h{s.heads}" if s.mixer == "attn" else "")
            parts.append(f"{s.mixer}{extra}x{s.depth}@{s.width}r{s.mlp_ratio:g}")
        return f"{self.norm}/{self.act} " + " | ".join(parts)

    def replace(self, **changes: Any) -> "ArchConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _stage_from_dict(stage: Mapping[str, Any], where: str) -> StageConfig:
    """The `StageConfig` of a stage dict (JSON, YAML, or given to `ArchConfig(stages=[...])`); an unknown or missing field
    is a one-line `ConfigError` naming `where` and the fields allowed, not the dataclass's "unexpected keyword argument"."""
    known = [f.name for f in dataclasses.fields(StageConfig)]
    bad = sorted(set(stage) - set(known))
    _check(not bad, f"{where} has unknown field{'s' * (len(bad) > 1)} {bad}; allowed: {sorted(known)}")
    required = [f.name for f in dataclasses.fields(StageConfig) if f.default is dataclasses.MISSING]
    missing = [k for k in required if k not in stage]
    _check(not missing, f"{where} lacks {', '.join(map(repr, missing))}; required: {required}")
    _check_mixer(stage["mixer"], where)  # before construction, whose message could not name the stage
    return StageConfig(**dict(stage))


def require_arch(value: Any, where: str) -> ArchConfig:
    """`value` if it is an `ArchConfig`, else a one-line `TypeError` naming `where` and how to build one: a dict or JSON
    text would otherwise fail as an AttributeError deep inside the model builder or the predictor."""
    if isinstance(value, ArchConfig):
        return value
    hint = {dict: "ArchConfig.from_dict(...)", str: "ArchConfig.from_json(...)"}.get(type(value), "ArchConfig(stages=[...])")
    raise wrong_type(where, value, f"pass an ArchConfig (build one with {hint})")


@functools.lru_cache(maxsize=1024)
def _stage_resolutions(img_size: int, stem_kernel: int, stem_stride: int, n_stages: int) -> tuple[int, ...]:
    # Cached: the latency predictor asks for every arch of a batch, and only a few input geometries occur.
    size = _conv_out(img_size, stem_kernel, stem_stride)
    out = []
    for i in range(n_stages):
        if i > 0:
            size = _conv_out(size, 3, 2)
        out.append(size)
    return tuple(out)


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1
