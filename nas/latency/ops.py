"""Per-layer op list of an `ArchConfig`: what the latency predictor costs and what reports count.

Pure arithmetic on the spec (no model is built), mirroring `nas.model` layer by layer, so
`count_params(arch)` equals the number of parameters of `build_model(arch)` (a test checks this).
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.arch import MIXERS, ArchConfig, StageConfig, require_arch

MATRIX_KINDS: frozenset[str] = frozenset({"conv", "pwconv", "dwconv", "linear", "matmul"})
"""Op kinds that run on a matrix engine (their cost is MACs)."""
VECTOR_KINDS: frozenset[str] = frozenset({"bn", "ln", "relu", "gelu", "softmax", "add", "pool", "reduce"})
"""Op kinds that run on a vector unit (their cost is elementwise operations)."""
OP_KINDS: frozenset[str] = MATRIX_KINDS | VECTOR_KINDS

# Elementwise operations per output element; properties of the math, not of a chip.
_VEC_COST = {"bn": 2, "ln": 8, "relu": 1, "gelu": 8, "softmax": 5, "add": 1, "reduce": 1}


@dataclass(frozen=True)
class Op:
    """One layer as the hardware sees it.

    `foldable` marks ops a compiler can merge into a neighbouring conv (BatchNorm next to a conv,
    ReLU right after one); the hardware profile says whether its compiler does.
    """

    name: str
    kind: str
    stage: int  # -1 stem, 0..S-1 stages, S head
    macs: int = 0
    vec_ops: int = 0
    in_elems: int = 0
    out_elems: int = 0
    params: int = 0
    foldable: bool = False

    @property
    def work(self) -> int:
        """What the op's engine has to do: MACs on a matrix engine, elementwise operations otherwise."""
        return self.macs if self.kind in MATRIX_KINDS else self.vec_ops

    def bytes_moved(self, bytes_per_element: int) -> int:
        """Activations read and written plus weights, at the given element size."""
        return (self.in_elems + self.out_elems + self.params) * bytes_per_element


