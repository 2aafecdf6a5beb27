import dataclasses
import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nas.config import DataConfig, DataFormat, Metric
from nas.data import (Dataset, ImageCounts, Split, augment, imbalance_warning, iterate_batches, load_dataset,
                      preprocessing, read_idx, read_image)
from nas.errors import ConfigError, DataError
from tests.conftest import write_idx

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"  # where `sudo apt-get install -y dataset-fashion-mnist` puts it


def _idx_cfg(root, **kw) -> DataConfig:
    return DataConfig(name="tiny", format=DataFormat.idx, root=str(root), **kw)


def test_idx_dataset_loads_in_memory_as_uint8_with_val_from_train(tiny_idx_root):
    ds = load_dataset(_idx_cfg(tiny_idx_root, val_size=0.25))
    assert ds.train.x.dtype == torch.uint8 and ds.train.x.shape[1:] == (1, 28, 28)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (300, 100, 100)  # 400 train -> 300 + 100 val
    assert ds.classes[0] == "T-shirt/top" and ds.num_classes == 10
    assert 0 < ds.mean[0] < 1 and 0 < ds.std[0] < 1


def test_idx_images_take_data_img_size_and_channels(tiny_idx_root):
    native = load_dataset(_idx_cfg(tiny_idx_root))
    ds = load_dataset(_idx_cfg(tiny_idx_root, img_size=16, channels=3))
    assert ds.train.x.dtype == torch.uint8 and ds.train.x.shape[1:] == ds.test.x.shape[1:] == (3, 16, 16)
    assert (ds.in_chans, ds.img_size) == (3, 16) and len(ds.mean) == 3
    assert torch.equal(ds.train.x[:, 0], ds.train.x[:, 2]) and torch.equal(ds.train.y, native.train.y)
    # Downscaling averages: each 16x16 image keeps its 28x28 original's mean brightness.
    assert torch.allclose(ds.test.x[:, 0].float().mean((1, 2)), native.test.x[:, 0].float().mean((1, 2)), atol=2.0)
    assert load_dataset(_idx_cfg(tiny_idx_root, img_size=28, channels=1)).train.x.equal(native.train.x)


def test_idx_test_images_made_as_input_preprocessing_says_are_those_the_model_was_scored_on(tiny_idx_root):
    # A deployer checks a file of a model searched at data.img_size=32 data.channels=3 against its recorded accuracy
    # by making the idx test split as input.preprocessing says. It said only "bilinear, antialiased", and Pillow's
    # bilinear resize (what image folders and compress.predict use) gives other pixels than the torch resize that made
    # the test split: the file was then scored on images unlike those its accuracy is of.
    import torch.nn.functional as F

    cfg = _idx_cfg(tiny_idx_root, img_size=32, channels=3)
    said = preprocessing(cfg, in_chans=3, img_size=32)
    assert said.startswith("idx grey images resized to 32x32 (bilinear, antialiased: torch's interpolate(mode='bilinear', "
                           "antialias=True, align_corners=False) of the uint8 values, rounded); ")
    stored = torch.from_numpy(read_idx(tiny_idx_root / "t10k-images-idx3-ubyte.gz").copy())[:, None]  # in their order
    made = F.interpolate(stored.float(), size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    made = made.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1)
    assert torch.equal(load_dataset(cfg).test.x, made)
    pillow = np.stack([np.asarray(Image.fromarray(a[0]).resize((32, 32), Image.BILINEAR)) for a in stored.numpy()])
    assert (pillow != made[:, 0].numpy()).any()  # why the string names the resize: the other one is not it


def test_load_search_data_splits_the_data_a_composed_config_names_as_load_dataset_does(tiny_idx_root, caplog):
    # from a notebook, after run_search(cfg): the test split its members were scored on, without rebuilding DataConfig
    from nas import compose_search_config
    from nas.config import to_run_config
    from nas.data import load_search_data

    cfg = compose_search_config([f"data.root={tiny_idx_root}", "data.val_size=0.25", "data.test_size=0.2"])
    with caplog.at_level("WARNING", logger="nas.data"):
        ds = load_search_data(cfg)
    expected = load_dataset(_idx_cfg(tiny_idx_root, val_size=0.25, stratify=False))  # data=fashion_mnist's split
    assert (len(ds.train), len(ds.val), len(ds.test)) == (300, 100, 100) and torch.equal(ds.test.x, expected.test.x)
    assert torch.equal(ds.val.y, expected.val.y) and ds.classes == expected.classes and not ds.balanced
    # the overrides compose_search_config recorded, as run_search takes them: the idx files' own test split is said
    assert [r.getMessage() for r in caplog.records] == [
        "data.test_size=0.2 is not used: data=fashion_mnist has its own test split (100 images) from its idx files; "
        "leave it out"]
    assert torch.equal(load_search_data(to_run_config(cfg)).test.y, expected.test.y)
    assert torch.equal(load_search_data(_idx_cfg(tiny_idx_root, val_size=0.25, stratify=False)).val.y, expected.val.y)
    with pytest.raises(ConfigError, match=r"^data\.val_size=0 holds out no images"):
        load_search_data(_idx_cfg(tiny_idx_root, val_size=0))
    with pytest.raises(TypeError, match=r"^cfg=\['data\.root=x'\] is a list; pass the DictConfig that "
                                        r"nas\.compose_search_config"):
        load_search_data(["data.root=x"])


def test_a_test_size_for_data_with_its_own_test_split_is_named_as_unused(tiny_idx_root, tmp_path, caplog):
    # data=fashion_mnist (idx files) has a fixed test split: data.test_size=0.3 held nothing out, without a word.
    with caplog.at_level("WARNING", logger="nas.data"):
        ds = load_dataset(_idx_cfg(tiny_idx_root, test_size=0.3))
    assert len(ds.test) == 100  # the idx files' own test split, as before
    assert [r.getMessage() for r in caplog.records] == [
        "data.test_size=0.3 is not used: data=tiny has its own test split (100 images) from its idx files; leave it out"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="nas.data"):
        load_dataset(_idx_cfg(tiny_idx_root))  # left at its default: nothing to say
        for c in ("a", "b"):  # an image folder with test/ and val/ folders of its own: both sizes unused
            for split in ("train", "val", "test"):
                for i in range(2):
                    _png(tmp_path / split / c / f"{i}.png", 8, 50)
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None, test_size=1,
                                val_size=1))
    assert [r.getMessage() for r in caplog.records] == [
        "data.test_size=1 and data.val_size=1 are not used: data=x has its own test split (4 images) and val split "
        "(4 images) from its test/ and val/ folders; leave them out"]


def test_a_split_size_named_on_the_command_line_at_its_default_is_named_as_unused(tiny_idx_root, caplog):
    # data.test_size=0.2 (its default) typed on the command line for data=fashion_mnist held nothing out, without a word:
    # the composed config alone cannot tell it from a default left alone; Hydra's overrides (what `python -m nas.search`
    # passes on) can.
    from hydra import compose, initialize_config_dir

    from nas.config import CONF_DIR, overridden_keys, register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="search", overrides=[f"data.root={tiny_idx_root}", "data.test_size=0.2",
                                                       "data.val_size=0.1"], return_hydra_config=True)
    data = _idx_cfg(tiny_idx_root, test_size=cfg.data.test_size, val_size=cfg.data.val_size)
    assert data.test_size == DataConfig().test_size  # the default value, set explicitly
    with caplog.at_level("WARNING", logger="nas.data"):
        load_dataset(data)  # no overrides passed (a script's own config): nothing to tell apart, nothing said
        assert caplog.records == []
        ds = load_dataset(data, overridden=overridden_keys(cfg.hydra.overrides.task))
    assert len(ds.test) == 100 and len(ds.val) == 40  # val_size is used (idx files have no val split): not named
    assert [r.getMessage() for r in caplog.records] == [
        "data.test_size=0.2 is not used: data=tiny has its own test split (100 images) from its idx files; leave it out"]


def test_val_split_is_fixed_by_split_seed_and_disjoint_from_train(tiny_idx_root):
    a = load_dataset(_idx_cfg(tiny_idx_root))
    b = load_dataset(_idx_cfg(tiny_idx_root))
    c = load_dataset(_idx_cfg(tiny_idx_root, split_seed=5))
    assert torch.equal(a.val.x, b.val.x) and not torch.equal(a.val.x, c.val.x)
    train_rows = {bytes(r) for r in a.train.x.flatten(1).numpy()}
    assert not any(bytes(r) in train_rows for r in a.val.x.flatten(1).numpy())


def test_uncompressed_idx_files_are_accepted(tmp_path, tiny_idx_root):
    for f in tiny_idx_root.iterdir():
        (tmp_path / f.name.removesuffix(".gz")).write_bytes(gzip.decompress(f.read_bytes()))
    assert len(load_dataset(_idx_cfg(tmp_path)).test) == 100


def test_missing_dataset_names_the_install_command(tmp_path):
    with pytest.raises(DataError) as err:
        load_dataset(_idx_cfg(tmp_path / "nowhere"))
    msg = str(err.value)
    assert "apt-get install -y dataset-fashion-mnist" in msg and "nowhere" in msg and "\n" not in msg
    (tmp_path / "partial").mkdir()
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_dataset(_idx_cfg(tmp_path / "partial"))


def test_a_folder_of_class_folders_given_as_idx_data_root_says_to_pass_data_imagefolder(tmp_path):
    # data.root=/my/images without data=imagefolder (the data group defaults to Fashion-MNIST) said an idx file was
    # missing and to install Fashion-MNIST, sending the user the wrong way
    for c in ("cat", "dog"):
        _png(tmp_path / "flat" / c / "0.png", 8, 10)
        _png(tmp_path / "split" / "train" / c / "0.jpg", 8, 10, mode="RGB")
    (tmp_path / "split" / "test").mkdir()
    for layout, folders in (("flat", "cat, dog"), ("split", "train/cat, train/dog")):
        with pytest.raises(DataError) as err:
            load_dataset(_idx_cfg(tmp_path / layout))
        assert str(err.value) == (
            f"data.root={tmp_path / layout} holds folders of images ({folders}), not the idx files that data=tiny reads: "
            "for your own images pass data=imagefolder too (root/<class>/*.png|jpg or root/train/<class>/...)")
    # folders without images directly in them are not taken for class folders: the missing idx file is named as before
    (tmp_path / "other" / "sub").mkdir(parents=True)
    (tmp_path / "other" / "sub" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"dataset file train-images-idx3-ubyte\(\.gz\) not found"):
        load_dataset(_idx_cfg(tmp_path / "other"))


def test_an_idx_data_root_one_folder_above_a_folder_of_class_folders_names_that_folder_with_data_imagefolder(tmp_path):
    # an archive unpacked into downloads/ as downloads/shapes/<class>/, given as data.root=downloads without
    # data=imagefolder: it said an idx file was missing and to install Fashion-MNIST
    for c in ("circle", "square"):
        _png(tmp_path / "flat" / "shapes" / c / "0.png", 8, 10)
        _png(tmp_path / "split" / "shapes" / "train" / c / "0.png", 8, 10)
    for layout, folders in (("flat", "shapes/circle, shapes/square"), ("split", "shapes/train/circle, shapes/train/square")):
        with pytest.raises(DataError) as err:
            load_dataset(_idx_cfg(tmp_path / layout))
        assert str(err.value) == (
            f"data.root={tmp_path / layout} holds folders of images one folder down ({folders}), not the idx files that "
            f"data=tiny reads: for your own images pass data=imagefolder data.root={tmp_path / layout / 'shapes'}")
    # two folders of datasets: which one is meant is not known, so the missing idx file is named as before
    for dataset in ("a", "b"):
        for c in ("circle", "square"):
            _png(tmp_path / "two" / dataset / c / "0.png", 8, 10)
    with pytest.raises(DataError, match=r"dataset file train-images-idx3-ubyte\(\.gz\) not found"):
        load_dataset(_idx_cfg(tmp_path / "two"))


def test_truncated_idx_file_is_reported(tmp_path):
    path = tmp_path / "x-idx1-ubyte"
    write_idx(path, np.arange(10, dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx(path)
    path.write_bytes(b"garbage!")
    with pytest.raises(DataError, match="bad magic"):
        read_idx(path)


def _png(path, size, value, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size, size) if mode == "L" else (size, size, 3)
    Image.fromarray(np.full(shape, value, dtype=np.uint8), mode=mode).save(path)


def test_imagefolder_flat_layout_holds_out_test_and_val(tmp_path):
    for c, v in (("cat", 10), ("dog", 200)):
        for i in range(10):
            _png(tmp_path / c / f"{i}.png", 20, v)
    ds = load_dataset(DataConfig(name="pets", format=DataFormat.imagefolder, root=str(tmp_path), img_size=16, test_size=0.2, val_size=0.25))
    assert ds.classes == ("cat", "dog") and ds.in_chans == 1 and ds.img_size == 16
    assert (len(ds.train), len(ds.val), len(ds.test)) == (12, 4, 4)
    # labels follow pixel values: class folders were read, not shuffled against their images
    for split in (ds.train, ds.val, ds.test):
        assert torch.equal(split.y, (split.x.flatten(1).float().mean(1) > 100).long())


def test_images_beside_the_class_folders_are_named_in_a_warning(tmp_path, caplog):
    # Photos saved into the root (or into train/) rather than a class folder were left out of training without a word.
    for c in ("cat", "dog"):
        for i in range(5):
            _png(tmp_path / "flat" / c / f"{i}.png", 8, 10)
    _png(tmp_path / "flat" / "IMG_0001.png", 8, 10)
    (tmp_path / "flat" / "notes.txt").write_text("not an image")
    (tmp_path / "flat" / "._IMG_0001.png").write_bytes(b"macOS metadata")  # hidden: skipped, as everywhere
    with caplog.at_level("WARNING", logger="nas.data"):
        ds = load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path / "flat"), img_size=None,
                                     val_size=2, test_size=2))
    assert len(ds.train) + len(ds.val) + len(ds.test) == 10
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'flat'}: 1 image file lies outside the class folders and is left out (e.g. IMG_0001.png); only "
        "root/<class>/ (or root/train/<class>/, root/test/<class>/, root/val/<class>/) is read: move it into its "
        "class folder to train on it"]
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            for i in range(4):
                _png(tmp_path / "split" / split / c / f"{i}.png", 8, 10)
    _png(tmp_path / "split" / "train" / "a.png", 8, 10)
    _png(tmp_path / "split" / "train" / "b.jpg", 8, 10, mode="RGB")
    caplog.clear()
    with caplog.at_level("WARNING", logger="nas.data"):
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path / "split"), img_size=None, val_size=2))
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        f"{tmp_path / 'split' / 'train'}: 2 image files lie outside the class folders and are left out (e.g. a.png)"]


def test_imagefolder_split_folders_and_rgb_detection(tmp_path):
    for split, n in (("train", 6), ("test", 2)):
        for c in ("a", "b"):
            for i in range(n):
                _png(tmp_path / split / c / f"{i}.png", 8, 50, mode="RGB")
    ds = load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None, val_size=2))
    assert ds.in_chans == 3 and ds.img_size == 8 and len(ds.test) == 4 and len(ds.val) == 2


def test_held_out_splits_keep_every_class_of_an_unbalanced_folder(tmp_path):
    sizes = {"common": 30, "rare": 4, "single": 1}
    for c, n in sizes.items():
        for i in range(n):
            _png(tmp_path / c / f"{i}.png", 8, i)  # pixel value = index within the class: images stay traceable
    def load(**kw):
        return load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None,
                                       test_size=0.2, val_size=0.2, **kw))
    ds = load()
    counts = {split: torch.bincount(getattr(ds, split).y, minlength=3).tolist() for split in ("train", "val", "test")}
    # test: 7 of 35 = 6 common (6.0 exact) + 1 rare (0.8); the single image stays in training. val: 6 of 28 likewise.
    assert counts == {"train": [19, 2, 1], "val": [5, 1, 0], "test": [6, 1, 0]}
    seen = {(int(y), int(x[0, 0, 0])) for split in (ds.train, ds.val, ds.test) for x, y in zip(split.x, split.y)}
    assert len(seen) == 35  # disjoint splits that cover every image
    assert torch.equal(load().val.x, ds.val.x)  # fixed by split_seed
    # A plain random draw of 7 of 34 left the 4-image class out of test for some seeds: the reason for stratifying.
    # (The single image goes first: a random draw may take it out of training, which is refused, see below.)
    for f in (tmp_path / "single").iterdir():
        f.unlink()
    (tmp_path / "single").rmdir()
    rare_in_test = [int((load(stratify=False, split_seed=s).test.y == 1).sum()) for s in range(8)]  # classes: common, rare
    assert min(rare_in_test) == 0


