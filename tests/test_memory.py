"""Working-memory estimates of an ArchConfig and the batch sizes that fit a budget (no large allocation here)."""

import os

import pytest
import torch

import nas.memory as memory
from nas.arch import ArchConfig, StageConfig
from nas.memory import activation_bytes, eval_batch_size, fitting_batch_size, memory_budget, training_refusal
from nas.model import build_model
from nas.train import evaluate
from nas.data import Split

S = StageConfig


def _attn_first(img_size: int = 96) -> ArchConfig:
    # metaformer_s-like, attention in stage 0: 96 px, stem stride 2 -> 48 x 48 = 2304 tokens, 64 / 16 = 4 heads
    return ArchConfig(stages=(S("attn", 2, 64, head_dim=16), S("conv", 1, 96), S("attn", 2, 128, head_dim=32),
                              S("sepconv", 1, 192)), in_chans=3, img_size=img_size)


def test_attention_memory_grows_with_the_tokens_not_their_square():
    # torch's fused CPU attention keeps no batch x heads x N x N maps: 96 px has (48/32)^2 = 2.25x the tokens of 64 px,
    # and needs about that much more memory, not the (48/32)^4 = 5x of the maps the estimate used to count
    def per_image(arch, training):  # without the fixed part an evaluation counts once (the kernels' code)
        return activation_bytes(arch, batch_size=1, training=training) - activation_bytes(arch, batch_size=0, training=training)

    for training in (False, True):
        small, large = (per_image(_attn_first(img_size=s), training) for s in (64, 96))
        assert 2.0 < large / small < 2.5
    # training keeps every block's activations for the backward pass: more than one forward's peak
    assert activation_bytes(_attn_first(), batch_size=512, training=True) > 2 * activation_bytes(_attn_first(), batch_size=512)


def test_estimate_grows_with_the_batch_and_attention_costs_more_than_pooling():
    arch = _attn_first(img_size=64)
    fixed, one, eight = (activation_bytes(arch, batch_size=b, training=True) for b in (0, 1, 8))
    assert fixed == memory.TRAINING_CODE_BYTES  # the kernels' code, whatever the batch; the maps grow with it
    assert eight - fixed == pytest.approx(8 * (one - fixed), rel=1e-6)
    pooled = arch.replace(stages=(S("pool", 2, 64), *arch.stages[1:]))
    for training in (False, True):  # q, k, v, the output and their copies and gradients outweigh a pool's two maps
        assert activation_bytes(arch, batch_size=8, training=training) > activation_bytes(pooled, batch_size=8, training=training)


@pytest.mark.parametrize("norm", ["bn", "ln"])
def test_fused_attention_without_maps_is_what_the_estimate_counts(norm):
    # The estimate counts no N x N maps because torch's CPU attention runs its fused kernel for Attention's q/k/v on
    # any input layout (BatchNorm hands it NCHW, LayerNorm2d a channels-last view). If that changes (its math path
    # stores the maps), the estimate must be revisited.
    model = build_model(ArchConfig(stages=(S("attn", 1, 32, head_dim=16), S("conv", 1, 32)), norm=norm))
    with torch.profiler.profile() as prof:
        with torch.no_grad():
            model.eval()(torch.rand(2, 1, 28, 28))
        model.train()(torch.rand(2, 1, 28, 28)).sum().backward()
    names = {e.key for e in prof.key_averages()}
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in names, sorted(names)
    assert "aten::_scaled_dot_product_attention_math" not in names


def test_fitting_batch_size_is_the_largest_batch_within_the_budget():
    arch = _attn_first(img_size=64)
    budget = activation_bytes(arch, batch_size=7)
    assert fitting_batch_size(arch, batch_size=512, budget_bytes=budget) == 7
    assert fitting_batch_size(arch, batch_size=512, budget_bytes=budget - 1) == 6
    assert fitting_batch_size(arch, batch_size=5, budget_bytes=budget) == 5  # never more than asked
    assert fitting_batch_size(arch, batch_size=512, budget_bytes=activation_bytes(arch, batch_size=1) - 1) == 0
    assert eval_batch_size(arch, batch_size=512, budget_bytes=budget) == 7
    assert eval_batch_size(arch, batch_size=512, budget_bytes=1) == 1  # an evaluation shrinks to one image, no further
    assert eval_batch_size(arch, batch_size=512, budget_bytes=None) == 512  # no budget known: as configured
    train_budget = activation_bytes(arch, batch_size=3, training=True)
    assert fitting_batch_size(arch, batch_size=64, budget_bytes=train_budget, training=True) == 3


