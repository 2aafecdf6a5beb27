"""The settings that rebuild a run folder's files from its study (`python -m nas.report search.runs_dir=...
search.study_name=...`, `nas.study_export.export_study`) without redoing what the search did or being refused for it.

The rebuild takes the hw/space/data/train of the study, but final_train and compress are the command's own: members
final-trained or compressed otherwise than the command says are refused in one line naming them, and data.root is this
machine's. A hint that sends the user to a rebuild names them here, read from the run folder's files (its config.yaml,
the members' metrics.json). Imports neither torch nor Optuna (seconds, and absent where only the report runs):
`nas.report` names the rebuild of a damaged pareto.json with it.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any

from nas.config import CONF_DIR, SPEED_SETTINGS, CompressConfig, DataConfig, TrainConfig
from nas.overrides import shell_override

CONFIG_YAML = "config.yaml"  # the search's settings, written into its run folder


def override_value(value: Any) -> str:
    """A setting's value as a command-line override spells it (an enum by its value: `bf16`, not `Precision.bf16`)."""
    value = value.value if isinstance(value, enum.Enum) else value
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def setting_key(setting: str) -> str:
    """The key of a command-line setting given as one shell argument (`"data.root='/my data'"`: data.root)."""
    return setting.lstrip("\"'+~").split("=", 1)[0]


def _group(name: str, group: str, schema: type) -> dict[str, Any]:
    """The config group `group`/`name` (conf/<group>/<name>.yaml) over its schema's defaults, as a plain dict."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.load(CONF_DIR / group / f"{name}.yaml")),
                                  enum_to_str=True)


def _default_data_root() -> Any:
    """The data.root of the data group `python -m nas.search` composes by default (conf/search.yaml's defaults list):
    read from the files, not composed with Hydra, which refuses to start again inside a Hydra app (compress.run's
    warning about a damaged pareto.json is given in one)."""
    import yaml

    defaults = yaml.safe_load((CONF_DIR / "search.yaml").read_text(encoding="utf-8"))["defaults"]
    name = next(entry["data"] for entry in defaults if isinstance(entry, dict) and "data" in entry)
    return _group(name, "data", DataConfig).get("root")


def _closest(done: dict[str, Any], groups: dict[str, dict[str, Any]], key: str) -> list[str]:
    """The `key` group closest to the flat settings `done` (the default where it is as close) and each `key.<name>=` it
    differs in: none for the default group itself."""
    differ = {name: {k: v for k, v in done.items() if group.get(k) != v} for name, group in groups.items()}
    name = min(differ, key=lambda n: (len(differ[n]), n != "default"))
    return ([] if name == "default" else [f"{key}={name}"]) + [f"{key}.{k}={override_value(v)}" for k, v in differ[name].items()]


def searched_final_train(run_dir: Path) -> list[str]:
    """The final_train settings, each one shell argument, that rebuild the members of `run_dir` without training them
    again: none for final_train's default recipe, `final_train=none` for members kept with their proxy-trained
    weights, else the config group closest to their recipe (`final_train=smoke`) and each `final_train.<key>=` it
    differs in, the settings that change only the training's speed aside (`nas.config.SPEED_SETTINGS`, which a rebuild
    ignores too). Read from the members' metrics.json (what the rebuild compares), or the run's config.yaml where they
    record no one recipe; none where neither says (the rebuild's own refusal names what it lacks)."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    def recipe(value: Any) -> dict[str, Any] | None:  # None: no final training
        if not isinstance(value, dict) or not value.get("epochs"):
            return None
        return {k: v for k, v in value.items() if k not in SPEED_SETTINGS["train"]}

    recorded: list[dict[str, Any] | None] = []
    for path in sorted((run_dir / "checkpoints").glob("*/metrics.json")):
        try:
            member = json.loads(path.read_text())
            if "final_train" in member:  # null: not final-trained
                info = member["final_train"]
                recorded.append(recipe(info.get("recipe") if isinstance(info, dict) else None))
        except (OSError, ValueError, AttributeError):  # unreadable, or no object in it: as the rebuild skips it
            continue
    try:
        if recorded and all(r == recorded[0] for r in recorded):
            done = recorded[0]
        else:  # members trained otherwise from each other, or none recorded: the search's own setting
            done = recipe(OmegaConf.to_container(OmegaConf.load(run_dir / CONFIG_YAML))["final_train"])
        groups = {name: recipe(_group(name, "final_train", TrainConfig)) for name in ("default", "smoke")}
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError, OmegaConfBaseException):
        return []
    if done is None:
        return ["final_train=none"]
    return _closest(done, {name: group for name, group in groups.items() if group is not None}, "final_train")


def flat_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as {dotted key: value} (compress.prune.ratio)."""
    out: dict[str, Any] = {}
    for k, v in settings.items():
        out.update(flat_settings(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def searched_compress(compress: dict[str, Any]) -> list[str]:
    """The compress settings, each one shell argument, that rebuild a run searched with `compress` (its config.yaml's)
    without compressing its members again or being refused for their files (`compress.pipeline.compressed_otherwise`
    compares the settings that change a result): `compress=none` where it compressed none, else the config group
    closest to it and each `compress.<key>=` it differs in; none for compress's default."""
    if compress.get("members") == "none":  # nothing compressed: a rebuild with the default would compress every member
        return ["compress=none"]
    # keep_freed_memory changes no result (compress.pipeline._result_settings): the rebuild compares without it
    done = {k: v for k, v in flat_settings(compress).items() if k != "keep_freed_memory"}
    return _closest(done, {name: flat_settings(_group(name, "compress", CompressConfig)) for name in ("default", "smoke")},
                    "compress")


def rebuild_settings(run_dir: Path) -> list[str] | None:
    """The settings, each one shell argument, that the rebuild of `run_dir` from its study needs besides its runs_dir
    and study_name: data.root where the search's is not the default data's (the rebuild reads the images from there), then
    `searched_final_train` and `searched_compress`. None where the run's config.yaml is missing or unreadable."""
    import yaml
    from omegaconf.errors import OmegaConfBaseException

    try:
        searched = yaml.safe_load((run_dir / CONFIG_YAML).read_text(encoding="utf-8"))
        data, compress = searched["data"], searched["compress"]
        default_root = _default_data_root()
        if not isinstance(data, dict) or not isinstance(compress, dict):
            return None
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError, StopIteration, OmegaConfBaseException):
        return None
    root = data.get("root")
    settings = [shell_override(key="data.root", value=str(root))] if root and root != default_root else []
    return settings + searched_final_train(run_dir) + searched_compress(compress)
