import json

from omegaconf import OmegaConf

from nas.config import CONF_DIR, compose_search_config
from nas.rebuild import rebuild_settings, searched_final_train


def test_rebuild_settings_are_read_inside_a_hydra_app(tmp_path):
    # compress.run (a Hydra app) warns of its run's damaged pareto.json with the rebuild these name: composing the
    # default config there raised, Hydra being initialized already
    from hydra import initialize_config_dir

    searched = compose_search_config(["compress=smoke"])
    searched.data.root = "/data/fashion"
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(searched))
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        assert rebuild_settings(tmp_path) == ["data.root=/data/fashion", "compress=smoke"]
    assert rebuild_settings(tmp_path / "missing") is None


def _run_folder(tmp_path, final_train, *, config_final_train=None):
    """A run folder `tmp_path/t` whose members' metrics.json record `final_train` (one per member) and whose config.yaml
    records `config_final_train`."""
    run_dir = tmp_path / "t"
    (run_dir / "checkpoints").mkdir(parents=True)
    for i, info in enumerate(final_train):
        (run_dir / "checkpoints" / f"m{i}").mkdir()
        (run_dir / "checkpoints" / f"m{i}" / "metrics.json").write_text(json.dumps({"final_train": info}))
    (run_dir / "pareto.json").write_text("{}")
    if config_final_train is not None:
        (run_dir / "config.yaml").write_text(f"final_train: {json.dumps(config_final_train)}\n")
    return run_dir


def _recipe(**changes):
    from dataclasses import asdict

    from nas.config import TrainConfig

    recipe = asdict(TrainConfig(epochs=6, warmup_frac=0.05))  # conf/final_train/default.yaml
    recipe["precision"] = recipe["precision"].value  # as metrics.json holds it
    return {"epochs": 6, **{k: v for k, v in recipe.items() if k != "epochs"}, **changes}


SMOKE = {"epochs": 2, "subset": 512, "batch_size": 64}


def test_searched_final_train_names_the_members_recipe_where_it_is_not_the_default(tmp_path):
    # The rebuild refuses, naming no final_train, members final-trained with another recipe than the default: the
    # top_k hint of compress.run must name the one they were trained with.
    def settings(*final_train, **kw):
        import shutil

        shutil.rmtree(tmp_path / "t", ignore_errors=True)
        return searched_final_train(_run_folder(tmp_path, final_train, **kw))

    assert settings({"epochs": 6, "recipe": _recipe()}) == []
    # speed settings aside, as the rebuild compares them
    assert settings({"epochs": 6, "recipe": _recipe(threads=8, channels_last=False)}) == []
    assert settings({"epochs": 2, "recipe": _recipe(**SMOKE)}) == ["final_train=smoke"]
    assert settings(*[{"epochs": 2, "recipe": _recipe(**{**SMOKE, "epochs": 3})}] * 2) == ["final_train=smoke", "final_train.epochs=3"]
    assert settings({"epochs": 10, "recipe": _recipe(epochs=10, max_shift=2)}) == ["final_train.epochs=10",
                                                                                   "final_train.max_shift=2"]
    assert settings(None, None) == ["final_train=none"]  # proxy-trained weights kept
    # members that disagree: the search's own setting, from config.yaml
    assert settings({"epochs": 2, "recipe": _recipe(**SMOKE)}, {"epochs": 6, "recipe": _recipe()},
                    config_final_train=_recipe(**SMOKE)) == ["final_train=smoke"]
    assert settings(config_final_train=_recipe(epochs=0)) == ["final_train=none"]
    assert settings() == []  # nothing recorded: nothing to go by