def test_evaluation_in_the_fitting_batches_scores_as_the_configured_batch():
    torch.manual_seed(0)
    arch = ArchConfig(stages=(S("attn", 1, 16, head_dim=8), S("conv", 1, 32)), in_chans=1, img_size=16, num_classes=3)
    model = build_model(arch).eval()
    split = Split(torch.rand(50, 1, 16, 16), torch.randint(0, 3, (50,)))
    budget = activation_bytes(arch, batch_size=9)  # a fake budget: 50 images in 6 batches instead of one
    fit = fitting_batch_size(arch, batch_size=512, budget_bytes=budget)
    assert fit == 9
    assert evaluate(model, split, batch_size=fit) == evaluate(model, split, batch_size=512)
    with torch.no_grad():
        whole = model(split.x)
        pieces = torch.cat([model(split.x[i:i + fit]) for i in range(0, 50, fit)])
    assert torch.equal(whole.argmax(1), pieces.argmax(1)) and torch.allclose(whole, pieces, atol=1e-5)


def test_training_refusal_names_the_batch_the_need_the_budget_and_what_fits():
    arch = _attn_first()
    budget = activation_bytes(arch, batch_size=5, training=True)
    assert training_refusal(arch, batch_size=5, budget_bytes=budget, setting="train.batch_size") is None
    line = training_refusal(arch, batch_size=64, budget_bytes=budget, setting="train.batch_size")
    assert line is not None and "\n" not in line
    assert line.startswith("out of memory: training at train.batch_size=64 needs about ")
    assert "(largest block: 2304 tokens x 64 channels)" in line and "(search.memory_budget_gb); a batch of 5 would fit" in line
    tiny = training_refusal(arch, batch_size=64, budget_bytes=1000, setting="final_train.batch_size")
    assert tiny is not None and tiny.endswith("not even one image fits")


def test_a_distillation_step_counts_the_teachers_forward_pass_beside_the_students_training_step():
    student, teacher = _attn_first(img_size=64), _attn_first()  # the teacher: a bigger input, more tokens
    def both_at(batch):  # the kernels' code is paged in once for both models: the teacher's forward adds none
        return (activation_bytes(student, batch_size=batch, training=True) + activation_bytes(teacher, batch_size=batch)
                - memory.LIBRARY_CODE_BYTES)

    alone, both = activation_bytes(student, batch_size=16, training=True), both_at(16)
    assert training_refusal(student, batch_size=16, budget_bytes=alone, setting="compress.recover.batch_size") is None
    line = training_refusal(student, batch_size=16, budget_bytes=alone, setting="compress.recover.batch_size",
                            teachers=[teacher])
    assert line is not None and "\n" not in line
    assert line.startswith(f"out of memory: training at compress.recover.batch_size=16 needs about {memory.gib(both)} ")
    assert (f"(the student's training step {memory.gib(alone)} + the teacher's forward pass "
            f"{memory.gib(both - alone)}; largest block: 1024 tokens x 64 channels)") in line
    fit = fitting_batch_size(student, batch_size=16, budget_bytes=alone, training=True, teacher=teacher)
    assert 0 < fit < 16 and line.endswith(f"a batch of {fit} would fit")
    assert both_at(fit) <= alone < both_at(fit + 1)
    assert training_refusal(student, batch_size=16, budget_bytes=both, setting="s", teachers=[teacher]) is None


def test_a_refusal_with_several_teachers_names_the_largest_by_position_and_summary_and_their_count():
    # Distilled from several teachers (run one after another), the step holds the largest one's forward pass: the line
    # said "the teacher's forward pass" without saying which teacher that was, so the user could not tell which to drop
    student, teacher = _attn_first(img_size=64), _attn_first()
    small = ArchConfig(stages=(S("conv", 1, 32), S("pool", 1, 48)), in_chans=3, img_size=96)
    alone = activation_bytes(student, batch_size=16, training=True)
    line = training_refusal(student, batch_size=16, budget_bytes=alone, setting="final_train.batch_size",
                            teachers=[small, teacher, small])
    both = memory.step_bytes(student, batch_size=16, training=True, teacher=teacher)
    assert line is not None and "\n" not in line
    assert (f"(the student's training step {memory.gib(alone)} + the forward pass of teacher 2 of 3, the largest "
            f"({teacher.summary()}), {memory.gib(both - alone)}; largest block: 1024 tokens x 64 channels)") in line
    # the same teacher given twice: the first of equal ones is named
    twice = training_refusal(student, batch_size=16, budget_bytes=alone, setting="s", teachers=[small, teacher, teacher])
    assert twice is not None and "teacher 2 of 3, the largest" in twice


def test_a_refusal_says_its_number_counts_the_kernels_code_as_well_as_the_activations():
    # The estimate includes the kernels' code a first step pages in (and an evaluation's heap holes); the line said
    # "of activations", which the number is not (it is larger by the code, whatever the batch)
    arch = _attn_first()
    need = activation_bytes(arch, batch_size=64, training=True)
    line = training_refusal(arch, batch_size=64, budget_bytes=1000, setting="train.batch_size")
    assert line is not None
    assert f"needs about {memory.gib(need)} of working memory (activations and the kernels' code) (" in line
    assert need - memory._map_bytes(arch, batch_size=64, training=True) == memory.TRAINING_CODE_BYTES  # what it says