def _split_of(ds):
    """Each image's split by its path: {"a/3.png": "val", ...}."""
    return {path: name for name in ("train", "val", "test") for path in getattr(ds, name).paths}


def _counts(ds, n_classes):
    return {name: torch.bincount(getattr(ds, name).y, minlength=n_classes).tolist() for name in ("train", "val", "test")}


def test_deleting_a_photo_moves_no_other_image_between_train_val_and_test(tmp_path):
    # One bad photo deleted: with a randperm of each class from one shared generator, its class was drawn anew, and
    # every class after it, so images a model was trained on landed in the test split of the next run.
    root = _folder(tmp_path, {"a": 21, "b": 20, "c": 20})
    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(root), img_size=None)
    before = load_dataset(cfg)
    gone = before.train.paths[0]  # a training image of class a, whose held-out counts (4 test, 2 val) stay
    assert gone.startswith("a/")
    (root / gone).unlink()
    after = load_dataset(cfg)
    assert _counts(after, 3) == {"train": [14, 14, 15], "val": [2, 2, 1], "test": [4, 4, 4]}
    assert _counts(before, 3)["train"] == [15, 14, 15]
    assert _split_of(after) == {path: name for path, name in _split_of(before).items() if path != gone}


def test_adding_a_photo_moves_no_image_of_another_class_and_at_most_one_per_held_out_split_of_its_own(tmp_path):
    root = _folder(tmp_path, {"a": 21, "b": 20, "c": 20})
    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(root), img_size=None)
    before = load_dataset(cfg)
    _png(root / "a" / "new.png", 8, 99)
    after = load_dataset(cfg)
    assert _counts(after, 3)["val"] == _counts(before, 3)["val"] and _counts(after, 3)["test"] == [4, 4, 4]
    now = _split_of(after)
    moved = [path for path, name in _split_of(before).items() if now[path] != name]
    # the counts did not change, so only a held-out image of class a that the new photo took the place of may move (to
    # train, or from test to val when val draws it from what test left): never more than two
    assert all(path.startswith("a/") for path in moved) and len(moved) <= 2, moved


def test_held_out_images_are_fixed_by_split_seed_and_another_seed_draws_others(tmp_path):
    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(_folder(tmp_path, {"a": 20, "b": 20})),
                     img_size=None)
    first = load_dataset(cfg)
    assert _split_of(load_dataset(cfg)) == _split_of(first)
    other = load_dataset(dataclasses.replace(cfg, split_seed=1))
    assert _counts(other, 2) == _counts(first, 2) and set(other.test.paths) != set(first.test.paths)
    assert set(other.val.paths) != set(first.val.paths)


def test_a_photo_whose_file_name_is_not_utf8_is_held_out_by_its_path_like_any_other(tmp_path):
    # A Latin-1 name (a zip from an old Windows machine, unpacked on Linux): Python holds its undecodable byte as a lone
    # surrogate, which strict UTF-8 refuses, and load_dataset ended in a UnicodeEncodeError from the held-out draw.
    import os

    root = _folder(tmp_path, {"a": 10, "b": 10})
    name = os.fsdecode(b"caf\xe9.png")
    try:
        _png(root / "a" / name, 8, 7)
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system takes UTF-8 names only")
    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(root), img_size=None)
    split = _split_of(load_dataset(cfg))
    assert f"a/{name}" in split and _split_of(load_dataset(cfg)) == split


def test_a_warning_naming_a_file_that_is_not_utf8_shows_its_bytes_as_backslash_x(tmp_path, caplog):
    # Hydra's console and search.log write strict UTF-8: the lone surrogate Python holds for the Latin-1 byte raised
    # in the handler, and logging printed "--- Logging error ---" and a traceback instead of the warning.
    import os

    root = _folder(tmp_path, {"a": 5, "b": 5})
    try:
        _png(root / os.fsdecode(b"\xe9t\xe9.png"), 8, 7)  # beside the class folders: named in a warning
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system takes UTF-8 names only")
    with caplog.at_level("WARNING", logger="nas.data"):
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(root), img_size=None))
    [message] = [r.getMessage() for r in caplog.records if "outside the class folders" in r.getMessage()]
    assert "(e.g. \\xe9t\\xe9.png)" in message and message.encode("utf-8")


@pytest.mark.parametrize("sizes, stratify", [({"a": 21, "b": 20, "c": 20}, True), ({"a": 20, "b": 20, "rare": 4}, True),
                                             ({"common": 30, "rare": 4, "single": 1}, True), ({"a": 30, "b": 7}, False)])
def test_images_held_out_by_their_paths_keep_the_per_class_counts_of_the_random_draw(tmp_path, monkeypatch, sizes,
                                                                                     stratify):
    import nas.data

    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(_folder(tmp_path, sizes)), img_size=None,
                     stratify=stratify)
    now = load_dataset(cfg)
    monkeypatch.setattr(nas.data, "hold_out", _hold_out_in_listing_order)
    then = load_dataset(cfg)
    if stratify:
        assert _counts(now, len(sizes)) == _counts(then, len(sizes))
    else:  # only the split sizes are fixed
        assert {k: sum(v) for k, v in _counts(now, len(sizes)).items()} == {
            k: sum(v) for k, v in _counts(then, len(sizes)).items()}
    assert _split_of(now) != _split_of(then)


@pytest.mark.parametrize("stratify", [False, True])
def test_idx_data_keeps_the_random_draw_of_its_val_split(tiny_idx_root, monkeypatch, stratify):
    # idx files have no path per image and do not change: their split is the one committed results were measured on
    import nas.data

    cfg = _idx_cfg(tiny_idx_root, val_size=0.25, stratify=stratify)
    now = load_dataset(cfg)
    monkeypatch.setattr(nas.data, "hold_out", _hold_out_in_listing_order)
    then = load_dataset(cfg)
    assert torch.equal(now.val.x, then.val.x) and torch.equal(now.val.y, then.val.y)
    assert torch.equal(now.train.y, then.train.y) and torch.equal(now.test.x, then.test.x)


@pytest.mark.skipif(not Path(FASHION_MNIST).is_dir(), reason="Fashion-MNIST is not installed")
def test_fashion_mnist_val_split_is_the_random_draw_committed_results_were_measured_on():
    from nas.data import _find_idx

    data = load_dataset(DataConfig(name="fashion_mnist", root=FASHION_MNIST, stratify=False))  # its data config's
    y = torch.from_numpy(read_idx(_find_idx(Path(FASHION_MNIST), "train-labels-idx1-ubyte")).astype(np.int64))
    index = torch.randperm(60_000, generator=torch.Generator().manual_seed(0))[:6_000].sort().values  # split_seed 0
    assert torch.equal(data.val.y, y[index])
    x = torch.from_numpy(read_idx(_find_idx(Path(FASHION_MNIST), "train-images-idx3-ubyte")).copy())
    assert torch.equal(data.val.x[:, 0], x[index])


def test_a_study_or_checkpoint_made_before_images_were_held_out_by_their_paths_keeps_its_split(tmp_path, monkeypatch,
                                                                                             caplog):
    import nas.data
    from nas.data import data_identity, split_as_recorded_and_digests

    root = _folder(tmp_path, {"a": 20, "b": 20})
    # subfolders whose paths sort otherwise as strings ("2024-06/" before "2024/") than as the listing sorts them
    for i, name in enumerate(("2024/0.png", "2024-06/0.png", "2024-06.png", "Z.png", "\u00e9.png")):
        _png(root / "a" / name, 8, 100 + i)
    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(root), img_size=None)
    now = load_dataset(cfg)
    with monkeypatch.context() as m:
        _split_as_before(m)
        then = data_identity(load_dataset(cfg))["digests"]
    assert then["test"] != data_identity(now)["digests"]["test"] and now.rounded_up == ()
    # split again from the images loaded, in the folder's order: not read again
    monkeypatch.setattr(nas.data, "_read_unsplit", lambda *a, **k: pytest.fail("the images were read again"))
    with caplog.at_level("WARNING", logger="nas.data"):
        kept = split_as_recorded_and_digests(cfg, now, then)[0]
        assert data_identity(kept)["digests"] == then
        # a checkpoint's
        assert split_as_recorded_and_digests(cfg, now, {"test": then["test"]})[0].test.paths == kept.test.paths
    assert caplog.messages == [f"kept the split of {tmp_path} that the study or checkpoint was made with, from before "
                               "held-out images were chosen by their file paths: a new study (or search) keeps each "
                               "image in its split when photos are added or removed"] * 2
    assert split_as_recorded_and_digests(cfg, now, data_identity(now)["digests"])[0] is now
    assert split_as_recorded_and_digests(cfg, now, {**then, "val": "0" * 16})[0] is now  # other images: refused later


def _stratified_counts_before_one_for_each(labels, k, **_):
    """What nas.splits._stratified_counts gave before every class that can spare an image got one (commit ccd2cc9), the
    split that studies made then recorded the digests of: largest remainders, each class keeping an image while the
    others can make up `k`."""
    import math

    classes, sizes = (t.tolist() for t in labels.unique(return_counts=True))
    shares = [k * n / sum(sizes) for n in sizes]
    counts = [min(math.floor(share), n - 1) for share, n in zip(shares, sizes)]
    order = sorted(range(len(sizes)), key=lambda i: (math.floor(shares[i]) - shares[i], i))
    for keep in (1, 0):
        while sum(counts) < k and any(counts[i] < sizes[i] - keep for i in order):
            for i in (i for i in order if counts[i] < sizes[i] - keep):
                counts[i] += sum(counts) < k
    return dict(zip(classes, counts))


def _hold_out_in_listing_order(split, size, *, seed, what, stratify, one_for_each=True, **_):
    """What nas.splits.hold_out did before held-out images were chosen by their paths (2026-12-06), the split that
    studies and checkpoints made then recorded the digests of: one generator, a randperm of each class in turn (of all
    images without stratify), in the listing's order."""
    import nas.splits

    k = nas.splits._count(size, len(split), what)
    generator = torch.Generator().manual_seed(seed)
    rounded_up = False
    if stratify:
        held_parts = []
        counts = nas.splits._stratified_counts(split.y, k, one_for_each=one_for_each)
        rounded_up = one_for_each and counts != nas.splits._stratified_counts(split.y, k, one_for_each=False)
        for c, count in counts.items():
            members = (split.y == c).nonzero().flatten()
            held_parts.append(members[torch.randperm(len(members), generator=generator)[:count]])
        held = torch.cat(held_parts).sort().values
        keep = torch.ones(len(split), dtype=torch.bool)
        keep[held] = False
        rest = keep.nonzero().flatten()
    else:
        perm = torch.randperm(len(split), generator=generator)
        rest, held = perm[k:].sort().values, perm[:k].sort().values
    return split.select(rest), split.select(held), rounded_up


def _split_as_before(m, *, one_for_each=True):
    """Patch (with pytest's MonkeyPatch `m`) nas.data to split as before held-out images were chosen by their paths,
    and with `one_for_each` false as before a class rounded to none got a held-out image too."""
    import nas.data
    import nas.splits

    m.setattr(nas.data, "hold_out", _hold_out_in_listing_order)
    if not one_for_each:
        m.setattr(nas.splits, "_stratified_counts", _stratified_counts_before_one_for_each)


def _folder(root, sizes):
    for c, n in sizes.items():
        for i in range(n):
            _png(root / c / f"{i}.png", 8, i)
    return root


def test_a_small_class_rounded_out_of_val_gets_a_val_image_and_the_split_keeps_its_size(tmp_path):
    # 20, 20 and 4 images, the default 20% test and 10% val: test 9 of 44 (the 4-image class 0.8 -> 1); val 4 of the 35
    # left took 0.34 of an image of that class, rounded to none, so the val accuracy never looked at it.
    root = _folder(tmp_path, {"a": 20, "b": 20, "rare": 4})
    ds = load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(root), img_size=None))
    counts = {split: torch.bincount(getattr(ds, split).y, minlength=3).tolist() for split in ("train", "val", "test")}
    assert counts == {"train": [14, 15, 2], "val": [2, 1, 1], "test": [4, 4, 1]}  # val: 4 images, as 10% of 35 rounds


@pytest.mark.parametrize("k", [2, 3, 5, 8, 13, 30])
def test_held_out_counts_are_unchanged_where_every_class_that_can_spare_an_image_got_one(k):
    from nas.splits import _stratified_counts

    rng = np.random.default_rng(k)
    compared = changed = 0
    for _ in range(300):
        sizes = rng.integers(1, 60, size=int(rng.integers(2, 7)))
        labels = torch.repeat_interleave(torch.arange(len(sizes)), torch.as_tensor(sizes))
        if k >= len(labels):
            continue
        old, new = _stratified_counts_before_one_for_each(labels, k), _stratified_counts(labels, k)
        assert sum(new.values()) == sum(old.values()) == k  # the split's size is the one asked for
        assert all(new[c] <= n - 1 or old[c] == new[c] for c, n in enumerate(sizes.tolist()))  # training keeps one
        if all(old[c] > 0 for c, n in enumerate(sizes.tolist()) if n >= 2):
            assert new == old  # the split every study made so far recorded
            compared += 1
        else:
            changed += 1
            spare = [c for c, n in enumerate(sizes.tolist()) if n >= 2]
            if sum(n >= 2 for n in old.values()) >= sum(old[c] == 0 for c in spare):  # enough to give back
                assert all(new[c] >= 1 for c in spare)
    assert compared and changed  # both kinds of class sizes were drawn


@pytest.mark.parametrize("sizes, held_out", [
    ({"a": 12, "b": 12, "c": 12}, {}),
    ({"common": 30, "rare": 4, "single": 1}, {"test_size": 0.2, "val_size": 0.2}),  # README's: 1 rare test and val image
])
def test_the_split_of_a_folder_where_every_class_got_images_is_the_one_studies_recorded(tmp_path, monkeypatch, sizes,
                                                                                        held_out):
    import nas.data
    import nas.splits

    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(_folder(tmp_path, sizes)), img_size=None,
                     **held_out)
    now = nas.data.data_identity(load_dataset(cfg))["digests"]
    monkeypatch.setattr(nas.splits, "_stratified_counts", _stratified_counts_before_one_for_each)
    assert nas.data.data_identity(load_dataset(cfg))["digests"] == now


def test_a_study_or_checkpoint_made_before_a_rare_class_got_a_val_image_keeps_its_split(tmp_path, monkeypatch, caplog):
    import nas.data
    from nas.data import split_as_recorded_and_digests, split_digest

    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(_folder(tmp_path, {"a": 20, "b": 20, "rare": 4})),
                     img_size=None)
    (tmp_path / "a" / "phone.heic").write_bytes(b"")  # a format not read: every read of the folder warns
    with caplog.at_level("WARNING", logger="nas.data"):
        now = load_dataset(cfg)
    assert len(caplog.messages) == 1 and "left out" in caplog.messages[0]
    with monkeypatch.context() as m:
        _split_as_before(m)
        drawn = load_dataset(cfg)  # drawn as before 2026-12-06, a val image for the rare class
        _split_as_before(m, one_for_each=False)
        then = nas.data.data_identity(load_dataset(cfg))["digests"]  # what a study made before 2026-12-05 recorded
    assert now.rounded_up == drawn.rounded_up == ("val",) and then["val"] != split_digest(now.val)
    assert then["test"] == split_digest(drawn.test) and then["val"] != split_digest(drawn.val)  # only val's counts moved
    caplog.clear()
    with caplog.at_level("WARNING", logger="nas.data"):
        kept = split_as_recorded_and_digests(cfg, now, then)[0]
    assert nas.data.data_identity(kept)["digests"] == then and kept.rounded_up == ()
    # reading the images again does not give the first read's warnings again (search.log carried them twice)
    assert caplog.messages == [f"kept the split of {tmp_path} that the study or checkpoint was made with, from before "
                               "held-out images were chosen by their file paths and before a class rounded to none got "
                               "a held-out image: a new study (or search) keeps each image in its split when photos are "
                               "added or removed, and gets one in val"]
    assert split_as_recorded_and_digests(cfg, now, nas.data.data_identity(now)["digests"])[0] is now  # this split's
    assert split_as_recorded_and_digests(cfg, now, {**then, "val": "0" * 16})[0] is now  # other images: refused later


