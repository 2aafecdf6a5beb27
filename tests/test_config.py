import dataclasses
import itertools
import json
import os
import re
import subprocess

import pytest
from hydra.errors import HydraException
from omegaconf.errors import ValidationError

from nas.config import CompressRunConfig, RunConfig, SearchOptions, to_run_config
from nas.config_messages import unknown_key_message
from nas.errors import ConfigError
from nas.latency.hardware import HardwareProfile
from tests.conftest import fitted_calibration

GROUPS = {
    "hw": ["edge_npu", "cpu", "cpu_ort", "cpu_int8", "cpu_xeon", "cpu_xeonb", "cpu_zen2", "mobile_cpu"],
    "space": ["metaformer_t", "metaformer_s"],
    "data": ["fashion_mnist", "imagefolder"],
    "train": ["default", "smoke"],
    "search": ["default"],
    "compress": ["default", "none", "smoke"],
}


def test_group_folders_hold_exactly_the_tested_options():
    from tests.conftest import CONF_DIR

    for group, options in GROUPS.items():
        assert sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")) == sorted(options)


def _all_pairs(groups: dict[str, list[str]]) -> list[tuple[str, ...]]:
    """Combinations of one option per group in which every two options of two groups meet at least once: checks
    between groups (to_run_config's) are between two of them, and the whole product is 168 composes."""
    def pairs(combo):
        return {(i, a, j, b) for i, a in enumerate(combo) for j, b in enumerate(combo) if i < j}

    todo = set().union(*(pairs(c) for c in itertools.product(*groups.values())))
    chosen = []
    while todo:  # greedy: the combination covering most pairs not yet met (first in product order on a tie)
        best = max(itertools.product(*groups.values()), key=lambda c: len(pairs(c) & todo))
        chosen.append(best)
        todo -= pairs(best)
    return chosen


@pytest.mark.parametrize("combo", _all_pairs(GROUPS))
def test_every_group_option_composes_and_validates(combo, compose_cfg):
    overrides = [f"{g}={o}" for g, o in zip(GROUPS, combo)]
    if "data=imagefolder" in overrides:
        overrides.append("data.root=/some/images")
    run = to_run_config(compose_cfg(*overrides))
    assert isinstance(run, RunConfig)
    assert run.hw.name == combo[0] and run.space.name == combo[1]
    assert run.search.study_name == f"{combo[1]}-{combo[0]}-{run.data.name}"


def test_defaults_are_the_documented_ones(compose_cfg):
    run = to_run_config(compose_cfg())
    assert (run.hw.name, run.space.name, run.data.name) == ("edge_npu", "metaformer_t", "fashion_mnist")
    assert run.search.sampler.value == "tpe" and run.search.storage is None
    assert run.hw.precision == "int8" and run.hw.mac_per_s == 2.0e12  # a 4-TOPS-class NPU


@pytest.mark.parametrize(
    ("override", "fragment"),
    [("search.n_trials=abc", "n_trials"), ("train.epochs=1.5", "epochs"), ("search.sampler=cmaes", "cmaes"),
     ("hw.mac_per_s=fast", "mac_per_s"), ("train.momentum=0.9", "momentum")],
)
def test_wrong_types_and_keys_fail_at_compose_time(override, fragment, compose_cfg):
    with pytest.raises((ValidationError, HydraException)) as err:
        compose_cfg(override)
    assert fragment in str(err.value)


def test_unknown_group_option_lists_the_available_ones(compose_cfg):
    with pytest.raises(HydraException) as err:
        compose_cfg("hw=tpu9000")
    assert "tpu9000" in str(err.value) and "edge_npu" in str(err.value)


@pytest.mark.parametrize(
    ("override", "fragment"),
    [("train.epochs=0", "train.epochs=0"), ("search.latency_budget_ms=-1", "search.latency_budget_ms=-1"),
     ("search.n_trials=0", "search.n_trials=0"), ("train.lr=-0.1", "train.lr=-0.1"), ("data.channels=2", "data.channels=2"),
     ("hw.efficiency.conv=2", "hw.efficiency.conv=2"), ("search.study_name=a/b", "search.study_name='a/b'"),
     ("hw.precision=int3", "hw.precision='int3'"), ("final_train.erase_prob=1.5", "final_train.erase_prob=1.5"),
     ("train.max_shift=-1", "train.max_shift=-1")],
)
def test_bad_values_give_one_line_errors(override, fragment, compose_cfg):
    with pytest.raises(ConfigError) as err:
        to_run_config(compose_cfg(override))
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_imagefolder_without_root_says_what_to_pass(compose_cfg):
    with pytest.raises(ConfigError, match="data.root"):
        to_run_config(compose_cfg("data=imagefolder"))


def test_a_chip_file_that_leaves_out_datasheet_numbers_is_warned_about(tmp_path):
    from nas.config import HW_DIR, datasheet_warning, hw_profiles, load_hw_profile

    # Every shipped profile sets what its predictions use (or is calibrated).
    assert [p.name for p in hw_profiles() if datasheet_warning(p)] == []
    lines = (HW_DIR / "edge_npu.yaml").read_text().splitlines()
    kept = [line for line in lines if not line.startswith(("mac_per_s:", "  dwconv:"))]
    (tmp_path / "my_npu.yaml").write_text("\n".join(kept).replace("name: edge_npu", "name: my_npu"))
    mine = load_hw_profile(tmp_path / "my_npu.yaml")
    warning = datasheet_warning(mine, folders=[tmp_path])
    assert warning is not None and "\n" not in warning
    assert "hw=my_npu" in warning and "leaves out mac_per_s, efficiency.dwconv:" in warning and "1.0" in warning
    # A fused kind (bn, relu here) costs nothing, so its efficiency is not asked for.
    assert "efficiency.bn" not in warning and "efficiency.relu" not in warning
    # Calibrated: the fitted costs replace the datasheet numbers, nothing to warn about.
    calibrated = dataclasses.replace(mine, calibration=fitted_calibration({"invoke": {"fixed": 10.0}, "conv": {"per_work": 1e-6}}))
    assert datasheet_warning(calibrated, folders=[tmp_path]) is None
    (tmp_path / "my_npu.yaml").write_text("\n".join(lines).replace("name: edge_npu", "name: my_npu"))
    assert datasheet_warning(mine, folders=[tmp_path]) is None


@pytest.mark.parametrize("config_name", ["search", "latency", "compress_run"])
def test_a_users_file_named_like_a_shipped_one_is_refused_naming_both(tmp_path, config_name):
    # `--config-dir mine hw=cpu` with mine/hw/cpu.yaml (the user's recalibrated copy): Hydra composed the shipped
    # conf/hw/cpu.yaml and the user's file was ignored without a word.
    from nas.config import CONF_DIR, register_configs
    from nas.overrides import precheck_overrides
    from nas.latency.profile import register_latency_configs

    register_configs(), register_latency_configs()
    (tmp_path / "hw").mkdir()
    (tmp_path / "space").mkdir()
    shipped = CONF_DIR / "hw" / "cpu.yaml"
    mine = tmp_path / "hw" / "cpu.yaml"
    mine.write_text(shipped.read_text().replace("description: host CPU", "description: my CPU"))
    extra = ["checkpoint=x"] if config_name == "compress_run" else []
    problem = precheck_overrides(["--config-dir", str(tmp_path), "hw=cpu", *extra], config_name=config_name)
    assert problem == (f"hw=cpu names two files, the shipped {shipped} and yours, {mine}, which is ignored (Hydra takes the "
                       f"shipped one first); give yours a name of its own: rename it to {tmp_path / 'hw' / 'my_cpu.yaml'}, "
                       "set name: my_cpu in it, and pass hw=my_cpu")
    # Not chosen, or an identical copy (a copy of all of conf/): nothing to say.
    assert precheck_overrides(["--config-dir", str(tmp_path), "hw=edge_npu", *extra], config_name=config_name) is None
    mine.write_bytes(shipped.read_bytes())
    assert precheck_overrides(["--config-dir", str(tmp_path), "hw=cpu", *extra], config_name=config_name) is None
    if config_name != "compress_run":  # the space group as well, e.g. the default space chosen without being named
        (tmp_path / "space" / "metaformer_t.yaml").write_text("name: metaformer_t\nstem_kernels: [3]\n")
        problem = precheck_overrides(["--config-dir", str(tmp_path)], config_name=config_name)
        assert problem is not None and problem.startswith("space=metaformer_t names two files")


def test_a_copied_chip_file_that_kept_the_originals_name_is_warned_about(tmp_path):
    # README 'Onboarding a chip' step 1 copies edge_npu.yaml to hw/<chip>.yaml: with its `name: edge_npu` kept, a search
    # with hw=<chip> went by edge_npu (default study name metaformer_t-edge_npu-fashion_mnist, report, pareto.json).
    import subprocess
    import sys

    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from nas.config import CONF_DIR, name_warning, register_configs

    mine = tmp_path / "mine" / "hw" / "my_chip.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text((CONF_DIR / "hw" / "edge_npu.yaml").read_text())
    register_configs()
    assert name_warning("hw") is None  # outside a Hydra run

    def warnings(text: str) -> tuple[str | None, str | None]:
        mine.write_text(text)
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("search", overrides=[f"hydra.searchpath=[file://{tmp_path / 'mine'}]", "hw=my_chip"],
                          return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        try:
            return name_warning("hw"), name_warning("space")
        finally:
            HydraConfig.instance().cfg = None

    copied = (CONF_DIR / "hw" / "edge_npu.yaml").read_text()
    assert warnings(copied) == (f"hw=my_chip: its file {mine} says name: edge_npu, so the study name, the log, the report "
                                "and pareto.json call it edge_npu; set name: my_chip in it", None)
    assert warnings(copied.replace("name: edge_npu", "name: my_chip")) == (None, None)
    # The latency tools say it too, before their work.
    mine.write_text(copied)
    done = subprocess.run([sys.executable, "-m", "nas.latency.validate", "--config-dir", "mine", "hw=my_chip"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(CONF_DIR.parent), "PATH": "/usr/bin:/bin",
                                                                            "HOME": str(tmp_path)})
    # a warning, so on stderr (it was on stdout, and `2>err.log` kept none), before the error line
    assert done.stdout == "" and done.stderr.startswith(f"hw=my_chip: its file {mine} says name: edge_npu"), done.stdout
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("error: measurements=[file.csv,...] is required")


@pytest.mark.parametrize("config_name", ["search", "compress_run", "latency"])
def test_the_commands_log_info_lines_on_stdout_and_warnings_on_stderr_once_each(config_name, capsys):
    # The logging Hydra sets up for each command (its job_logging, as hydra.main applies it): every line went to stdout,
    # so `python -m nas.search ... 2>err.log`, or a CI job keeping stderr, had none of the search's warnings.
    import logging

    from hydra import compose, initialize_config_dir
    from hydra.core.utils import configure_log

    from nas.config import CONF_DIR, register_configs
    from nas.latency.profile import register_latency_configs

    register_configs(), register_latency_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=["checkpoint=x"] if config_name == "compress_run" else [],
                      return_hydra_config=True)
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    try:
        configure_log(cfg.hydra.job_logging)
        logging.getLogger("nas.search").info("trial 0 done")
        logging.getLogger("nas.data").warning("2 images left out")
        logging.getLogger("compress.run").error("a failure")
        logging.getLogger("nas.search").debug("not shown")
    finally:
        for handler in root.handlers:
            if handler not in saved[1]:
                handler.close()
        root.handlers[:], root.level = saved[1], saved[0]
    printed = capsys.readouterr()
    assert (printed.out, printed.err) == ("trial 0 done\n", "2 images left out\na failure\n")


def test_overridden_keys_are_the_keys_the_command_line_sets():
    from nas.config import overridden_keys

    assert overridden_keys(["data.test_size=0.2", "+train.extra=1", "++search.seed=3", "~data.val_size", "hw=cpu",
                            "search.worker=0,1"]) == {"data.test_size", "train.extra", "search.seed", "hw", "search.worker"}
    assert overridden_keys([]) == frozenset()


@pytest.mark.parametrize("config_name", ["search", "latency", "compress_run"])
def test_a_launchers_setting_without_its_launcher_is_one_line_naming_the_launcher_to_add(config_name):
    # `-m hydra.launcher.n_jobs=2 search.worker=0,1` without hydra/launcher=joblib: Hydra printed five lines ending in
    # "Key 'n_jobs' not in 'BasicLauncherConf'", which says neither that no launcher was chosen nor which one to add.
    from nas.config import register_configs
    from nas.overrides import precheck_overrides
    from nas.latency.profile import register_latency_configs

    register_configs(), register_latency_configs()
    extra = ["checkpoint=x"] if config_name == "compress_run" else []
    problem = precheck_overrides(["-m", "hydra.launcher.n_jobs=2", *extra], config_name=config_name)
    assert problem == ("hydra.launcher.n_jobs is a setting of a launcher, and none is chosen (Hydra's basic launcher, "
                       "which runs the jobs one by one, has no settings); add hydra/launcher=joblib to the command line")
    # A key of a launcher that is not installed (README's submitit_slurm): the plugin to install.
    problem = precheck_overrides(["hydra.launcher.partition=cpu", *extra], config_name=config_name)
    assert problem is not None and "\n" not in problem
    assert problem.startswith("hydra.launcher.partition is a setting of a launcher, and none is chosen")
    assert "add hydra/launcher=<the launcher it belongs to>" in problem and "pip install hydra-submitit-launcher" in problem
    # With its launcher it composes; a misspelt key of it, or of Hydra's own, names the close one, as hw.* keys do.
    assert precheck_overrides(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *extra],
                              config_name=config_name) is None
    problem = precheck_overrides(["hydra/launcher=joblib", "hydra.launcher.n_job=2", *extra], config_name=config_name)
    assert problem is not None and problem.startswith(
        "hydra.launcher.n_job is not a setting of hydra.launcher (did you mean hydra.launcher.n_jobs?); allowed: _target_, n_jobs")
    problem = precheck_overrides(["hydra.verbos=true", *extra], config_name=config_name)
    assert problem is not None and problem.startswith("hydra.verbos is not a setting of hydra (did you mean hydra.verbose?)")
    # Hydra's settings that are right still pass.
    assert precheck_overrides(["hydra.run.dir=/tmp/somewhere", "hydra.verbose=true", *extra], config_name=config_name) is None