def test_memory_budget_is_the_setting_or_a_share_of_the_memory_available_when_asked(monkeypatch):
    assert memory_budget(2.0) == 2 * 2**30
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 10 * 2**30)
    assert memory_budget(None) == int(0.7 * 10 * 2**30)
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: None)
    assert memory_budget(None) is None  # cannot tell: no limit rather than refusing everything
    monkeypatch.undo()
    real = memory.available_memory_bytes()
    assert real is None or real > 0


# One step in a fresh process, as a search runs it (glibc told to keep freed memory, 1 thread): an evaluation forward
# pass ("eval") or a float32 training step ("train"); prints the growth of the process's peak resident memory, in bytes.
_STEP_PEAK = """
import resource, sys, torch
from nas.arch import ArchConfig
from nas.model import build_model
from nas.train import keep_freed_memory
keep_freed_memory()
torch.set_num_threads(1)
arch, batch, mode = ArchConfig.from_json(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
model = build_model(arch).train(mode == "train")
x = torch.rand(batch, arch.in_chans, arch.img_size, arch.img_size)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if mode == "train":
    model(x).sum().backward()
else:
    with torch.no_grad():
        model(x)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def _assert_fresh_peaks_within_the_estimate(arch: ArchConfig, *, batch: int, training: bool) -> None:
    """The estimate covers the peak of one step in each of 3 fresh processes: the heap holes freed maps leave vary
    with where Python's small objects land, which the hash seed changes. The processes run side by side (each
    measures its own peak), so their start-up (importing torch) overlaps."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    estimate = activation_bytes(arch, batch_size=batch, training=training)
    procs = [subprocess.Popen([sys.executable, "-c", _STEP_PEAK, arch.to_json(), str(batch), "train" if training else "eval"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root,
                              env={**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONPATH": str(root)}) for seed in range(3)]
    for seed, proc in enumerate(procs):
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-2000:]
        measured = int(stdout.split()[-1])
        assert measured <= estimate, f"seed {seed}: measured {measured / 2**20:.1f} MiB > estimate {estimate / 2**20:.1f} MiB"


def test_evaluation_estimate_covers_the_measured_peak_of_a_convolution_only_model():
    # The estimate picks evaluation batches that fit search.memory_budget_gb, so it must not fall short of what an
    # evaluation really holds: its live maps, the heap holes freed maps leave and the kernels' code its first pass
    # pages in.
    arch = ArchConfig(stages=(S("conv", 1, 32), S("pool", 1, 48), S("sepconv", 1, 64)), in_chans=3, img_size=32)
    _assert_fresh_peaks_within_the_estimate(arch, batch=32, training=False)


def test_training_estimate_covers_the_measured_peak_of_a_first_training_step():
    # A search's first trial's training step can be its process's first forward pass, which pages in ~21 MiB of kernel
    # code besides the activations (nas.memory.TRAINING_CODE_BYTES): at a batch of 16 the 28 px attention model's maps
    # alone were estimated at 32 MiB, and its step peaked at 41-48 MiB (a batch where the code weighs, so that missing
    # it shows whatever the heap holes of the process)
    arch = ArchConfig(stages=(S("attn", 2, 32, head_dim=8), S("attn", 2, 64, head_dim=16), S("conv", 1, 128)))
    _assert_fresh_peaks_within_the_estimate(arch, batch=16, training=True)


def test_machine_memory_is_the_lowest_cgroup_limit_under_the_ram(tmp_path):
    from nas.memory import _cgroup_limits, machine_memory_bytes

    # v1 (a memory hierarchy, its limits in the group's folder or its ancestors) and v2 (the unified one, 'max': none)
    (tmp_path / "memory" / "jobs" / "7").mkdir(parents=True)
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    (tmp_path / "memory" / "jobs" / "memory.limit_in_bytes").write_text(f"{3 * 2**30}\n")
    (tmp_path / "memory" / "jobs" / "7" / "memory.limit_in_bytes").write_text(f"{5 * 2**30}\n")
    assert min(_cgroup_limits("4:memory:/jobs/7\n1:cpu:/\n", root=tmp_path)) == 3 * 2**30  # the parent's binds
    (tmp_path / "box").mkdir()
    (tmp_path / "box" / "memory.max").write_text("max\n")
    assert _cgroup_limits("0::/box\n", root=tmp_path) == []
    (tmp_path / "memory.max").write_text(f"{2**30}\n")  # a container that sees its own group as the root
    assert _cgroup_limits("0::/elsewhere/job\n", root=tmp_path) == [2**30]
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert machine_memory_bytes(cgroup_root=tmp_path / "none") == (ram, "RAM")
    # this process's own groups, whichever hierarchy /proc/self/cgroup names: limited at the root of each
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text(f"{2**30}\n")
    assert machine_memory_bytes(cgroup_root=tmp_path) == (min(ram, 2**30), "its cgroup's memory limit")