def test_load_search_data_of_a_run_folder_gives_the_split_its_study_was_made_with(tmp_path, monkeypatch, caplog):
    # A study made before a rare class got a val image resumes (and rebuilds its report) on its own split; from Python,
    # load_search_data gave the split a new study gets, so a model scored on it was scored on other images.
    import dataclasses

    import optuna

    from nas.config import RunConfig
    from nas.data import data_identity, load_search_data, split_digest

    cfg = DataConfig(name="x", format=DataFormat.imagefolder,
                     root=str(_folder(tmp_path / "images", {"a": 20, "b": 20, "rare": 4})), img_size=None)
    with monkeypatch.context() as m:
        _split_as_before(m, one_for_each=False)
        then = load_dataset(cfg)  # the split a study made then was scored on

    def study(folder, identity, *, db=None):
        folder.mkdir(parents=True)
        s = optuna.create_study(study_name=folder.name, storage=f"sqlite:///{db or folder / 'study.db'}")
        s.set_user_attr("data", identity)

    study(tmp_path / "runs" / "old", data_identity(then))
    now = load_search_data(cfg)
    assert split_digest(now.val) != split_digest(then.val)  # without the run folder: a new study's split
    with caplog.at_level("WARNING", logger="nas.data"):
        kept = load_search_data(cfg, run_dir=tmp_path / "runs" / "old")
    assert data_identity(kept)["digests"] == data_identity(then)["digests"]
    assert any(m.startswith("kept the split of ") for m in caplog.messages)
    # a study of today's split gets today's
    study(tmp_path / "runs" / "new", data_identity(now))
    assert data_identity(load_search_data(cfg, run_dir=str(tmp_path / "runs" / "new"))) == data_identity(now)
    # a shared study: found in the config's search.storage under the run folder's name (which holds no study.db)
    study(tmp_path / "runs2" / "old", data_identity(then), db=tmp_path / "shared.db")
    run = RunConfig(data=cfg)
    run = dataclasses.replace(run, search=dataclasses.replace(run.search, storage=f"sqlite:///{tmp_path / 'shared.db'}"))
    assert split_digest(load_search_data(run, run_dir=tmp_path / "runs2" / "old").val) == split_digest(then.val)
    # a study made with other images is refused, as a search resuming it refuses them
    other = data_identity(now)
    other["digests"] = {**other["digests"], "val": "0" * 16}
    study(tmp_path / "runs" / "other", other)
    with pytest.raises(ConfigError, match=r"^study 'other' was made with other images \(.*\); pass the data settings its "
                                          r"search used \(this one's data\.root="):
        load_search_data(cfg, run_dir=tmp_path / "runs" / "other")
    with pytest.raises(ConfigError, match=r"^run_dir='[^']*nothing' holds no study\.db: pass the run folder of a search"):
        load_search_data(cfg, run_dir=tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()  # not created by the look
    (tmp_path / "renamed").mkdir()  # a run folder renamed: its study keeps the name it was made with
    (tmp_path / "renamed" / "study.db").write_bytes((tmp_path / "runs" / "new" / "study.db").read_bytes())
    with pytest.raises(ConfigError, match=r"^run_dir='[^']*renamed': sqlite:///\S+ holds no study 'renamed' \(a run folder "
                                          r"is named after its study\); studies there: new$"):
        load_search_data(cfg, run_dir=tmp_path / "renamed")
    with pytest.raises(TypeError, match=r"^run_dir=3 is an int; pass the run folder of a search"):
        load_search_data(cfg, run_dir=3)


def test_load_search_data_of_a_run_folder_hashes_each_split_once(tmp_path, monkeypatch):
    # With run_dir, the split was compared with the study's record (split_as_recorded_and_digests) and then checked
    # against it (data_identity), each hashing every split: all the training images' pixels twice per load.
    import optuna

    import nas.data
    import nas.data_records
    from nas.data import data_identity, load_search_data

    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(_folder(tmp_path / "images", {"a": 20, "b": 20})),
                     img_size=None)
    data = load_search_data(cfg)
    (tmp_path / "runs" / "s").mkdir(parents=True)
    optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'runs' / 's' / 'study.db'}").set_user_attr(
        "data", data_identity(data))
    hashed: list[int] = []
    real = nas.data.split_digest
    for where in (nas.data, nas.data_records):  # where split_as_recorded_and_digests, data_identity look it up
        monkeypatch.setattr(where, "split_digest", lambda split: hashed.append(len(split)) or real(split))
    loaded = load_search_data(cfg, run_dir=tmp_path / "runs" / "s")
    assert sorted(hashed) == sorted(len(s) for s in (data.train, data.val, data.test))  # each split once
    for where in (nas.data, nas.data_records):
        monkeypatch.setattr(where, "split_digest", real)
    assert data_identity(loaded) == data_identity(data)
    with pytest.raises(ValueError, match=r"^split_digests names no split 'tests': pass split digests by split name "
                                         r"\(train, val, test\)$"):
        data_identity(data, split_digests={"tests": "0" * 16})


def test_a_checkpoint_tested_before_a_rare_class_got_a_test_image_is_tested_on_the_same_images(tmp_path, monkeypatch):
    # 40, 40 and 2 images: test took none of the 2-image class before (0.39 of an image), one now; compress.run of a
    # checkpoint searched then refused the folder ("tested on other images"), with no setting that could fix it.
    import json

    from compress.run import _check_test_images
    from nas.data import SPLIT_SETTINGS, split_digest

    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(_folder(tmp_path / "img", {"a": 40, "b": 40, "rare": 2})),
                     img_size=None)
    with monkeypatch.context() as m:
        _split_as_before(m, one_for_each=False)
        then = load_dataset(cfg).test
    now = load_dataset(cfg)
    assert now.rounded_up == ("test",) and then.y.bincount(minlength=3).tolist() == [8, 8, 0]
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "metrics.json").write_text(json.dumps({"test_images": {
        "digest": split_digest(then), "count": len(then), "split": {k: getattr(cfg, k) for k in SPLIT_SETTINGS}}}))
    assert split_digest(_check_test_images(tmp_path / "ck", now, cfg).test) == split_digest(then)


def test_a_class_left_out_of_a_held_out_split_is_named_in_a_warning(tmp_path):
    from nas.data import held_out_gaps_warning

    def load(sizes, **kw):
        root = _folder(tmp_path / "-".join(f"{c}{n}" for c, n in sizes.items()), sizes)
        cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(root), img_size=None, **kw)
        return held_out_gaps_warning(load_dataset(cfg), cfg)

    assert load({"a": 20, "b": 20, "rare": 3}) is None  # 3 images: one each for training, test and val
    assert load({"a": 20, "b": 20, "pair": 2, "one": 1}) == (
        "class 'one' (1 image) has no test or val image and 'pair' (2 images) has no val image: too few: a class needs 3 "
        "images (one for training and one for each of test and val); give such a class more images; the test accuracy "
        "and the val accuracy (which the search maximises) never look at them")
    assert load({"a": 20, "b": 20, "c": 20}, val_size=2) == (
        "class 'c' (20 images) has no val image: data.val_size=2 holds out 2 images for 3 classes; hold out 3 or more; "
        "the val accuracy (which the search maximises) never looks at it")
    # a seed whose draw of all images leaves the 4-image class out of test (and not out of val), whichever it is
    said = next(w for w in (load({"a": 30, "rare": 4}, stratify=False, split_seed=s, test_size=0.2) for s in range(8))
                if w is not None and " has no test image: " in w)
    assert said.startswith("class 'rare' (4 images) has no test image: data.stratify=false draws held-out images at "
                           "random (data.stratify=true gives one to every class of 3 or more images)")


def test_unbalanced_training_classes_are_named_in_a_warning(tmp_path):
    def load(good, crack, metric=Metric.accuracy):
        root = tmp_path / f"{good}-{crack}"
        for c, n in (("good", good), ("crack", crack)):
            for i in range(n):
                _png(root / c / f"{i}.png", 8, i)
        return load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(root), img_size=None,
                                       test_size=1, val_size=1, metric=metric))  # both held-out images come from 'good'
    assert imbalance_warning(load(31, 5)) is None  # 29 vs 5 training images: under 10x
    assert imbalance_warning(load(42, 4)) == (
        "unbalanced classes: 'good' has 40 training images, 'crack' 4; accuracy, which the search maximises, rewards "
        "predicting the large classes: set data.metric=balanced_accuracy (every class counts the same), or balance the folders")
    assert imbalance_warning(load(42, 4, Metric.balanced_accuracy)) is None  # the advice taken


def test_class_names_that_are_not_utf8_are_quoted_with_their_bytes_as_the_toolkit_writes_them(tmp_path):
    # A Latin-1 class folder from an old zip: the warnings quoted it as 'caf\udce9' (repr of Python's lone surrogate),
    # while file names, the CSV files and the report write caf\xe9.
    import os

    from nas.data import class_changes

    name = os.fsdecode(b"caf\xe9")
    for c, n in ((name, 42), ("dog", 4)):
        for i in range(n):
            _png(tmp_path / c / f"{i}.png", 8, i)
    data = load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None,
                                   test_size=1, val_size=1))
    assert imbalance_warning(data).startswith("unbalanced classes: 'caf\\xe9' has 40 training images, 'dog' 4; ")
    assert class_changes({"classes": [name], "per_class": [[1, 0, 0, "aa"]]},
                         {"classes": [name], "per_class": [[2, 0, 0, "bb"]]}) == [
        "class 'caf\\xe9': 1 train image in the study, 2 now"]


def _split_folders(root, per_class):
    """root/{train,val,test}/{cat,dog}/<i>.png of distinct random pixels, `per_class` images each."""
    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for c in ("cat", "dog"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), mode="L").save(root / split / c / f"{i}.png")
    return DataConfig(name="x", format=DataFormat.imagefolder, root=str(root), img_size=None)


def test_test_and_val_images_that_are_training_images_are_counted_and_the_first_named_in_a_warning(tmp_path):
    # Files copied into both train/ and test/ by mistake: the test accuracy counted images the model trained on, silently.
    import shutil

    from nas.data import held_out_copies_warning

    cfg = _split_folders(tmp_path, {"train": 6, "val": 2, "test": 4})
    assert held_out_copies_warning(load_dataset(cfg)) is None  # no image in two splits
    (tmp_path / "test" / "dog" / "3.png").unlink()  # replaced by a copy: 8 test images still
    shutil.copy(tmp_path / "train" / "dog" / "5.png", tmp_path / "test" / "dog" / "3.png")
    shutil.copy(tmp_path / "train" / "cat" / "0.png", tmp_path / "test" / "dog" / "copy.png")  # 9, one of another label
    assert held_out_copies_warning(load_dataset(cfg)) == (
        "training images repeated in test: 2 of the 9 test images (22%), the first test/dog/3.png (same pixels as "
        "train/dog/5.png); the test accuracy counts them as unseen; delete one file of each pair")
    shutil.copy(tmp_path / "train" / "cat" / "1.png", tmp_path / "val" / "cat" / "again.png")
    shutil.copy(tmp_path / "val" / "dog" / "0.png", tmp_path / "test" / "cat" / "from-val.png")  # not a training image
    assert held_out_copies_warning(load_dataset(cfg)) == (
        "training images repeated in test and val: 2 of the 10 test images (20%) and 1 of the 5 val images (20%), the "
        "first test/dog/3.png (same pixels as train/dog/5.png); the test accuracy counts them as unseen and the val "
        "accuracy (which the search maximises) rewards remembering them; delete one file of each pair")


def test_a_test_image_of_idx_files_that_is_a_training_image_is_named_by_its_position(tiny_idx_root):
    from nas.data import held_out_copies_warning

    data = load_dataset(_idx_cfg(tiny_idx_root))
    x = data.test.x.clone()
    x[7] = data.train.x[3]
    copied = dataclasses.replace(data, test=dataclasses.replace(data.test, x=x))
    assert held_out_copies_warning(data) is None
    assert held_out_copies_warning(copied) == (
        f"training images repeated in test: 1 of the {len(x)} test images ({100 / len(x):.2g}%), the first test image 7; "
        "the test accuracy counts them as unseen; remove one image of each pair from the data")


@pytest.mark.skipif(not Path(FASHION_MNIST).is_dir(), reason="Fashion-MNIST is not installed")
def test_fashion_mnist_has_no_test_or_val_image_that_is_a_training_image():
    # Why held_out_copies_warning warns at any one copy: a default run must not give it every time.
    from nas.data import held_out_copies_warning

    data = load_dataset(DataConfig(name="fashion_mnist", root=FASHION_MNIST, stratify=False))
    assert held_out_copies_warning(data) is None


def test_16bit_grey_images_are_scaled_not_clipped_and_32bit_ones_are_refused(tmp_path):
    # Pillow's own convert("L") clips 16-bit values to 255: these images would read as all white.
    for c, v in (("dark", 0x1000), ("bright", 0xF000)):
        (tmp_path / c).mkdir()
        for i in range(4):
            img = Image.fromarray(np.full((8, 8), v, dtype=np.uint16))
            assert img.mode == "I;16"
            img.save(tmp_path / c / f"{i}.png")
    ds = load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None,
                                 test_size=2, val_size=2))
    assert ds.in_chans == 1  # 16-bit grey is grey, not colour
    x = torch.cat([ds.train.x, ds.val.x, ds.test.x]).flatten(1)
    y = torch.cat([ds.train.y, ds.val.y, ds.test.y])
    assert (x == x[:, :1]).all()
    expected = {ds.classes.index("dark"): round(0x1000 / 257), ds.classes.index("bright"): round(0xF000 / 257)}
    assert sorted(set(x[:, 0].tolist())) == sorted(expected.values())  # 16 and 239, from value / 65535
    assert all(int(v) == expected[int(label)] for v, label in zip(x[:, 0], y))
    Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32)).save(tmp_path / "dark" / "f.tif")
    with pytest.raises(DataError, match=r"^cannot read image .*f\.tif: floating-point pixels \(mode F\), whose range is "
                                        r"not defined: save it as 8-bit grey or colour, or 16-bit grey; replace or remove it$"):
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None))
    # named with the other files that cannot be read, in one error
    Image.fromarray(np.full((8, 8), 7, dtype=np.int32)).save(tmp_path / "bright" / "i.tif")
    (tmp_path / "bright" / "cut.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"^cannot read 3 images: .*cut\.png \(empty file.*i\.tif \(32-bit integer pixels "
                                        r"\(mode I\).*f\.tif \(floating-point pixels"):
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None))


def test_held_out_splits_that_round_to_nothing_or_everything_say_which_way_to_go(tmp_path):
    for c in ("a", "b"):  # 6 images: the test split takes 1 (0.2 rounded), 5 are left for train + val
        for i in range(3):
            _png(tmp_path / c / f"{i}.png", 8, 50)

    def load(**kw):
        return load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None, **kw))

    with pytest.raises(DataError, match=r"data\.val_size=0\.1 holds out 0 of 5 images; choose a larger fraction or a count"):
        load(val_size=0.1)
    with pytest.raises(DataError, match=r"data\.val_size=5 holds out 5 of 5 images and leaves none for training"):
        load(val_size=5)
    assert (len(load(val_size=1).val), len(load(val_size=0.2).val)) == (1, 1)


def test_hidden_files_beside_the_images_are_skipped(tmp_path):
    for c in ("a", "b"):
        for i in range(3):
            _png(tmp_path / c / f"{i}.png", 8, 50)
            # what macOS leaves beside each image it copies to a USB stick: not an image, with an image's suffix
            (tmp_path / c / f"._{i}.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
            # and what unzipping a Mac's zip leaves: __MACOSX/<class>/._<image>, at the top and inside a class folder
            for folder in (tmp_path / "__MACOSX" / c, tmp_path / c / "__MACOSX"):
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"._{i}.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    ds = load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None,
                                 test_size=1, val_size=1))
    assert ds.classes == ("a", "b") and len(ds.train) + len(ds.val) + len(ds.test) == 6