def test_nas_search_with_a_launchers_setting_but_no_launcher_prints_one_line():
    import subprocess
    import sys
    from pathlib import Path

    out = subprocess.run([sys.executable, "-m", "nas.search", "-m", "hydra.launcher.n_jobs=2", "search.worker=0,1"],
                         capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        "error: hydra.launcher.n_jobs is a setting of a launcher, and none is chosen (Hydra's basic launcher, which runs "
        "the jobs one by one, has no settings); add hydra/launcher=joblib to the command line"]


def test_group_files_read_without_omegaconf_for_their_big_blocks_give_what_the_omegaconf_path_gives(tmp_path):
    from nas.config import (CONF_DIR, HW_DIR, SpaceConfig, _read_group_file_fast, _read_group_file_omegaconf, hw_profiles,
                            load_hw_profile)
    from nas.latency.hardware import HardwareProfile

    # Every shipped file takes the fast path (it returns a profile, not None for "ask OmegaConf") and gets exactly what
    # OmegaConf composes from it: the same values of the same types (repr tells 1 from 1.0), in the same order.
    for cls, folder in ((HardwareProfile, HW_DIR), (SpaceConfig, CONF_DIR / "space")):
        for path in sorted(folder.glob("*.yaml")):
            fast, slow = _read_group_file_fast(path, cls), _read_group_file_omegaconf(path, cls)
            assert fast is not None, path.name
            assert dataclasses.asdict(fast) == dataclasses.asdict(slow) and repr(fast) == repr(slow), path.name
    assert [p.name for p in hw_profiles()] == sorted(GROUPS["hw"]) and hw_profiles()[0].calibration
    # YAML 1.1 floats as OmegaConf reads them: 2e12 and 1e-5 (no dot) are floats, not strings.
    base = (HW_DIR / "edge_npu.yaml").read_text()

    def read(extra: str) -> HardwareProfile:
        (tmp_path / "x.yaml").write_text(base.replace("mac_per_s:", "# mac_per_s:") + extra)
        return load_hw_profile(tmp_path / "x.yaml")

    whole = fitted_calibration({"invoke": {"fixed": 1e-5}, "conv": {"per_work": 3e-6}})
    written = json.dumps(whole).replace("1e-05", "1e-5").replace("3e-06", "3.0e-6")  # JSON: YAML of floats
    hw = read(f"mac_per_s: 2e12\ncalibration: {written}\n")
    assert hw.mac_per_s == 2e12 and hw.calibration == whole
    assert isinstance(hw.mac_per_s, float) and hw == _read_group_file_omegaconf(tmp_path / "x.yaml", HardwareProfile)
    assert _read_group_file_fast(tmp_path / "x.yaml", HardwareProfile) == hw  # the fast path reads them so itself
    # What the fast path does not take is read through OmegaConf: a whole number in a calibration, taken as `hw=<name>`
    # takes it (it was refused, "Value 3 (int) is incompatible"), or a duplicate key, reported in OmegaConf's words...
    # (a calibration whole, as a fit writes it; the whole number a float, as the schema's float made it)
    taken = read(f"calibration: {json.dumps(fitted_calibration({'conv': {'per_work': 3}}))}\n").calibration["conv"]["per_work"]
    assert taken == 3.0 and isinstance(taken, float)
    with pytest.raises(ConfigError, match=r"x\.yaml, line \d+: 'mac_per_s: 3e12' is not valid YAML \(found duplicate key mac_per_s\)$"):
        read("mac_per_s: 2e12\nmac_per_s: 3e12\n")
    # ... and the first invalid value in the order the profile checks them: the calibration before fitted_archs, which
    # the fast path's check without the calibration would name.
    with pytest.raises(ConfigError, match=r"^hw.calibration.conv.fixed=-1.0: terms of conv"):
        read("mac_per_s: 2e12\ncalibration: {conv: {fixed: -1.0}}\nfitted_archs: ['']\n")


def test_a_group_file_given_as_a_path_or_outside_its_group_folder_is_named_with_where_it_goes(tmp_path):
    # A chip's file kept outside conf/hw: `hw=<path>` composed as group hw//tmp/...; a file at mine/acme.yaml (not
    # mine/hw/acme.yaml) with --config-dir mine was only "not an option of hw". Both now say where the file goes.
    from nas.config import register_configs
    from nas.overrides import precheck_overrides
    from nas.latency.profile import register_latency_configs

    register_configs(), register_latency_configs()
    (tmp_path / "acme.yaml").write_text("name: acme\n")
    problem = precheck_overrides([f"hw={tmp_path / 'acme.yaml'}"], config_name="latency")
    assert problem == (f"hw={tmp_path / 'acme.yaml'} is a path; hw= takes a file's name without .yaml, from a hw/ folder on "
                       f"the config search path: move the file to <your folder>/hw/acme.yaml and pass --config-dir <your "
                       "folder> hw=acme (README, 'Onboarding a chip')")
    (tmp_path / "hw").mkdir()
    (tmp_path / "hw" / "acme.yaml").write_text("name: acme\n")
    assert precheck_overrides([f"hw={tmp_path / 'hw' / 'acme.yaml'}"], config_name="search").endswith(
        f"pass --config-dir {tmp_path} hw=acme (README, 'Onboarding a chip')")
    (tmp_path / "hw" / "acme.yaml").unlink()
    problem = precheck_overrides(["--config-dir", str(tmp_path), "hw=acme"], config_name="latency")
    assert problem.startswith("hw=acme is not an option of hw") and problem.endswith(
        f"; {tmp_path / 'acme.yaml'} is there, but --config-dir reads a group's files from its subfolder: move it to "
        f"{tmp_path / 'hw' / 'acme.yaml'}")
    # --config-dir naming the hw/ folder itself: it said to move the file to mine/hw/hw/acme.yaml
    (tmp_path / "hw" / "acme.yaml").write_text("name: acme\n")
    problem = precheck_overrides(["--config-dir", str(tmp_path / "hw"), "hw=acme"], config_name="latency")
    assert problem.startswith("hw=acme is not an option of hw") and problem.endswith(
        f"; {tmp_path / 'hw' / 'acme.yaml'} is there, but --config-dir names the folder above hw/: pass --config-dir "
        f"{tmp_path}")


def test_a_chip_file_in_a_folder_of_ones_own_named_without_config_dir_says_to_pass_it(tmp_path, monkeypatch):
    # README's onboarding says once to add --config-dir to each command; a command typed without it, beside the user's
    # config folder (myconf/hw/acme.yaml), was only "hw=acme is not an option of hw; available: ...".
    from nas.config import register_configs
    from nas.overrides import precheck_overrides
    from nas.latency.profile import register_latency_configs

    register_configs(), register_latency_configs()
    (tmp_path / "myconf" / "hw").mkdir(parents=True)
    (tmp_path / "myconf" / "hw" / "acme.yaml").write_text("name: acme\n")
    monkeypatch.chdir(tmp_path)
    problem = precheck_overrides(["hw=acme", "n=2"], config_name="latency")
    assert problem.startswith("hw=acme is not an option of hw; available: ") and problem.endswith(
        "; myconf/hw/acme.yaml is there, but a folder of your own is read only with --config-dir: pass --config-dir myconf "
        "hw=acme")
    monkeypatch.chdir(tmp_path / "myconf")  # from inside it: the current folder
    assert precheck_overrides(["hw=acme"], config_name="search").endswith(
        "; hw/acme.yaml is there, but a folder of your own is read only with --config-dir: pass --config-dir . hw=acme")
    assert "is there" not in precheck_overrides(["hw=acne"], config_name="search")  # no such file: no hint


def test_a_chip_file_named_yml_says_to_rename_it_yaml(tmp_path):
    # mine/hw/acme.yml (a usual spelling of YAML files) was only "hw=acme is not an option of hw; available: ...":
    # Hydra offers .yaml files alone.
    from nas.config import register_configs
    from nas.overrides import precheck_overrides
    from nas.latency.profile import register_latency_configs

    register_configs(), register_latency_configs()
    (tmp_path / "hw").mkdir()
    (tmp_path / "hw" / "acme.yml").write_text("name: acme\n")
    for config_name in ("latency", "search"):
        problem = precheck_overrides(["--config-dir", str(tmp_path), "hw=acme"], config_name=config_name)
        assert problem.startswith("hw=acme is not an option of hw; available: ") and problem.endswith(
            f"; {tmp_path / 'hw' / 'acme.yml'} is there, but hw= chooses only .yaml files: rename it to "
            f"{tmp_path / 'hw' / 'acme.yaml'}")
    # a fit's numbers (<chip>.fitted.yml) are no profile to rename
    (tmp_path / "hw" / "acme.fitted.yml").write_text("calibration: {}\n")
    assert "rename" not in precheck_overrides(["--config-dir", str(tmp_path), "hw=acme.fitted"], config_name="latency")


def test_a_misspelt_key_or_a_wrong_type_inside_a_group_file_is_named_with_the_close_setting(tmp_path):
    # A chip's datasheet file with `mac_per_sec:` gave "In 'hw/typo': ConfigKeyError raised while composing config:; Key
    # 'mac_per_sec' not in 'HardwareProfile'": no close setting, unlike the same typo on the command line.
    from nas.config import CONF_DIR, register_configs
    from nas.overrides import precheck_overrides
    from nas.latency.profile import register_latency_configs

    register_configs(), register_latency_configs()
    (tmp_path / "hw").mkdir()
    shipped = (CONF_DIR / "hw" / "edge_npu.yaml").read_text()
    (tmp_path / "hw" / "typo.yaml").write_text(shipped.replace("\nmac_per_s:", "\nmac_per_sec:"))
    (tmp_path / "hw" / "mib.yaml").write_text(shipped.replace("\nsram_bytes: 2097152", "\nsram_bytes: 2MiB"))
    for config_name in ("search", "latency"):
        problem = precheck_overrides(["--config-dir", str(tmp_path), "hw=typo"], config_name=config_name)
        assert problem.startswith(f"In 'hw/typo' ({tmp_path / 'hw' / 'typo.yaml'}): hw.mac_per_sec is not a setting of hw "
                                  "(did you mean hw.mac_per_s?); allowed: name, description, precision,")
        problem = precheck_overrides(["--config-dir", str(tmp_path), "hw=mib"], config_name=config_name)
        assert problem == (f"hw.sram_bytes='2MiB' (set in {tmp_path / 'hw' / 'mib.yaml'}) must be a whole number in bytes, "
                           "without units (2 MiB is 2097152)")


def test_a_number_written_with_its_unit_in_a_chip_file_names_the_key_the_file_and_the_unit(tmp_path):
    # `mac_per_s: 4 TOPS`, as a datasheet writes it, gave "Value '4 TOPS' of type 'str' could not be converted to Float":
    # neither the file nor that a plain number in MAC/s goes there (and 4 TOPS is 2e12 MAC/s, not 4e12).
    from nas.config import CONF_DIR, load_hw_profile, register_configs
    from nas.overrides import precheck_overrides
    from nas.latency.profile import register_latency_configs

    register_configs(), register_latency_configs()
    (tmp_path / "hw").mkdir()
    shipped = (CONF_DIR / "hw" / "edge_npu.yaml").read_text()
    for name, old, new in (("tops", "\nmac_per_s: 2.0e12", "\nmac_per_s: 4 TOPS"), ("eff", "\n  conv: 0.6", "\n  conv: 60%"),
                           ("exp", "\nsram_bytes: 2097152", "\nsram_bytes: 2.0e6")):
        assert old in shipped
        (tmp_path / "hw" / f"{name}.yaml").write_text(shipped.replace(old, new).replace("name: edge_npu", f"name: {name}"))
    tops = (f"hw.mac_per_s='4 TOPS' (set in {tmp_path / 'hw' / 'tops.yaml'}) must be a plain number in MAC/s, without units "
            "(1 MAC = 2 ops: 4 TOPS is 2.0e12)")
    for config_name in ("search", "latency"):
        assert precheck_overrides(["--config-dir", str(tmp_path), "hw=tops"], config_name=config_name) == tops
    assert precheck_overrides(["--config-dir", str(tmp_path), "hw=eff"], config_name="latency") == (
        f"hw.efficiency.conv='60%' (set in {tmp_path / 'hw' / 'eff.yaml'}) must be a plain number in (0, 1], the fraction "
        "of the peak, without units (60% is 0.6)")
    # YAML reads 2.0e6 as a float, which an integer count of bytes refuses
    assert precheck_overrides(["--config-dir", str(tmp_path), "hw=exp"], config_name="latency") == (
        f"hw.sram_bytes='2000000.0' (set in {tmp_path / 'hw' / 'exp.yaml'}) must be a whole number in bytes, written as "
        "digits, without a point or exponent (2 MiB is 2097152)")
    # From Python, the same line
    with pytest.raises(ConfigError) as info:
        load_hw_profile(tmp_path / "hw" / "tops.yaml")
    assert str(info.value) == tops


