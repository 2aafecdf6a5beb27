"""Shared fixtures: a tiny generated idx dataset and Hydra composition of `conf/search.yaml`."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from nas.config import register_configs

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the idx format (gzip if the name ends in .gz)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def make_idx_dataset(root: Path, *, n_train: int = 400, n_test: int = 100, size: int = 28, classes: int = 10, seed: int = 0) -> Path:
    """Fashion-MNIST-shaped idx files whose classes differ in where a bright square sits (learnable)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % classes
        rng.shuffle(labels)
        images = rng.integers(0, 40, size=(n, size, size), dtype=np.uint8)
        for i, c in enumerate(labels):
            r, col = divmod(int(c), 4)
            images[i, 2 + r * 8 : 8 + r * 8, 2 + col * 6 : 7 + col * 6] = 230
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    return root


@pytest.fixture(scope="session")
def tiny_idx_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_idx_dataset(tmp_path_factory.mktemp("tiny_fmnist"))


@pytest.fixture(scope="session")
def compose_cfg() -> Callable[..., DictConfig]:
    """compose_cfg(*overrides) -> the DictConfig `python -m nas.search <overrides>` would get."""
    register_configs()

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name="search", overrides=list(overrides))

    return _compose
