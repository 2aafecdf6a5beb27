"""How much memory a forward pass (or a training step) of an `ArchConfig` needs, and batch sizes that fit a budget.

Activations grow with batch x tokens x width. Attention keeps no batch x heads x N x N maps: `nas.mixers.Attention`
hands torch's CPU scaled-dot-product attention a contiguous head dim on every input layout, so torch runs its fused
(flash) kernel, which works through the maps in blocks and keeps only q, k, v, the output and a per-row statistic for
the backward pass (experiments/results/attention_layout.md; before that, NCHW input took the math path, whose maps
needed tens of GiB for one evaluation batch of 512 with attention in an early stage of a large input). The estimate is
derived from the spec alone (no module is built), so a search can refuse a candidate before training it and split an
evaluation into batches that fit. It estimates a step's working memory: its activations, an evaluation's the heap
holes beside its live tensors (`_heap_slack`), and, once, the kernels' code a process's first step pages in
(`LIBRARY_CODE_BYTES`, `TRAINING_CODE_BYTES`). Weights, optimizer state and the data are left to the budget's margin.
How close it comes to measured peaks: experiments/results/memory_estimate_fused.md.
"""

from __future__ import annotations

import os
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nas.arch import ArchConfig

if TYPE_CHECKING:  # nas.config imports this module
    from nas.config import RunConfig

FLOAT_BYTES = 4  # activations are float32; attention runs in float32 even under bf16 autocast (Attention.sdpa_in_fp32)
LIBRARY_CODE_BYTES = 16 * 2**20
"""The compute kernels' code (oneDNN, MKL, the fused attention) a process pages in on its first forward pass:
file-backed resident memory that does not grow with the batch, so a constant, not per image; 16 MiB covered what fresh
processes paged in on the 2-core development machine. An evaluation can be a process's first step (nas.report,
compression). tests/test_memory.py checks an evaluation's measured peak against the estimate in fresh processes."""
TRAINING_CODE_BYTES = 28 * 2**20
"""`LIBRARY_CODE_BYTES` for a training step, whose backward pass (and bf16 autocast, a distillation's teacher) pages in
kernels of its own; 28 MiB covered the most any fresh process paged in on the development machine, whatever it ran
first. A search's first trial's training step can be its process's first forward pass: without this, the 28 px
attention model's training estimate fell under its peak at small batches, which
tests/test_memory.py::test_training_estimate_covers_the_measured_peak_of_a_first_training_step measures in fresh
processes under the search's allocator settings. Counted once per step: a distillation's teacher adds none."""
DEFAULT_BUDGET_SHARE = 0.7
"""Share of the memory available at the start of a run that a step's working memory may use
(`search.memory_budget_gb`)."""
MEMORY_BUDGET_MAX_GB = 65_536.0
"""The largest memory budget taken (search.memory_budget_gb, compress.predict's --memory-budget-gb): 64 TiB, more than
one machine holds. A budget above the machine's memory lets every candidate and batch through, and one too large for it
is killed by the kernel instead of failing with its reason; a typo such as 1e12 (or inf) is refused at once."""
WORKING_MEMORY = "working memory (activations and the kernels' code)"
"""What an estimate's number counts, as refusals name it: the budget's margin covers the rest (weights, optimizer state,
data). An evaluation's heap holes (`_heap_slack`) are counted as activations: they are where its maps lie."""


def _block_units(arch: ArchConfig) -> list[tuple[int, int, float]]:
    """(tokens, width, feature maps of that width per image) per block: the non-attention activations of one block
    (input, norms, residual branches, the mixer's and the MLP's hidden layers). Training keeps them all for the
    backward pass; evaluation holds about as many while the block runs (oneDNN's layout copies included)."""
    out = []
    for stage, res in zip(arch.stages, arch.stage_resolutions()):
        ratio = stage.mlp_hidden / stage.width
        # attention, in attn_dim maps per token: the qkv conv's output and its contiguous q, k, v copy (3 + 3: alive
        # together, and the copy is kept for the backward), the fused kernel's output and its NCHW copy for proj (2)
        mixer = {"sepconv": 3 * stage.sepconv_hidden / stage.width, "conv": 1.0, "pool": 2.0, "identity": 0.0,
                 "attn": 2 + 8 * stage.attn_dim / stage.width}[stage.mixer]
        out.extend([(res * res, stage.width, 5 + 2 * ratio + mixer)] * stage.depth)
    return out