def test_the_folders_a_nas_or_a_usb_disk_makes_among_photos_are_skipped(tmp_path):
    # A Synology NAS keeps thumbnails of every photo in @eaDir/<photo>/ beside it (five sizes each): they were read as
    # more images of the class, thumbnails of test photos among the training images; a USB disk's root holds
    # $RECYCLE.BIN (deleted photos) and System Volume Information, which were read as classes.
    from nas.data import image_files_in

    for c, v in (("a", 10), ("b", 200)):
        for i in range(3):
            _png(tmp_path / c / f"{i}.png", 8, v)
            _png(tmp_path / c / "@eaDir" / f"{i}.png" / "SYNOPHOTO_THUMB_XL.png", 8, 255 - v)
    _png(tmp_path / "$RECYCLE.BIN" / "S-1-5-21" / "$RABC123.png", 8, 99)
    _png(tmp_path / "System Volume Information" / "x.png", 8, 99)
    (tmp_path / "lost+found").mkdir()
    ds = load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None,
                                 test_size=1, val_size=1))
    assert ds.classes == ("a", "b") and len(ds.train) + len(ds.val) + len(ds.test) == 6
    assert sorted(torch.cat([ds.train.x, ds.val.x, ds.test.x]).flatten(1).float().mean(1).tolist()) == [10.0] * 3 + [200.0] * 3
    assert [p.name for p in image_files_in(tmp_path / "a")] == ["0.png", "1.png", "2.png"]  # compress.predict's too


def test_images_in_subfolders_of_a_class_folder_are_read_and_hidden_folders_are_not(tmp_path):
    for c, v in (("a", 10), ("b", 200)):
        _png(tmp_path / c / "top.png", 8, v)
        _png(tmp_path / c / "2024" / "day1" / "deep.png", 8, v)  # photos sorted by day, as torchvision reads them too
        _png(tmp_path / c / ".thumbnails" / "t.png", 8, 255 - v)  # a viewer's cache: not training images
    _png(tmp_path / "c" / "only" / "in" / "sub.png", 8, 120)  # a class with all its images in subfolders
    ds = load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None,
                                 test_size=1, val_size=1))
    assert ds.classes == ("a", "b", "c") and len(ds.train) + len(ds.val) + len(ds.test) == 5
    x = torch.cat([ds.train.x, ds.val.x, ds.test.x]).flatten(1).float().mean(1)
    y = torch.cat([ds.train.y, ds.val.y, ds.test.y])
    assert sorted(zip(y.tolist(), x.tolist())) == [(0, 10.0), (0, 10.0), (1, 200.0), (1, 200.0), (2, 120.0)]


def test_a_class_named_train_is_told_apart_from_the_train_test_layout(tmp_path):
    for c in ("bus", "car", "train"):
        _png(tmp_path / c / "0.png", 8, 50)
    with pytest.raises(DataError, match="holds a folder named 'train', so it was read as root/train/<class>/images "
                                        "beside root/test; a class named 'train' needs another folder name"):
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None))


def test_a_class_left_without_training_images_by_the_held_out_splits_is_refused(tmp_path):
    for c, n in (("a", 10), ("b", 10), ("c", 2)):
        for i in range(n):
            _png(tmp_path / c / f"{i}.png", 8, 50)
    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None, test_size=0.2)
    ds = load_dataset(cfg)  # stratified: 'c' gives one image to test and keeps one in training (too few for val too)
    assert [s.y.bincount(minlength=3).tolist() for s in (ds.train, ds.val, ds.test)] == [[7, 8, 1], [1, 1, 0], [2, 1, 1]]
    with pytest.raises(DataError, match=r"class 'a' has no training images left after holding out test and val "
                                        r"\(data.test_size=0.2, data.val_size=0.95\); hold out less"):
        load_dataset(dataclasses.replace(cfg, val_size=0.95))

def test_16bit_colour_images_are_read_as_their_high_byte_as_the_contract_says(tmp_path):
    # Pillow reads a 48-bit PNG (a scanner's, a raw converter's) as its high byte, value // 256, not as the value / 257
    # that 16-bit grey gets; input.preprocessing named only the grey rule, so a deployment that read such files with
    # another library and followed it fed other pixels (200 became 1, not 0).
    import struct
    import zlib

    values = np.array([200, 383, 384, 32895, 65279, 65535], dtype=">u2")
    rows = np.stack([values] * 3, axis=-1)[None].astype(">u2")  # 1 row of 6 grey-valued RGB pixels, 16 bits each, big-endian
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    (tmp_path / "scan.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 6, 1, 16, 2, 0, 0, 0))
                                        + chunk(b"IDAT", zlib.compress(b"\x00" + rows[0].tobytes())) + chunk(b"IEND", b""))
    got = read_image(tmp_path / "scan.png", size=None, mode="RGB")
    assert got[0, :, 0].tolist() == (values // 256).tolist() == [0, 1, 1, 128, 254, 255]
    said = preprocessing(DataConfig(name="i", format=DataFormat.imagefolder), in_chans=3, img_size=32)
    assert "16-bit grey as round(value / 257), 16-bit colour as its high byte (value // 256)" in said


def test_16bit_grey_and_cut_outs_made_by_the_contract_words_in_numpy_are_the_training_pixels(tmp_path):
    # input.preprocessing said "16-bit grey as value / 257" and "alpha x pixel + (1 - alpha) x 255": a deployment that
    # computed them in numpy and stored uint8 truncated, 1 level darker than training on about half such pixels.
    values = np.arange(0, 65536, 7, dtype=np.uint16)[:9216].reshape(96, 96)
    Image.fromarray(values).save(tmp_path / "grey16.png")
    rgba = np.zeros((64, 64, 4), dtype=np.uint8)
    rgba[..., :3] = np.arange(64 * 64 * 3, dtype=np.int64).reshape(64, 64, 3) % 256
    rgba[..., 3] = np.arange(64 * 64).reshape(64, 64) % 256
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut.png")
    said = preprocessing(DataConfig(name="i", format=DataFormat.imagefolder, img_size=None, background=200),
                         in_chans=3, img_size=64)
    assert "16-bit grey as round(value / 257)" in said
    assert "composited onto grey level 200: round(alpha x pixel + (1 - alpha) x 200), alpha = A / 255" in said
    grey = read_image(tmp_path / "grey16.png", size=None, mode="L")
    np.testing.assert_array_equal(grey, np.round(values / 257))
    alpha = rgba[..., 3:] / 255
    cut = read_image(tmp_path / "cut.png", size=None, mode="RGB", background=200)
    np.testing.assert_array_equal(cut, np.round(alpha * rgba[..., :3] + (1 - alpha) * 200))
    truncated = (alpha * rgba[..., :3] + (1 - alpha) * 200).astype(np.uint8)  # what "value / 257" read as uint8 gave
    assert (truncated != cut).mean() > 0.3 and ((values / 257).astype(np.uint8) != grey).mean() > 0.3


def test_preprocessing_says_how_the_training_images_were_made():
    idx = DataConfig(name="f", format=DataFormat.idx)
    assert preprocessing(idx, in_chans=1, img_size=28) == "idx grey images as stored; uint8 / 255"
    assert preprocessing(DataConfig(name="f", format=DataFormat.idx, img_size=32, channels=3), in_chans=3, img_size=32) == (
        "idx grey images resized to 32x32 (bilinear, antialiased: torch's interpolate(mode='bilinear', antialias=True, "
        "align_corners=False) of the uint8 values, rounded); grey repeated into 3 channels; uint8 / 255")
    folder = DataConfig(name="i", format=DataFormat.imagefolder, img_size=None)
    assert preprocessing(folder, in_chans=1, img_size=20) == (
        "decoded with Pillow, turned upright as the EXIF orientation says, converted to grey (Pillow 'L': 0.299 R + 0.587 G + 0.114 B) "
        "(transparency dropped: the colours stored under transparent pixels are used as they are), 16-bit grey as round(value / 257), 16-bit colour as its high byte (value // 256); "
        "at their own size; uint8 / 255")


def test_transparency_is_composited_onto_data_background_when_set(tmp_path):
    from PIL import Image

    from nas.data import read_image

    # A red cut-out: opaque top half, transparent bottom half whose stored colour is red too, one pixel half opaque.
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0], rgba[:2, :, 3], rgba[3, 3, 3] = 200, 255, 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "cut.png")
    red = read_image(tmp_path / "cut.png", size=None, mode="RGB")
    assert (red[..., 0] == 200).all()  # null: transparency dropped, the stored colour shows everywhere
    white = read_image(tmp_path / "cut.png", size=None, mode="RGB", background=255)
    np.testing.assert_array_equal(white[:2], red[:2])  # opaque pixels are untouched
    assert (white[2:, :3] == 255).all() and (white[3, :3] == 255).all()  # transparent ones show the background
    # half opaque: alpha x pixel + (1 - alpha) x background, per channel
    assert white[3, 3].tolist() == [round((200 * 128 + 255 * 127) / 255), round(255 * 127 / 255), round(255 * 127 / 255)]
    grey = read_image(tmp_path / "cut.png", size=None, mode="L", background=0)
    assert (grey[2] == 0).all() and grey[0, 0] == read_image(tmp_path / "cut.png", size=None, mode="L")[0, 0]
    # Grey with alpha, and images that name one transparent colour instead of an alpha channel (palette PNG/GIF, grey).
    la = np.stack([np.full((2, 2), 100, np.uint8), np.array([[255, 0], [0, 255]], np.uint8)], axis=-1)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    assert read_image(tmp_path / "la.png", size=None, mode="L", background=255).tolist() == [[100, 255], [255, 100]]
    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    pal.putpalette([10, 20, 30, 40, 50, 60])
    pal.save(tmp_path / "p.png", transparency=1)
    assert read_image(tmp_path / "p.png", size=None, mode="RGB", background=255).tolist() == [
        [[10, 20, 30], [255, 255, 255]], [[255, 255, 255], [10, 20, 30]]]
    Image.fromarray(np.array([[5, 7], [7, 5]], np.uint8), "L").save(tmp_path / "l.png", transparency=7)
    assert read_image(tmp_path / "l.png", size=None, mode="L", background=255).tolist() == [[5, 255], [255, 5]]
    # An image without transparency is the same either way.
    _png(tmp_path / "plain.png", 4, 77)
    assert (read_image(tmp_path / "plain.png", size=None, mode="L", background=255) == 77).all()


def test_an_image_folder_with_cut_outs_loads_onto_the_background_and_says_so(tmp_path):
    from PIL import Image

    for c, v in (("cat", 40), ("dog", 160)):
        for i in range(5):
            rgba = np.zeros((6, 6, 4), dtype=np.uint8)
            rgba[..., :3], rgba[1:5, 1:5, 3] = v + i, 255  # an opaque square on a transparent border of the same colour
            (tmp_path / "img" / c).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgba, "RGBA").save(tmp_path / "img" / c / f"{i}.png")
    cfg = dict(name="x", format=DataFormat.imagefolder, root=str(tmp_path / "img"), img_size=None, test_size=2,
               val_size=2, cache_dir=str(tmp_path / "cache"))
    dropped = load_dataset(DataConfig(**cfg))
    white = load_dataset(DataConfig(**cfg, background=255))  # the same files and cache folder: not the cached arrays
    assert dropped.in_chans == white.in_chans == 3 and len(list((tmp_path / "cache").glob("images-*.npy"))) == 2
    for a, b in ((dropped.train, white.train), (dropped.test, white.test)):
        assert torch.equal(a.x[:, :, 1:5, 1:5], b.x[:, :, 1:5, 1:5])  # the object
        assert (b.x[:, :, 0] == 255).all() and (a.x[:, :, 0] < 255).all()  # its border
    text = preprocessing(DataConfig(**cfg, background=255), in_chans=3, img_size=6)
    assert "converted to RGB (transparent pixels composited onto grey level 255: round(alpha x pixel + (1 - alpha) x 255), " \
           "alpha = A / 255), " in text


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_palette_images_with_transparency_read_as_their_colours_without_a_pillow_warning(tmp_path, mode):
    # GIFs and palette PNGs with a transparent colour: the same pixels as a plain conversion gives, alpha dropped,
    # and no UserWarning from inside Pillow in the search's output.
    import warnings

    from PIL import Image

    from nas.data import read_image

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).quantize(8)
    img.save(tmp_path / "p.png", transparency=bytes([0, 0, 128, 255, 255, 255, 255, 255]))  # several: stored as bytes
    with Image.open(tmp_path / "p.png") as opened:
        assert opened.mode == "P" and isinstance(opened.info["transparency"], bytes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            plain = np.asarray(opened.convert(mode))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning fails the test
        got = read_image(tmp_path / "p.png", size=None, mode=mode)
    np.testing.assert_array_equal(got, plain)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_photos_are_turned_upright_as_their_exif_orientation_says(tmp_path, suffix):
    # A phone's portrait photo: landscape pixels (dark left half, bright right half) plus "rotate 90 CW to view" (6).
    pixels = np.zeros((40, 60), dtype=np.uint8)
    pixels[:, 30:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / f"portrait{suffix}", exif=exif)
    upright = read_image(tmp_path / f"portrait{suffix}", size=None, mode="L")
    assert upright.shape == (60, 40)  # as a viewer shows it: portrait
    assert upright[:25].mean() < 20 and upright[35:].mean() > 235  # the left half, turned clockwise, is on top now


def test_big_jpegs_are_decoded_at_reduced_scale_close_to_a_full_decode(tmp_path):
    yy, xx = np.mgrid[0:768, 0:1024]
    pixels = np.stack([xx * 255 // 1024, yy * 255 // 768, (xx + yy) % 256], -1).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.jpg", quality=90)
    draft = read_image(tmp_path / "photo.jpg", size=16, mode="RGB")
    full = read_image(tmp_path / "photo.jpg", size=16, mode="RGB", draft=False)
    assert draft.shape == full.shape == (16, 16, 3)
    diff = np.abs(draft.astype(int) - full.astype(int))
    assert 0 < diff.max() <= 4  # another decode (1/8 scale: 128x96, still >= 2x 16), the same picture


def test_a_photo_over_pillows_pixel_limit_is_judged_by_the_pixels_it_decodes(tmp_path, monkeypatch):
    # Pillow refuses an image of over 2 x MAX_IMAGE_PIXELS as stored, and warns (two lines of "decompression bomb DOS
    # attack") from 1 x: a phone's 200-megapixel JPEG was refused though it is decoded at 1/8 scale for the model, and a
    # 108-megapixel one printed the warning into the run's output. Scaled down here: a limit of 1,000 pixels.
    import warnings

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    pixels = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)  # 4,096 pixels: 2x over
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", quality=90)
    Image.fromarray(pixels[:40, :40]).save(tmp_path / "warned.png")  # 1,600 pixels: Pillow's warning, not its error
    Image.fromarray(pixels).save(tmp_path / "panorama.png")  # no reduced decoding: 4,096 pixels decoded
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning fails the test
        # decoded at 1/4 scale (16x16, 2x the 8 px asked): as a JPEG under the limit is
        assert read_image(tmp_path / "phone.jpg", size=8, mode="RGB").shape == (8, 8, 3)
        assert read_image(tmp_path / "warned.png", size=8, mode="RGB").shape == (8, 8, 3)
        with pytest.raises(DataError, match=r"cannot read image .*panorama\.png: 64x64 pixels to decode \(0 megapixels\), "
                                            r"over Pillow's limit of 0 megapixels against decompression bombs"):
            read_image(tmp_path / "panorama.png", size=8, mode="RGB")
        with pytest.raises(DataError, match=r"phone\.jpg: 64x64 pixels to decode"):  # decoded whole: no data.img_size
            read_image(tmp_path / "phone.jpg", size=None, mode="RGB")
    assert Image.MAX_IMAGE_PIXELS == 1000  # Pillow's limit as it was, for any other code of the process


def test_imagefolder_bad_inputs_are_named(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path / "none")))
    _png(tmp_path / "a" / "0.png", 8, 1)
    _png(tmp_path / "b" / "0.png", 12, 1)
    with pytest.raises(DataError, match="data.img_size"):
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # 8x8 = 64 pixels: Pillow's decompression-bomb error, 2x over
    with pytest.raises(DataError, match=r"cannot read 2 images: .*a/0\.png \(8x8 pixels to decode .* over Pillow's limit"):
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=8))
    monkeypatch.undo()
    (tmp_path / "b" / "1.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image .*1.png"):
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=8))


