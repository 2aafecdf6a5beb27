from omegaconf import OmegaConf

from nas.config import CONF_DIR, compose_search_config
from nas.rebuild import rebuild_settings


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