def _conv(name: str, stage: int, *, cin: int, cout: int, k: int, hw_in: int, hw_out: int, groups: int = 1, bias: bool) -> Op:
    kind = "dwconv" if groups > 1 and groups == cin else ("pwconv" if k == 1 else "conv")
    n_out = hw_out * hw_out
    weights = cout * (cin // groups) * k * k
    return Op(
        name, kind, stage,
        macs=n_out * weights,
        in_elems=cin * hw_in * hw_in,
        out_elems=cout * n_out,
        params=weights + (cout if bias else 0),
    )


def _vec(name: str, kind: str, stage: int, elems: int, *, params: int = 0, foldable: bool = False, cost: int | None = None) -> Op:
    return Op(name, kind, stage, vec_ops=elems * (cost if cost is not None else _VEC_COST[kind]),
              in_elems=elems * (2 if kind == "add" else 1), out_elems=elems, params=params, foldable=foldable)


def _norm(name: str, norm: str, stage: int, channels: int, n: int, *, next_is_conv: bool, after_conv: bool = False) -> Op:
    # BatchNorm is an affine map at inference: foldable into an adjacent conv. LayerNorm is not.
    return _vec(name, norm, stage, channels * n, params=2 * channels, foldable=norm == "bn" and (next_is_conv or after_conv))


def _block_ops(prefix: str, i: int, s: StageConfig, res: int, *, norm: str, act: str) -> list[Op]:
    return token_mixer_ops(prefix, i, s, res, norm=norm, act=act) + channel_mlp_ops(prefix, i, s, res, norm=norm, act=act)


def token_mixer_ops(prefix: str, i: int, s: StageConfig, res: int, *, norm: str, act: str) -> list[Op]:
    """The first half of a block: norm, token mixer, residual add (they do not depend on the MLP ratio)."""
    c, n = s.width, res * res
    ops: list[Op] = []
    mixer_starts_with_conv = s.mixer in ("sepconv", "conv", "attn")
    ops.append(_norm(f"{prefix}.norm1", norm, i, c, n, next_is_conv=mixer_starts_with_conv))
    m = f"{prefix}.mixer"
    if s.mixer == "pool":
        ops.append(_vec(f"{m}.pool", "pool", i, c * n, cost=s.kernel * s.kernel))
        ops.append(_vec(f"{m}.sub", "add", i, c * n))
    elif s.mixer == "sepconv":
        med = s.sepconv_hidden
        ops.append(_conv(f"{m}.pw1", i, cin=c, cout=med, k=1, hw_in=res, hw_out=res, bias=False))
        ops.append(_vec(f"{m}.act", act, i, med * n, foldable=act == "relu"))
        ops.append(_conv(f"{m}.dw", i, cin=med, cout=med, k=s.kernel, hw_in=res, hw_out=res, groups=med, bias=False))
        ops.append(_conv(f"{m}.pw2", i, cin=med, cout=c, k=1, hw_in=res, hw_out=res, bias=True))
    elif s.mixer == "conv":
        ops.append(_conv(f"{m}.conv", i, cin=c, cout=c, k=s.kernel, hw_in=res, hw_out=res, bias=True))
    elif s.mixer == "attn":
        h, inner = s.heads, s.attn_dim
        ops.append(_conv(f"{m}.qkv", i, cin=c, cout=3 * inner, k=1, hw_in=res, hw_out=res, bias=False))
        ops.append(Op(f"{m}.qk", "matmul", i, macs=h * n * n * s.head_dim, in_elems=2 * n * inner, out_elems=h * n * n))
        ops.append(_vec(f"{m}.softmax", "softmax", i, h * n * n))
        ops.append(Op(f"{m}.av", "matmul", i, macs=h * n * n * s.head_dim, in_elems=h * n * n + n * inner, out_elems=n * inner))
        ops.append(_conv(f"{m}.proj", i, cin=inner, cout=c, k=1, hw_in=res, hw_out=res, bias=True))
    ops.append(_vec(f"{prefix}.add1", "add", i, c * n))
    return ops


def channel_mlp_ops(prefix: str, i: int, s: StageConfig, res: int, *, norm: str, act: str) -> list[Op]:
    """The second half of a block: norm, channel MLP, residual add (they do not depend on the mixer)."""
    c, n, hid = s.width, res * res, s.mlp_hidden
    return [
        _norm(f"{prefix}.norm2", norm, i, c, n, next_is_conv=True),
        _conv(f"{prefix}.mlp.fc1", i, cin=c, cout=hid, k=1, hw_in=res, hw_out=res, bias=True),
        _vec(f"{prefix}.mlp.act", act, i, hid * n, foldable=act == "relu"),
        _conv(f"{prefix}.mlp.fc2", i, cin=hid, cout=c, k=1, hw_in=res, hw_out=res, bias=True),
        _vec(f"{prefix}.add2", "add", i, c * n),
    ]


def stem_ops(arch: ArchConfig) -> list[Op]:
    """Input normalisation, stem conv and its norm."""
    res0 = arch.stage_resolutions()[0]
    c0 = arch.stages[0].width
    # Input normalisation is an affine map, foldable into the stem conv like a BatchNorm.
    return [
        _vec("input_norm", "bn", -1, arch.in_chans * arch.img_size**2, foldable=True),
        _conv("stem.conv", -1, cin=arch.in_chans, cout=c0, k=arch.stem_kernel, hw_in=arch.img_size, hw_out=res0, bias=True),
        _norm("stem.norm", arch.norm, -1, c0, res0**2, next_is_conv=False, after_conv=True),
    ]


def stage_ops(arch: ArchConfig, i: int) -> list[Op]:
    """Stage i: its downsampling (for i > 0) and its blocks."""
    res = arch.stage_resolutions()
    prev = arch.stages[i - 1].width if i > 0 else None
    return stage_ops_in_context(arch.stages[i], i, prev_width=prev, res_in=res[i - 1] if i > 0 else res[0],
                                res_out=res[i], norm=arch.norm, act=arch.act)


def stage_ops_in_context(s: StageConfig, i: int, *, prev_width: int | None, res_in: int, res_out: int,
                         norm: str, act: str) -> list[Op]:
    """A stage's ops from the little they depend on (so callers can cache per stage)."""
    ops = downsample_ops(i, prev_width=prev_width, width=s.width, res_in=res_in, res_out=res_out, norm=norm)
    for b in range(s.depth):
        ops.extend(block_ops(s, i, b, res_out, norm=norm, act=act))
    return ops


def downsample_ops(i: int, *, prev_width: int | None, width: int, res_in: int, res_out: int, norm: str) -> list[Op]:
    """The stride-2 conv + norm that opens stage i > 0 (none for the first stage: prev_width None)."""
    if prev_width is None:
        return []
    return [_conv(f"stages.{i}.down.conv", i, cin=prev_width, cout=width, k=3, hw_in=res_in, hw_out=res_out, bias=True),
            _norm(f"stages.{i}.down.norm", norm, i, width, res_out**2, next_is_conv=False, after_conv=True)]


def block_ops(s: StageConfig, i: int, b: int, res: int, *, norm: str, act: str) -> list[Op]:
    """Block b of stage i; the blocks of a stage differ only in their names."""
    return _block_ops(f"stages.{i}.blocks.{b}", i, s, res, norm=norm, act=act)


def head_ops(arch: ArchConfig) -> list[Op]:
    """Final norm, global average pool and classifier."""
    head, width = len(arch.stages), arch.stages[-1].width
    n_last = arch.stage_resolutions()[-1] ** 2
    return [
        _norm("head.norm", arch.norm, head, width, n_last, next_is_conv=False),
        _vec("head.pool", "reduce", head, width * n_last),
        Op("head.fc", "linear", head, macs=width * arch.num_classes, in_elems=width, out_elems=arch.num_classes,
           params=width * arch.num_classes + arch.num_classes),
    ]


def enumerate_ops(arch: ArchConfig) -> list[Op]:
    """All layers of `build_model(arch)` in execution order, batch 1."""
    require_arch(arch, "arch")
    ops = stem_ops(arch)
    for i in range(len(arch.stages)):
        ops.extend(stage_ops(arch, i))
    return ops + head_ops(arch)


UNIT_TYPES: tuple[str, ...] = ("stem", "down", "head", *MIXERS)
"""What a unit can be: the stem, a stage's downsampling, the head, or a block named by its mixer."""


def unit_of(op_name: str) -> str:
    """The unit an op belongs to: 'stem', 'stages.<i>.down', 'stages.<i>.blocks.<b>' or 'head'.

    Units are what a per-layer profile can be summed into without caring which neighbour a runtime fused
    an op into (a norm into its conv, an activation into its matmul): fusions stay inside a unit.
    """
    parts = op_name.split(".")
    if parts[0] == "stages":
        return ".".join(parts[:4]) if parts[2] == "blocks" else ".".join(parts[:3])
    return "head" if parts[0] == "head" else "stem"  # the input normalisation is part of the stem


def unit_type(arch: ArchConfig, unit: str) -> str:
    """What a unit is, for fitting its cost: 'stem', 'down', 'head' or the mixer of its block ('sepconv', ...)."""
    parts = unit.split(".")
    if parts[0] != "stages":
        return unit
    return "down" if parts[2] == "down" else arch.stages[int(parts[1])].mixer


def count_params(arch: ArchConfig) -> int:
    """Trainable parameters of `build_model(arch)`."""
    return sum(op.params for op in enumerate_ops(arch))


def count_macs(arch: ArchConfig) -> int:
    """Multiply-accumulates of one batch-1 inference (matrix ops only, as FLOP counters report)."""
    return sum(op.macs for op in enumerate_ops(arch))



UNIT_SHAPE_FIELDS: tuple[str, ...] = (
    *(f"is_{t}" for t in UNIT_TYPES), "res", "width", "mlp_hidden", "kernel", "expand", "heads", "prev_width", "ln", "gelu")
"""What `unit_shape` returns, in order: the unit type (one-hot), then its sizes, then the norm and activation."""


_ONE_HOT = {t: tuple(float(t == u) for u in UNIT_TYPES) for t in UNIT_TYPES}


def _shape(utype: str, sizes: tuple, norm: str, act: str) -> tuple[float, ...]:
    return (*_ONE_HOT[utype], *map(float, sizes), float(norm == "ln"), float(act == "gelu"))


def stage_unit_shape(s: StageConfig, utype: str, *, res: int, prev_width: int | None, norm: str, act: str) -> tuple[float, ...]:
    """`unit_shape` of a block (`utype` = its mixer) or downsampling (`utype` = 'down') of stage `s`."""
    prev = s.width if prev_width is None else prev_width
    return _shape(utype, (res, s.width, s.mlp_hidden, s.kernel, s.expand, s.heads if s.mixer == "attn" else 0, prev), norm, act)


def unit_shape(arch: ArchConfig, unit: str) -> tuple[float, ...]:
    """A unit's shape as numbers (`UNIT_SHAPE_FIELDS`): what a learned per-unit correction looks at.

    Blocks and downsamplings carry their stage's output resolution, width, MLP width, kernel, sepconv
    expansion, attention heads (0 for other mixers) and the previous stage's width (their own in stage 0);
    the stem its first stage's resolution and width, the input size, stem kernel and stride and input
    channels; the head the last stage's resolution and width.
    """
    utype = unit_type(arch, unit)
    parts = unit.split(".")
    res = arch.stage_resolutions()
    if parts[0] == "stages":
        i = int(parts[1])
        return stage_unit_shape(arch.stages[i], utype, res=res[i], prev_width=arch.stages[i - 1].width if i > 0 else None,
                                norm=arch.norm, act=arch.act)
    if utype == "stem":
        sizes = (res[0], arch.stages[0].width, arch.img_size, arch.stem_kernel, arch.stem_stride, arch.in_chans, 0)
    else:
        sizes = (res[-1], arch.stages[-1].width, 0, 0, 0, 0, 0)
    return _shape(utype, sizes, arch.norm, arch.act)