def test_augment_shifts_and_flips_whole_batches_deterministically():
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 3, 2] = 1.0
    out1 = augment(x, max_shift=2, hflip=True, generator=torch.Generator().manual_seed(1))
    out2 = augment(x, max_shift=2, hflip=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out1, out2) and out1.shape == x.shape
    assert torch.all(out1.sum((1, 2, 3)) == 1)  # the pixel is moved, never duplicated (stays in view)
    positions = {tuple(torch.nonzero(img[0])[0].tolist()) for img in out1}
    assert len(positions) > 5
    assert all(abs(r - 3) <= 2 for r, _ in positions)
    assert all(abs(c - 2) <= 2 or abs(c - 5) <= 2 for _, c in positions)  # 5 = flipped column


def test_random_erasing_replaces_one_rectangle_of_the_chosen_images():
    x = torch.full((400, 1, 28, 28), -1.0)  # outside [0, 1]: erased pixels (noise in [0, 1]) are told apart
    out = augment(x, max_shift=0, hflip=False, generator=torch.Generator().manual_seed(0), erase_prob=0.5)
    erased = out >= 0
    assert torch.all((out[erased] <= 1))
    hit = erased.flatten(1).any(1)
    assert 0.4 < hit.float().mean() < 0.6  # about erase_prob of the images
    for img in erased[hit, 0]:
        rows, cols = img.any(1).nonzero().flatten(), img.any(0).nonzero().flatten()
        h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert int(img.sum()) == h * w  # one solid rectangle
        assert 0.3 / 1.2 <= h / w <= 1.2 / 0.3 or min(h, w) <= 2  # aspect range (rounding slack for thin ones)
        assert h * w <= 28 * 28 / 3 * 1.3  # area share <= 1/3 (rounding slack)
    again = augment(x, max_shift=0, hflip=False, generator=torch.Generator().manual_seed(0), erase_prob=0.5)
    assert torch.equal(out, again)
    none = augment(x, max_shift=0, hflip=False, generator=torch.Generator().manual_seed(0), erase_prob=0.0)
    assert torch.equal(none, x)


def test_iterate_batches_covers_every_image_once(tiny_idx_root):
    ds = load_dataset(_idx_cfg(tiny_idx_root))
    ys = torch.cat([y for _, y in iterate_batches(ds.val, batch_size=7, shuffle=True, generator=torch.Generator().manual_seed(0))])
    assert sorted(ys.tolist()) == sorted(ds.val.y.tolist())
    x, _ = next(iterate_batches(ds.val, batch_size=7))
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


def test_image_folder_cache_is_read_while_files_and_settings_are_unchanged(tmp_path, monkeypatch):
    import nas.data
    import nas.images

    for c, v in (("cat", 10), ("dog", 200)):
        for i in range(6):
            _png(tmp_path / "img" / c / f"{i}.png", 10, v + i)
    cache = tmp_path / "cache"

    def load(**kw):
        cfg = dict(name="x", format=DataFormat.imagefolder, root=str(tmp_path / "img"), img_size=8, test_size=2, val_size=2,
                   cache_dir=str(cache))
        return load_dataset(DataConfig(**{**cfg, **kw}))

    decoded = []
    real = nas.images.read_image
    monkeypatch.setattr(nas.images, "read_image", lambda path, **kw: decoded.append(path) or real(path, **kw))
    plain = load(cache_dir=None)
    assert len(decoded) == 12 and not cache.exists()
    first = load()
    assert len(decoded) == 24 and len(list(cache.glob("images-*.npy"))) == 1
    again = load()
    assert len(decoded) == 24  # nothing decoded: the same arrays from the cache
    for a, b, c in ((plain.train, first.train, again.train), (plain.val, first.val, again.val), (plain.test, first.test, again.test)):
        assert torch.equal(a.x, b.x) and torch.equal(a.x, c.x) and torch.equal(a.y, c.y)
    # Another img_size, or a changed image: decoded again, into a file of its own.
    load(img_size=6)
    assert len(decoded) == 36 and len(list(cache.glob("images-*.npy"))) == 2
    _png(tmp_path / "img" / "dog" / "0.png", 10, 99)
    before = set(cache.glob("images-*.npy"))
    changed = load()
    # The folder's file from the images before the change is replaced, not kept beside it (the cache does not grow at
    # every change); the img_size=6 file stays, as a setting of its own.
    after = set(cache.glob("images-*.npy"))
    assert len(decoded) == 48 and len(after) == 2 and len(after & before) == 1
    assert {f.with_suffix(".npy") for f in cache.glob("images-*.json")} == after  # its images' notes go with it
    pixels = lambda d: sum(int(split.x.sum()) for split in (d.train, d.val, d.test))  # noqa: E731
    assert pixels(changed) == pixels(again) - (200 - 99) * 8 * 8  # the new pixels, not the cached ones
    # A truncated cache file is decoded again and written anew.
    for f in cache.glob("images-*.npy"):
        f.write_bytes(f.read_bytes()[:40])
    assert torch.equal(load().train.x, changed.train.x) and len(decoded) == 60
    assert torch.equal(load().train.x, changed.train.x) and len(decoded) == 60
    (tmp_path / "blocker").write_text("a file")
    with pytest.raises(ConfigError, match=r"data\.cache_dir='.*blocker/c': '.*blocker' is a file"):
        load(cache_dir=str(tmp_path / "blocker" / "c"))
    # A cache file that cannot be written (a full disk, say): loaded all the same, with a warning.
    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("nas.checkpoint.atomic_write_bytes", full_disk)
    warned = []
    monkeypatch.setattr(nas.data.log, "warning", lambda msg, *args: warned.append(msg % args))
    assert torch.equal(load(img_size=5).train.x, load(img_size=5, cache_dir=None).train.x)
    assert len(warned) == 1 and warned[0].startswith("data.cache_dir: could not write ") and "No space left" in warned[0]


def test_linked_subfolders_are_read_once_and_broken_links_or_unreadable_folders_are_named(tmp_path, monkeypatch):
    import os

    from nas.data import image_files_in

    for i in range(3):
        _png(tmp_path / "disk2" / f"{i}.png", 8, 10)
    for c in ("a", "b"):
        _png(tmp_path / "img" / c / "0.png", 8, 50)
    (tmp_path / "img" / "a" / "more").symlink_to(tmp_path / "disk2")  # a class gathered from another disk
    (tmp_path / "img" / "a" / "again").symlink_to(tmp_path / "disk2")  # the same folder twice: read once
    (tmp_path / "img" / "b" / "loop").symlink_to(tmp_path / "img" / "b")  # a cycle ends
    assert len(image_files_in(tmp_path / "img" / "a")) == 4 and len(image_files_in(tmp_path / "img" / "b")) == 1
    ds = load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path / "img"), img_size=None,
                                 test_size=1, val_size=1))
    assert len(ds.train) + len(ds.val) + len(ds.test) == 5
    (tmp_path / "img" / "b" / "gone.png").symlink_to(tmp_path / "unmounted" / "gone.png")
    with pytest.raises(DataError, match=r"image .*b/gone\.png is a link to .*unmounted/gone\.png, which does not "
                                        r"exist; restore its target or remove the link"):
        image_files_in(tmp_path / "img" / "b")
    (tmp_path / "img" / "b" / "gone.png").unlink()
    real_scandir = os.scandir

    def locked(path):  # a subfolder without read permission (chmod has no effect for root, who runs some CI)
        if str(path).endswith("more"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", locked)
    with pytest.raises(DataError, match=r"cannot read the folder .*a/more: Permission denied; make it readable"):
        image_files_in(tmp_path / "img" / "a")


def test_grey_detection_looks_only_at_the_images_that_are_read(tmp_path):
    for c in ("a", "b"):
        for i in range(2):
            _png(tmp_path / "flat" / c / f"{i}.png", 8, 50)
            _png(tmp_path / "split" / "train" / c / f"{i}.png", 8, 50)
            _png(tmp_path / "split" / "test" / c / f"{i}.png", 8, 50)
        _png(tmp_path / "flat" / c / ".ipynb_checkpoints" / "0-checkpoint.png", 8, 50, mode="RGB")  # Jupyter's copy
    _png(tmp_path / "split" / "originals" / "big.png", 8, 50, mode="RGB")  # beside train/ and test/: not read
    for root in ("flat", "split"):
        ds = load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path / root), img_size=None,
                                     test_size=1, val_size=1))
        assert ds.in_chans == 1, root
    _png(tmp_path / "split" / "test" / "b" / "colour.png", 8, 50, mode="RGB")  # a test image in colour: 3 channels
    ds = load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path / "split"), img_size=None,
                                 val_size=1))
    assert ds.in_chans == 3


def test_palette_images_of_grey_colours_count_as_grey(tmp_path):
    # 8-bit palette PNGs (as many tools save scans) whose colours are all grey: grey, though Pillow's mode says "P"
    for c, v in (("a", 40), ("b", 200)):
        for i in range(2):
            (tmp_path / c).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8), v + i, dtype=np.uint8)).convert("P").save(tmp_path / c / f"{i}.png")
    load = lambda: load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path),  # noqa: E731
                                           img_size=None, test_size=1, val_size=1))
    with Image.open(tmp_path / "a" / "0.png") as img:
        assert img.mode == "P"
    assert load().in_chans == 1
    coloured = np.zeros((8, 8, 3), dtype=np.uint8)
    coloured[..., 0] = 255
    Image.fromarray(coloured).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "b" / "red.png")
    assert load().in_chans == 3  # a palette of colours is colour


def test_netpbm_and_jfif_images_are_read_like_the_others(tmp_path):
    # GTSRB ships its traffic signs as .ppm (torchvision's ImageFolder reads .ppm and .pgm); Windows saves JPEGs from
    # the web as .jfif. Such a folder was "class folder ... has no images", or lost those files beside .png ones.
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    for c in ("00000", "00001"):
        (tmp_path / c).mkdir()
        Image.fromarray(rgb).save(tmp_path / c / "a.ppm")
        Image.fromarray(rgb).save(tmp_path / c / "b.PPM", format="PPM")
        Image.fromarray(rgb).save(tmp_path / c / "c.jfif", format="JPEG")
        Image.fromarray(rgb).save(tmp_path / c / "d.png")
    ds = load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None,
                                 test_size=1, val_size=1))
    assert len(ds.train) + len(ds.val) + len(ds.test) == 8 and ds.in_chans == 3
    # 16-bit grey PGM (Pillow opens it as mode I, not I;16): value / 257 as a 16-bit PNG, not refused as 32-bit
    grey16 = (np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g.pgm")
    Image.fromarray(grey16).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g.pgm", size=None, mode="L"),
                                  read_image(tmp_path / "g.png", size=None, mode="L"))
    assert read_image(tmp_path / "g.pgm", size=None, mode="L").max() == round(63000 / 257)
    Image.fromarray(grey16 > 30000).save(tmp_path / "b.pbm")  # 1-bit
    assert set(np.unique(read_image(tmp_path / "b.pbm", size=None, mode="L"))) == {0, 255}


@pytest.mark.parametrize("fmt", [DataFormat.imagefolder, DataFormat.idx])
def test_a_data_root_that_is_a_file_is_called_a_file_not_missing(tmp_path, fmt):
    _png(tmp_path / "photo.png", 8, 50)  # one image, or the zip the images came in, passed as data.root
    with pytest.raises(DataError, match=r"data\.root=.*photo\.png is a file, not a folder; "):
        load_dataset(DataConfig(name="x", format=fmt, root=str(tmp_path / "photo.png")))
    with pytest.raises(DataError, match=r"data\.root=.*nowhere does not exist; "):
        load_dataset(DataConfig(name="x", format=fmt, root=str(tmp_path / "nowhere")))


@pytest.mark.parametrize("fmt", [DataFormat.imagefolder, DataFormat.idx])
def test_a_data_root_mistyped_or_an_archive_says_what_to_pass(tmp_path, fmt):
    # "data.root=/data/shape does not exist" left the user to spot the missing 's' of shapes/ beside it, and a downloaded
    # shapes.zip given as data.root was only "a file, not a folder"
    (tmp_path / "shapes").mkdir()
    (tmp_path / "other").mkdir()
    for typo in ("shape", "Shapes"):
        with pytest.raises(DataError) as err:
            load_dataset(DataConfig(name="x", format=fmt, root=str(tmp_path / typo)))
        assert str(err.value).startswith(f"data.root={tmp_path / typo} does not exist (did you mean "
                                         f"data.root={tmp_path / 'shapes'}?); ")
    with pytest.raises(DataError, match=r"data\.root=\S+zebra does not exist; "):  # nothing close: no guess
        load_dataset(DataConfig(name="x", format=fmt, root=str(tmp_path / "zebra")))
    (tmp_path / "shapes.tar.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(DataError, match=r"data\.root=\S+shapes\.tar\.gz is an archive, not a folder: unpack it and "
                                        r"pass the folder it unpacks into; "):
        load_dataset(DataConfig(name="x", format=fmt, root=str(tmp_path / "shapes.tar.gz")))


def test_a_data_root_above_datasets_side_by_side_is_warned_about(tmp_path):
    # data.root=/data over /data/shapes/{circle,square}/ and /data/flowers/{rose,tulip}/ trained a 2-class model telling
    # the datasets apart (val accuracy 94%), without a word: only a single dataset folder below the root was refused
    from nas.data import nested_classes_warning

    for dataset, classes in (("shapes", ("circle", "square")), ("flowers", ("rose", "tulip"))):
        for name in classes:
            _png(tmp_path / dataset / name / "a.png", 8, 50)
    warning = nested_classes_warning(tmp_path, ["flowers", "shapes"])
    assert warning == (f"every class folder of {tmp_path} holds its images in 2 or more subfolders, none of its own "
                       "(flowers: rose, tulip; shapes: circle, square): each is read as one class ('flowers', 'shapes'); "
                       "if the subfolders are the classes (datasets side by side), data.root is one folder down, e.g. "
                       f"data.root={tmp_path / 'flowers'}")
    assert nested_classes_warning(tmp_path / "shapes", ["circle", "square"]) is None  # a dataset's own root
    _png(tmp_path / "shapes" / "loose.png", 8, 50)  # a class with images of its own: classes with subfolders, read so
    assert nested_classes_warning(tmp_path, ["flowers", "shapes"]) is None
    (tmp_path / "shapes" / "loose.png").unlink()
    for path in (tmp_path / "shapes" / "square").iterdir():  # one subfolder: a class whose photos sit in one folder
        path.unlink()
    (tmp_path / "shapes" / "square").rmdir()
    assert nested_classes_warning(tmp_path, ["flowers", "shapes"]) is None


def test_an_empty_data_root_is_refused_not_read_as_the_current_folder():
    # data.root=$DATA with DATA unset: '' was read as '.', and a search run from the repository refused its code folders
    # as "class folders compress, conf, nas, tests have no images"
    from nas.config import validate_data_config

    for fmt in (DataFormat.imagefolder, DataFormat.idx):
        with pytest.raises(ConfigError, match=r"^data\.root='' is empty \(an unset shell variable\?\); allowed: "):
            validate_data_config(DataConfig(name="x", format=fmt, root=""))
        with pytest.raises(ConfigError, match=r"^data\.root='  ' is empty"):
            validate_data_config(DataConfig(name="x", format=fmt, root="  "))


@pytest.mark.parametrize(("splits", "message"), [
    # Kaggle's layout: without the check, 2 "classes" (Testing, Training) and a model telling test from training images
    (("Training", "Testing"), r"holds split folders \(Testing, Training\) but no 'train' folder, so they would be read "
                              r"as classes; .*: rename Testing -> test, Training -> train$"),
    (("Train", "test"), r"holds split folders \(Train, test\) but no 'train' folder, .*: rename Train -> train$"),
    # Roboflow's layout: without the check, valid/ was never read and val was carved out of train
    (("train", "valid", "test"), r"holds valid, which would not be read: the split layout reads root/train, root/test "
                                 r"and root/val \(lower case\); rename valid -> val$"),
    # Both spellings: valid/ (or Train/ on a case-sensitive disk) would be left out beside the folder that is read
    (("train", "val", "valid", "test"), r"holds valid beside val: only root/train, root/test and root/val are read, so "
                                        r"the images of valid would be left out; move them into the folder that is read"),
    (("train", "Train", "test"), r"holds Train beside train: "),
])
def test_split_folders_by_other_names_are_refused_not_read_as_classes_or_skipped(tmp_path, splits, message):
    for split in splits:
        for c in ("glioma", "meningioma"):
            for i in range(3):
                _png(tmp_path / split / c / f"{i}.png", 8, 50)
    with pytest.raises(DataError, match=message):
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None, val_size=1))


