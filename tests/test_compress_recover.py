"""Knowledge distillation: losses and recovery training (compress.recover)."""

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compress.recover import distillation_loss, teacher_loss


def _logits(seed: int, n: int = 6, classes: int = 5) -> torch.Tensor:
    return torch.randn(n, classes, generator=torch.Generator().manual_seed(seed))


def test_distillation_loss_is_cross_entropy_at_alpha_0_and_scaled_kl_at_alpha_1():
    student, teacher, labels = _logits(0), _logits(1), torch.tensor([0, 1, 2, 3, 4, 0])
    assert distillation_loss(student, teacher, labels, alpha=0.0, temperature=2.0) == pytest.approx(
        F.cross_entropy(student, labels).item())
    kl = F.kl_div(F.log_softmax(student / 2, dim=1), F.softmax(teacher / 2, dim=1), reduction="batchmean")
    assert distillation_loss(student, teacher, labels, alpha=1.0, temperature=2.0) == pytest.approx(4 * kl.item(), rel=1e-5)
    # A student that matches its teacher has nothing left to learn from it.
    assert distillation_loss(teacher, teacher, labels, alpha=1.0, temperature=2.0) == pytest.approx(0.0, abs=1e-6)


class _Fixed(nn.Module):
    """A 'model' whose logits are a linear map of the flattened input, so the expected mean is easy to write."""

    def __init__(self, seed: int):
        super().__init__()
        self.fc = nn.Linear(4, 5)
        torch.nn.init.normal_(self.fc.weight, generator=torch.Generator().manual_seed(seed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("fast", [False, True])
def test_teacher_loss_distills_from_the_mean_of_frozen_teachers(fast):
    teachers = [_Fixed(1).train(), _Fixed(2).train()]
    x, y = torch.randn(6, 1, 2, 2, generator=torch.Generator().manual_seed(3)), torch.tensor([0, 1, 2, 3, 4, 0])
    student = _logits(4).requires_grad_(True)
    loss = teacher_loss(teachers, alpha=0.7, temperature=2.0, fast=fast)(student, x, y)
    with torch.no_grad():
        mean = (teachers[0](x) + teachers[1](x)) / 2
    expected = distillation_loss(student, mean, y, alpha=0.7, temperature=2.0)
    # bf16 teachers (fast) round their logits to about 3 significant digits.
    assert loss.item() == pytest.approx(expected.item(), rel=1e-2 if fast else 1e-6)
    assert all(not t.training and not any(p.requires_grad for p in t.parameters()) for t in teachers)
    loss.backward()  # the gradient reaches the student only
    assert student.grad is not None and all(p.grad is None for t in teachers for p in t.parameters())


def _tiny_data():
    from nas.data import Dataset, Split

    g = torch.Generator().manual_seed(0)

    def split(n: int) -> Split:
        return Split(torch.randint(0, 256, (n, 1, 16, 16), dtype=torch.uint8, generator=g), torch.randint(0, 4, (n,), generator=g))

    return Dataset("tiny", split(192), split(64), split(64), ("a", "b", "c", "d"), (0.5,), (0.25,))


def _tiny_models():
    from nas.arch import ArchConfig, StageConfig
    from nas.model import build_model

    arch = ArchConfig(img_size=16, num_classes=4, stages=(StageConfig(mixer="sepconv", depth=1, width=16),
                                                           StageConfig(mixer="attn", depth=1, width=32, head_dim=16)))
    torch.manual_seed(0)
    teacher, student = build_model(arch), build_model(arch)
    return teacher, student


def test_recovery_in_channels_last_is_the_same_math_and_hands_back_the_default_layout():
    from compress.recover import distill
    from nas.config import FinetuneConfig

    data = _tiny_data()
    teacher, student = _tiny_models()
    cfg = FinetuneConfig(epochs=1, batch_size=32, lr=1e-3)
    runs = {}
    for layout in (False, True):
        s, t = copy.deepcopy(student), copy.deepcopy(teacher)
        runs[layout] = (distill(s, t, data, dataclasses.replace(cfg, channels_last=layout), seed=0), s, t)
    (plain, _, _), (nhwc, s1, t1) = runs[False], runs[True]
    assert plain.precision == nhwc.precision == "fp32"
    # The same batches, teacher and loss: the epoch's mean loss agrees to float rounding (AdamW's sign-like steps make
    # the weights themselves drift apart by up to lr per step where gradients are near zero, so they are not compared).
    assert nhwc.train_loss == pytest.approx(plain.train_loss, rel=1e-4) and nhwc.images_seen == plain.images_seen
    for m in (s1, t1):  # exporters and pruners expect contiguous NCHW weights
        assert all(p.is_contiguous() for p in m.parameters())


def test_recovery_in_bf16_trains_and_runs_its_teacher_in_bf16_then_hands_both_back():
    from compress.recover import distill
    from nas.config import FinetuneConfig, Precision

    data = _tiny_data()
    teacher, student = _tiny_models()
    before = [p.detach().clone() for p in student.parameters()]
    s, t = copy.deepcopy(student), copy.deepcopy(teacher)
    result = distill(s, t, data, FinetuneConfig(epochs=1, batch_size=32, channels_last=True, precision=Precision.bf16), seed=0)
    assert result.precision == "bf16" and math.isfinite(result.train_loss) and 0.0 <= result.val_acc <= 1.0
    assert any(not torch.equal(a, b) for a, b in zip(before, s.parameters()))  # it trained
    for m in (s, t):  # float32 weights in the default layout, as before training
        assert all(p.dtype == torch.float32 and p.is_contiguous() for p in m.parameters())
    assert all(torch.equal(a, b) for a, b in zip(teacher.parameters(), t.parameters()))  # the teacher is frozen


def test_distillation_weights_the_label_term_by_class_for_balanced_data(monkeypatch):
    # A run scored by balanced accuracy trained its candidates with class weights: recovery and QAT keep them.
    from compress.recover import distill
    from nas.config import FinetuneConfig, Metric
    from nas.train import class_weights, subset_split

    student, teacher, labels = _logits(0), _logits(1), torch.tensor([0, 1, 2, 3, 4, 0])
    weight = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    assert distillation_loss(student, teacher, labels, alpha=0.0, temperature=2.0, class_weight=weight) == pytest.approx(
        F.cross_entropy(student, labels, weight=weight).item())
    seen = []
    real = F.cross_entropy
    monkeypatch.setattr(F, "cross_entropy", lambda *a, **kw: seen.append(kw.get("weight")) or real(*a, **kw))
    data = _tiny_data()
    cfg = FinetuneConfig(epochs=1, batch_size=32, subset=96)
    for metric in (Metric.accuracy, Metric.balanced_accuracy):
        seen.clear()
        t, s = _tiny_models()
        distill(s, t, dataclasses.replace(data, metric=metric), cfg, seed=0)
        expected = class_weights(subset_split(data.train, 96, seed=0), 4) if metric == Metric.balanced_accuracy else None
        assert seen and all((w is None) if expected is None else torch.equal(w, expected) for w in seen)