def activation_bytes(arch: ArchConfig, *, batch_size: int, training: bool = False) -> int:
    """Estimated peak working memory (bytes) of one forward pass of `arch` on `batch_size` images (no_grad, as in
    evaluation), or with `training` of one forward + backward step. Derived from the spec: the blocks' feature maps
    (attention's q, k, v and output among them) and the stem's, all float32; an evaluation's also counts the heap
    holes beside them (`_heap_slack`); and, once, the kernels' code (`LIBRARY_CODE_BYTES`, `TRAINING_CODE_BYTES`)."""
    return _map_bytes(arch, batch_size=batch_size, training=training) + _code_bytes(training)


def _code_bytes(training: bool) -> int:
    """The kernels' code a step pages in, a fixed part of its estimate whatever the batch."""
    return TRAINING_CODE_BYTES if training else LIBRARY_CODE_BYTES


def _map_bytes(arch: ArchConfig, *, batch_size: int, training: bool) -> int:
    """`activation_bytes` without the kernels' code: the feature maps (and an evaluation's heap holes), per batch."""
    stem_map = arch.stages[0].width * arch.stage_resolutions()[0] ** 2
    stem = arch.in_chans * arch.img_size ** 2 + 2 * stem_map
    if training:  # every block's maps are kept for the backward pass, plus one attention block's backward at a time
        blocks = [n * width * units for n, width, units in _block_units(arch)]
        features = sum(blocks) + stem + _ATTN_BACKWARD * max(_attention_dims(arch), default=0)
        return int(batch_size * features * FLOAT_BYTES)
    # no_grad: one block's tensors at a time, and the heap holes freed maps may leave beside them
    blocks = [n * width * (units + slack) for (n, width, units), slack in zip(_block_units(arch), _heap_slack(arch))]
    features = max(*blocks, stem + stem_map)  # the stem's largest layer: one map of the first stage
    return int(batch_size * features * FLOAT_BYTES)


def _heap_slack(arch: ArchConfig) -> list[float]:
    """Per block (as `_block_units`), in feature maps per image: the block's largest layer (the MLP's hidden one, a
    sepconv's expansion or attention's qkv). glibc serves tensors under its mmap threshold (up to 32 MiB, fixed there by
    `nas.train.keep_freed_memory`) from its heap, and a map freed there leaves a hole a later, differently placed map
    may not fit, so the heap grows past the live tensors: by up to one hidden layer's size in the evaluations measured
    (experiments/memory_estimate.py's models), varying from process to process with where Python's small objects land. A training step's estimate counts every block's
    temporaries as kept for the backward pass (only some are), which covered its holes in the experiment's rows and in
    repeated fresh processes under the search's allocator settings."""
    out = []
    for stage in arch.stages:
        layers = [stage.mlp_hidden, stage.sepconv_hidden if stage.mixer == "sepconv" else 0,
                  3 * stage.attn_dim if stage.mixer == "attn" else 0, stage.width]
        out.extend([max(layers) / stage.width] * stage.depth)
    return out


# attn_dim maps per token alive while one attention block runs backward: the gradients of its output and the output's
# NCHW copy, of q, k and v, and of the qkv conv's output they are reassembled into (1 + 1 + 3 + 3)
_ATTN_BACKWARD = 8


def _attention_dims(arch: ArchConfig) -> list[int]:
    """tokens x attn_dim of each attention stage of `arch`: the size, in floats per image, of one of its q/k/v."""
    return [res * res * stage.attn_dim for stage, res in zip(arch.stages, arch.stage_resolutions())
            if stage.mixer == "attn"]


def step_bytes(arch: ArchConfig, *, batch_size: int, training: bool = False, teacher: ArchConfig | None = None) -> int:
    """`activation_bytes` of `arch`, plus with `teacher` its forward pass (no_grad, eval mode) on the same batch: a
    distillation step runs the teacher while the student's activations wait for the backward pass, so both are alive.
    The kernels' code is counted once: the process pages it in once, for both models. Several teachers run one after
    another keep only their logits between them: pass the one whose forward needs the most (`largest_forward`)."""
    need = activation_bytes(arch, batch_size=batch_size, training=training)
    return need + (0 if teacher is None else _map_bytes(teacher, batch_size=batch_size, training=False))