def test_classes_that_happen_to_have_split_names_are_still_classes(tmp_path):
    for c in ("exam", "Test", "Validation"):  # e.g. photos of a test sheet: with another class beside them, classes
        for i in range(2):
            _png(tmp_path / c / f"{i}.png", 8, 50)
    ds = load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None,
                                 test_size=1, val_size=1))
    assert ds.classes == ("Test", "Validation", "exam")


def test_class_names_spelled_in_two_unicode_forms_are_told_apart_in_the_message(tmp_path):
    import unicodedata

    # test/ copied from a Mac (decomposed accents), train/ made on Linux: the names printed the same in the error
    for split, form in (("train", "NFC"), ("test", "NFD")):
        for c in ("café", "thé"):
            _png(tmp_path / split / unicodedata.normalize(form, c) / "0.png", 8, 50)
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None, val_size=1))
    assert str(err.value).endswith(
        r"test has classes ['cafe\u0301', 'the\u0301'] but train has ['caf\xe9', 'th\xe9']: the same names with "
        "accents written in another Unicode form (as macOS and Linux write them); rename the class folders of "
        f"{tmp_path / 'test'} or of train to one form (convmv --nfc)")


def test_photos_of_formats_that_are_not_read_are_named_in_a_warning(tmp_path, monkeypatch):
    import nas.data

    for c in ("a", "b"):
        for i in range(2):
            _png(tmp_path / c / f"{i}.png", 8, 50)
    (tmp_path / "a" / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic")  # an iPhone photo, beside its .pngs
    (tmp_path / "a" / "trip").mkdir()
    (tmp_path / "a" / "trip" / "IMG_0002.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (tmp_path / "b" / "notes.txt").write_text("not an image: counted at the end of the line, not in one of its own")
    (tmp_path / "b" / "._x.heic").write_bytes(b"macOS metadata: no warning")
    warned, told = [], []
    monkeypatch.setattr(nas.data.log, "warning", lambda msg, *args: warned.append(msg % args))
    monkeypatch.setattr(nas.data.log, "info", lambda msg, *args: told.append(msg % args))
    ds = load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None,
                                 test_size=1, val_size=1))
    assert len(ds.train) + len(ds.val) + len(ds.test) == 4
    assert warned == [f"{tmp_path}: 2 image files of formats that are not read are left out (2 .heic; e.g. "
                      f"{tmp_path / 'a' / 'IMG_0001.HEIC'}); convert them to one of "
                      f"{' '.join(sorted(nas.data.IMAGE_SUFFIXES))} to train on them; 1 other file that is not an "
                      f"image is skipped too (e.g. {Path('b', 'notes.txt')})"]
    assert told == []


def test_the_files_an_operating_system_leaves_in_a_photo_folder_are_skipped_without_a_word(tmp_path):
    # Thumbs.db and desktop.ini (Windows) were counted as "files that are not images" in the info line, a line about
    # litter the user never put there; .DS_Store (macOS) is hidden, and skipped as such.
    import nas.data

    for name in ("Thumbs.db", "desktop.ini", "DESKTOP.INI", "ehthumbs.db", ".DS_Store", "notes.txt", "0.png"):
        (tmp_path / name).write_bytes(b"x")
    others: list[Path] = []
    assert nas.data.image_files_in(tmp_path, other_files=others) == [tmp_path / "0.png"]  # listed by name, read later
    assert [p.name for p in others] == ["notes.txt"]


def test_files_that_are_not_images_in_class_folders_are_counted_in_one_info_line(tmp_path, monkeypatch):
    # notes.txt (or a photo saved as .svg, labels as .xml) in a class folder was skipped without a word: one info line
    # counts them, naming one; hidden files are not counted, and no line is said where there is none
    import nas.data

    for c in ("a", "b"):
        for i in range(2):
            _png(tmp_path / c / f"{i}.png", 8, 50)
    (tmp_path / "b" / "notes.txt").write_text("my notes")
    (tmp_path / "a" / "2024").mkdir()
    (tmp_path / "a" / "2024" / "logo.svg").write_text("<svg/>")
    (tmp_path / "a" / ".DS_Store").write_bytes(b"hidden")
    warned, told = [], []
    monkeypatch.setattr(nas.data.log, "warning", lambda msg, *args: warned.append(msg % args))
    monkeypatch.setattr(nas.data.log, "info", lambda msg, *args: told.append(msg % args))
    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None, test_size=1, val_size=1)
    assert len(load_dataset(cfg).train) == 2
    assert warned == []
    assert told == [f"{tmp_path}: skipped 2 files that are not images (e.g. {Path('a', '2024', 'logo.svg')}); only "
                    f"{' '.join(sorted(nas.data.IMAGE_SUFFIXES))} are read"]
    for f in (tmp_path / "b" / "notes.txt", tmp_path / "a" / "2024" / "logo.svg"):
        f.unlink()
    told.clear()
    load_dataset(cfg)
    assert told == []


def test_a_16bit_grey_cut_out_is_composited_onto_the_background_too(tmp_path):
    grey16 = (np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "cut.png", transparency=0)  # 16-bit grey, value 0 transparent (tRNS)
    with Image.open(tmp_path / "cut.png") as img:
        assert img.mode == "I;16" and img.info["transparency"] == 0
    on_white = read_image(tmp_path / "cut.png", size=None, mode="L", background=255)
    dropped = read_image(tmp_path / "cut.png", size=None, mode="L")
    expected = np.rint(grey16 / 257).astype(np.uint8)
    np.testing.assert_array_equal(dropped, expected)  # transparency dropped: the stored grey
    assert on_white[0, 0] == 255 and (on_white.flatten()[1:] == expected.flatten()[1:]).all()


def test_data_identity_tells_two_folders_of_the_same_classes_and_counts_apart(tmp_path):
    from nas.data import data_identity

    rng = np.random.default_rng(0)
    for folder in ("cam1", "cam2"):  # a second camera's photos: the same classes, as many per class
        for name in ("cat", "dog"):
            (tmp_path / folder / name).mkdir(parents=True)
            for i in range(10):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / folder / name / f"{i}.png")
    (tmp_path / "moved").mkdir()
    (tmp_path / "cam1").rename(tmp_path / "moved" / "cam1")

    def identity(root):
        return data_identity(load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(root), img_size=8)))

    cam1, cam2 = identity(tmp_path / "moved" / "cam1"), identity(tmp_path / "cam2")
    assert ({k: v for k, v in cam1.items() if k not in ("digests", "per_class")}
            == {k: v for k, v in cam2.items() if k not in ("digests", "per_class")})
    assert cam1 != cam2 and all(cam1["digests"][k] != cam2["digests"][k] for k in ("train", "val", "test"))
    (tmp_path / "cam1").symlink_to(tmp_path / "moved" / "cam1")  # the same folder elsewhere: the same identity
    assert identity(tmp_path / "cam1") == cam1


def test_a_val_folder_without_a_class_of_train_names_it_and_the_fixes_the_layout_supports(tmp_path):
    import shutil

    for split, names in (("train", "abc"), ("val", "ab"), ("test", "abcd")):  # val lacks c; test has d over
        for c in names:
            for i in range(3):
                _png(tmp_path / split / c / f"{i}.png", 8, 50)
    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=None, val_size=0.2)
    with pytest.raises(DataError) as err:
        load_dataset(cfg)
    train, val, test = (tmp_path / s for s in ("train", "val", "test"))
    assert str(err.value) == (
        f"{val}: it lacks the class folder 'c' that {train} has; every split needs train's class folders: add "
        f"{val / 'c'} with images, or remove {val} to hold val images out of train (data.val_size=0.2)")
    shutil.rmtree(val)  # the fix the message names: val is then held out of train
    with pytest.raises(DataError) as err:
        load_dataset(cfg)
    assert str(err.value) == (
        f"{test}: it has 'd', which {train} lacks; every split needs train's class folders: add {train / 'd'} with "
        f"images or remove {test / 'd'}, or remove {test} to hold test images out of train (data.test_size=0.2)")
    shutil.rmtree(test / "d")
    ds = load_dataset(cfg)
    assert ds.classes == ("a", "b", "c") and len(ds.val) == 2 and len(ds.test) == 9


def test_metrics_record_a_split_the_data_brings_as_its_own_not_as_a_size(tiny_idx_root, tmp_path):
    # metrics.json's test_images.split recorded data.test_size=0.2 for Fashion-MNIST, whose own 10,000-image test split
    # it never touches; compress.run then told a user to "pass data.test_size=..." as if it had drawn the test images.
    import json

    from compress.run import _check_test_images
    from nas.data import split_record

    cfg = _idx_cfg(tiny_idx_root)
    assert split_record(cfg, load_dataset(cfg)) == {"split_seed": cfg.split_seed, "val_size": cfg.val_size,
                                                    "test_size": "own test split", "stratify": cfg.stratify}
    flat = DataConfig(name="x", format=DataFormat.imagefolder, root=str(_folder(tmp_path / "flat", {"a": 10, "b": 10})),
                      img_size=None)
    assert split_record(flat, load_dataset(flat)) == {k: getattr(flat, k) for k in ("split_seed", "val_size", "test_size",
                                                                                      "stratify")}
    for split in ("train", "val", "test"):
        _folder(tmp_path / "split" / split, {"a": 3, "b": 3})
    own = DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path / "split"), img_size=None)
    record = split_record(own, load_dataset(own))
    assert record["val_size"] == "own val split" and record["test_size"] == "own test split"
    # compress.run given other test images names the settings that differ, not the data's own split as one to pass
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "metrics.json").write_text(json.dumps({"test_images": {
        "digest": "0123456789abcdef", "count": 4, "split": split_record(cfg, load_dataset(cfg))}}))
    other = dataclasses.replace(cfg, split_seed=cfg.split_seed + 3)
    with pytest.raises(ConfigError) as err:
        _check_test_images(tmp_path / "ck", load_dataset(other), other)
    assert str(err.value).endswith(f"pass data.split_seed={cfg.split_seed} as its search did")


def test_a_held_out_split_of_one_image_is_said_in_the_singular(tmp_path):
    # "data.val_size=1 holds out 1 images for 3 classes"
    from nas.data import held_out_gaps_warning

    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(_folder(tmp_path / "one", {"a": 20, "b": 20, "c": 20})),
                     img_size=None, val_size=1)
    assert "data.val_size=1 holds out 1 image for 3 classes; hold out 3 or more" in held_out_gaps_warning(load_dataset(cfg), cfg)


def test_every_unreadable_image_is_named_in_one_line_not_only_the_first(tmp_path):
    # A folder with a few broken files (a download cut short, an empty file, text saved as .png) was refused naming the
    # first one only: each rerun decoded the whole folder again to name the next one.
    for c in ("a", "b"):
        for i in range(3):
            _png(tmp_path / c / f"{i}.png", 8, 50)
    (tmp_path / "a" / "empty.png").write_bytes(b"")
    (tmp_path / "b" / "text.png").write_bytes(b"not a png")
    cut = tmp_path / "b" / "sub" / "cut.jpg"
    cut.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(cut, quality=95)
    cut.write_bytes(cut.read_bytes()[:400])
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=8))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("cannot read 3 images: ")
    for path in (tmp_path / "a" / "empty.png", tmp_path / "b" / "text.png", cut):
        assert message.count(str(path)) == 1  # each named once: Pillow's own message repeated the path
    assert f"{tmp_path / 'b' / 'text.png'} (cannot identify image file)" in message
    # a 0-byte file said "cannot identify image file" too, as if its format were the problem
    assert f"{tmp_path / 'a' / 'empty.png'} (empty file, 0 bytes)" in message
    assert f"{cut} (Truncated File Read)" in message
    assert message.endswith("; replace or remove them")


def test_many_unreadable_images_are_counted_and_the_first_ones_named(tmp_path):
    for c in ("a", "b"):
        _png(tmp_path / c / "ok.png", 8, 50)
    for i in range(12):
        (tmp_path / "a" / f"bad{i:02d}.png").write_bytes(b"")
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=8))
    message = str(err.value)
    assert message.startswith("cannot read 12 images: ")
    assert all(f"bad{i:02d}.png" in message for i in range(5))  # the first ones, in the folder's order
    assert "bad05.png" not in message and "and 7 more" in message


def test_one_unreadable_image_keeps_its_one_line(tmp_path):
    for c in ("a", "b"):
        _png(tmp_path / c / "ok.png", 8, 50)
    (tmp_path / "b" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"^cannot read image .*/b/bad\.png: cannot identify image file; replace or remove "
                                        r"it$"):
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=8))


def test_empty_class_folders_are_all_named_with_the_fix(tmp_path):
    # An empty folder (a class not collected yet, or one whose images are all .heic) was refused one per run, with no
    # word of what to do.
    for c in ("a", "b"):
        _png(tmp_path / c / "0.png", 8, 50)
    (tmp_path / "empty1" / "sub").mkdir(parents=True)
    (tmp_path / "empty2").mkdir()
    (tmp_path / "empty2" / "notes.txt").write_text("to do")
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=8))
    assert str(err.value) == (
        f"class folders {tmp_path / 'empty1'}, {tmp_path / 'empty2'} have no images "
        "(.bmp .gif .jfif .jpeg .jpg .pbm .pgm .png .pnm .ppm .tif .tiff .webp), in them or their subfolders; every "
        f"folder of {tmp_path} is a class: add images to them, or remove them")
    (tmp_path / "empty2").rename(tmp_path / ".empty2")  # hidden: not a class
    with pytest.raises(DataError, match=r"^class folder .*/empty1 has no images \(.*\), in it or its subfolders; every "
                                        r"folder of .* is a class: add images to it, or remove it$"):
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=8))
    # a split folder's class folder cannot simply go (val/ and test/ need train's classes): the split folder can
    for split in ("train", "val"):
        for c in ("a", "b"):
            _png(tmp_path / "split" / split / c / "0.png", 8, 50)
    (tmp_path / "split" / "val" / "b" / "0.png").unlink()
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path / "split"), img_size=8))
    assert str(err.value).endswith(f"in it or its subfolders; add images to it, or remove {tmp_path / 'split' / 'val'} "
                                   "to hold val images out of train (data.val_size=0.1)")


@pytest.mark.parametrize("fmt", [DataFormat.imagefolder, DataFormat.idx])
def test_a_data_root_under_a_tilde_that_does_not_exist_says_tilde_is_not_expanded(fmt, tmp_path, monkeypatch):
    # Neither the shell (after "data.root=") nor Hydra expands "~": "data.root=~/images does not exist" left the user to
    # find out why, when ~/images is right there.
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match=rf"^data.root=~/images does not exist: ~ is not expanded, write the whole path "
                                        rf"\(data.root={tmp_path}/images\)"):
        load_dataset(DataConfig(name="x", format=fmt, root="~/images"))


def test_data_identity_summarises_each_class_of_idx_files_in_the_order_of_the_class_names(tiny_idx_root):
    # A study's refusal of changed images names the classes that changed (`class_changes`) from this summary; Fashion-MNIST
    # gets one as an image folder does.
    from nas.data import class_summary, data_identity

    ds = load_dataset(_idx_cfg(tiny_idx_root))
    identity = data_identity(ds)
    assert identity["per_class"] == class_summary(ds) and len(identity["per_class"]) == len(ds.classes)
    for c, (train, val, test, digest) in enumerate(identity["per_class"]):
        assert [train, val, test] == [int((s.y == c).sum()) for s in (ds.train, ds.val, ds.test)]
        assert isinstance(digest, str) and len(digest) == 8
    # of the class's images wherever they are: another split of the same images gives the same digests
    other = load_dataset(_idx_cfg(tiny_idx_root, split_seed=7))
    assert data_identity(other)["digests"] != identity["digests"]
    assert [row[3] for row in class_summary(other)] == [row[3] for row in identity["per_class"]]
    assert len(json.dumps(identity["per_class"])) < 40 * len(ds.classes)  # small: a study records it