def test_a_chip_number_written_with_its_unit_on_the_command_line_gets_the_unit_line():
    # hw.mac_per_s='4 TOPS' gave OmegaConf's "Value '4 TOPS' of type 'str' could not be converted to Float", while the
    # same value in the chip's file got the line naming its unit: the same line, said to be set on the command line.
    from nas.config import register_configs
    from nas.overrides import precheck_overrides
    from nas.latency.profile import register_latency_configs

    register_configs(), register_latency_configs()
    for config_name in ("search", "latency"):
        assert precheck_overrides(["hw=edge_npu", "hw.mac_per_s='4 TOPS'"], config_name=config_name) == (
            "hw.mac_per_s='4 TOPS' (set on the command line) must be a plain number in MAC/s, without units "
            "(1 MAC = 2 ops: 4 TOPS is 2.0e12)")
    assert precheck_overrides(["hw.efficiency.conv=60%"], config_name="search") == (
        "hw.efficiency.conv='60%' (set on the command line) must be a plain number in (0, 1], the fraction of the peak, "
        "without units (60% is 0.6)")
    # Hydra reads 2.0e6 as a float, which an integer count of bytes refuses (named as typed, not as Hydra's 2000000.0)
    assert precheck_overrides(["hw.sram_bytes=2.0e6"], config_name="search") == (
        "hw.sram_bytes='2.0e6' (set on the command line) must be a whole number in bytes, written as digits, without "
        "a point or exponent (2 MiB is 2097152)")


def _fitted_profiles() -> list:
    """Every committed hw profile whose fitted numbers are in a file of their own: conf/hw's and the benchmark's."""
    from tests.conftest import CONF_DIR

    folders = (CONF_DIR / "hw", CONF_DIR.parent / "experiments" / "results" / "latency")
    return [p for folder in folders for p in sorted(folder.glob("*.yaml")) if p.with_name(f"{p.stem}.fitted.yml").is_file()]


def test_shipped_profiles_predict_as_with_their_fitted_numbers_inline(tmp_path, compose_cfg):
    # The calibrated profiles' fitted numbers moved into <stem>.fitted.yml verbatim, without a refit: each loads (from
    # its file, through hw_profiles, composed) as the same profile as the one-file layout they had, predicting the same.
    from nas.config import hw_profiles, load_hw_profile
    from nas.latency import predict_latency, predict_latency_batch
    from nas.latency.fit import CALIBRATION_MARKER
    from nas.latency.profile import sample_archs

    paths = _fitted_profiles()
    assert {p.stem for p in paths} >= {"cpu", "cpu_int8", "cpu_xeon", "cpu_zen2", "cpu_cover"}
    run = to_run_config(compose_cfg())
    archs = (sample_archs(run.space, 8, seed=3, in_chans=1, img_size=28, num_classes=10)
             + sample_archs(to_run_config(compose_cfg("space=metaformer_s")).space, 8, seed=4, in_chans=3, img_size=64,
                            num_classes=10))
    listed = {p.name: p for p in hw_profiles()}
    for path in paths:
        text = path.read_text()
        fitted = path.with_name(f"{path.stem}.fitted.yml").read_text()
        # the comment lists the fields a fit wrote when the file was written (refitted ones: fitted_for, cross_validated too;
        # cpu_zen2, whose fitted_for was added by hand: fitted_for alone; the shipped ones' measured_extent, added from
        # their fitted_archs)
        assert re.search(rf"{re.escape(CALIBRATION_MARKER)}\nfitted: {path.stem}\.fitted\.yml  # calibrated_on, fitted_archs, "
                         r"measured_inputs, (measured_extent, )?(fitted_for, (cross_validated, )?)?calibration, residual: in that "
                         r"file\n\Z", text)
        assert fitted.startswith(CALIBRATION_MARKER)
        (tmp_path / path.name).write_text(text.split(CALIBRATION_MARKER)[0] + fitted)  # the file as it was
        inline, split = load_hw_profile(tmp_path / path.name), load_hw_profile(path)
        assert split == inline and split.calibration and split.calibrated_on and split.fitted == "", path
        assert predict_latency_batch(archs, split).tolist() == predict_latency_batch(archs, inline).tolist()
        assert [predict_latency(a, split).total_ms for a in archs] == [predict_latency(a, inline).total_ms for a in archs]
        if path.parent.name == "hw":
            assert listed[path.stem] == split == to_run_config(compose_cfg(f"hw={path.stem}")).hw


def test_the_shipped_profiles_record_the_extent_of_the_archs_they_list_as_fitted_on():
    # measured_extent was added to the shipped profiles after their fits: it must be what a fit of their fitted_archs
    # records (each read by its arch_id from the CSV the fitted file's note names), not a hand-written range.
    from nas.config import load_hw_profile
    from nas.latency.fit import measured_extent
    from nas.latency.measure import read_measurements
    from tests.conftest import CONF_DIR

    for path in sorted((CONF_DIR / "hw").glob("*.fitted.yml")):
        hw = load_hw_profile(path.name.removesuffix(".fitted.yml"))
        csv = re.search(r"experiments/results/latency/\w+_fit\.csv", path.read_text()).group(0)
        by_id = {row.arch.arch_id: row.arch for row in read_measurements(CONF_DIR.parent / csv)}
        assert len(hw.fitted_archs) == 50 and hw.measured_extent == measured_extent([by_id[i] for i in hw.fitted_archs]), path


def test_the_benchmarks_fits_of_a_shipped_profiles_csvs_record_what_the_shipped_fitted_file_does():
    # experiments/results/latency/cpu_xeon, cpu_xeonb and cpu_zen2 are experiments/latency_predictor.py's fits of the CSVs that
    # conf/hw's profiles of those names were fitted on, number for number: conf/hw's gained fitted_for (and cpu_xeon's
    # cross_validated, by a refit) and the benchmark's lacked them.
    from nas.config import load_hw_profile
    from nas.latency.hardware import FITTED_FIELDS
    from tests.conftest import CONF_DIR

    folder = CONF_DIR.parent / "experiments" / "results" / "latency"
    names = sorted(p.name.removesuffix(".fitted.yml") for p in folder.glob("*.fitted.yml")
                   if (CONF_DIR / "hw" / p.name).is_file())
    assert names == ["cpu_xeon", "cpu_xeonb", "cpu_zen2"]
    for name in names:
        shipped, benchmark = load_hw_profile(name), load_hw_profile(folder / f"{name}.yaml")
        assert {f: getattr(benchmark, f) for f in FITTED_FIELDS} == {f: getattr(shipped, f) for f in FITTED_FIELDS}, name


def test_composing_a_calibrated_profile_leaves_its_fitted_numbers_to_their_file(compose_cfg):
    # Composing hw=cpu built its ~2,600 fitted numbers as OmegaConf nodes, in every command (about a second each).
    from omegaconf import OmegaConf

    from nas.errors import ConfigError as Error
    from nas.latency import predict_latency
    from nas.latency.profile import sample_archs

    cfg = compose_cfg("hw=cpu")
    assert cfg.hw.fitted == "cpu.fitted.yml" and len(cfg.hw.calibration) == 0 and len(cfg.hw.residual) == 0
    hw = to_run_config(cfg).hw
    assert hw.fitted == "" and len(hw.calibration) > 50 and len(hw.residual) == 201 and hw.calibrated_on == "AMD EPYC; avx512f"
    # A profile converted without reading them would predict with the roofline, without a word: refused
    bare = OmegaConf.to_object(cfg.hw)
    arch = sample_archs(to_run_config(cfg).space, 1, seed=0, in_chans=1, img_size=28, num_classes=10)[0]
    with pytest.raises(Error, match=r"^hw=cpu: its fitted numbers \(cpu.fitted.yml\) are not read in; load the profile "
                                    r"with nas.config.load_hw_profile\('cpu'\)$"):
        predict_latency(arch, bare)
    # ... and a RunConfig made so reads them
    assert to_run_config(dataclasses.replace(to_run_config(cfg), hw=bare)).hw == hw
    # Not .yaml: Hydra does not offer the fitted file as a hw= choice
    with pytest.raises(HydraException, match="Could not find 'hw/cpu.fitted'"):
        compose_cfg("hw=cpu.fitted")


@pytest.mark.parametrize(("fitted", "problem"), [
    # a profile copied to another folder without its fitted file: copying that file too is the fix at hand
    (None, r"cannot be read \(No such file or directory\); copy chip\.fitted\.yml along with the profile, from where it "
           r"was fitted, or refit with `python -m nas.latency.fit hw=chip measurements=\[\.\.\.\]`"),
    ("calibration: {conv: [1.0\n", "are not valid YAML: while parsing a flow"),
    ("- 1.0\n", "hold no mapping of calibrated_on, fitted_archs, measured_inputs, measured_extent, fitted_for, "
               "cross_validated, calibration, residual$"),
    ("calibration: {conv: {fixed: 1.0}}\nmac_per_s: 1.0e12\n", "have unknown key 'mac_per_s'; allowed: calibrated_on, "),
    ("calibration: {conv: {fixed: -1.0}}\n", r": hw.calibration.conv.fixed=-1.0: terms of conv are fixed/per_work/per_byte"),
    # a calibration whole, as a fit writes it (a few terms alone are refused as such)
    (f"calibration: {json.dumps(fitted_calibration({'conv': {'fixed': 3}}))}\n",
     "calibration holds a value that is not a float; write numbers as a fit does"),
    (f"calibration: {json.dumps(fitted_calibration({}))}\ncalibrated_on: 5\n", "calibrated_on=5 must be a string$"),
    # a few terms alone, or a term deleted by hand: the file's missing entries, which the predictor would price at 0
    ("calibration: {conv: {fixed: 1.0}}\n", r": hw=chip's calibration lacks invoke\.fixed, \w+\.fixed, \w+\.per_work, "
                                           r"\w+\.per_byte and \d+ more \(a fit writes invoke\.fixed and "),
    (f"calibration: {json.dumps({**fitted_calibration({}), 'conv': {'fixed': 1.0, 'per_work': 0.0}})}\n",
     r": hw=chip's calibration lacks conv\.per_byte \(a fit writes .*: refit with `python -m nas\.latency\.fit hw=chip "),
])
def test_a_missing_or_broken_fitted_file_is_one_line_naming_it(tmp_path, fitted, problem):
    import re

    from nas.config import HW_DIR, hw_profiles, load_hw_profile

    head = (HW_DIR / "edge_npu.yaml").read_text().replace("name: edge_npu", "name: chip")
    (tmp_path / "chip.yaml").write_text(head + "fitted: chip.fitted.yml\n")
    if fitted is not None:
        (tmp_path / "chip.fitted.yml").write_text(fitted)
    with pytest.raises(ConfigError) as info:
        load_hw_profile(tmp_path / "chip.yaml")
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "chip.fitted.yml") in message and re.search(problem, message), message
    assert hw_profiles(tmp_path) == []  # a hint's list leaves it out


@pytest.mark.parametrize(("named", "there", "hint"), [
    ("chip.fitted.yaml", "chip.fitted.yml", "is there: set `fitted: chip.fitted.yml` in the profile, or refit"),
    ("chip.fitted.yml", "chip.fitted.yaml", "is there: rename it to chip.fitted.yml, or refit"),
])
def test_a_fitted_file_named_with_the_other_yaml_suffix_names_the_file_that_is_there(tmp_path, named, there, hint):
    # `fitted: chip.fitted.yaml` typed for the chip.fitted.yml a fit wrote said only "copy it along ... or refit"
    from nas.config import HW_DIR, load_hw_profile

    head = (HW_DIR / "edge_npu.yaml").read_text().replace("name: edge_npu", "name: chip")
    (tmp_path / "chip.yaml").write_text(head + f"fitted: {named}\n")
    (tmp_path / there).write_text("calibration: {conv: {fixed: 1.0}}\n")
    with pytest.raises(ConfigError) as info:
        load_hw_profile(tmp_path / "chip.yaml")
    message = str(info.value)
    assert "\n" not in message and f"; {tmp_path / there} {hint}" in message, message
    assert "copy " not in message


def test_a_fitted_file_given_by_absolute_path_or_beside_a_users_profile_is_read(tmp_path):
    from nas.config import HW_DIR, load_hw_profile

    head = (HW_DIR / "cpu.yaml").read_text()
    shipped = load_hw_profile("cpu")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "mine.yaml").write_text(head.replace("fitted: cpu.fitted.yml", f"fitted: {HW_DIR / 'cpu.fitted.yml'}"))
    assert load_hw_profile(tmp_path / "a" / "mine.yaml").calibration == shipped.calibration
    beside = fitted_calibration({"invoke": {"fixed": 1.0}})
    (tmp_path / "a" / "cpu.fitted.yml").write_text(f"calibration: {json.dumps(beside)}\n")  # beside the profile
    (tmp_path / "a" / "beside.yaml").write_text(head)
    assert load_hw_profile(tmp_path / "a" / "beside.yaml").calibration == beside


def test_what_a_profile_sets_itself_takes_precedence_over_its_fitted_file(compose_cfg):
    # As on the command line over a file: hw.calibrated_on=... (a search told it was fitted elsewhere), or one term
    from nas.config import load_hw_profile

    shipped = load_hw_profile("cpu")
    hw = to_run_config(compose_cfg("hw=cpu", "hw.calibrated_on=OtherCPU", "+hw.calibration.conv.fixed=1.0",
                                   "+hw.calibration.invoke.fixed=2.0")).hw
    assert hw.calibrated_on == "OtherCPU" and shipped.calibrated_on == "AMD EPYC; avx512f"
    assert shipped.calibration["conv"]["per_work"] > 0 and shipped.calibration["conv"]["fixed"] != 1.0
    assert hw.calibration == {**shipped.calibration, "invoke": {"fixed": 2.0}, "conv": {**shipped.calibration["conv"], "fixed": 1.0}}
    assert hw.residual == shipped.residual and hw.measured_inputs == shipped.measured_inputs
    with pytest.raises(ConfigError, match=r"^hw.calibration.weight_spill.above_bytes=-1.0: terms of weight_spill are "):
        to_run_config(compose_cfg("hw=cpu", "+hw.calibration.weight_spill.above_bytes=-1.0"))


def _as_the_shell_passes_it(suggestion: str, home: str) -> str:
    """The one argument bash makes of `suggestion` (with HOME=`home`), as a user pasting it would pass it."""

    out = subprocess.run(["bash", "-c", f"printf '%s\\0' {suggestion}"], capture_output=True, text=True, check=True,
                         env={**os.environ, "HOME": home}).stdout
    args = out.split("\0")[:-1]
    assert len(args) == 1, args
    return args[0]