def largest_forward(archs: Sequence[ArchConfig], *, batch_size: int) -> ArchConfig | None:
    """The one of `archs` whose forward pass (no_grad) on `batch_size` images needs the most memory; None for none."""
    return max(archs, key=lambda a: _map_bytes(a, batch_size=batch_size, training=False), default=None)


def fitting_batch_size(arch: ArchConfig, *, batch_size: int, budget_bytes: int, training: bool = False,
                       teacher: ArchConfig | None = None) -> int:
    """The largest batch size <= `batch_size` whose `activation_bytes` fit `budget_bytes` (with `teacher`, those of a
    distillation step: `step_bytes`); 0 when not even one image fits. Evaluation in batches of it gives the same
    predictions as in batches of `batch_size` (each image is scored on its own in eval mode), only in more pieces."""
    # The estimate grows linearly with the batch over a fixed part (the kernels' code a step pages in): divide, then
    # step down over any rounding.
    fixed = step_bytes(arch, batch_size=0, training=training, teacher=teacher)
    per_image = step_bytes(arch, batch_size=1, training=training, teacher=teacher) - fixed
    fit = min(batch_size, max(0, budget_bytes - fixed) // max(1, per_image))
    while fit > 0 and step_bytes(arch, batch_size=fit, training=training, teacher=teacher) > budget_bytes:
        fit -= 1
    return int(fit)


def eval_batch_size(arch: ArchConfig, *, batch_size: int, budget_bytes: int | None) -> int:
    """The batch size to evaluate `arch` in: `batch_size`, or the largest smaller one whose forward pass fits
    `budget_bytes` (at least 1: one image is all an evaluation can shrink to); `batch_size` without a budget."""
    if budget_bytes is None:
        return batch_size
    return max(1, fitting_batch_size(arch, batch_size=batch_size, budget_bytes=budget_bytes))


def gib(n_bytes: float) -> str:
    """`n_bytes` as GiB for messages, e.g. '43.5 GiB' or '0.00469 GiB' (3 significant digits: small budgets too)."""
    return f"{n_bytes / 2**30:.3g} GiB"


def training_refusal(arch: ArchConfig, *, batch_size: int, budget_bytes: int, setting: str,
                     budget_setting: str = "search.memory_budget_gb",
                     teachers: Sequence[ArchConfig] = ()) -> str | None:
    """One line saying why `arch` cannot train at `batch_size` (named by `setting`, e.g. 'train.batch_size') within
    `budget_bytes` (set by `budget_setting`), or None when its training step fits. With `teachers`, the step is a
    distillation: the forward pass of the largest teacher (`largest_forward`; they run one after another) on the batch
    counts too, and the line names both needs and, of several teachers, which one that is (its position in
    `teachers`, from 1, the count, and its `ArchConfig.summary`)."""
    teacher = largest_forward(teachers, batch_size=batch_size)
    need = step_bytes(arch, batch_size=batch_size, training=True, teacher=teacher)
    if need <= budget_bytes:
        return None
    fit = fitting_batch_size(arch, batch_size=batch_size, budget_bytes=budget_bytes, training=True, teacher=teacher)
    # The block that holds the most: what to shrink (width, or tokens by a larger stem stride / smaller image).
    tokens, width, _ = max(_block_units(arch), key=lambda u: u[0] * u[1] * u[2])
    why = f"largest block: {tokens} tokens x {width} channels"
    if teacher is not None:  # which of the two to shrink is the user's call: say what each holds
        student = activation_bytes(arch, batch_size=batch_size, training=True)
        which = "the teacher's forward pass" if len(teachers) == 1 else (  # max picked the first of equal ones
            f"the forward pass of teacher {next(i for i, t in enumerate(teachers, 1) if t is teacher)} of "
            f"{len(teachers)}, the largest ({teacher.summary()}),")
        why = f"the student's training step {gib(student)} + {which} {gib(need - student)}; {why}"
    return (f"out of memory: training at {setting}={batch_size} needs about {gib(need)} of {WORKING_MEMORY} ({why}), "
            f"over the memory budget of {gib(budget_bytes)} ({budget_setting}); "
            + (f"a batch of {fit} would fit" if fit else "not even one image fits"))


def available_memory_bytes() -> int | None:
    """Memory the kernel can give this process now without swapping (MemAvailable of /proc/meminfo; else the free
    physical pages), read when asked; None where neither can be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_budget(budget_gb: float | None, *, share: float = DEFAULT_BUDGET_SHARE) -> int | None:
    """The working-memory budget in bytes (what `activation_bytes` and `step_bytes` estimate): `budget_gb` GiB when
    given, else `share` of the memory available now; None (no limit) where the available memory cannot be read."""
    if budget_gb is not None:
        return int(budget_gb * 2**30)
    available = available_memory_bytes()
    return None if available is None else int(available * share)


CGROUP_ROOT = Path("/sys/fs/cgroup")


def _cgroup_limits(proc_cgroup: str, *, root: Path) -> list[int]:
    """The memory limits (bytes) of the control groups `proc_cgroup` (the text of /proc/self/cgroup) names under `root`
    and of their ancestors, which bind too: v2's memory.max ('max': none), v1's memory.limit_in_bytes (a huge number:
    none). A path missing under `root` (a container that sees its own group as the root) reads from the root up."""
    limits = []
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            base, name = root, "memory.max"
        elif "memory" in controllers.split(","):
            base, name = root / "memory", "memory.limit_in_bytes"
        else:
            continue
        folder = base.joinpath(*(part for part in path.split("/") if part))
        for parent in (folder, *folder.parents):
            try:
                text = (parent / name).read_text().strip()
            except OSError:
                text = ""
            if text.isdigit():
                limits.append(int(text))
            if parent == base:
                break
    return limits


def machine_memory_bytes(*, cgroup_root: Path = CGROUP_ROOT) -> tuple[int, str] | None:
    """The memory this process can ever have, in bytes, and what sets it: the machine's RAM ('RAM'), or the memory limit
    of its control group where lower ('its cgroup's limit': a container's, a job scheduler's). None where neither can
    be read."""
    try:
        ram: int | None = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        ram = None
    try:
        limits = _cgroup_limits(Path("/proc/self/cgroup").read_text(), root=cgroup_root)
    except OSError:
        limits = []
    limit = min(limits, default=None)
    if limit is not None and (ram is None or limit < ram):
        return limit, "its cgroup's memory limit"
    return None if ram is None else (ram, "RAM")


def over_machine_warning(budget_gb: float | None, *, setting: str, machine: tuple[int, str] | None,
                         lets_through: str, unset: str) -> str | None:
    """One line when a memory budget of `budget_gb` GiB, given as `setting`, is more than the memory this machine gives
    the process (`machine`: `machine_memory_bytes()`), naming both: what the budget keeps out is then let through, and
    the kernel's out-of-memory killer ends the process without a word of why (`lets_through` says what, in this
    command's terms). `unset`: how the setting is left to its default (a share of the memory available). A warning, not
    a refusal: what fits still runs. None when the budget fits, is None (that share) or the memory is unknown."""
    if budget_gb is None or machine is None or budget_gb * 2**30 <= machine[0]:
        return None
    size, what = machine
    return (f"{setting}={budget_gb:g} is more than this machine's memory ({gib(size)}, {what}): {lets_through}; set it "
            f"below {size / 2**30:.3g} on this machine ({unset}: {100 * DEFAULT_BUDGET_SHARE:.0f}% of the memory "
            "available)")


def memory_warning(run: RunConfig, *, machine: tuple[int, str] | None,
                   recipes: Sequence[str] = ("train", "final_train")) -> str | None:
    """`over_machine_warning` for `search.memory_budget_gb` of `run`, where this process works under it: a search's
    trials (`recipes` holds "train"), whose candidates too large for the machine are let through; else (a rebuild from
    the study, `nas.study_export.export_study`) where it may final-train members (final_train in `recipes`, of
    epochs > 0) or compress them (compress.members not none). Known here is only what the rebuild may do, not whether
    any member is left to do (it skips those done already, which it learns later): the line says "may". A rebuild that
    does neither writes the tables and the report alone: its budget sizes nothing, and the report it writes would carry
    a line about no work of it. A warning, not a refusal: a study may be shared by workers on machines with more
    memory."""
    if "train" in recipes:
        lets_through = ("candidates too large for it are let through and the out-of-memory killer ends the search "
                        "instead of failing them with their reason")
    elif ("final_train" in recipes and run.final_train.epochs > 0) or run.compress.members.value != "none":
        lets_through = ("members it final-trains or compresses (those not done yet, if any) are let through when too "
                        "large for it, and the out-of-memory killer may end the rebuild instead of refusing them with "
                        "their reason")
    else:
        return None
    return over_machine_warning(run.search.memory_budget_gb, setting="search.memory_budget_gb", machine=machine,
                                lets_through=lets_through, unset="null")