def test_class_changes_names_the_first_five_classes_and_counts_the_rest():
    from nas.data import class_changes

    names = [f"c{i}" for i in range(9)]
    then = {"classes": names, "input": [1, 8, 8], "digests": {"train": "t"},
            "per_class": [[10, 2, 3, f"d{i}"] for i in range(9)]}
    now = {**then, "digests": {"train": "u"}, "per_class": [[11, 2, 3, f"e{i}"] for i in range(9)]}
    assert class_changes(then, now) == [
        f"class 'c{i}': 15 images in the study, 16 now (train 10 -> 11, val 2, test 3)" for i in range(5)] + [
        "4 more classes differ"]
    assert class_changes(then, {**now, "per_class": now["per_class"][:6] + then["per_class"][6:]})[-1] == "1 more class differs"
    # the same counts, other images: said unless the input shape changed, which changes every image
    same_counts = {**now, "per_class": [[10, 2, 3, f"e{i}"] for i in range(9)]}
    assert class_changes(then, same_counts)[0] == "class 'c0': as many images as in the study (15), other ones"
    assert class_changes(then, {**same_counts, "input": [3, 8, 8]}) == []
    # one image of a class: no plural
    one = {**then, "per_class": [[1, 0, 0, "a"]], "classes": ["c0"]}
    assert class_changes(one, {**one, "per_class": [[2, 0, 0, "b"]]}) == ["class 'c0': 1 train image in the study, 2 now"]
    # the same images of each class, split otherwise (files renamed within a class)
    moved = {**then, "digests": {"train": "u"}, "per_class": [[9, 3, 3, f"d{i}"] for i in range(9)]}
    assert class_changes(then, moved) == ["each class has the images it had in the study, split otherwise into train/val/test"]
    assert class_changes(then, then) == []
    # a class gone and one new, of other images
    gone = {**then, "classes": names[:8] + ["z"], "per_class": then["per_class"][:8] + [[4, 1, 1, "z"]]}
    assert class_changes(then, gone) == ["class 'c8' is gone (15 images in the study)", "class 'z' is new (6 images)"]
    # records from before the summary, or of no class in common: nothing to say by class
    assert class_changes({k: v for k, v in then.items() if k != "per_class"}, now) == []
    assert class_changes(then, {**now, "classes": [f"x{i}" for i in range(9)]}) == []


def test_class_changes_leads_with_the_class_total_then_each_splits_count():
    # A photo deleted from 'sneaker' was refused as "class 'sneaker': 4 val images in the study, 3 now": true (the
    # held-out draw took it from val), but the user never touched val. The clause says what happened to the class, its
    # total then and now, and each split's count after it (an arrow where it changed).
    from nas.data import class_changes

    then = {"classes": ["sneaker", "boot"], "input": [3, 8, 8], "per_class": [[28, 4, 8, "a"], [20, 3, 5, "b"]]}

    def now(*row):
        return {**then, "per_class": [list(row), [20, 3, 5, "b"]]}

    assert class_changes(then, now(28, 3, 8, "c")) == [
        "class 'sneaker': 40 images in the study, 39 now (train 28, val 4 -> 3, test 8)"]
    assert class_changes(then, now(29, 4, 9, "c")) == [
        "class 'sneaker': 40 images in the study, 42 now (train 28 -> 29, val 4, test 8 -> 9)"]
    # as many images, other ones: the split detail where the counts moved, none where they did not
    assert class_changes(then, now(27, 5, 8, "c")) == [
        "class 'sneaker': as many images as in the study (40), other ones (train 28 -> 27, val 4 -> 5, test 8)"]
    assert class_changes(then, now(28, 4, 8, "c")) == ["class 'sneaker': as many images as in the study (40), other ones"]
    # one image in the study: no plural; a split empty then and now is left out
    single = {"classes": ["c"], "input": [1, 8, 8], "per_class": [[1, 0, 0, "a"]]}
    assert class_changes(single, {**single, "per_class": [[1, 0, 1, "b"]]}) == [
        "class 'c': 1 image in the study, 2 now (train 1, test 0 -> 1)"]


def test_per_class_test_images_and_class_changes_say_where_the_record_is_from():
    # compress.run's refusal of other test images names the changed classes from a checkpoint's record, "in its search"
    import dataclasses

    from nas.data import class_changes, class_summary, per_class_test_images

    import torch

    from nas.data import Dataset, Split

    x = torch.arange(6 * 4, dtype=torch.uint8).reshape(6, 1, 2, 2)
    ds = Dataset(name="t", train=Split(x[:2], torch.tensor([0, 1])), val=Split(x[2:3], torch.tensor([0])),
                 test=Split(x[3:], torch.tensor([0, 1, 1])), classes=("a", "b"), mean=(0.0,), std=(1.0,))
    rows = per_class_test_images(ds)
    assert [r[0] for r in rows] == [1, 2] and rows != [r[2:] for r in class_summary(ds)]  # of the test images alone
    fewer = dataclasses.replace(ds, test=dataclasses.replace(ds.test, x=ds.test.x[:2], y=ds.test.y[:2]))
    then = {"classes": ["a", "b"], "per_class": [[0, 0, *r] for r in rows]}
    now = {"classes": ["a", "b"], "per_class": [[0, 0, *r] for r in per_class_test_images(fewer)]}
    assert class_changes(then, now, then_was="in its search") == ["class 'b': 2 test images in its search, 1 now"]


def test_an_image_folders_splits_name_each_images_file_relative_to_the_root_also_from_the_cache(tmp_path, monkeypatch):
    # test_predictions.csv's index is a position in the test split: a deployer could not tell which photo was
    # misclassified. Each split now carries its images' files, as the layout names them, in the split's order.
    from PIL import Image

    import nas.images

    for c, base in (("cat", 10), ("dog", 100)):
        for i in range(6):
            _png(tmp_path / "flat" / c / f"{i}.png", 8, base + i)  # each file's pixel value says which one it is
    cfg = dict(name="x", format=DataFormat.imagefolder, root=str(tmp_path / "flat"), img_size=None, test_size=4,
               val_size=2, cache_dir=str(tmp_path / "cache"))

    def check(ds, root):
        for split in (ds.train, ds.val, ds.test):
            assert split.paths is not None and len(split.paths) == len(split)
            for x, y, path in zip(split.x, split.y.tolist(), split.paths):
                assert not path.startswith("/") and path.split("/")[-2] == ds.classes[y]
                assert int(x[0, 0, 0]) == np.asarray(Image.open(root / path))[0, 0]  # the very file, not a neighbour
        assert len({p for s in (ds.train, ds.val, ds.test) for p in s.paths}) == 12  # each file once

    held = load_dataset(DataConfig(**cfg))
    check(held, tmp_path / "flat")
    assert held.test.paths[0].startswith("cat/") and held.test.paths == tuple(sorted(held.test.paths))
    # From the cache (no image decoded), and from a cache file written before the paths were kept (the same pixels
    # alone; the file's format is unchanged), the paths are those of the folder's listing.
    monkeypatch.setattr(nas.images, "read_image", lambda *a, **k: pytest.fail("decoded again"))
    cached = load_dataset(DataConfig(**cfg))
    assert cached.test.paths == held.test.paths and cached.train.paths == held.train.paths
    monkeypatch.undo()

    # The split layout: train/, val/ and test/ named as the folders under data.root.
    for split, n in (("train", 3), ("val", 1), ("test", 2)):
        for c, base in (("cat", 10), ("dog", 100)):
            for i in range(n):
                _png(tmp_path / "split" / split / c / f"{split}{i}.png", 8, base + 20 * ("train", "val", "test").index(split) + i)
    ds = load_dataset(DataConfig(**{**cfg, "root": str(tmp_path / "split"), "cache_dir": None}))
    check(ds, tmp_path / "split")
    assert ds.test.paths == ("test/cat/test0.png", "test/cat/test1.png", "test/dog/test0.png", "test/dog/test1.png")
    assert ds.val.paths == ("val/cat/val0.png", "val/dog/val0.png")


def test_idx_splits_have_no_paths_and_a_training_subset_keeps_its_images_paths(tiny_idx_root):
    from nas.train import subset_split

    ds = load_dataset(_idx_cfg(tiny_idx_root, img_size=16))
    assert ds.train.paths is ds.val.paths is ds.test.paths is None  # idx files hold no file per image
    assert subset_split(ds.train, 5, seed=0).paths is None
    named = dataclasses.replace(ds.test, paths=tuple(f"f{i}.png" for i in range(len(ds.test))))
    part = subset_split(named, 5, seed=0)
    assert len(part.paths) == 5
    for p, x, y in zip(part.paths, part.x, part.y):  # each image beside its own file's name
        at = named.paths.index(p)
        assert torch.equal(named.x[at], x) and named.y[at] == y


def test_a_class_folder_given_as_data_root_names_the_folder_above_quoted_to_paste(tmp_path):
    # data.root set to one class's folder of "/.../My Photos (2024)": the hint "e.g. data.root=/.../My Photos (2024)"
    # was split by the shell at the space and refused by Hydra for the parentheses.
    import shlex

    from hydra.core.override_parser.overrides_parser import OverridesParser

    above = tmp_path / "My Photos (2024)"
    for i in range(3):
        _png(above / "cat" / f"{i}.png", 8, 50)
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(above / "cat"), img_size=8))
    hint = str(err.value).split("e.g. ")[1].removesuffix(")")
    assert hint == f"\"data.root='{above}'\""
    (arg,) = shlex.split(hint)
    assert OverridesParser.create().parse_overrides([arg])[0].value() == str(above)


def test_a_data_root_above_a_dataset_and_other_folders_names_the_dataset(tmp_path):
    # data.root at a folder holding photos/ and a split dataset (split/train/<class>, split/test/<class>): each was read
    # as a class, the dataset's train and test images mixed into one
    def load(root):
        return load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(root), img_size=8, val_size=1))

    for c, v in (("circle", 10), ("square", 200)):
        for split, n in (("train", 3), ("test", 1)):
            for i in range(n):
                _png(tmp_path / "home" / "split" / split / c / f"{i}.png", 8, v)
    _png(tmp_path / "home" / "photos" / "0.png", 8, 50)
    with pytest.raises(DataError) as err:
        load(tmp_path / "home")
    assert str(err.value) == (
        f"data.root={tmp_path / 'home'}: its class folder {tmp_path / 'home' / 'split'} holds a dataset of its own "
        "(train/ of 2 or more class folders beside test/), which would be read as one class: data.root is that "
        f"folder, e.g. data.root={tmp_path / 'home' / 'split'}")
    assert load(tmp_path / "home" / "split").classes == ("circle", "square")
    # Kaggle's names, as they are there: "train/ ... beside test/ or val/" named folders the dataset did not have
    for split in ("train", "test"):
        (tmp_path / "home" / "split" / split).rename(tmp_path / "home" / "split" / f"{split.capitalize()}ing")
    with pytest.raises(DataError, match=r"holds a dataset of its own \(Training/ of 2 or more class folders beside "
                                        r"Testing/\), "):
        load(tmp_path / "home")
    for split in ("train", "test"):
        (tmp_path / "home" / "split" / f"{split.capitalize()}ing").rename(tmp_path / "home" / "split" / split)

    # a runs_dir (runs/<study>/ with its report's PNGs) beside the class folders: the PNGs were a class's images
    for c, v in (("cat", 10), ("dog", 200)):
        for i in range(3):
            _png(tmp_path / "data" / c / f"{i}.png", 8, v)
    (tmp_path / "data" / "runs" / "s1").mkdir(parents=True)
    (tmp_path / "data" / "runs" / "s1" / "study.db").write_bytes(b"")
    _png(tmp_path / "data" / "runs" / "s1" / "pareto.png", 8, 0)
    with pytest.raises(DataError) as err:
        load(tmp_path / "data")
    runs = tmp_path / "data" / "runs"
    assert str(err.value) == (
        f"data.root={tmp_path / 'data'}: its class folder {runs} holds a search's run folder ({runs / 's1'} holds "
        f"study.db), which would be read as a class of images: move {runs} out of data.root, or set data.root to the "
        "dataset's folder")
    # beside a dataset's folder, that folder is named; data.root at runs_dir says where a run's data.root is written
    for c, v in (("circle", 10), ("square", 200)):
        _png(tmp_path / "runs_too" / "shapes" / c / "0.png", 8, v)
    (tmp_path / "runs_too" / "outputs" / "s2" / "checkpoints" / "abc").mkdir(parents=True)
    (tmp_path / "runs_too" / "outputs" / "s2" / "checkpoints" / "abc" / "model.pt").write_bytes(b"")
    with pytest.raises(DataError, match=r"outputs holds a search's run folder \(.*s2 holds checkpoints\), which would be "
                       rf"read as a class of images: data\.root is the dataset's folder, e\.g\. "
                       rf"data\.root={re.escape(str(tmp_path / 'runs_too' / 'shapes'))}, or move "):
        load(tmp_path / "runs_too")
    (tmp_path / "runs_too" / "outputs" / "s3").mkdir()
    (tmp_path / "runs_too" / "outputs" / "s3" / "pareto.json").write_text("{}")
    with pytest.raises(DataError, match=r"its class folder .*s2 is a search's run folder \(.*s2 holds checkpoints\), "
                       r".*; a run's config\.yaml names the data\.root it searched$"):
        load(tmp_path / "runs_too" / "outputs")


def test_class_folders_each_sorted_by_split_and_camera_stay_classes(tmp_path):
    # class/split/source (defect/train/cam1/, defect/val/cam1/, ok/... alike): every class folder looked like a dataset
    # of its own, and the refusal said "data.root is that folder" (defect/), though data.root was right
    for c, v in (("defect", 10), ("ok", 200)):
        for split, cams in (("train", ("cam1", "cam2")), ("val", ("cam1",))):
            for cam in cams:
                _png(tmp_path / c / split / cam / "0.png", 8, v)
    data = load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=8, test_size=2,
                                   val_size=1))
    assert data.classes == ("defect", "ok") and len(data.train) + len(data.val) + len(data.test) == 6
    # one such folder among others is a dataset beside them: still refused
    _png(tmp_path / "photos" / "0.png", 8, 50)
    with pytest.raises(DataError, match=r"class folder .*defect holds a dataset of its own"):
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=8, test_size=2,
                                val_size=1))


def test_class_folders_with_split_or_checkpoint_subfolders_of_images_stay_classes(tmp_path):
    # a class's photos sorted into train/ and test/ subfolders, or kept in one named checkpoints/: images, not a dataset
    # or a run folder, read as before (a study's images must not change)
    for c, v in (("cat", 10), ("dog", 200)):
        for sub in ("train", "test", "checkpoints"):
            _png(tmp_path / c / sub / "0.png", 8, v)
    data = load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=8, test_size=2,
                                   val_size=2))
    assert data.classes == ("cat", "dog") and len(data.train) + len(data.val) + len(data.test) == 6


def test_a_class_folder_with_a_dated_subfolder_given_as_data_root_names_the_folder_above(tmp_path):
    # cat/ holding its photos and a subfolder of more (cat/2024-06/) read as one class folder, "2024-06": the refusal
    # said "has 1 class folder" without the hint a class folder of photos alone gets.
    for i in range(3):
        _png(tmp_path / "photos" / "cat" / f"{i}.png", 8, 50)
        _png(tmp_path / "photos" / "cat" / "2024-06" / f"{i}.png", 8, 50)
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path / "photos" / "cat"), img_size=8))
    assert str(err.value) == (
        f"{tmp_path / 'photos' / 'cat'} has 1 class folder; an image-folder dataset needs >= 2 (root/<class>/images) (it "
        "holds 3 image files itself beside its folder 2024-06, as one class's folder does: data.root is the folder above "
        f"the class folders, e.g. data.root={tmp_path / 'photos'})")


def test_a_data_root_one_folder_above_the_dataset_names_the_folder_below(tmp_path):
    # an archive unpacked into downloads/ as downloads/shapes/<class>/: data.root=downloads read "shapes" as its one
    # class and said only "has 1 class folder", not where the class folders are
    for c in ("circle", "square"):
        _png(tmp_path / "flat" / "shapes" / c / "0.png", 8, 50)
        _png(tmp_path / "split" / "shapes" / "train" / c / "0.png", 8, 50)
    (tmp_path / "split" / "shapes" / "test").mkdir()
    for layout, folders in (("flat", "circle, square"), ("split", "train/circle, train/square")):
        with pytest.raises(DataError) as err:
            load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path / layout), img_size=8))
        assert str(err.value) == (
            f"{tmp_path / layout} has 1 class folder; an image-folder dataset needs >= 2 (root/<class>/images) (its one "
            f"folder shapes holds 2 folders of images ({folders}): data.root is one folder down, e.g. "
            f"data.root={tmp_path / layout / 'shapes'})")
    # one class whose photos lie in dated subfolders is one class, not a folder too high: no such hint
    for day in ("2024-05", "2024-06"):
        _png(tmp_path / "one" / "cat" / day / "0.png", 8, 50)
    _png(tmp_path / "one" / "cat" / "1.png", 8, 50)
    with pytest.raises(DataError) as err:
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path / "one"), img_size=8))
    assert str(err.value).endswith("has 1 class folder; an image-folder dataset needs >= 2 (root/<class>/images)")