@pytest.mark.parametrize(("value", "named"), [
    ("/data/Photos (2024)", "'(', ')'"),
    ("~/photos", "'~'"),
    ("/data/Bob's photos", '"\'"'),
    ("/data/#1", "'#'"),
    ("/data/café", "'é'"),
    ("/data/a,b", "','"),
    ("/d/it's \"x\" $HOME `a` \\", '"\'", \'"\', \'`\''),  # quotes and what the shell's double quotes expand
    ("/d/x!\"\\", "'!', '\"'"),  # bash's history expansion: the shell's single quotes
])
def test_an_override_hydra_refuses_unquoted_is_one_line_with_the_value_quoted(value, named):
    # Hydra said "mismatched input ' (' expecting <EOF>", "LexerNoViableAltException: data.root=...; ^" or "Ambiguous
    # value ... use it as a list", never that quoting the value is the fix. Each entry point's precheck now names the
    # characters and gives the quoted form, which the shell and Hydra read back as the value typed.
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from nas.config import register_configs
    from nas.overrides import precheck_overrides

    register_configs()
    override = f"data.root={value}"
    problem = precheck_overrides(["data=imagefolder", override], config_name="search")
    assert problem is not None and "\n" not in problem, problem
    head = "Hydra reads ',' as separating several values" if value.endswith("a,b") else \
        f"Hydra's override syntax takes {named} only inside quotes"
    assert problem.startswith(f"{override}: {head}; quote the value: "), problem
    suggestion = re.sub(r" \((Hydra does not expand ~|a list is written).*\)$", "", problem.split("; quote the value: ", 1)[1])
    typed = _as_the_shell_passes_it(suggestion, home="/home/me")
    assert typed.startswith("data.root=") and typed != override
    parsed = OverridesParser.create().parse_overrides([typed])[0]
    assert parsed.value() == value.replace("~", "/home/me", value.startswith("~"))
    if value.startswith("~"):  # Hydra takes ~ as a folder's name: the home folder comes from the shell
        assert suggestion == "\"data.root='$HOME/photos'\"" and problem.endswith("the shell expands $HOME)")


def test_override_syntax_is_checked_by_every_command_and_the_search_config_for_python():
    from nas.config import compose_search_config, register_configs
    from nas.overrides import override_syntax_problem, precheck_overrides
    from nas.latency.profile import register_latency_configs

    register_configs()
    register_latency_configs()
    for config_name in ("compress_run", "latency"):  # compress.run, nas.latency.profile/fit/validate
        problem = precheck_overrides(["out=/data/Photos (2024)"], config_name=config_name)
        assert problem == ("out=/data/Photos (2024): Hydra's override syntax takes '(', ')' only inside quotes; quote "
                           "the value: \"out='/data/Photos (2024)'\""), problem
    with pytest.raises(ConfigError, match=r"^data.root=~/x: Hydra's override syntax takes '~' only inside quotes"):
        compose_search_config(["data=imagefolder", "data.root=~/x"])  # nas.report's rebuild, and notebooks
    # What Hydra reads as the user meant it is left alone: spaces, quotes, lists, sweeps under -m, functions, ${...}
    for fine in ("data.root=/data/My Photos", "data.root='/data/Photos (2024) café'", "+x=[1,2]", "x={a: 1}",
                 "x=choice(a,b)", "x=${data.root}", "~data.root"):
        assert override_syntax_problem(fine) is None, fine
    assert override_syntax_problem("search.worker=0,1", multirun=True) is None
    assert override_syntax_problem("data.root=/d (1),/d (2)", multirun=True) is None  # each value would need quotes
    assert override_syntax_problem("dàta.root=/x") is None  # the key is at fault: Hydra's own message
    assert precheck_overrides(["-m", "search.worker=0,1"], config_name="search") is None


def test_hydra_flags_hydra_refuses_together_are_named_before_it_runs():
    from nas.config import register_configs
    from nas.overrides import hydra_flags_problem, precheck_overrides

    register_configs()
    problem = precheck_overrides(["-m", "--cfg", "job", "search.worker=0,1"], config_name="search")
    assert problem is not None and problem.startswith("--multirun and --cfg cannot be given together"), problem
    assert hydra_flags_problem(["--info", "--cfg=job", "hw=cpu"]).startswith("--cfg and --info cannot be given together")
    assert hydra_flags_problem(["--resolve", "hw=cpu"]).startswith("--resolve goes with --cfg")
    # what Hydra answers itself is left to it: one mode, help with a mode, --resolve with --cfg, a choice it refuses
    for fine in (["--cfg", "job"], ["-m", "search.worker=0,1"], ["-m", "--help"], ["--cfg", "job", "--resolve"],
                 ["--cfg", "jobs"], ["hw=cpu"]):
        assert hydra_flags_problem(fine) is None, fine


