"""Activation-memory estimates of an ArchConfig and the batch sizes that fit a budget (no large allocation here)."""

import pytest
import torch

import nas.memory as memory
from nas.arch import ArchConfig, StageConfig
from nas.memory import activation_bytes, attention_map_bytes, eval_batch_size, fitting_batch_size, memory_budget, training_refusal
from nas.model import build_model
from nas.train import evaluate
from nas.data import Split

S = StageConfig


def _attn_first(img_size: int = 96) -> ArchConfig:
    # metaformer_s-like, attention in stage 0: 96 px, stem stride 2 -> 48 x 48 = 2304 tokens, 64 / 16 = 4 heads
    return ArchConfig(stages=(S("attn", 2, 64, head_dim=16), S("conv", 1, 96), S("attn", 2, 128, head_dim=32),
                              S("sepconv", 1, 192)), in_chans=3, img_size=img_size)


def test_attention_maps_are_batch_x_heads_x_tokens_squared_floats_per_block():
    maps = attention_map_bytes(_attn_first(), batch_size=512)
    stage0 = 512 * 4 * 2304 ** 2 * 4  # 43.5 GB: the evaluation that the kernel killed without a word
    stage2 = 512 * 4 * 144 ** 2 * 4  # 12 x 12 tokens, 128 / 32 heads
    assert maps == [stage0, stage0, stage2, stage2]
    assert activation_bytes(_attn_first(), batch_size=512) >= 2 * stage0  # scores and their softmax are alive at once
    # training keeps every block's maps for the backward pass: more than one forward's peak
    assert activation_bytes(_attn_first(), batch_size=512, training=True) > 4 * stage0


def test_estimate_grows_with_the_batch_and_the_tokens_and_has_no_maps_without_attention():
    arch = _attn_first(img_size=64)
    one, eight = (activation_bytes(arch, batch_size=b) for b in (1, 8))
    assert eight == pytest.approx(8 * one, rel=1e-6)
    assert activation_bytes(_attn_first(img_size=96), batch_size=1) > 4 * one  # (48/32)^4 = 5x the maps
    convs = ArchConfig(stages=(S("conv", 2, 64), S("pool", 1, 96)), in_chans=3, img_size=96)
    assert attention_map_bytes(convs, batch_size=64) == [] and 0 < activation_bytes(convs, batch_size=64)


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
    assert "(attention over 2304 tokens)" in line and "(search.memory_budget_gb); a batch of 5 would fit" in line
    tiny = training_refusal(arch, batch_size=64, budget_bytes=1000, setting="final_train.batch_size")
    assert tiny is not None and tiny.endswith("not even one image fits")


def test_memory_budget_is_the_setting_or_a_share_of_the_memory_available_when_asked(monkeypatch):
    assert memory_budget(2.0) == 2 * 2**30
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: 10 * 2**30)
    assert memory_budget(None) == int(0.7 * 10 * 2**30)
    monkeypatch.setattr(memory, "available_memory_bytes", lambda: None)
    assert memory_budget(None) is None  # cannot tell: no limit rather than refusing everything
    monkeypatch.undo()
    real = memory.available_memory_bytes()
    assert real is None or real > 0