def test_a_class_folder_linking_to_another_class_is_refused_naming_the_shared_file_and_both_classes(tmp_path):
    # photos/triangle/sq_link -> ../square put the square images into both classes with conflicting labels, silently
    import os

    for c in ("square", "triangle"):
        for i in range(3):
            _png(tmp_path / "photos" / c / f"{c}{i}.png", 8, 40 * i)
    os.symlink("../square", tmp_path / "photos" / "triangle" / "sq_link")
    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path / "photos"), img_size=8, test_size=1, val_size=1)
    with pytest.raises(DataError) as err:
        load_dataset(cfg)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"image {tmp_path / 'photos' / 'triangle' / 'sq_link' / 'square0.png'} (class 'triangle') "
                              f"is the same file as {tmp_path / 'photos' / 'square' / 'square0.png'} (class 'square')")
    assert "3 image files are in two class folders" in message and "each image must be in one class folder only" in message

    # one file linked into both classes: counted once, in the singular
    os.remove(tmp_path / "photos" / "triangle" / "sq_link")
    os.symlink("../square/square1.png", tmp_path / "photos" / "triangle" / "also.png")
    with pytest.raises(DataError, match=r"also\.png \(class 'triangle'\) is the same file as .*square1\.png \(class "
                                        r"'square'\), through a link: 1 image file is in two class folders"):
        load_dataset(cfg)
    # a link within one class (the same folder reached twice there is walked once) or to a file outside the root is fine
    os.remove(tmp_path / "photos" / "triangle" / "also.png")
    (tmp_path / "elsewhere").mkdir()
    _png(tmp_path / "elsewhere" / "t9.png", 8, 200)
    os.symlink("../../elsewhere/t9.png", tmp_path / "photos" / "triangle" / "t9.png")
    assert len(load_dataset(cfg).classes) == 2


def test_a_held_out_size_given_as_a_whole_count_is_echoed_as_typed(tmp_path):
    # data.test_size=93 was echoed as "data.test_size=93.0" (the config holds a float)
    for c in ("a", "b"):
        for i in range(3):
            _png(tmp_path / c / f"{i}.png", 8, 10 * i)
    with pytest.raises(DataError, match=r"^data\.test_size=93 holds out 93 of 6 images"):
        load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=8, test_size=93.0))


def _fixed_dataset() -> Dataset:
    """Three splits of 2x4x4 images whose pixels are arithmetic (no decoder, no random generator: the same bytes on any
    machine and version), the last test image a copy of training image 4."""
    def split(start: int, n: int, labels: list[int]) -> Split:
        x = ((np.arange(start, start + n * 2 * 4 * 4) * 37) % 251).astype(np.uint8).reshape(n, 2, 4, 4)
        return Split(torch.from_numpy(x), torch.tensor(labels, dtype=torch.int64))

    train, val, test = split(0, 6, [0, 1, 2, 0, 1, 2]), split(1000, 3, [2, 1, 0]), split(2000, 4, [0, 0, 1, 2])
    test = Split(torch.cat([test.x[:3], train.x[4:5]]), test.y)
    return Dataset(name="fixed", train=train, val=val, test=test, classes=("a", "b", "c"), mean=(0.5, 0.5), std=(0.2, 0.2))


def test_data_identity_with_shared_digests_records_what_it_recorded_before_they_were_shared():
    # Studies keep data_identity's record and refuse data whose record differs: computing the per-image digests once and
    # passing them must not change a byte of it. The literal is the record the code before the sharing (4cafba0) wrote.
    import hashlib

    from nas.data import data_identity, image_digests, split_image_digests

    data = _fixed_dataset()
    then = {"classes": ["a", "b", "c"], "input": [2, 4, 4], "images": {"train": 6, "val": 3, "test": 4},
            "digests": {"train": "fa3a1864296333a0", "val": "ca640e6f4ddf20ef", "test": "36eb1f9fe7579fb3"},
            "per_class": [[2, 1, 2, "bf715e47"], [2, 1, 1, "feb4be61"], [2, 1, 1, "e8ad2842"]]}
    shared = split_image_digests(data)
    assert json.dumps(data_identity(data, digests=shared)) == json.dumps(data_identity(data)) == json.dumps(then)
    # ... and the old way's per-class digest, recomputed here: sha256 of the class's sorted 8-byte blake2b pixel digests
    for c, row in enumerate(then["per_class"]):
        old = sorted(hashlib.blake2b(image.numpy().tobytes(), digest_size=8).digest()
                     for s in (data.train, data.val, data.test) for image, label in zip(s.x, s.y) if label == c)
        assert row[3] == hashlib.sha256(b"".join(old)).hexdigest()[:8]
    assert shared == {name: image_digests(getattr(data, name)) for name in ("train", "val", "test")}


def test_data_identity_and_the_copies_warning_hash_no_image_again_when_given_the_digests(monkeypatch):
    # A search start hashed every training image twice (data_identity's class summary, then held_out_copies_warning):
    # seconds of a large folder's pixels. Given split_image_digests' result, neither hashes an image.
    import nas.data
    import nas.data_records
    from nas.data import data_identity, held_out_copies_warning, split_image_digests

    data = _fixed_dataset()
    warned = held_out_copies_warning(data)
    assert warned is not None and warned.startswith("training images repeated in test: 1 of the 4 test images (25%), "
                                                    "the first test image 3;")
    identity = data_identity(data)
    digests = split_image_digests(data)
    hashed = []
    real = nas.data_records.image_digests
    monkeypatch.setattr(nas.data_records, "image_digests", lambda split: hashed.append(len(split)) or real(split))
    assert data_identity(data, digests=digests) == identity
    assert held_out_copies_warning(data, digests=digests) == warned
    assert hashed == []
    with pytest.raises(ValueError, match=r"digests\['test'\] holds 3 digests for 4 images"):  # of other data
        data_identity(data, digests={**digests, "test": digests["test"][:3]})


def test_an_img_size_whose_images_cannot_fit_in_memory_is_refused_before_decoding(tmp_path, tiny_idx_root, monkeypatch):
    # data.img_size=100000 (a typo for 100) decoded each photo to 30 GB: the OOM killer ended the search (exit 137, no
    # message, other processes of the machine at risk). It is refused in one line before any image is read.
    import nas.data
    import nas.images

    for c in ("cat", "dog"):
        for i in range(3):
            _png(tmp_path / c / f"{i}.png", 8, 50, mode="RGB")
    cfg = DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=100000)
    decoded = []
    monkeypatch.setattr(nas.images, "read_image", lambda *a, **k: decoded.append(1))
    with pytest.raises(DataError) as e:
        load_dataset(cfg)
    message = str(e.value)
    assert "\n" not in message and not decoded
    assert message.startswith(f"data.img_size=100000: the 6 images of {tmp_path} at 3x100000x100000 need about ")
    assert "GiB of memory to load, more than the " in message and "pass a smaller data.img_size" in message
    # the same on idx data (Fashion-MNIST), whose 500 images would be resized to it
    with pytest.raises(DataError, match=r"^data.img_size=100000: the 500 images of .* at 1x100000x100000 need about "):
        load_dataset(_idx_cfg(tiny_idx_root, img_size=100000))
    # what the memory allows still loads: the check counts the memory available now
    monkeypatch.setattr(nas.data, "available_memory_bytes", lambda: 10**6)
    with pytest.raises(DataError, match=r"^data.img_size=64: .* more than the 0.000931 GiB available now"):
        load_dataset(_idx_cfg(tiny_idx_root, img_size=64))
    assert load_dataset(_idx_cfg(tiny_idx_root, img_size=8)).train.x.shape[1:] == (1, 8, 8)


def _reshaped(caplog) -> list[str]:
    """The warnings of nas.data about non-square or transparent images, in the order given."""
    return [r.getMessage() for r in caplog.records
            if r.name == "nas.data" and ("not square" in r.getMessage() or "transparent pixels" in r.getMessage())]


def test_non_square_and_transparent_images_are_each_warned_about_once_per_load_also_from_the_cache(tmp_path, caplog, monkeypatch):
    # Photos were stretched to data.img_size and their transparency dropped without a word, though a deployment must
    # feed the model photos made the same way. One line each, counting them over every split folder, naming one.
    import nas.images

    root = tmp_path / "img"
    for split, n in (("train", 4), ("test", 2)):
        for c, v in (("cat", 40), ("dog", 160)):
            for i in range(n):
                _png(root / split / c / f"{i}.png", 10, v + i, mode="RGB")
    Image.fromarray(np.full((30, 40, 3), 9, np.uint8)).save(root / "train" / "cat" / "wide.jpg")  # 40 wide, 30 high
    Image.fromarray(np.full((40, 30, 3), 9, np.uint8)).save(root / "test" / "dog" / "tall.png")
    cut = np.full((10, 10, 4), 200, np.uint8)
    cut[0, 0, 3] = 0  # one transparent pixel
    Image.fromarray(cut, "RGBA").save(root / "train" / "dog" / "cut.png")
    Image.fromarray(np.full((10, 10, 4), 255, np.uint8), "RGBA").save(root / "train" / "dog" / "opaque.png")  # alpha, none transparent
    cfg = dict(name="x", format=DataFormat.imagefolder, root=str(root), img_size=8, val_size=2,
               cache_dir=str(tmp_path / "cache"))
    stretched = (f"2 of 16 images in {root} are not square (e.g. train/cat/wide.jpg 40x30): each is stretched to 8x8 "
                 "(data.img_size), which changes their aspect ratio, and compress.predict stretches new photos the same "
                 "way; crop or pad them to square first to keep their shape")
    dropped = (f"1 of 16 images in {root} has transparent pixels (e.g. train/dog/cut.png): the transparency is dropped "
               "(data.background=null), so the model sees the colours stored under those pixels; set "
               "data.background=0..255 to composite them onto that grey level (255 white), the background a camera "
               "will see behind the object")
    with caplog.at_level("WARNING", logger="nas.data"):
        data = load_dataset(DataConfig(**cfg))
    assert _reshaped(caplog) == [stretched, dropped]
    # the same counts kept with the images, for each member's record of its input (compress.predict reads them)
    assert data.image_counts == ImageCounts(images=16, not_square=2, transparent=1, grey=16)  # every one of one value
    # From the cache, decoding nothing: the same lines.
    caplog.clear()
    monkeypatch.setattr(nas.images, "read_image", lambda *a, **k: pytest.fail("decoded again"))
    with caplog.at_level("WARNING", logger="nas.data"):
        assert load_dataset(DataConfig(**cfg)).image_counts == (16, 2, 1, 16)
    assert _reshaped(caplog) == [stretched, dropped]
    monkeypatch.undo()
    # A cache file without its notes beside it (written before they were kept): decoded again, and said all the same.
    for f in (tmp_path / "cache").glob("*.json"):
        f.unlink()
    caplog.clear()
    with caplog.at_level("WARNING", logger="nas.data"):
        load_dataset(DataConfig(**cfg))
    assert _reshaped(caplog) == [stretched, dropped] and len(list((tmp_path / "cache").glob("*.json"))) == 2
    # With data.background set, what is done instead.
    caplog.clear()
    with caplog.at_level("WARNING", logger="nas.data"):
        load_dataset(DataConfig(**cfg, background=255))
    assert _reshaped(caplog) == [stretched, (
        f"1 of 16 images in {root} has transparent pixels (e.g. train/dog/cut.png): its transparent pixels are "
        "composited onto grey level 255 (data.background=255), as compress.predict composites new photos")]


def test_square_opaque_images_give_no_warning_of_stretching_or_transparency(tmp_path, caplog):
    for c, v in (("cat", 40), ("dog", 160)):
        for i in range(4):
            _png(tmp_path / c / f"{i}.png", 12, v + i, mode="RGB")  # squares of another size than data.img_size
    Image.fromarray(np.full((12, 12, 4), 255, np.uint8), "RGBA").save(tmp_path / "cat" / "opaque.png")
    with caplog.at_level("WARNING", logger="nas.data"):
        data = load_dataset(DataConfig(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=8))
    assert _reshaped(caplog) == [] and "opaque" not in caplog.text
    assert data.image_counts == ImageCounts(images=9, not_square=0, transparent=0, grey=9)


def test_idx_data_counts_its_images_square_and_opaque(tiny_idx_root):
    # Fashion-MNIST's images are square grey ones without transparency: a member's record says so, as of a folder's.
    data = load_dataset(_idx_cfg(tiny_idx_root))
    assert data.image_counts == ImageCounts(images=500, not_square=0, transparent=0, grey=500)


def test_a_folders_grey_images_are_counted_as_compress_predict_judges_a_photo_also_from_the_cache(tmp_path, monkeypatch):
    # compress.predict told a deployer to add grey photos to the training folder of a colour model whose folder held
    # 24 grey of 162: the load counts the images it made with no colour (R = G = B at every pixel of the model's input,
    # as compress.predict.grey_images judges a photo), for each member's record.
    import nas.images
    from compress.predict import grey_images

    rng = np.random.default_rng(0)
    colour = lambda: (rng.random((12, 12, 3)) * 255).astype(np.uint8)  # noqa: E731
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(colour()).save(tmp_path / split / c / f"{i}.png")
    Image.fromarray(colour()).convert("L").save(tmp_path / "train" / "cat" / "stored_grey.png")
    Image.fromarray(colour()).convert("L").convert("RGB").save(tmp_path / "test" / "dog" / "grey_as_rgb.png")
    Image.fromarray(colour()).convert("L").convert("P").save(tmp_path / "train" / "dog" / "grey_palette.png")
    cut = np.dstack([colour()[..., :1].repeat(3, axis=2), np.full((12, 12, 1), 255, np.uint8)])
    cut[0, 0] = (255, 0, 0, 0)  # red stored under a transparent pixel: grey once composited onto a grey background
    Image.fromarray(cut, "RGBA").save(tmp_path / "train" / "dog" / "cut.png")
    nearly = colour()[..., :1].repeat(3, axis=2)
    nearly[5, 5, 2] ^= 1  # one pixel off grey: colour, as compress.predict judges it
    Image.fromarray(nearly).save(tmp_path / "train" / "cat" / "nearly_grey.png")
    # at their own size: a resize could blend the one coloured pixel away
    cfg = dict(name="x", format=DataFormat.imagefolder, root=str(tmp_path), img_size=12, val_size=2,
               cache_dir=str(tmp_path.parent / f"{tmp_path.name}_cache"))
    data = load_dataset(DataConfig(**cfg))
    assert data.in_chans == 3 and data.image_counts == ImageCounts(images=17, not_square=0, transparent=1, grey=3)
    x = torch.cat([data.train.x, data.val.x, data.test.x]).float().div(255).numpy()
    assert int(grey_images(x).sum()) == 3  # compress.predict's judgement of the same inputs
    assert load_dataset(DataConfig(**cfg, background=128)).image_counts.grey == 4  # the cut-out composited onto grey
    # from the cache, decoding nothing: the same count
    monkeypatch.setattr(nas.images, "read_image", lambda *a, **k: pytest.fail("decoded again"))
    assert load_dataset(DataConfig(**cfg)).image_counts.grey == 3
    monkeypatch.undo()
    # one channel: the model sees no colour in any image
    assert load_dataset(DataConfig(**{**cfg, "cache_dir": None}, channels=1)).image_counts.grey == 17


def test_a_photo_turned_upright_by_its_exif_tag_is_named_at_its_upright_size(tmp_path):
    from nas.data import Original

    img = Image.fromarray(np.full((30, 40, 3), 9, np.uint8))  # stored 40 wide, 30 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to show: a portrait photo of a phone
    img.save(tmp_path / "portrait.jpg", exif=exif)
    seen: list[Original] = []
    read_image(tmp_path / "portrait.jpg", size=8, mode="RGB", original=seen)
    assert seen == [Original(30, 40, False)]