def test_a_bad_value_in_a_users_hw_file_names_the_file(tmp_path):
    import sys

    from nas.config import CONF_DIR

    # A negative mac_per_s in the user's hw/<chip>.yaml was named by its key only: which of their files said it was left
    # to them. Named where the file holds the value; not where the command line gave it.
    mine = tmp_path / "mine" / "hw" / "my_chip.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text((CONF_DIR / "hw" / "edge_npu.yaml").read_text().replace("name: edge_npu", "name: my_chip")
                    .replace("mac_per_s: 2.0e12", "mac_per_s: -1.0e12"))

    def error(*overrides: str) -> str:
        done = subprocess.run([sys.executable, "-m", "nas.latency.validate", "--config-dir", "mine", "hw=my_chip", *overrides],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              env={"PYTHONPATH": str(CONF_DIR.parent), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        return done.stderr.strip()

    assert error() == f"error: hw.mac_per_s=-1000000000000.0 must be a finite number > 0 (set in {mine})"
    assert error("hw.mac_per_s=-3") == "error: hw.mac_per_s=-3.0 must be a finite number > 0"
    # nan is no value equal to itself: its file went unnamed
    mine.write_text(mine.read_text().replace("mac_per_s: -1.0e12", "mac_per_s: .nan"))
    assert error() == f"error: hw.mac_per_s=nan must be a finite number > 0 (set in {mine})"


def test_a_bad_value_in_a_users_group_file_names_the_file_as_a_chip_files_does(tmp_path):
    import concurrent.futures
    import sys

    from nas.config import CONF_DIR

    # Only a hw profile's range errors named the file that set the value: `lr: 100` in the user's train/mine.yaml, or a
    # negative budget in their search/mine.yaml, was named by its key alone. Named as a value with its unit there is
    # (`latency_budget_ms: 5ms`), and not where the command line gave the value.
    folder = tmp_path / "mine"
    train, search, compress = (folder / group / "mine.yaml" for group in ("train", "search", "compress"))
    for path in (train, search, compress):
        path.parent.mkdir(parents=True)
    train.write_text((CONF_DIR / "train" / "default.yaml").read_text().replace("lr: 3.0e-3", "lr: 100"))
    search.write_text("latency_budget_ms: -1\n")
    compress.write_text("recover:\n  temperature: 1000\n")

    def error(module: str, *overrides: str) -> str:
        done = subprocess.run([sys.executable, "-m", module, "--config-dir", str(folder), *overrides],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              env={"PYTHONPATH": str(CONF_DIR.parent), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        return done.stderr.strip()

    def errors(*commands: tuple[str, ...]) -> list[str]:
        # at once, a Python process each (seconds of imports): one after another, the machine's other CPUs idled
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(commands)) as pool:
            return list(pool.map(lambda command: error(*command), commands))

    runs = f"search.runs_dir={tmp_path / 'runs'}"
    lr = "must be a number in (0, 1] (AdamW's learning rate: larger steps make the losses NaN)"
    assert errors(("nas.search", "train=mine", runs), ("nas.search", "train=mine", "train.lr=5", runs),
                  ("nas.search", "search=mine", runs), ("compress.run", "compress=mine", "checkpoint=/nonexistent/ck")) == [
        f"error: train.lr=100.0 {lr} (set in {train})",
        f"error: train.lr=5.0 {lr}",
        f"error: search.latency_budget_ms=-1.0 must be a number > 0 or null (set in {search})",
        "error: compress.recover.temperature=1000.0 must be a number in (0, 100] (of the distillation; higher makes the "
        f"teacher's answer uniform) (set in {compress})"]
    search.write_text("latency_budget_ms: 5ms\n")
    unit = "must be a plain number in milliseconds or null, without units (5ms is search.latency_budget_ms=5)"
    assert errors(("nas.search", "search=mine", runs), ("nas.search", "search.latency_budget_ms=5ms", runs)) == [
        f"error: search.latency_budget_ms='5ms' (set in {search}) {unit}",
        f"error: search.latency_budget_ms='5ms' (set on the command line) {unit}"]
    assert not (tmp_path / "runs").exists()


def test_load_hw_profile_names_the_file_that_holds_a_bad_value(tmp_path):
    from nas.config import CONF_DIR, load_hw_profile

    # From Python, a negative mac_per_s in the user's chip file was named by its key only (the command line named the
    # file, `_source_file_note`); a non-numeric one already named it.
    shipped = (CONF_DIR / "hw" / "edge_npu.yaml").read_text()
    mine = tmp_path / "my_chip.yaml"
    mine.write_text(shipped.replace("mac_per_s: 2.0e12", "mac_per_s: -1.0e12"))
    with pytest.raises(ConfigError) as info:
        load_hw_profile(mine)
    assert str(info.value) == f"hw.mac_per_s=-1000000000000.0 must be a finite number > 0 (set in {mine})"
    mine.write_text(shipped.replace("\n  conv: 0.6", "\n  conv: 1.5"))  # a key inside a mapping
    with pytest.raises(ConfigError, match=rf"^hw.efficiency.conv=1.5 must be in \(0, 1\] \(set in {re.escape(str(mine))}\)$"):
        load_hw_profile(mine)
    mine.write_text(shipped.replace("mac_per_s: 2.0e12", "mac_per_s: lots"))
    with pytest.raises(ConfigError, match=rf"^hw.mac_per_s='lots' \(set in {re.escape(str(mine))}\) must be a plain number in MAC/s"):
        load_hw_profile(mine)


def test_a_list_items_key_in_a_group_file_is_written_as_an_override_writes_it(tmp_path):
    from nas.config import CONF_DIR, load_hw_profile, register_configs
    from nas.overrides import precheck_overrides

    # A space's stage is checked alone, so OmegaConf named a value in it by its key in the stage (`widths[1]`, `depthz`),
    # in its own form, while the command line's lines say space.stages.1.widths.1: the whole key, as an override writes
    # it, found in the file (the stages all have widths: the one whose value was refused)
    register_configs()
    shipped = (CONF_DIR / "space" / "metaformer_t.yaml").read_text()
    second = "widths: [32, 48, 64]"
    assert shipped.count(second) == 1
    (tmp_path / "space").mkdir()

    def problem(old: str, new: str) -> str | None:
        path = tmp_path / "space" / "mine.yaml"
        path.write_text(shipped.replace("name: metaformer_t", "name: mine").replace(old, new))
        return precheck_overrides(["--config-dir", str(tmp_path), "space=mine"], config_name="search")

    head = f"In 'space/mine' ({tmp_path / 'space' / 'mine.yaml'}): "
    assert problem(second, "widths: [32, abc, 64]") == (
        f"space.stages.1.widths.1='abc' (set in {tmp_path / 'space' / 'mine.yaml'}) must be a whole number, without units")
    assert problem(second, "widths: 32x") == (
        f"{head}space.stages.1.widths must be a list, in brackets: `widths: [a, b]` (`[]` for none)")
    assert problem(second, "widths: null") == f"{head}space.stages.1.widths=null takes no null; allowed: a list, in brackets"
    assert problem(second, "widthz: [32, 48, 64]") == (
        f"{head}space.stages.1.widthz is not a setting of space.stages.1 (did you mean space.stages.1.widths?); allowed: "
        "mixers, depths, widths, kernels, mlp_ratios, head_dims, expands")
    # as the command line's own line for the same key
    assert precheck_overrides(["space.stages.1.widthz=[32]"], config_name="search").startswith(
        "space.stages.1.widthz is not a setting of space.stages.1 (did you mean space.stages.1.widths?)")
    # an item of a chip's list, under hw= and from Python alike
    chip = tmp_path / "hw" / "mine.yaml"
    chip.parent.mkdir()
    chip.write_text((CONF_DIR / "hw" / "edge_npu.yaml").read_text().replace("name: edge_npu", "name: mine")
                    + "residual: [[1.0, abc]]\n")
    item = "hw.residual.0: Value 'abc' (str) is incompatible with type hint 'float'"
    assert precheck_overrides(["--config-dir", str(tmp_path), "hw=mine"], config_name="search") == (
        f"In 'hw/mine' ({chip}): {item}")
    with pytest.raises(ConfigError) as info:
        load_hw_profile(chip)
    assert str(info.value) == f"hw profile file {str(chip)!r} cannot be read: {item}"


def test_a_chip_file_put_directly_in_conf_is_named_with_the_group_folder_it_goes_in(tmp_path, monkeypatch):
    import shutil

    import nas.config
    from nas.config import compose_search_config, register_configs
    from nas.overrides import precheck_overrides

    # conf/mychip.yaml with hw=mychip got only "hw=mychip is not an option of hw": the file beside conf/hw, not in it,
    # as --config-dir's flat layout already says (test_a_group_file_given_as_a_path_or_outside_its_group_folder_...).
    conf = tmp_path / "conf"
    shutil.copytree(nas.config.CONF_DIR, conf)
    monkeypatch.setattr(nas.config, "CONF_DIR", conf)
    register_configs()
    (conf / "mychip.yaml").write_text("name: mychip\n")
    hint = f"; {conf / 'mychip.yaml'} is there, but hw= reads its files from {conf / 'hw'}: move {conf / 'mychip.yaml'} to {conf / 'hw' / 'mychip.yaml'}"
    problem = precheck_overrides(["hw=mychip"], config_name="search")
    assert problem.startswith("hw=mychip is not an option of hw") and problem.endswith(hint), problem
    with pytest.raises(ConfigError) as info:  # from Python too
        compose_search_config(["hw=mychip"])
    assert str(info.value).endswith(hint)
    # a command's own config in conf/ is no misplaced option: the plain message
    assert "is there" not in precheck_overrides(["hw=search"], config_name="search")


def test_a_command_line_is_repeated_for_a_shell_with_values_quoted_as_hydra_reads_them(tmp_path):
    import shlex

    from hydra.core.override_parser.overrides_parser import OverridesParser

    from nas.overrides import shell_command

    argv = ["checkpoint=runs/my run/ck", "hw=cpu", "data.root='/photos (2024)'", "compress.prune.ratio=0.5",
            "--config-dir", "my chips", "data.root=it's", "data.name='wow!'"]
    line = shell_command("compress.run", argv)
    assert line == ("python -m compress.run \"checkpoint='runs/my run/ck'\" hw=cpu \"data.root='/photos (2024)'\" "
                    "compress.prune.ratio=0.5 --config-dir 'my chips' 'data.root=it'\"'\"'s' 'data.name=\"wow!\"'")
    # each argument reaches Hydra with the value it had
    parser = OverridesParser.create()
    again = shlex.split(line)[3:]
    assert again[4:6] == argv[4:6]
    for before, after in zip(argv[:4] + argv[6:], again[:4] + again[6:]):
        if before == "data.root=it's":  # Hydra refuses it either way: repeated as typed
            assert after == before
            continue
        assert parser.parse_overrides([after])[0].value() == parser.parse_overrides([before])[0].value()


def test_an_enum_setting_out_of_its_values_is_one_line_naming_the_value_and_the_allowed_ones(compose_cfg):
    # Hydra said "Error merging override data.metric=f1: Invalid value 'f1', expected one of [...]"
    from nas.config_messages import compose_error_message

    for override, allowed in (("data.metric=f1", "accuracy, balanced_accuracy"), ("train.precision=fp16", "auto, fp32, bf16")):
        with pytest.raises(HydraException) as err:
            compose_cfg(override)
        assert compose_error_message(err.value) == f"{override} is unknown; allowed: {allowed}"
    with pytest.raises(HydraException) as err:  # a value of another kind: what the setting takes
        compose_cfg("search.progress=maybe")
    assert compose_error_message(err.value) == "search.progress=maybe is not allowed; allowed: true or false"


@pytest.mark.parametrize(("config_name", "override", "message"), [
    # OmegaConf's "field 'train.epochs' is not Optional" said neither that null is the fault nor what goes there
    ("search", "train.epochs=null", "train.epochs=null takes no null; allowed: a whole number"),
    ("search", "data.format=null", "data.format=null takes no null; allowed: one of idx, imagefolder"),
    ("search", "hw.efficiency=null", "hw.efficiency=null takes no null; allowed: a mapping, in braces"),
    ("search", "hw.efficiency.conv=null", "hw.efficiency.conv=null takes no null; allowed: a number"),
    # "Value '[1, 2]' of type 'list' could not be converted to Integer"
    ("search", "train.batch_size=[1,2]", "train.batch_size=[1,2] is not allowed; allowed: a whole number"),
    ("search", "search.latency_budget_ms=[1]", "search.latency_budget_ms=[1] is not allowed; allowed: a number or null"),
    # "Value [1, 2] (list) is not a valid input for <enum 'Sampler'>": the enum's values were not named
    ("search", "search.sampler=[1,2]", "search.sampler=[1,2] is not allowed; allowed: one of tpe, nsga2, random"),
    ("search", "train.precision=1.5", "train.precision=1.5 is not allowed; allowed: one of auto, fp32, bf16"),
    ("search", "compress.members=[a]", "compress.members=[a] is not allowed; allowed: one of all, top_k, none"),
    ("search", "train.channels_last=[1,2]", "train.channels_last=[1,2] is not allowed; allowed: true or false"),
    # "Cannot convert 'list' to string", "Invalid type assigned: str is not a subclass of StageSpace. value: abc"
    ("search", "space.name=[1,2]", "space.name=[1,2] is not allowed; allowed: one text value (a name or a path)"),
    ("search", "space.stages=[abc]",
     "space.stages=[abc] is not allowed; allowed: a list of mappings of StageSpace's settings, in brackets"),
    ("search", "space.stages.0.depths=null", "space.stages.0.depths=null takes no null; allowed: a list, in brackets"),
    ("compress_run", "compress.prune=null", "compress.prune=null takes no null; allowed: a mapping of PruneConfig's settings"),
    ("latency", "n=null", "n=null takes no null; allowed: a whole number"),
    ("latency", "export_only=[1,2]", "export_only=[1,2] is not allowed; allowed: true or false"),
])
def test_a_value_of_the_wrong_kind_is_one_line_naming_what_the_setting_takes(config_name, override, message):
    from nas.config import register_configs
    from nas.overrides import precheck_overrides
    from nas.latency.profile import register_latency_configs

    register_configs()
    register_latency_configs()
    argv = ["checkpoint=/x"] if config_name == "compress_run" else []
    assert precheck_overrides([*argv, override], config_name=config_name) == message


@pytest.mark.parametrize("name", ["test_size", "val_size"])
def test_a_held_out_size_out_of_range_names_both_forms_it_takes_as_typed(name):
    # data.test_size=0 said "data.test_size=0.0 must be a number > 0": neither as typed nor that a count is taken
    from nas.config import DataConfig, validate_data_config

    allowed = f"allowed: a fraction of the images (0 < {name} < 1, e.g. 0.2) or a whole count of images (>= 1, e.g. 500)"
    for value, what in ((0.0, "0 holds out no images"), (-3.0, "-3 holds out no images"),
                        (2.5, "2.5 is neither a fraction (< 1) nor a whole count of images")):
        with pytest.raises(ConfigError) as err:
            validate_data_config(DataConfig(name="x", **{name: value}))
        assert str(err.value) == f"data.{name}={what}; {allowed}"
    validate_data_config(DataConfig(name="x", **{name: 93.0}))  # a count


@pytest.mark.parametrize(("bad_line", "shown"), [
    # a colon left out: PyYAML's first line, all that was shown, was "while scanning a simple key" (the Python API) or
    # that and the line before the culprit (the command line)
    ("mac_per_s 4.0e12", "line 3: 'mac_per_s 4.0e12' is not valid YAML (could not find expected ':'); each setting is "
                         "`key: value`"),
    # a tab in the indentation: the command line's line named neither file nor line
    ("efficiency:\n\tconv: 0.6", "line 4: '\\tconv: 0.6' is not valid YAML (found character '\\t' that cannot start any "
                                 "token); indent with spaces, not tabs"),
])
def test_a_chip_file_that_is_no_valid_yaml_names_its_file_line_and_text(tmp_path, bad_line, shown):
    from nas.config import load_hw_profile, register_configs
    from nas.overrides import precheck_overrides
    from nas.latency.profile import register_latency_configs

    register_configs(), register_latency_configs()
    (tmp_path / "hw").mkdir()
    path = tmp_path / "hw" / "my_npu.yaml"
    path.write_text(f"name: my_npu\nprecision: int8\n{bad_line}\nsram_bytes: 1048576\n")
    expected = f"{path}, {shown}"
    with pytest.raises(ConfigError) as err:
        load_hw_profile(path)
    assert str(err.value) == expected
    assert precheck_overrides(["--config-dir", str(tmp_path), "hw=my_npu"], config_name="latency") == expected


def test_a_chip_files_list_setting_given_one_value_says_how_a_list_is_written(tmp_path):
    # `fused_kinds: bn` in the user's chip file: "Invalid value assigned: AnyNode is not a ListConfig, list or tuple."
    from nas.config import load_hw_profile, register_configs
    from nas.overrides import precheck_overrides
    from nas.latency.profile import register_latency_configs

    register_configs(), register_latency_configs()
    (tmp_path / "hw").mkdir()
    path = tmp_path / "hw" / "my_npu.yaml"
    path.write_text("name: my_npu\nfused_kinds: bn\n")
    wanted = "hw.fused_kinds must be a list, in brackets: `fused_kinds: [a, b]` (`[]` for none)"
    assert precheck_overrides(["--config-dir", str(tmp_path), "hw=my_npu"], config_name="latency") == f"In 'hw/my_npu' ({path}): {wanted}"
    with pytest.raises(ConfigError) as err:
        load_hw_profile(path)
    assert str(err.value) == f"hw profile file {str(path)!r} cannot be read: {wanted}"


def test_load_hw_profile_of_a_path_without_yaml_names_the_file_it_means(tmp_path):
    # load_hw_profile("myconf/hw/my_npu") was "unknown; allowed: [the shipped names] or a path to a .yaml file"
    from nas.config import load_hw_profile

    path = tmp_path / "my_npu.yaml"
    path.write_text("name: my_npu\n")
    with pytest.raises(ConfigError, match=rf"^hw profile {re.escape(repr(str(tmp_path / 'my_npu')))} is unknown \(did you mean "
                                          rf"{re.escape(repr(str(path)))}\?\); allowed: \["):
        load_hw_profile(str(tmp_path / "my_npu"))
    assert load_hw_profile(path).name == "my_npu"


def test_load_hw_profile_names_a_misspelt_key_as_the_command_line_does(tmp_path):
    # From Python, `mac_per_sec:` was "Key 'mac_per_sec' not in 'HardwareProfile'": no close match, no allowed keys
    from nas.config import load_hw_profile

    path = tmp_path / "my_npu.yaml"
    path.write_text("name: my_npu\nmac_per_sec: 2.0e12\n")
    with pytest.raises(ConfigError, match=rf"^hw profile file {re.escape(repr(str(path)))} cannot be read: hw.mac_per_sec is not a "
                                          r"setting of hw \(did you mean hw.mac_per_s\?\); allowed: name, description, "):
        load_hw_profile(path)


def test_smoke_groups_of_a_hydra_run_are_those_its_command_line_chose_as_smoke(compose_cfg):
    # pareto.json's smoke_settings (the report's 'Smoke run' line): in a Hydra run the groups chosen as <group>=smoke,
    # also where a value beside it changed (train=smoke train.epochs=3 is still a seconds-long run)
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from nas.config import CONF_DIR, register_configs, smoke_groups

    register_configs()
    overrides = ["train=smoke", "train.epochs=3", "compress=smoke"]
    run = to_run_config(compose_cfg(*overrides))
    assert smoke_groups(run) == ["compress"]  # outside a Hydra run: by the values, which train.epochs=3 changed
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("search", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    try:
        assert smoke_groups(run) == ["train", "compress"]
    finally:
        HydraConfig.instance().cfg = None


def test_smoke_groups_by_value_leave_the_speed_settings_aside(compose_cfg):
    # A rebuild from the study (`python -m nas.report search.study_name=...`) takes train from the study, threads
    # included: a search run with train=smoke train.threads=1 was rebuilt without 'train' in smoke_settings, so the
    # rebuilt pareto.json and report differed from the search's, and its 'Smoke run' line no longer named train=smoke
    from nas.config import smoke_groups

    run = to_run_config(compose_cfg("train=smoke", "train.threads=1", "train.channels_last=false",
                                    "final_train=smoke", "final_train.eval_batch_size=64",
                                    "final_train.keep_freed_memory=false"))
    assert smoke_groups(run) == ["train", "final_train"]
    # a setting that changes what is learnt still counts
    assert smoke_groups(to_run_config(compose_cfg("train=smoke", "train.threads=1", "train.lr=0.01"))) == []
    # the rebuild line of a compress=smoke compress.measure_latency=true folder: the members and the host timing change no
    # accuracy; the images scored do
    assert smoke_groups(to_run_config(compose_cfg("compress=smoke", "compress.measure_latency=true",
                                                  "compress.members=top_k", "compress.latency_threads=2"))) == ["compress"]
    assert smoke_groups(to_run_config(compose_cfg("compress=smoke", "compress.eval_images=2000"))) == []


def test_load_hw_profile_names_an_argument_that_is_neither_name_nor_path():
    from nas.config import load_hw_profile

    with pytest.raises(TypeError, match=r"^name_or_path=None is a NoneType; pass a path \(a str or a pathlib\.Path\)$"):
        load_hw_profile(None)


@pytest.mark.parametrize("overrides, message", [
    ({"hw": "cpu", "search.n_trials": 3}, r"overrides=\{'hw': 'cpu', 'search\.n_trials': 3\} is a dict; pass a list of "
                                          r"\"key=value\" strings, as on the command line, e\.g\. \['hw=cpu', 'search\.n_trials=3'\]"),
    (3, r"overrides=3 is an int; pass a list of \"key=value\" strings, .*"),
    (["hw=cpu", 3], r"overrides\[1\]=3 is an int; pass a \"key=value\" string, e\.g\. \"search\.n_trials=30\""),
])
def test_compose_search_config_names_overrides_that_are_not_key_value_strings(overrides, message):
    # a dict's keys were parsed as overrides ("Error parsing override 'hw'; missing EQUAL"), an int was "not iterable"
    from nas.config import compose_search_config

    with pytest.raises(TypeError, match=f"^{message}$"):
        compose_search_config(overrides)


@pytest.mark.parametrize("cfg", [["train=smoke"], {"search": {"n_trials": 2}}, None])
def test_to_run_config_names_what_to_pass_for_anything_but_a_config(cfg):
    # OmegaConf's "Input cfg is not an OmegaConf config object (list)" did not say how to make one
    with pytest.raises(TypeError, match=r"^cfg=.* is an? (list|dict|NoneType); pass the DictConfig that "
                                        r"nas\.compose_search_config\(\[\"key=value\", \.\.\.\]\) returns \(or a RunConfig\)$"):
        to_run_config(cfg)


@pytest.mark.parametrize("name, meant", [("Edge_NPU", "edge_npu"), ("edge_npuu", "edge_npu"), ("cpu-int8", "cpu_int8")])
def test_load_hw_profile_suggests_the_closest_shipped_name(name, meant):
    # hw=edge_npuu on the command line gets "(did you mean hw=edge_npu?)"; load_hw_profile listed the names only
    from nas.config import load_hw_profile

    with pytest.raises(ConfigError, match=rf"^hw profile {name!r} is unknown \(did you mean {meant!r}\?\); allowed: \["):
        load_hw_profile(name)


@pytest.mark.parametrize("value", ["0", "-2"])
def test_max_failures_in_a_row_takes_a_whole_number_above_zero_or_null(value, compose_cfg):
    with pytest.raises(ConfigError) as err:
        to_run_config(compose_cfg(f"search.max_failures_in_a_row={value}"))
    assert str(err.value).startswith(f"search.max_failures_in_a_row={value}") and "must be an integer > 0 or null" in str(err.value)
    assert to_run_config(compose_cfg("search.max_failures_in_a_row=null")).search.max_failures_in_a_row is None
    assert to_run_config(compose_cfg()).search.max_failures_in_a_row == 5


def test_a_compress_number_written_as_a_percentage_gets_the_line_with_its_range():
    # compress.prune.ratio=25% gave OmegaConf's "Value '25%' of type 'str' could not be converted to Float", naming
    # neither the range allowed nor that 25% is written 0.25: the line a chip's number gets, with the setting's range
    from nas.config import register_configs
    from nas.overrides import precheck_overrides

    register_configs()
    for config_name in ("compress_run", "search"):
        assert precheck_overrides(["compress.prune.ratio=25%"], config_name=config_name) == (
            "compress.prune.ratio='25%' (set on the command line) must be a plain number in [0, 0.9], the fraction of "
            "the channels removed per group (null: no ratio), without units (25% is 0.25)")
    assert precheck_overrides(["compress.quantize.max_acc_drop=0.5pt"], config_name="compress_run") == (
        "compress.quantize.max_acc_drop='0.5pt' (set on the command line) must be a plain number in [0, 100], in "
        "accuracy points, without units (0.3 pt is 0.3)")
    assert precheck_overrides(["compress.eval_images=1k"], config_name="compress_run") == (
        "compress.eval_images='1k' (set on the command line) must be a whole number > 0 of the val and of the test "
        "images each (null: all), without units (1000)")
    # a compress setting without a range of its own: the plain-number line all the same
    assert precheck_overrides(["compress.recover.lr=fast"], config_name="compress_run") == (
        "compress.recover.lr='fast' (set on the command line) must be a plain number, without units")


def test_compose_search_config_records_its_overrides_where_hydra_keeps_a_command_line():
    # run_search(compose_search_config([...])) could not tell the settings asked for (overridden was empty unless
    # passed): the config records its overrides under hydra.overrides.task, which copies and merges keep, and which
    # the conversion to the schema leaves out
    import copy

    from omegaconf import OmegaConf

    from compress import compose_compress_config, run_compress
    from nas.config import composed_overrides, compose_search_config, overridden_or_recorded

    cfg = compose_search_config(["train=smoke", "data.test_size=0.2"])
    assert composed_overrides(cfg) == ["train=smoke", "data.test_size=0.2"]
    assert composed_overrides(copy.deepcopy(cfg)) == composed_overrides(OmegaConf.merge(cfg, {"search": {"seed": 1}}))
    assert overridden_or_recorded(cfg, None) == {"train", "data.test_size"} and overridden_or_recorded(cfg, ()) == ()
    assert composed_overrides(compose_search_config()) == [] and composed_overrides(to_run_config(cfg)) is None
    run = to_run_config(cfg)
    assert run.train.epochs == to_run_config(compose_search_config(["train=smoke"])).train.epochs
    assert "hydra" in cfg  # the caller's config keeps its record after the conversion
    assert composed_overrides(compose_compress_config(["checkpoint=/x"])) == ["checkpoint=/x"]
    with pytest.raises(TypeError, match=r"^overridden='data\.test_size' is a str; pass a collection of config keys"):
        run_compress(compose_compress_config(["checkpoint=/x"]), overridden="data.test_size")


def test_a_setting_whose_name_ends_in_its_unit_given_with_the_unit_gets_the_unit_line(tmp_path):
    # search.latency_budget_ms=1ms gave OmegaConf's "Value '1ms' of type 'str' could not be converted to Float": the
    # name says the unit, so the line says a number of milliseconds goes there, as for a chip's numbers with their unit
    from nas.config import register_configs
    from nas.config_messages import name_unit
    from nas.overrides import precheck_overrides

    register_configs()
    assert precheck_overrides(["search.latency_budget_ms=1ms"], config_name="search") == (
        "search.latency_budget_ms='1ms' (set on the command line) must be a plain number in milliseconds or null, without "
        "units (1ms is search.latency_budget_ms=1)")
    assert precheck_overrides(["search.heartbeat_s=30s"], config_name="search") == (
        "search.heartbeat_s='30s' (set on the command line) must be a whole number in seconds, without units (30s is "
        "search.heartbeat_s=30)")
    # another unit than the name's: no example to convert it by
    assert precheck_overrides(["search.timeout_s=1h"], config_name="search") == (
        "search.timeout_s='1h' (set on the command line) must be a plain number in seconds or null, without units")
    # Hydra's `++` (set or add) is no part of the key: the compress settings' ranges are found by it
    assert precheck_overrides(["++compress.prune.ratio=25%"], config_name="search") == (
        "compress.prune.ratio='25%' (set on the command line) must be a plain number in [0, 0.9], the fraction of the "
        "channels removed per group (null: no ratio), without units (25% is 0.25)")
    # a setting that takes null says so: `none` (meaning no budget) read as if a number were required; and none, in
    # any case, is Python's word: the line says null is written instead (no unit, no example, which none is not about)
    for none in ("none", "None", "NONE"):
        assert precheck_overrides([f"search.latency_budget_ms={none}"], config_name="search") == (
            f"search.latency_budget_ms='{none}' (set on the command line) must be a plain number in milliseconds or "
            "null (not none)")
    assert precheck_overrides(["compress.prune.ratio=none"], config_name="search") == (
        "compress.prune.ratio='none' (set on the command line) must be a plain number in [0, 0.9], the fraction of the "
        "channels removed per group (null, not none: no ratio)")
    # a text setting that takes null: none was a database URL refused as such, or a cache folder named none
    assert precheck_overrides(["search.storage=none"], config_name="search") == (
        "search.storage='none' is not a database URL; allowed: a URL (e.g. sqlite:///path/study.db or "
        "postgresql://user:password@host:5432/dbname) or null (not none: the study's SQLite file in the run folder)")
    for data in (["data=imagefolder", f"data.root={tmp_path}"], []):  # image folders and idx files alike
        assert precheck_overrides([*data, "data.cache_dir=None"], config_name="search") == (
            "data.cache_dir='None' would be a folder named None; allowed: a folder or null (not none: decode on every "
            "load); a folder of that name is written ./None")
    assert precheck_overrides(["data=imagefolder", f"data.root={tmp_path}", "data.cache_dir=./none"],
                              config_name="search") is None
    # empty (data.cache_dir=$CACHE with CACHE unset) was taken as no cache, where an empty search.runs_dir is refused
    for empty in ("''", "' '"):
        assert precheck_overrides(["data=imagefolder", f"data.root={tmp_path}", f"data.cache_dir={empty}"],
                                  config_name="search") == (
            f"data.cache_dir={empty} is empty; allowed: a folder, or null for no cache")
    assert precheck_overrides(["train.epochs=none"], config_name="search") == (  # takes no null: nothing about it
        "train.epochs='none' (set on the command line) must be a whole number, without units")
    mine = tmp_path / "search" / "mine.yaml"  # in a group's file alike
    mine.parent.mkdir()
    mine.write_text("timeout_s: None\n")
    assert precheck_overrides(["--config-dir", str(tmp_path), "search=mine"], config_name="search") == (
        f"search.timeout_s='None' (set in {mine}) must be a plain number in seconds or null (not none)")
    assert precheck_overrides(["search.latency_budget_ms=0.5"], config_name="search") is None
    # a rate is no count of its unit; a name without a unit gets the kind of number alone (test below)
    assert name_unit("hw.mac_per_s") is None and name_unit("search.n_trials") is None
    assert name_unit("search.memory_budget_gb", "8 GiB") == ("in GiB", "8 GiB is search.memory_budget_gb=8")


def test_a_number_setting_without_a_unit_in_its_name_given_no_number_names_the_key_value_and_kind(tmp_path):
    # search.n_trials=abc kept OmegaConf's words ("Value 'abc' of type 'str' could not be converted to Integer"), and
    # train.epochs=1e3 was echoed as '1000.0': now the line the unit-suffixed keys get, with null where it is allowed
    from nas.config import compose_search_config, register_configs
    from nas.overrides import precheck_overrides

    register_configs()
    said = {o: precheck_overrides([o], config_name="search") for o in (
        "search.n_trials=abc", "train.epochs=1e3", "train.lr=fast", "train.subset=all", "data.img_size=28px")}
    assert said == {
        "search.n_trials=abc": "search.n_trials='abc' (set on the command line) must be a whole number, without units",
        "train.epochs=1e3": "train.epochs='1e3' (set on the command line) must be a whole number, written as digits, "
                            "without a point or exponent",
        "train.lr=fast": "train.lr='fast' (set on the command line) must be a plain number, without units",
        "train.subset=all": "train.subset='all' (set on the command line) must be a whole number or null, without units",
        "data.img_size=28px": "data.img_size='28px' (set on the command line) must be a whole number or null, without "
                              "units"}
    # the latency tools' own keys, and from Python
    from nas.latency.profile import register_latency_configs

    register_latency_configs()
    assert precheck_overrides(["n=many"], config_name="latency") == (
        "n='many' (set on the command line) must be a whole number, without units")
    with pytest.raises(ConfigError, match=r"^search\.n_trials='abc' \(set on the command line\) must be a whole number, "
                                          r"without units$"):
        compose_search_config(["search.n_trials=abc"])
    # in a group's file of the user's: the file, and null where the setting takes it
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "mine.yaml").write_text("subset: all\n")
    assert precheck_overrides(["--config-dir", str(tmp_path), "train=mine"], config_name="search") == (
        f"train.subset='all' (set in {tmp_path / 'train' / 'mine.yaml'}) must be a whole number or null, without units")


def test_a_group_setting_given_without_its_group_names_the_groups_that_hold_it():
    # n_trials=3 (for search.n_trials=3) was refused listing the groups, hw, space, ..., as the allowed keys
    assert unknown_key_message("n_trials", RunConfig) == (
        "n_trials is not a setting of the config (did you mean search.n_trials?); allowed: hw, space, data, train, "
        "search, final_train, compress")
    assert "(did you mean data.root?)" in unknown_key_message("root", RunConfig)
    assert "(did you mean search.seed or compress.seed?)" in unknown_key_message("seed", RunConfig)
    # a group within a group, and a misspelt setting closer to a group's setting than to a group's name
    assert "(did you mean compress.prune.ratio?)" in unknown_key_message("ratio", CompressRunConfig)
    assert "(did you mean search.n_trials?)" in unknown_key_message("n_trail", RunConfig)
    # a misspelt group keeps its hint, and a key like no setting gets none
    assert "(did you mean train?)" in unknown_key_message("trian", RunConfig)
    assert "did you mean" not in unknown_key_message("nope", RunConfig)
    # within a group the hint is the group's own, as before
    assert "(did you mean search.n_trials?)" in unknown_key_message("search.n_trails", SearchOptions)


@pytest.mark.parametrize(("config_name", "override", "key"), [
    ("search", "train.channels_last=2", "train.channels_last"),
    ("search", "search.early_stop.enabled=-3", "search.early_stop.enabled"),
    ("search", "data.hflip=10", "data.hflip"),
    ("latency", "export_only=2", "export_only"),
])
def test_a_number_for_a_true_false_setting_is_refused_not_run_as_true(config_name, override, key):
    # OmegaConf takes any integer for a bool, true but for 0: train.channels_last=2 ran as if it said true
    from nas.config import compose_search_config, register_configs
    from nas.overrides import precheck_overrides
    from nas.latency.profile import register_latency_configs

    register_configs()
    register_latency_configs()
    message = f"{override} is not allowed; allowed: true or false"
    assert precheck_overrides([override], config_name=config_name) == message
    if config_name == "search":  # the Python entry point refuses it too
        with pytest.raises(ConfigError, match=re.escape(message)):
            compose_search_config([override])


@pytest.mark.parametrize(("group", "line", "message"), [
    # OmegaConf's "Incompatible value 'None' for field of type 'int'": no YAML value, nor what the setting takes
    ("train", "epochs: null", "train.epochs=null takes no null; allowed: a whole number"),
    # "Value '[1]' of type 'ListConfig' could not be converted to Integer"
    ("hw", "threads: [1]", "hw.threads=[1] is not allowed; allowed: a whole number"),
    ("train", "precision: 1.5", "train.precision=1.5 is not allowed; allowed: one of auto, fp32, bf16"),
    ("hw", "efficiency: {conv: null}", "hw.efficiency.conv=null takes no null; allowed: a number"),
    ("compress", "prune: null", "compress.prune=null takes no null; allowed: a mapping of PruneConfig's settings"),
    # OmegaConf took it as true, without a word
    ("train", "channels_last: 2", "train.channels_last=2 is not allowed; allowed: true or false"),
])
def test_a_value_of_the_wrong_kind_in_a_group_file_is_named_with_the_file_as_on_the_command_line(
        tmp_path, group, line, message):
    # a copied conf/<group>/<name>.yaml given with --config-dir (or, from Python, on Hydra's search path)
    from nas.config import compose_search_config, load_hw_profile, register_configs
    from nas.overrides import precheck_overrides

    register_configs()
    (tmp_path / group).mkdir()
    path = tmp_path / group / "mine.yaml"
    path.write_text(("name: mine\n" if group == "hw" else "") + f"{line}\n")  # the rest from the schema's defaults
    expected = f"In '{group}/mine' ({path}): {message}"
    assert precheck_overrides(["--config-dir", str(tmp_path), f"{group}=mine"], config_name="search") == expected
    with pytest.raises(ConfigError) as err:
        compose_search_config([f"hydra.searchpath=[file://{tmp_path}]", f"{group}=mine"])
    assert str(err.value) == expected
    if group == "hw":  # and the profile read from Python
        with pytest.raises(ConfigError) as err:
            load_hw_profile(path)
        assert str(err.value) == f"hw profile file {str(path)!r} cannot be read: {message}"
    # a key the command line sets is its override's: the file's value is not composed
    if line.startswith("channels_last"):
        assert precheck_overrides(["--config-dir", str(tmp_path), f"{group}=mine", "train.channels_last=true"],
                                  config_name="search") is None


def test_the_shipped_group_files_give_no_number_for_a_true_false_setting():
    from nas.config import compose_search_config, register_configs
    from nas.overrides import precheck_overrides

    register_configs()
    for overrides in ([], ["train=smoke", "final_train=smoke", "compress=smoke"], ["final_train=none", "compress=none"]):
        assert precheck_overrides(overrides, config_name="search") is None
        compose_search_config(overrides)


@pytest.mark.parametrize("override", ["train.channels_last=1", "train.channels_last=0", "data.hflip=yes",
                                      "search.progress=false", "train.epochs=2"])
def test_true_false_settings_still_take_0_1_and_words(override):
    from nas.config import register_configs
    from nas.overrides import precheck_overrides

    register_configs()
    assert precheck_overrides([override], config_name="search") is None


@pytest.mark.parametrize("config_name", ["search", "compress_run"])
def test_a_mapping_setting_takes_new_keys_from_a_plain_override(config_name):
    """hw.measured_extent={...}, hw.calibration.<kind>.<term>=... on a chip without that entry: Hydra closes every
    mapping, and such an override failed with "Key ... is not in struct" though the schema takes any key there."""
    from nas.config import compose_compress_config, compose_search_config, register_configs, structured
    from nas.overrides import precheck_overrides

    register_configs()
    extra = ["checkpoint=/x"] if config_name == "compress_run" else []
    overrides = ["hw=cpu", "hw.measured_extent={stages: [1, 2]}", "hw.calibration.conv.fixed=2.0", *extra]
    assert precheck_overrides(overrides, config_name=config_name) is None
    compose = compose_search_config if config_name == "search" else compose_compress_config
    hw = structured(compose(overrides), RunConfig if config_name == "search" else CompressRunConfig).hw
    assert hw.measured_extent["stages"] == [1, 2] and hw.calibration["conv"]["fixed"] == 2.0
    # a misspelt key there is refused by the value's own check, naming what is allowed
    with pytest.raises(ConfigError, match=r"hw.efficiency has unknown op kind 'cnov'; allowed"):
        to_run_config(compose_search_config(["hw.efficiency.cnov=0.5"]))


@pytest.mark.parametrize("config_name", ["search", "compress_run"])
def test_a_mapping_given_whole_replaces_the_chip_files(config_name):
    """hw=edge_npu 'hw.efficiency={conv: 0.5}' kept every other efficiency of the chip's file, and hw.efficiency={}
    cleared none: Hydra merges a mapping given whole. The value typed is the value, from Python and in a Hydra run."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from nas.config import (CONF_DIR, compose_compress_config, compose_search_config, register_configs, structured)
    from nas.overrides import mappings_replaced, precheck_overrides

    register_configs()
    cls = RunConfig if config_name == "search" else CompressRunConfig
    extra = ["checkpoint=/x"] if config_name == "compress_run" else []
    python = compose_search_config if config_name == "search" else compose_compress_config
    for typed, expected in (("hw.efficiency={conv: 0.5}", {"conv": 0.5}), ("hw.efficiency={}", {})):
        overrides = ["hw=edge_npu", typed, *extra]
        assert structured(python(overrides), cls).hw.efficiency == expected
        # a Hydra run: the config the command's function is given, as it reads it
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
        before = HydraConfig.instance().cfg
        HydraConfig.instance().set_config(cfg)
        try:
            assert structured(mappings_replaced(cfg), cls).hw.efficiency == expected
        finally:
            HydraConfig.instance().cfg = before
    # the check before the run sees the value typed: an efficiency of 0 in the chip's file would be refused, this not
    assert precheck_overrides(["hw=edge_npu", "hw.efficiency={conv: 0.5}", *extra], config_name=config_name) is None
    # an entry of a mapping, and a setting of a dataclass, still merge key by key
    assert structured(python(["hw=edge_npu", "hw.efficiency.conv=0.4", *extra]), cls).hw.efficiency["dwconv"] == 0.06


def test_overrides_after_a_mapping_given_whole_still_apply_in_order():
    """hw.efficiency={conv: 0.5} hw.efficiency.pwconv=0.3 ran with {conv: 0.5}: the whole mapping, set after Hydra's
    merge, wiped out the overrides after it. They apply again, in order; one before it is replaced."""
    from nas.config import compose_search_config

    def efficiency(*overrides):
        return to_run_config(compose_search_config(["hw=edge_npu", *overrides])).hw.efficiency

    assert efficiency("hw.efficiency={conv: 0.5}", "hw.efficiency.pwconv=0.3") == {"conv": 0.5, "pwconv": 0.3}
    assert efficiency("hw.efficiency.pwconv=0.3", "hw.efficiency={conv: 0.5}") == {"conv": 0.5}
    assert efficiency("hw.efficiency={conv: 0.5, add: 0.4}", "~hw.efficiency.conv", "hw.efficiency.add=0.7") == {"add": 0.7}


def test_a_whole_number_in_a_calibration_is_a_float_so_the_compression_fingerprint_is_unchanged():
    """hw.calibration.conv.fixed=3 gave {'fixed': 3} once the calibration's entries were untyped: the chip is hashed
    into the compression fingerprint, which then changed, so an unchanged command recompressed every member."""
    from compress.pipeline import fingerprint
    from nas.config import compose_search_config

    runs = [to_run_config(compose_search_config(["hw=cpu", f"hw.calibration.conv.fixed={v}"])) for v in ("3", "3.0")]
    assert [type(run.hw.calibration["conv"]["fixed"]) for run in runs] == [float, float]
    assert len({fingerprint(run.compress, run.hw, "/nonexistent", "fashion_mnist") for run in runs}) == 1
    # a profile built in Python alike, and a bool is no number (True was priced as 1)
    calibration = fitted_calibration({"conv": {"fixed": 3}})
    assert HardwareProfile(name="x", calibration=calibration).calibration["conv"]["fixed"].__class__ is float
    with pytest.raises(ConfigError, match=r"hw.calibration.conv.fixed=True: terms of conv are"):
        HardwareProfile(name="x", calibration=fitted_calibration({"conv": {"fixed": True}}))


def test_whole_numbers_in_a_calibration_given_whole_are_taken_as_set_alone(tmp_path):
    """hw.calibration={conv: {fixed: 3}} was refused ("written with a point (3.0)") where hw.calibration.conv.fixed=3
    is taken: a chip of the user's with its calibration inline takes both, as 3.0, the whole mapping replacing its own."""
    import yaml

    from nas.config import compose_search_config, load_hw_profile, register_configs
    from nas.overrides import precheck_overrides

    def flow(calibration):  # as an override writes a mapping: no quotes around its keys
        return yaml.safe_dump(calibration, default_flow_style=True, width=10**6).strip()

    (tmp_path / "hw").mkdir()
    inline = fitted_calibration({"invoke": {"fixed": 2.0}, "conv": {"fixed": 1}})
    (tmp_path / "hw" / "inline_chip.yaml").write_text(f"name: inline_chip\ncalibration: {flow(inline)}\n")
    # in the chip's file alike, composed or loaded from Python
    assert load_hw_profile(tmp_path / "hw" / "inline_chip.yaml").calibration["conv"]["fixed"] == 1
    register_configs()
    given = fitted_calibration({"invoke": {"fixed": 2}, "conv": {"fixed": 3}, "add": {"per_work": 1}})
    whole = ["hw=inline_chip", f"hw.calibration={flow(given)}"]
    assert precheck_overrides(["--config-dir", str(tmp_path), *whole], config_name="search") is None
    searchpath = f"hydra.searchpath=['file://{tmp_path}']"
    hw = to_run_config(compose_search_config([searchpath, *whole])).hw
    assert hw.calibration == given and hw.calibration["add"] == {"fixed": 0.0, "per_work": 1.0, "per_byte": 0.0}
    alone = to_run_config(compose_search_config([searchpath, "hw=inline_chip", "hw.calibration.conv.fixed=3"])).hw
    assert alone.calibration["conv"] == {"fixed": 3.0, "per_work": 0.0, "per_byte": 0.0}
    assert precheck_overrides(["--config-dir", str(tmp_path), "hw=inline_chip"], config_name="search") is None


def test_a_dropped_efficiency_is_compared_with_the_file_hw_chose_and_names_it(tmp_path):
    """A copy hw/my_chip.yaml that kept name: edge_npu, or hw.name=x: the warning named hw=edge_npu's (hw=x's) file."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from nas.config import CONF_DIR, dropped_efficiency_warning, register_configs
    from nas.overrides import mappings_replaced

    register_configs()
    (tmp_path / "hw").mkdir()
    (tmp_path / "hw" / "my_chip.yaml").write_text((CONF_DIR / "hw" / "edge_npu.yaml").read_text().replace("conv: 0.6", "conv: 0.7"))
    said = []
    for overrides in (["hw=my_chip"], ["hw=edge_npu", "hw.name=x"]):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="search", overrides=[f"hydra.searchpath=['file://{tmp_path}']", *overrides,
                                                           "~hw.efficiency.conv"], return_hydra_config=True)
        before = HydraConfig.instance().cfg
        HydraConfig.instance().set_config(cfg)
        try:
            said.append(dropped_efficiency_warning(to_run_config(mappings_replaced(cfg)).hw))
        finally:
            HydraConfig.instance().cfg = before
    assert said[0].startswith("hw.efficiency has no conv, which hw=my_chip's file sets (conv: 0.7)")
    assert said[1].startswith("hw.efficiency has no conv, which hw=edge_npu's file sets (conv: 0.6)")


def test_an_efficiency_dropped_on_the_command_line_warns_that_it_is_priced_at_the_peak():
    """~hw.efficiency.conv (or a whole hw.efficiency={...} without conv) priced conv at 1.0, the chip's peak, where
    its file said 0.6, without a word: the search's setup warnings say so."""
    from nas.config import compose_search_config, dropped_efficiency_warning
    from nas.latency.predictor import predict_latency
    from nas.latency.profile import sample_archs

    run = to_run_config(compose_search_config(["hw=edge_npu", "~hw.efficiency.conv"]))
    shipped = to_run_config(compose_search_config(["hw=edge_npu"]))
    assert "conv" not in run.hw.efficiency
    arch, = sample_archs(run.space, 1, seed=0, in_chans=1, img_size=28, num_classes=10)
    assert predict_latency(arch, run.hw).total_ms <= predict_latency(arch, shipped.hw).total_ms
    assert dropped_efficiency_warning(run.hw) == (
        "hw.efficiency has no conv, which hw=edge_npu's file sets (conv: 0.6): the predictor prices it at 1.0, the "
        "chip's peak, so the latencies are optimistic; where that was not meant, set hw.efficiency.<op kind>=<share of "
        "peak>")
    whole = to_run_config(compose_search_config(["hw=edge_npu", "hw.efficiency={conv: 0.6, dwconv: 0.06}"])).hw
    assert dropped_efficiency_warning(whole).startswith("hw.efficiency has no add, gelu, linear, ln, matmul, pool, ")
    assert dropped_efficiency_warning(shipped.hw) is None
    # a calibrated chip reads no efficiency: nothing is priced otherwise
    assert dropped_efficiency_warning(to_run_config(compose_search_config(["hw=cpu", "~hw.efficiency.conv"])).hw) is None


def test_a_calibration_term_is_refused_on_a_chip_with_no_fitted_calibration():
    """hw=edge_npu hw.calibration.conv.fixed=2.0 made the calibration non-empty, so the predictor priced every other op
    kind at 0 (2.6 ms became 0.01), and no warning fired: refused, naming the fit and the efficiency to set instead."""
    from nas.config import compose_search_config, register_configs
    from nas.overrides import precheck_overrides

    register_configs()
    for term in ("conv.fixed", "invoke.fixed"):
        overrides = ["hw=edge_npu", f"hw.calibration.{term}=2.0"]
        with pytest.raises(ConfigError, match=rf"^hw.calibration.{term}=2.0: hw=edge_npu has no fitted calibration"):
            to_run_config(compose_search_config(overrides))
        assert "python -m nas.latency.fit hw=edge_npu" in precheck_overrides(overrides, config_name="search")
    # an efficiency, the datasheet predictor's own number, is taken there
    assert to_run_config(compose_search_config(["hw=edge_npu", "hw.efficiency.add=0.5"])).hw.efficiency["add"] == 0.5


def test_a_fitted_calibration_replaced_in_python_without_a_term_names_the_term_it_lacks():
    """dataclasses.replace(cpu, calibration=<cpu's without conv.per_byte>) was refused as "hw=cpu has no fitted
    calibration, and a term given alone...", naming invoke.fixed, a term that was there, for a chip that has one."""
    from nas.config import load_hw_profile

    cpu = load_hw_profile("cpu")
    calibration = {kind: dict(terms) for kind, terms in cpu.calibration.items()}
    del calibration["conv"]["per_byte"]
    with pytest.raises(ConfigError) as info:
        dataclasses.replace(cpu, calibration=calibration)
    assert str(info.value).startswith("hw=cpu's calibration lacks conv.per_byte (a fit writes invoke.fixed and "), info.value
    assert "python -m nas.latency.fit hw=cpu measurements=" in str(info.value) and "alone" not in str(info.value)


def test_a_calibration_of_a_few_terms_built_in_python_is_refused_as_on_the_command_line():
    """A profile built in Python (README's "From Python") with one calibration term, dataclasses.replace(edge_npu,
    calibration={"conv": {"fixed": 2.0}}), predicted every other op kind at 0 (2.6 ms became 0.01) without a word,
    where the command line refuses the term: refused on construction, in the command line's words."""
    from nas.config import compose_search_config, load_hw_profile
    from nas.latency.hardware import HardwareProfile

    npu = load_hw_profile("edge_npu")
    with pytest.raises(ConfigError) as built:
        dataclasses.replace(npu, calibration={"conv": {"fixed": 2.0}})
    with pytest.raises(ConfigError) as typed:
        to_run_config(compose_search_config(["hw=edge_npu", "hw.calibration.conv.fixed=2.0"]))
    assert str(built.value) == str(typed.value) and "\n" not in str(built.value)
    with pytest.raises(ConfigError, match=r"^hw.calibration.invoke.fixed=5.0: hw=npu has no fitted calibration, and a term "
                                          r"given alone would price every other op kind at 0; .*`python -m nas.latency.fit "
                                          r"hw=npu measurements=\[...\]`"):
        HardwareProfile(name="npu", calibration={"invoke": {"fixed": 5.0}})
    # A fit's whole calibration is taken, and so is one with a term of it changed; an op kind left out is refused
    cpu = load_hw_profile("cpu")
    changed = dataclasses.replace(cpu, calibration={**cpu.calibration, "conv": {**cpu.calibration["conv"], "fixed": 2.0}})
    assert changed.calibration["conv"]["fixed"] == 2.0
    with pytest.raises(ConfigError, match=r"^hw=cpu's calibration lacks softmax.fixed, softmax.per_work, softmax.per_byte \("):
        dataclasses.replace(cpu, calibration={k: v for k, v in cpu.calibration.items() if k != "softmax"})


def test_an_efficiency_set_for_a_calibrated_chip_warns_that_it_changes_no_latency():
    from nas.config import compose_search_config, ignored_efficiency_warning
    from nas.latency.predictor import predict_latency
    from nas.latency.profile import sample_archs

    run = to_run_config(compose_search_config(["hw=cpu", "hw.efficiency.add=0.5"]))
    arch, = sample_archs(run.space, 1, seed=0, in_chans=1, img_size=28, num_classes=10)
    shipped = to_run_config(compose_search_config(["hw=cpu"]))
    # the predictor reads no efficiency once fitted costs replace the datasheet numbers
    assert predict_latency(arch, run.hw).total_ms == predict_latency(arch, shipped.hw).total_ms
    line = ignored_efficiency_warning(run.hw)
    assert line.startswith("hw.efficiency.add=0.5: hw=cpu is calibrated, and its fitted costs replace the efficiencies, "
                           "so this changes no latency; to change its costs, refit (`python -m nas.latency.fit hw=cpu ")
    assert ignored_efficiency_warning(shipped.hw) is None
    # a datasheet chip reads it: no warning
    assert ignored_efficiency_warning(to_run_config(compose_search_config(["hw=edge_npu", "hw.efficiency.add=0.5"])).hw) is None


OVERRIDE_CASES = [
    # the shell split a list or mapping at its spaces: "'2]' is not a setting", or a wrong hint for the latency tools
    (["space.stem_strides=[1,", "2]"], "'space.stem_strides=[1,' and '2]' are one setting that the shell split at its "
     "spaces; quote it whole: 'space.stem_strides=[1, 2]'"),
    (["search.study_name=my", "study"], "a value with spaces goes in quotes: 'search.study_name=my study'"),
    (["search.n_trials", "=", "3"], "write search.n_trials=3 without spaces around ="),
    (["search.n_trials =3"], "write search.n_trials=3 without spaces around ="),
    # Hydra's "no viable alternative at input ...; See https://hydra.cc/..."
    (["hw.measured_extent={stages: [1, 2]"], "hw.measured_extent={stages: [1, 2]: a [ or { is not closed; a list is "
     "written key=[a, b], a mapping key={a: 1, b: [1, 2]}"),
    (["hw.calibration={'conv': {'fixed': 1.0}}"], "the keys of a mapping go without quotes"),
    (["space.stages[0].widths=[16]"], "an item of a list is numbered after a dot: space.stages.0.widths=[16]"),
    # Hydra's and OmegaConf's wording: "Could not append to config", "does not support deletion", "list indices must
    # be integers", "Config group override must be a string or a list", "Cannot merge DictConfig with ListConfig"
    (["+search.n_trials=3"], "+search.n_trials: + adds a key that is not there, and search.n_trials is; drop the +"),
    (["~search.n_trials"], "~search.n_trials: a setting cannot be deleted, only set: give search.n_trials=<value>"),
    (["~search.nope"], "~search.nope: there is no search.nope to delete"),
    (["~space.stages.0"], "an item of a list cannot be deleted with ~: give the whole list instead"),
    (["~hw"], "~hw: the command needs its hw group; choose an option instead: hw=<option>; available: cpu,"),
    (["compress=null"], "compress=null: compress= takes an option's name, not null (did you mean compress=none?)"),
    (["hw="], "hw= needs an option's name; available: cpu,"),
    (["hw.efficiency=[1,2]"], "hw.efficiency=[1,2] is not allowed; allowed: a mapping, in braces"),
    (["hw.fused_kinds={a: 1}"], "hw.fused_kinds={a: 1} is not allowed; allowed: a list, in brackets"),
    # "Value 'abc' (str) is incompatible with type hint 'typing.List[typing.Any]'": the entry, and what it takes
    (["hw.measured_extent={stages: abc}"], "hw.measured_extent.stages=abc is not allowed; allowed: a list, in brackets"),
    (["hw.calibration={conv: {fixed: abc}}"], "hw.calibration.conv.fixed='abc': terms of conv are fixed/per_work/per_byte, "
     "finite and >= 0"),
    (["hw.efficiency={conv: abc}"], "hw.efficiency.conv='abc' (set on the command line) must be a plain number"),
    # a calibration given whole for a chip whose fitted file's is merged term by term under it: it would not replace it
    (["hw=cpu", "hw.calibration={conv: {fixed: 3}}"], "hw.calibration={conv: {fixed: 3}}: hw=cpu's calibration is read "
     "from its fitted file (cpu.fitted.yml), term by term under the command line's, so a mapping given whole would not "
     "replace it; set a term alone (hw.calibration.conv.fixed=3.0), or refit"),
    # {} of a field the fitted file sets reads as unset: the file's values were kept without a word
    (["hw=cpu", "hw.cross_validated={}"], "hw.cross_validated={}: hw=cpu's cross_validated is read from its fitted file "
     "(cpu.fitted.yml), taken where the command line gives none, so {} would not clear it; give its entries, or refit"),
    (["hw=cpu", "hw.measured_extent={}"], "hw.measured_extent={}: hw=cpu's measured_extent is read from its fitted file"),
    # a calibration term is a number, in the schema's words (true was taken and priced as 1; null said fixed=None)
    (["hw=cpu", "hw.calibration.conv.fixed=true"], "hw.calibration.conv.fixed=true is not allowed; allowed: a number"),
    (["hw=cpu", "hw.calibration.conv.fixed=null"], "hw.calibration.conv.fixed=null takes no null; allowed: a number"),
    (["hw=cpu", "hw.calibration.conv.fixed=abc"], "hw.calibration.conv.fixed='abc' (set on the command line) must be a "
     "plain number, without units"),
    # a misspelt key after a mapping given whole: it vanished with the merge the whole mapping replaced
    (["hw=edge_npu", "hw.efficiency={conv: 0.5}", "hw.efficiency.bogus=0.3"], "hw.efficiency has unknown op kind 'bogus'"),
    # it said a list of mappings, for a setting that is one mapping
    (["search.early_stop=true"], "search.early_stop=true is not allowed; allowed: a mapping of EarlyStop's settings"),
    (["space.stages.9.widths=[16]"], "space.stages has no item 9; give the whole list to add one"),
    # it said "widthz is not a setting of the config"
    (["space.stages=[{widths: [16]}, {widthz: [16]}]"], "space.stages.1.widthz is not a setting of space.stages.1 "
     "(did you mean space.stages.1.widths?)"),
    # it said "space.stem_strides='[a]' must be a whole number"
    (["space.stem_strides=[1, a]"], "space.stem_strides=[1, a]: its items must each be a whole number, and item 1 is 'a'"),
]


@pytest.mark.parametrize(("overrides", "fragment"), OVERRIDE_CASES, ids=[" ".join(o) for o, _ in OVERRIDE_CASES])
def test_each_kind_of_override_mistake_is_one_line_in_the_projects_words(overrides, fragment):
    from nas.config import register_configs
    from nas.overrides import precheck_overrides

    register_configs()
    problem = precheck_overrides(overrides, config_name="search")
    assert problem is not None and fragment in problem, problem
    assert "\n" not in problem and "hydra.cc" not in problem and "struct" not in problem


def test_a_path_given_alone_after_a_setting_is_not_taken_for_a_split_value():
    from nas.config import register_configs
    from nas.overrides import precheck_overrides

    register_configs()
    assert (precheck_overrides(["hw=cpu", "runs/exp1"], config_name="search")
            == "'runs/exp1' is not a setting: every argument is key=value")


@pytest.mark.parametrize(("overrides", "hint"), [
    (["hw=cpu", "exp1"], None),  # a group: no option has a space
    (["search.n_trials=30", "50"], None),  # a number
    (["search.export_onnx=true", "x"], None),
    (["search.study_name=my", "study"], "'search.study_name=my study'"),
    (["data.root=/data/My", "Photos"], "'data.root=/data/My Photos'"),
    (["search.seed_archs=runs/my", "run"], "'search.seed_archs=[runs/my run]'"),  # a list of strings: in brackets
    (["search.seed_archs=[runs/my]", "run"], "'search.seed_archs=[runs/my run]'"),  # it said '...=[runs/my] run'
    # a sweep: the whole of it in one pair of quotes ('search.study_name=a,b c') read as the values a and 'b c' under
    # -m only by chance of Hydra's grammar, and outside -m as an ambiguous value: the word joins the last value alone
    (["-m", "search.study_name=a,b", "c"], "in a sweep goes in quotes of its own: \"search.study_name=a,'b c'\""),
    (["search.study_name=a,b", "c"], "\"search.study_name='a,b c'\""),  # one value, its ',' in Hydra's quotes
    (["-m", "hw.efficiency.conv=0.5,0.6", "foo"], None),  # a sweep of numbers: no value has a space
    # a sweep of Hydra's functions: not split inside them ("search.study_name=choice(a,'b) c'" Hydra cannot parse)
    (["-m", "search.study_name=choice(a,b)", "c"], "\"search.study_name='choice(a,b) c'\""),
    (["-m", "search.study_name=glob(a*)", "c"], "\"search.study_name='glob(a*) c'\""),
])
def test_a_stray_word_gets_the_quoting_hint_only_after_a_setting_that_takes_text(overrides, hint):
    # it said "a value with spaces goes in quotes: 'hw=cpu exp1'" after a group or a number too
    from nas.config import register_configs
    from nas.overrides import precheck_overrides

    register_configs()
    head = f"{overrides[-1]!r} is not a setting: every argument is key=value"
    expected = head if hint is None else f"{head}; a value with spaces {hint}" if "sweep" in hint else (
        f"{head}; a value with spaces goes in quotes: {hint}")
    assert precheck_overrides(overrides, config_name="search") == expected


@pytest.mark.parametrize(("value", "named", "items", "quoted", "meant"), [
    ("[~/runs/x/checkpoints/abc]", "'~'", "item ~/runs/x/checkpoints/abc",
     "\"search.seed_archs=['$HOME/runs/x/checkpoints/abc']\"", ["/home/me/runs/x/checkpoints/abc"]),
    ("[runs/exp(1)/x]", "'(', ')'", "item runs/exp(1)/x", "\"search.seed_archs=['runs/exp(1)/x']\"", ["runs/exp(1)/x"]),
    ("[it's, runs/a, 'q (1)', b#2]", "\"'\", '#'", "items it's and b#2",
     "\"search.seed_archs=['it\\'s', runs/a, 'q (1)', 'b#2']\"", ["it's", "runs/a", "q (1)", "b#2"]),
    ("[a!b, c(1)]", "'!', '(', ')'", "items a!b and c(1)", "'search.seed_archs=[\"a!b\", \"c(1)\"]'", ["a!b", "c(1)"]),
])
def test_a_list_item_hydra_refuses_unquoted_is_named_with_the_list_quoted(value, named, items, quoted, meant):
    # it said "... is not a list or mapping Hydra reads: ... (a value with spaces or commas in quotes)", or that a
    # bracket was not closed (for it's), where a value alone is told which character to quote
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from nas.config import register_configs
    from nas.overrides import precheck_overrides

    register_configs()
    override = f"search.seed_archs={value}"
    problem = precheck_overrides([override], config_name="search")
    assert problem is not None and problem.startswith(
        f"{override}: Hydra's override syntax takes {named} only inside quotes, as in the {items}; quote "
        f"{'them' if 'items' in items else 'it'}: {quoted}"), problem
    assert ("the shell expands $HOME" in problem) == ("~" in value)
    typed = _as_the_shell_passes_it(quoted, home="/home/me")  # the shell, then Hydra, read it as the list meant
    assert OverridesParser.create().parse_overrides([typed])[0].value() == meant
