"""Knowledge distillation losses (compress.recover)."""

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
