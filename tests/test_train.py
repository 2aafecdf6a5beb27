import dataclasses

import pytest
import torch

from nas.arch import ArchConfig, StageConfig
from nas.config import DataConfig, DataFormat, TrainConfig
from nas.data import load_dataset
from nas.model import build_model
from nas.train import TrainingDiverged, evaluate, seed_everything, train_candidate

ARCH = ArchConfig(stages=(StageConfig(mixer="conv", depth=1, width=16), StageConfig(mixer="pool", depth=1, width=32)))
CFG = TrainConfig(epochs=10, subset=None, batch_size=32, lr=3e-3, threads=2)


@pytest.fixture(scope="module")
def data(tiny_idx_root):
    return load_dataset(DataConfig(name="tiny", format=DataFormat.idx, root=str(tiny_idx_root)))


def _train(data, cfg=CFG, seed=0):
    seed_everything(seed)
    model = build_model(ARCH)
    model.set_normalization(data.mean, data.std)
    return model, train_candidate(model, data, cfg, augment=DataConfig(name="t", hflip=False, max_shift=1), seed=seed)


def test_training_learns_the_tiny_task_well_above_chance(data):
    model, result = _train(data)
    assert result.val_acc > 0.5  # 10 classes: chance is 0.1
    assert result.images_seen == 10 * (len(data.train) // 32) * 32
    assert evaluate(model, data.val) == pytest.approx(result.val_acc)


def test_training_is_deterministic_for_a_seed(data):
    m1, r1 = _train(data, seed=3)
    m2, r2 = _train(data, seed=3)
    assert r1.val_acc == r2.val_acc
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))


def test_diverging_candidate_raises_a_clear_error(data):
    with pytest.raises(TrainingDiverged, match="loss became"):
        _train(data, cfg=dataclasses.replace(CFG, lr=1e9, epochs=1))


def test_channels_last_training_is_the_same_math_and_hands_back_the_default_layout(data):
    cfg = dataclasses.replace(CFG, epochs=2)
    fast, r_fast = _train(data, dataclasses.replace(cfg, channels_last=True), seed=5)
    plain, r_plain = _train(data, dataclasses.replace(cfg, channels_last=False), seed=5)
    # Same data order and initial weights; only float summation order differs. (Weights are not compared:
    # a conv bias followed by BatchNorm has a ~0 gradient, and Adam turns its last-digit noise into steps of ~lr.)
    assert abs(r_fast.train_loss - r_plain.train_loss) < 1e-3
    assert abs(r_fast.val_acc - r_plain.val_acc) <= 0.05  # at most 2 of the 40 val images
    for name, a in fast.state_dict().items():
        assert a.is_contiguous(), name  # exporters and pruners get the default layout back
